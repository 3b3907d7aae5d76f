package restore_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3conn"
)

// listCounter counts the level-0 listings of each tenant.
type listCounter struct {
	s3conn.API
	mu sync.Mutex
	n  map[string]int
}

func (c *listCounter) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if p := aws.ToString(in.Prefix); strings.HasSuffix(p, "/0000/") {
		c.mu.Lock()
		c.n[strings.TrimSuffix(strings.TrimPrefix(p, "databases/"), "/0000/")]++
		c.mu.Unlock()
	}
	return c.API.ListObjectsV2(ctx, in, opts...)
}

func (c *listCounter) count(tenant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[tenant]
}

// publishRecord writes a host's heartbeat and its record naming tenant at
// txid, as a litefleet replicator would. note changes the record's size,
// as a changed record's would (S3 dates objects to the second).
func publishRecord(t *testing.T, client *s3.Client, bucket, tenant string, txid uint64, note string) {
	t.Helper()
	ctx := context.Background()
	beat, _ := json.Marshal(hosts.Heartbeat{Host: "h1", Instance: "i", At: time.Now(), Started: time.Now()})
	rec, err := hosts.EncodeRecord(&hosts.Record{Host: "h1", Started: time.Now(), At: time.Now(),
		Tenants: []hosts.TenantRecord{{Name: tenant, State: "replicating", Local: txid, Replicated: txid, Reason: note}}})
	if err != nil {
		t.Fatal(err)
	}
	for key, body := range map[string][]byte{layout.HeartbeatKey("h1"): beat, layout.RecordKey("h1"): rec} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
}

// FollowAll polls a tenant that a host record names only when the record
// says it moved; a tenant no record names, every round.
func TestFollowAllPollsWhatRecordsSayMoved(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)

	dir := t.TempDir()
	var dbs = map[string]*testpeer.Litestream{}
	var sqls = map[string]*sql.DB{}
	for _, tn := range []string{tenantA, tenantB} {
		src := filepath.Join(dir, tn+".db")
		db := testpeer.OpenDB(t, src)
		sqls[tn] = db
		testpeer.InsertRows(t, db, 0, 10)
		dbs[tn] = testpeer.Replicate(t, srv, conn, testpeer.V5, src, tn)
	}
	dbs[tenantA].Sync()
	txB := dbs[tenantB].Sync()
	publishRecord(t, client, conn.Bucket, tenantB, txB, "")

	api := &listCounter{API: client, n: map[string]int{}}
	out := filepath.Join(t.TempDir(), "standby")
	var mu sync.Mutex
	rounds := 0
	txids := map[string]uint64{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := restore.FollowAll(ctx, api, restore.FollowAllOptions{
			AllOptions: restore.AllOptions{Conn: conn, OutputDir: out},
			Interval:   50 * time.Millisecond,
			OnEvent: func(ev restore.FollowEvent) {
				mu.Lock()
				txids[ev.Tenant] = ev.TXID
				mu.Unlock()
			},
			OnRound: func(restore.FollowRound) {
				mu.Lock()
				rounds++
				mu.Unlock()
			},
		})
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testpeer.Eventually(t, 30*time.Second, "ten rounds", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return rounds >= 10
	})
	if a, b := api.count(tenantA), api.count(tenantB); a < 10 || b > 1 {
		t.Fatalf("level-0 listings: tenant A (no record) %d, tenant B (recorded, idle) %d: want A every round, B once at most", a, b)
	}

	// B writes; once its record says so, it is polled and followed.
	testpeer.InsertRows(t, sqls[tenantB], 100, 3)
	txB2 := dbs[tenantB].Sync()
	publishRecord(t, client, conn.Bucket, tenantB, txB2, "moved")
	testpeer.Eventually(t, 30*time.Second, "tenant B's standby reaches its new TXID", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return txids[tenantB] >= txB2
	})
	testpeer.SameRows(t, testpeer.Rows(t, filepath.Join(out, tenantB+".db")), testpeer.Rows(t, filepath.Join(dir, tenantB+".db")))
}
