package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
)

// `ls` over a bucket where a live host's record is a gzip bomb of valid
// JSON (256 MiB expanded) lists every tenant, exits 0, and names the bad
// record in one line: in the hosts line, and in -json's hosts[].error.
func TestLsHostileHostRecord(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	env := testpeer.CredEnv(srv)
	put := func(key string, body io.ReadSeeker) {
		t.Helper()
		if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: body}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	for _, name := range []string{guid1, guid2} {
		for tx := 1; tx <= 2; tx++ {
			put(fmt.Sprintf("%s/0000/%s", conn.TenantPath(name), ltx.FormatFilename(ltx.TXID(tx), ltx.TXID(tx))), bytes.NewReader(bytes.Repeat([]byte("x"), ltx.HeaderSize+ltx.TrailerSize)))
		}
	}
	honest, err := hosts.EncodeRecord(&hosts.Record{Host: "web-1", Tenants: []hosts.TenantRecord{{Name: guid1, State: "sleeping", Local: 2, Replicated: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	put(layout.RecordKey("web-1"), bytes.NewReader(honest))

	// The bomb: a block of entries gzipped once, repeated as gzip members
	// (one stream to a reader), written to a file as it is made.
	member := func(text string) []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write([]byte(text))
		_ = zw.Close()
		return buf.Bytes()
	}
	var block strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&block, `{"n":"%08x-0000-4000-8000-%012x","s":"replicating","e":"%s"},`, i, i, strings.Repeat("x", 200))
	}
	bomb, err := os.Create(filepath.Join(t.TempDir(), "record.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer bomb.Close()
	body := member(block.String())
	bomb.Write(member(`{"host":"evil","tenants":[`))
	for range (256 << 20) / block.Len() {
		bomb.Write(body)
	}
	if _, err := bomb.Write(member(`{"n":"end","s":"failed"}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := bomb.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	put(layout.RecordKey("evil"), bomb)
	for _, h := range []string{"web-1", "evil"} {
		put(layout.HeartbeatKey(h), bytes.NewReader([]byte(`{"host":"`+h+`"}`)))
	}

	refused := "evil 0 (record unreadable: host record of evil is over 64 MiB uncompressed: ignored, its tenants are shown from their S3 prefixes; delete .litefleet/hosts/evil/record.json.gz if host evil does not write it, and check who may write .litefleet/)"
	code, out := runLitefleet(t, env, "ls", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-no-cache")
	if code != 0 || !strings.Contains(out, guid1) || !strings.Contains(out, guid2) || !strings.Contains(out, "2 hosts: "+refused+", web-1 1\n") {
		t.Fatalf("ls: exit %d, want 0, both tenants and the hosts line naming the refused record:\n%s", code, out)
	}
	code, out = runLitefleet(t, env, "ls", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-no-cache", "-json")
	var v struct {
		Tenants []struct {
			Tenant string `json:"tenant"`
			Host   string `json:"host"`
		} `json:"tenants"`
		Hosts []struct {
			Name  string `json:"host"`
			Error string `json:"error"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("ls -json: exit %d, %v:\n%s", code, err, out)
	}
	if len(v.Tenants) != 2 || v.Tenants[0].Tenant != guid1 || v.Tenants[0].Host != "web-1" || v.Tenants[1].Tenant != guid2 || v.Tenants[1].Host != "" {
		t.Errorf("tenants %+v, want %s from web-1's record and %s from S3", v.Tenants, guid1, guid2)
	}
	if len(v.Hosts) != 2 || v.Hosts[0].Name != "evil" || !strings.HasPrefix(v.Hosts[0].Error, "host record of evil is over 64 MiB uncompressed: ignored") {
		t.Errorf("hosts %+v, want evil's record refused", v.Hosts)
	}
}
