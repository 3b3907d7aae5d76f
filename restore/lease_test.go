package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/restore"
)

// TestRestoreOverReplicatedFileUsesEngineRule: restore writes over a file
// with Litestream's state beside it only when the tenant's lock.json is
// free by the engine's rule (hosts.WatchClaim), watched on the spot: a
// live Litestream lease refuses at once, with why; an expired one, a claim
// of a host with no heartbeat and junk are free once unchanged for
// DeadAfter, never before.
func TestRestoreOverReplicatedFileUsesEngineRule(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), tenantC+".db")
	testpeer.InsertRows(t, testpeer.OpenDB(t, src), 0, 30)
	r := testpeer.Replicate(t, srv, conn, testpeer.V5, src, tenantC)
	r.Sync()
	r.Stop()
	want := testpeer.Rows(t, src)
	timing := hosts.Timing{BeatEvery: 500 * time.Millisecond, FenceAfter: 1250 * time.Millisecond, DeadAfter: 3 * time.Second, WriteMargin: 300 * time.Millisecond}

	putLease := func(body string) {
		t.Helper()
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket),
			Key: aws.String(layout.ClaimKey(conn.TenantPath(tenantC))), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	// The replicated file: a copy, with Litestream's state beside it.
	target := filepath.Join(t.TempDir(), tenantC+".db")
	testpeer.InsertRows(t, testpeer.OpenDB(t, target), 1000, 3)
	if err := os.Mkdir(layout.LitestreamStateDir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	opt := restore.Options{Conn: conn, Tenant: tenantC, Output: target, Force: true, HostTiming: timing}

	putLease(`{"generation":2,"expires_at":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","owner":"old-box:9"}`)
	_, err := restore.Run(ctx, client, opt)
	var refused *restore.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "a Litestream lease of old-box:9 until") || !strings.Contains(err.Error(), "stop that replicator") {
		t.Fatalf("a live Litestream lease: %v", err)
	}

	for _, lease := range []string{
		`{"generation":2,"expires_at":"2000-01-01T00:00:00Z","owner":"old-box:9"}`,
		`{"generation":3,"expires_at":"9999-12-31T00:00:00Z","owner":"litefleet host gone","host":"gone"}`,
		"\x00 not a lease",
	} {
		putLease(lease)
		start := time.Now()
		if _, err := restore.Run(ctx, client, opt); err != nil {
			t.Fatalf("lock.json %q: %v", lease, err)
		}
		if took := time.Since(start); took < timing.DeadAfter {
			t.Errorf("lock.json %q: restored after %s, before it was seen unchanged for DeadAfter (%s)", lease, took, timing.DeadAfter)
		}
		testpeer.SameRows(t, testpeer.Restored(t, target), want)
	}
}
