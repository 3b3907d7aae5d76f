package hosts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/layout"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }

// fast is a timing short enough for tests; the ratios are the default's.
var fast = hosts.Timing{BeatEvery: 500 * time.Millisecond, FenceAfter: 1250 * time.Millisecond, DeadAfter: 3 * time.Second, WriteMargin: 300 * time.Millisecond}

type bucket struct {
	api  *s3.Client
	name string
}

func newBucket(t *testing.T) bucket {
	srv := s3test.Start(t)
	c := srv.Conn(t)
	return bucket{api: srv.Client(t, c), name: c.Bucket}
}

func (b bucket) beater(t *testing.T, host string, timing hosts.Timing) *hosts.Beater {
	t.Helper()
	bt, err := hosts.New(hosts.Options{API: b.api, Bucket: b.name, Host: host, Timing: timing})
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

func (b bucket) started(t *testing.T, host string) *hosts.Beater {
	t.Helper()
	bt := b.beater(t, host, fast)
	if err := bt.Start(context.Background()); err != nil {
		t.Fatalf("start %s: %v", host, err)
	}
	t.Cleanup(func() { _ = bt.Stop(context.Background()) })
	return bt
}

func TestHeartbeatListedAlive(t *testing.T) {
	b := newBucket(t)
	bt := b.started(t, "web-1")
	if bt.Fenced() {
		t.Fatal("fenced right after a successful first beat")
	}
	if !bt.Conditional() {
		t.Fatal("versitygw honours conditional writes, but the probe said it does not")
	}
	list, err := hosts.List(context.Background(), b.api, b.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := list["web-1"]
	if !ok || h.Stale(time.Now()) {
		t.Fatalf("web-1 not listed alive: %+v", list)
	}
	// The probe object is gone and nothing but the heartbeat remains.
	out, err := b.api.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(layout.HostsPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != layout.HeartbeatKey("web-1") {
		t.Fatalf("hosts prefix holds %d objects, want the heartbeat alone", len(out.Contents))
	}
	if err := bt.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	list, _ = hosts.List(context.Background(), b.api, b.name, nil)
	if _, ok := list["web-1"]; ok {
		t.Fatal("a stopped host's heartbeat is still listed")
	}
}

func TestHostNameInUseRefused(t *testing.T) {
	b := newBucket(t)
	// Another live process on this machine (our parent) beats as web-1.
	machine, _ := os.Hostname()
	started := time.Now().UTC()
	beat := func(seq uint64) {
		now := time.Now().UTC()
		body, _ := json.Marshal(hosts.Heartbeat{Host: "web-1", Instance: "another-process", Machine: machine, PID: os.Getppid(), Started: started, At: now, Seq: seq})
		if _, err := b.api.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(layout.HeartbeatKey("web-1")), Body: bytes.NewReader(body)}); err != nil {
			t.Error(err)
		}
	}
	beat(1)
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for seq := uint64(2); ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(fast.BeatEvery):
			}
			beat(seq)
		}
	}()
	defer func() { close(stop); <-beating }()
	second := b.beater(t, "web-1", fast)
	err := second.Start(context.Background())
	var inUse *hosts.HostInUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("a second live replicator named web-1 started: %v", err)
	}
	if inUse.PID != os.Getppid() {
		t.Fatalf("error names pid %d, want %d", inUse.PID, os.Getppid())
	}
}

// One process reaching one bucket through two endpoints beats twice under
// its one name: that is not a second replicator.
func TestSameProcessTwoBeatersOneName(t *testing.T) {
	b := newBucket(t)
	b.started(t, "web-1")
	b.started(t, "web-1")
}

func TestFencedWhenBeatsFail(t *testing.T) {
	srv := s3test.StartPrivate(t)
	c := srv.Conn(t)
	api := srv.Client(t, c)
	bt, err := hosts.New(hosts.Options{API: api, Bucket: c.Bucket, Host: "web-1", Timing: fast, Requests: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := bt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer bt.Stop(context.Background())
	srv.Kill()
	waitFor(t, 5*time.Second, "fenced after S3 died", bt.Fenced)
	srv.Restart(t)
	waitFor(t, 5*time.Second, "unfenced once S3 is back", func() bool { return !bt.Fenced() })
}

func TestClaimAdoptHeldTakeoverRelease(t *testing.T) {
	b := newBucket(t)
	ctx := context.Background()
	a := b.started(t, "host-a")
	const tenant = "databases/12345678-1234-5678-9abc-123456789012"

	c1, err := a.Acquire(ctx, b.api, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Host != "host-a" || c1.ETag == "" {
		t.Fatalf("claim %+v", c1)
	}
	// The same host adopts its claim without writing it.
	c2, err := a.Acquire(ctx, b.api, tenant)
	if err != nil || c2.ETag != c1.ETag {
		t.Fatalf("re-acquire by the same host rewrote the claim: %v %+v", err, c2)
	}

	// A live holder keeps it.
	bHost := b.started(t, "host-b")
	_, err = bHost.Acquire(ctx, b.api, tenant)
	var held *hosts.HeldError
	if !errors.As(err, &held) || held.Host != "host-a" {
		t.Fatalf("host-b took a live host's tenant: %v", err)
	}

	// Once host-a is silent past DeadAfter, host-b takes it.
	stopBeating(t, a)
	waitFor(t, 10*time.Second, "host-b takes a dead host's tenant", func() bool {
		c, err := bHost.Acquire(ctx, b.api, tenant)
		return err == nil && c.Host == "host-b" && c.TookFrom == "host-a"
	})
	// host-a finds out when it verifies.
	if err := a.Verify(ctx, b.api, tenant, c1); !errors.Is(err, hosts.ErrClaimLost) {
		t.Fatalf("host-a still believes it holds the claim: %v", err)
	}
	// host-a's stale release must not delete host-b's claim.
	if err := a.Release(ctx, b.api, tenant, c1); !errors.Is(err, hosts.ErrClaimLost) {
		t.Fatalf("stale release: %v", err)
	}
	cur, err := hosts.ReadClaim(ctx, b.api, b.name, tenant)
	if err != nil || cur == nil || cur.Host != "host-b" {
		t.Fatalf("after host-a's stale release the claim is %+v, %v", cur, err)
	}
	cb, _ := bHost.Acquire(ctx, b.api, tenant)
	if err := bHost.Release(ctx, b.api, tenant, cb); err != nil {
		t.Fatal(err)
	}
	if cur, _ := hosts.ReadClaim(ctx, b.api, b.name, tenant); cur != nil {
		t.Fatalf("released claim still there: %+v", cur)
	}
}

func TestClaimLitestreamLeaseRespected(t *testing.T) {
	b := newBucket(t)
	ctx := context.Background()
	const tenant = "databases/legacy"
	put := func(body string) {
		t.Helper()
		if _, err := b.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(layout.ClaimKey(tenant)), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	a := b.started(t, "host-a")
	put(`{"generation":4,"expires_at":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","owner":"old-box:77"}`)
	_, err := a.Acquire(ctx, b.api, tenant)
	var held *hosts.HeldError
	if !errors.As(err, &held) || held.Owner != "old-box:77" {
		t.Fatalf("an unexpired Litestream lease was taken: %v", err)
	}
	put(`{"generation":4,"expires_at":"` + time.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + `","owner":"old-box:77"}`)
	// Expired by this host's clock, and then unchanged for DeadAfter
	// (the writer's clock may be behind): taken with the next generation.
	var c *hosts.Claim
	waitFor(t, 2*fast.DeadAfter, "expired Litestream lease taken", func() bool {
		var err error
		c, err = a.Acquire(ctx, b.api, tenant)
		return err == nil
	})
	if c.Generation != 5 {
		t.Fatalf("expired Litestream lease not taken with the next generation: %+v", c)
	}
}

// TestTakeoverRace: two hosts race for a dead host's tenant; in each of 20
// rounds exactly one wins.
func TestTakeoverRace(t *testing.T) {
	b := newBucket(t)
	ctx := context.Background()
	dead := b.started(t, "dead")
	stopBeating(t, dead)
	x, y := b.started(t, "taker-x"), b.started(t, "taker-y")
	for round := range 20 {
		tenant := "databases/race-" + string(rune('a'+round))
		if _, err := dead.Acquire(ctx, b.api, tenant); err != nil {
			t.Fatal(err)
		}
	}
	// Both takers watch the dead host's heartbeat until it has stayed
	// unchanged for DeadAfter.
	for _, w := range []string{"databases/warm-x", "databases/warm-y"} {
		if _, err := dead.Acquire(ctx, b.api, w); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "dead host counted dead by both", func() bool {
		_, ex := x.Acquire(ctx, b.api, "databases/warm-x")
		_, ey := y.Acquire(ctx, b.api, "databases/warm-y")
		return ex == nil && ey == nil
	})
	for round := range 20 {
		tenant := "databases/race-" + string(rune('a'+round))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		for _, bt := range []*hosts.Beater{x, y} {
			wg.Go(func() {
				c, err := bt.Acquire(ctx, b.api, tenant)
				if err == nil {
					mu.Lock()
					winners = append(winners, c.Host)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		cur, err := hosts.ReadClaim(ctx, b.api, b.name, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if len(winners) != 1 || cur.Host != winners[0] {
			t.Fatalf("round %d: winners %v, claim names %q", round, winners, cur.Host)
		}
	}
}

// stopBeating ends a Beater's loop without deleting its heartbeat, as a
// killed process would.
func stopBeating(t *testing.T, bt *hosts.Beater) {
	t.Helper()
	bt.Halt()
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
