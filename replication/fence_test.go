package replication_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/replication"
)

// TestBackFromAFenceChecksTheClaimFirst is issue 17's case 2: while a host
// was fenced (its heartbeat failing), another host took its tenant. When
// its heartbeat comes back it must read the claim before any upload, open
// tenant or not: it finds it lost, uploads nothing, and stands by.
func TestBackFromAFenceChecksTheClaimFirst(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid3+".db")
	writeAndClose(t, path, 0, 3)
	clk := &skewClock{}
	slow := hosts.Timing{BeatEvery: 3 * time.Second, FenceAfter: 7500 * time.Millisecond, DeadAfter: 12 * time.Second, WriteMargin: time.Second}
	eng, logs := start(t, replication.Options{Host: "fenced", SleepAfter: -1, Timing: slow, Now: clk.Now}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)

	clk.Add(slow.FenceAfter + time.Second)
	waitState(t, eng, path, 5*time.Second, replication.StateLeaseLost)

	// Meanwhile another host, alive, took the tenant.
	ctx := context.Background()
	api := srv.Client(t, conn)
	put := func(key string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	put(layout.HeartbeatKey("other"), map[string]any{"host": "other", "pid": 1, "at": time.Now().UTC(), "seq": 1})
	put(layout.ClaimKey(conn.TenantPath(guid3)), map[string]any{"generation": time.Now().UnixNano(), "expires_at": time.Now().Add(time.Hour).UTC(), "owner": "other", "host": "other"})
	before := strings.Count(logs.String(), "new transaction: db="+guid3)
	keys := listKeys(t, api, conn.Bucket, conn.TenantPath(guid3)+"/")

	// The application writes; the next beat is good.
	writeAndClose(t, path, 3, 4)
	st := waitState(t, eng, path, 20*time.Second, replication.StateLeased)
	if !strings.Contains(st.Reason, "other") {
		t.Errorf("leased elsewhere, but the reason does not name the holder: %q", st.Reason)
	}
	time.Sleep(2 * time.Second) // Litestream's sync runs each second
	if after := strings.Count(logs.String(), "new transaction: db="+guid3); after != before {
		t.Fatalf("the host back from its fence uploaded %d transaction(s) into a tenant another host holds", after-before)
	}
	if now := listKeys(t, api, conn.Bucket, conn.TenantPath(guid3)+"/"); !equalKeys(now, keys) {
		t.Fatalf("the tenant's objects changed after its claim was lost:\nbefore %v\nafter  %v", keys, now)
	}
}

// listKeys lists the keys under prefix with their ETags, but the claim.
func listKeys(t *testing.T, api *s3.Client, bucket, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	p := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			if strings.HasSuffix(aws.ToString(o.Key), "/lock.json") {
				continue
			}
			out[aws.ToString(o.Key)] = aws.ToString(o.ETag)
		}
	}
	return out
}

func equalKeys(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestFencedStopSendsNoRequestPerClaim is issue 17's lifecycle: a fenced
// host stops without a request per claim (deleting its heartbeat frees
// them all: a host without one is dead), and reports its tenants as not
// replicated; Stop of one tenant reports a context that ends first.
func TestFencedStopSendsNoRequestPerClaim(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	paths := []string{filepath.Join(dir, guid1+".db"), filepath.Join(dir, guid2+".db"), filepath.Join(dir, guid3+".db")}
	for _, p := range paths {
		writeAndClose(t, p, 0, 3)
	}
	clk := &skewClock{}
	slow := hosts.Timing{BeatEvery: 5 * time.Second, FenceAfter: 12 * time.Second, DeadAfter: 20 * time.Second, WriteMargin: time.Second}
	eng, _ := start(t, replication.Options{Host: "fenced", SleepAfter: -1, Timing: slow, Now: clk.Now}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	for _, p := range paths {
		waitSynced(t, eng, p, 20*time.Second)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := eng.Stop(cancelled, paths[0]); err == nil {
		if st := status(t, eng, paths[0]); st.State != replication.StateStopped {
			t.Fatalf("Stop with an ended context returned nil, and the tenant is %s", st.State)
		}
	}

	clk.Add(slow.FenceAfter + time.Second)
	waitState(t, eng, paths[2], 5*time.Second, replication.StateLeaseLost)
	ctx := context.Background()
	err := eng.Close(ctx)
	var sd *replication.ShutdownError
	if !errors.As(err, &sd) || len(sd.Failed) == 0 {
		t.Errorf("a fenced host's stop: %v, want the tenants it could not sync", err)
	}
	api := srv.Client(t, conn)
	if c, _ := hosts.ReadClaim(ctx, api, conn.Bucket, conn.TenantPath(guid3)); c == nil {
		t.Error("the fenced host released its claim with a request of its own")
	}
	if l, _ := hosts.List(ctx, api, conn.Bucket, nil); len(l) != 0 {
		t.Fatalf("heartbeat left after the stop: %v", l)
	}
}

// TestDivergedStandbyDoesNotChurnTheClaim: a standby whose copy is not the
// tenant's history, written by its application without pause, checks it
// again only after a backoff: each check takes the claim and releases it,
// and checking at every write took it in a tight loop (hundreds of claim
// writes a minute in the chaos harness), starving the host with the right
// copy.
func TestDivergedStandbyDoesNotChurnTheClaim(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	var claimPuts atomic.Int64
	p, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, Hook: func(r s3proxy.Request) {
		if r.Kind == s3proxy.Put && strings.HasSuffix(r.Key, "/lock.json") {
			claimPuts.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	conn := srv.Conn(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	pathA, pathB := filepath.Join(dirA, guid1+".db"), filepath.Join(dirB, guid1+".db")
	writeAndClose(t, pathA, 0, 5)
	writeAndClose(t, pathB, 1000, 9)
	a, _ := start(t, replication.Options{Host: "host-a", SleepAfter: -1}, replication.Source{Dirs: []string{dirA}, DirConn: conn})
	waitSynced(t, a, pathA, 20*time.Second)
	closeEngine(t, a)

	// One good tenant beside it: a start where nothing can replicate is
	// an error.
	writeAndClose(t, filepath.Join(dirB, guid2+".db"), 0, 2)
	viaProxy := conn
	viaProxy.Endpoint = p.URL()
	b, _ := start(t, replication.Options{Host: "host-b", SleepAfter: -1, Retry: time.Second}, replication.Source{Dirs: []string{dirB}, DirConn: viaProxy})
	waitState(t, b, pathB, 20*time.Second, replication.StateDiverged)
	before := claimPuts.Load()
	// Its application writes every 100 ms for 6 s: 60 changes.
	db := testpeer.OpenDB(t, pathB)
	for i := range 60 {
		testpeer.InsertRows(t, db, 2000+i, 1)
		time.Sleep(100 * time.Millisecond)
	}
	n := claimPuts.Load() - before
	t.Logf("%d claim writes in 6 s of changes to a diverged copy", n)
	if n > 6 {
		t.Fatalf("%d claim writes in 6 s of changes to a diverged copy: the standby takes the claim at every change", n)
	}
	if st := status(t, b, pathB); st.State != replication.StateDiverged {
		t.Fatalf("state %s (%s), want diverged", st.State, st.Reason)
	}
}
