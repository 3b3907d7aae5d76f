package fleet

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/hostview"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
)

// gzipBomb writes to a file a host record of host that is valid JSON and
// expands to about 256 MiB: a block of 1,000 tenant entries compressed
// once and repeated as gzip members (one stream to a reader), so that the
// test holds neither the record nor its expansion in memory.
func gzipBomb(t *testing.T, host string) *os.File {
	t.Helper()
	member := func(text string) []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write([]byte(text))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	var block strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&block, `{"n":"%08x-0000-4000-8000-%012x","s":"replicating","e":"%s","l":%d,"r":%d},`, i, i, strings.Repeat("x", 200), i+7, i+7)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "record.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	body := member(block.String())
	parts := []io.Reader{bytes.NewReader(member(fmt.Sprintf(`{"host":%q,"tenants":[`, host)))}
	for range (256 << 20) / block.Len() {
		parts = append(parts, bytes.NewReader(body))
	}
	parts = append(parts, bytes.NewReader(member(`{"n":"end","s":"failed"}]}`)))
	if _, err := io.Copy(f, io.MultiReader(parts...)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return f
}

// A host record that expands past the limit (a gzip bomb of valid JSON)
// is refused as it is read, with one line on its host; it hides nothing:
// every tenant still has its row, those of the other host from its record,
// those of the bomb's host from their S3 prefixes. The refusal is kept
// while the record stays the same, so a refresh does not fetch it again.
// An oversized lock.json beside them is one line on its tenant's row.
func TestRefreshIgnoresHostRecordOverLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	for name, txid := range map[string]uint64{gA: 12, gB: 5, gC: 7, gD: 3} {
		putTenant(t, client, conn, name, txid)
	}
	sync := time.Now().Add(-time.Minute).Unix()
	putHost(t, client, conn.Bucket, &hosts.Record{Host: "web-1", Tenants: []hosts.TenantRecord{
		{Name: gA, State: "replicating", Local: 12, Replicated: 12, LastSync: sync},
		{Name: gB, State: "sleeping", Local: 5, Replicated: 5, LastSync: sync},
		{Name: gA, State: "failed", Reason: "a repeated name"}, // the first one stands
	}})
	// web-2 is alive, and replicates gC and gD; its record is a bomb.
	put(t, client, conn.Bucket, layout.HeartbeatKey("web-2"), []byte(`{"host":"web-2"}`))
	bomb := gzipBomb(t, "web-2")
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(layout.RecordKey("web-2")), Body: bomb}); err != nil {
		t.Fatal(err)
	}

	// And gC has a lock.json of 1 MiB of junk, written just now, so that
	// ls reads it.
	put(t, client, conn.Bucket, conn.TenantPath(gC)+"/lock.json", bytes.Repeat([]byte("{"), 1<<20))

	api := &countingAPI{API: client}
	fl := &Fleet{Conn: conn, API: api}
	v, err := fl.Refresh(context.Background())
	if err != nil || v.RemoteErr != "" {
		t.Fatalf("refresh: %v %s", err, v.RemoteErr)
	}
	rows := map[string]Row{}
	for _, r := range v.Rows {
		rows[r.Tenant] = r
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want the 4 tenants: %+v", len(rows), v.Rows)
	}
	for _, name := range []string{gA, gB} {
		if r := rows[name]; r.Host != "web-1" || r.Status != StatusInSync || r.Remote == nil || r.Remote.Source != s3browse.SourceHostRecord {
			t.Errorf("%s: host %q status %q remote %+v, want in sync from web-1's record", name, r.Host, r.Status, r.Remote)
		}
	}
	for name, txid := range map[string]uint64{gC: 7, gD: 3} {
		if r := rows[name]; r.Host != "" || r.Remote == nil || r.Remote.LatestTXID != txid || r.Remote.Source != "" || r.Status != StatusRemoteOnly {
			t.Errorf("%s: host %q status %q remote %+v, want its S3 prefix listed (TXID %d)", name, r.Host, r.Status, r.Remote, txid)
		}
	}
	if note := rows[gC].Note; !strings.Contains(note, "lease unreadable: lock.json is over 64 KiB, where a lease is about 200 bytes: ignored, it holds nothing; delete databases/"+gC+"/lock.json") || strings.ContainsAny(note, "\r\n") {
		t.Errorf("%s: note %q, want its oversized lock.json said in one line", gC, note)
	}
	var web2 *hostview.HostSummary
	for i := range v.Hosts {
		if v.Hosts[i].Name == "web-2" {
			web2 = &v.Hosts[i]
		}
	}
	want := "host record of web-2 is over 64 MiB uncompressed: ignored, its tenants are shown from their S3 prefixes; delete .litefleet/hosts/web-2/record.json.gz"
	if web2 == nil || !strings.HasPrefix(web2.Error, want) || strings.ContainsAny(web2.Error, "\r\n") || web2.Tenants != 0 {
		t.Fatalf("hosts %+v, want web-2 with one line starting %q", v.Hosts, want)
	}
	if v.Hosts[0].Name != "web-1" || v.Hosts[0].Tenants != 2 || v.Hosts[0].Error != "" {
		t.Errorf("hosts %+v, want web-1 first with its 2 tenants (one named twice)", v.Hosts)
	}
	if _, gets := api.take(); gets != 3 {
		t.Errorf("%d GETs, want 3 (the two records, gC's lock.json)", gets)
	}

	// The same bomb is not fetched again; the verdict stays.
	v, err = fl.Refresh(context.Background())
	if err != nil || len(v.Rows) != 4 {
		t.Fatalf("second refresh: %v, %d rows", err, len(v.Rows))
	}
	if _, gets := api.take(); gets != 1 {
		t.Errorf("second refresh: %d GETs, want 1 (gC's lock.json; neither record changed)", gets)
	}
	for _, h := range v.Hosts {
		if h.Name == "web-2" && !strings.HasPrefix(h.Error, want) {
			t.Errorf("second refresh: web-2's error %q, want the refusal kept", h.Error)
		}
	}
}
