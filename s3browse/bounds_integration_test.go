package s3browse_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/s3browse"
)

// An oversized lock.json (4 MiB of junk where a lease is 200 bytes) is not
// read past its limit: inspect says so in one line and still shows every
// restore point, ls still lists the tenant, and a replicator reading it as
// a claim calls it unreadable, to be taken once it is old, as any junk.
func TestOversizedLockJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	const tenant = "aaaaaaaa-0000-4000-8000-00000000000a"
	put := func(key string, body []byte) {
		t.Helper()
		if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	for tx := 1; tx <= 3; tx++ {
		put(fmt.Sprintf("%s/0000/%s", conn.TenantPath(tenant), ltx.FormatFilename(ltx.TXID(tx), ltx.TXID(tx))), ltxSized)
	}
	lockKey := conn.TenantPath(tenant) + "/lock.json"
	put(lockKey, append([]byte(`{"generation":1,"owner":"`), bytes.Repeat([]byte("x"), 4<<20)...))

	ti, err := s3browse.Inspect(context.Background(), client, conn, tenant)
	if err != nil {
		t.Fatal(err)
	}
	want := "lock.json is over 64 KiB, where a lease is about 200 bytes: ignored, it holds nothing; delete " + lockKey + " if no replicator of this tenant wrote it"
	if ti.Lease == nil || ti.Lease.Error != want {
		t.Fatalf("lease %+v, want the error %q", ti.Lease, want)
	}
	if ti.Lease.Live(ti.Lease.ModifiedAt) {
		t.Error("an oversized lock.json counts as a live lease")
	}
	if ti.LatestTXID != 3 || len(ti.Levels) != 1 || len(ti.Levels[0].Files) != 3 {
		t.Errorf("latest TXID %d, levels %+v: want the 3 restore points beside the bad lease", ti.LatestTXID, ti.Levels)
	}

	listed, err := s3browse.Scan(context.Background(), client, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Name != tenant || listed[0].LatestTXID != 3 || !listed[0].HasLease {
		t.Errorf("scan %+v, want %s with TXID 3 and its lock.json", listed, tenant)
	}

	c, err := hosts.ReadClaim(context.Background(), client, conn.Bucket, conn.TenantPath(tenant))
	if err != nil {
		t.Fatal(err)
	}
	if c == nil || c.Unreadable != "over 64 KiB, where a claim is about 200 bytes" {
		t.Fatalf("claim %+v, want it unreadable as over 64 KiB", c)
	}
	b, err := hosts.New(hosts.Options{API: client, Bucket: conn.Bucket, Host: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Acquire(context.Background(), client, conn.TenantPath(tenant))
	var held *hosts.HeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), "lock.json is unreadable (over 64 KiB, where a claim is about 200 bytes)") || strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("acquire: %v, want it held as an unreadable claim until it is old, in one line", err)
	}
}

// ltxSized is the body of a fake LTX file: the least an LTX object can be
// (a header and a trailer), for listings that count it as one
// (layout.LTXObject).
var ltxSized = bytes.Repeat([]byte("x"), ltx.HeaderSize+ltx.TrailerSize)
