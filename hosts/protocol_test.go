package hosts_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/litefleet/litefleet/hosts"
)

// The lease protocol's state machine, without S3: an in-memory bucket
// that honours conditional writes, and a clock the test moves.

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type object struct {
	body     []byte
	etag     string
	modified time.Time
}

// memBucket is one bucket in memory. fail, when set, fails every request
// as an unreachable server would.
type memBucket struct {
	mu      sync.Mutex
	clock   *clock
	objects map[string]object
	seq     int
	fail    bool
	// skew moves the LastModified the bucket stamps, as an S3 node
	// whose clock is off would.
	skew time.Duration
}

func newMem(c *clock) *memBucket { return &memBucket{clock: c, objects: map[string]object{}} }

func (m *memBucket) setFail(v bool) { m.mu.Lock(); m.fail = v; m.mu.Unlock() }

var errDown = errors.New("dial tcp 127.0.0.1:1: connection refused")

func status(code int) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}},
		Err:      fmt.Errorf("status %d", code),
	}}
}

func (m *memBucket) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	body, _ := io.ReadAll(in.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errDown
	}
	key := aws.ToString(in.Key)
	cur, exists := m.objects[key]
	switch {
	case aws.ToString(in.IfNoneMatch) == "*" && exists:
		return nil, status(http.StatusPreconditionFailed)
	case in.IfMatch != nil && (!exists || cur.etag != aws.ToString(in.IfMatch)):
		return nil, status(http.StatusPreconditionFailed)
	}
	m.seq++
	o := object{body: body, etag: fmt.Sprintf(`"%d"`, m.seq), modified: m.clock.Now().Add(m.skew)}
	m.objects[key] = o
	return &s3.PutObjectOutput{ETag: aws.String(o.etag)}, nil
}

func (m *memBucket) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errDown
	}
	o, ok := m.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(o.body)), ETag: aws.String(o.etag), LastModified: aws.Time(o.modified)}, nil
}

func (m *memBucket) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errDown
	}
	key := aws.ToString(in.Key)
	cur, ok := m.objects[key]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	if in.IfMatch != nil && cur.etag != aws.ToString(in.IfMatch) {
		return nil, status(http.StatusPreconditionFailed)
	}
	delete(m.objects, key)
	return &s3.DeleteObjectOutput{}, nil
}

func (m *memBucket) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errDown
	}
	out := &s3.ListObjectsV2Output{}
	for k, o := range m.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			out.Contents = append(out.Contents, types.Object{Key: aws.String(k), ETag: aws.String(o.etag), LastModified: aws.Time(o.modified), Size: aws.Int64(int64(len(o.body)))})
		}
	}
	return out, nil
}

func beater(t *testing.T, m *memBucket, c *clock, host string) *hosts.Beater {
	t.Helper()
	b, err := hosts.New(hosts.Options{API: m, Bucket: "bkt", Host: host, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	// A probe and one beat, no background loop: the test beats by hand.
	if tr := b.ProbeConditional(context.Background()); !tr.OK {
		t.Fatalf("probe of the in-memory bucket: %+v", tr)
	}
	if err := b.Beat(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

const tenant = "databases/12345678-1234-5678-9abc-123456789012"

// TestFenceFollowsFailedBeats: a host stays allowed to write while its
// beats succeed; once its last good beat began FenceAfter ago it is fenced,
// its write deadline is before anyone could take its tenants, and one good
// beat lifts the fence.
func TestFenceFollowsFailedBeats(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)}
	m := newMem(c)
	a := beater(t, m, c, "host-a")
	if a.Fenced() {
		t.Fatal("fenced after a good beat")
	}
	last, _ := a.LastBeat()
	if d := a.WriteDeadline(); !d.Equal(last.Add(hosts.DeadAfter - hosts.WriteMargin)) {
		t.Fatalf("write deadline %s, want the earliest takeover %s minus the margin", d, last.Add(hosts.DeadAfter))
	}
	m.setFail(true)
	for range 2 {
		c.Add(hosts.BeatEvery)
		if err := a.Beat(context.Background()); err == nil {
			t.Fatal("a beat succeeded against a dead server")
		}
	}
	if a.Fenced() {
		t.Fatal("fenced at 20 s")
	}
	c.Add(5 * time.Second)
	if !a.Fenced() {
		t.Fatal("not fenced 25 s after the last good beat")
	}
	if _, err := a.LastBeat(); err == nil {
		t.Fatal("LastBeat hides the failing beat's error")
	}
	m.setFail(false)
	if err := a.Beat(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.Fenced() {
		t.Fatal("still fenced after a good beat")
	}
}

// TestClaimLifecycle: a claim is created, adopted by its own host after a
// restart, refused to others while its host beats, taken once the host is
// dead, and lost for the old holder, whose stale release cannot delete the
// new claim.
func TestClaimLifecycle(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)}
	m := newMem(c)
	a, b := beater(t, m, c, "host-a"), beater(t, m, c, "host-b")

	ca, err := a.Acquire(ctx, m, tenant)
	if err != nil {
		t.Fatal(err)
	}
	again := beater(t, m, c, "host-a") // host-a restarted: same name
	if cb, err := again.Acquire(ctx, m, tenant); err != nil || cb.ETag != ca.ETag {
		t.Fatalf("a restarted host did not adopt its claim: %+v %v", cb, err)
	}

	// host-a keeps beating: host-b never gets the tenant.
	for range 6 {
		c.Add(hosts.BeatEvery)
		_ = a.Beat(ctx)
		_ = b.Beat(ctx)
		var held *hosts.HeldError
		if _, err := b.Acquire(ctx, m, tenant); !errors.As(err, &held) || held.Host != "host-a" {
			t.Fatalf("a live host's tenant was taken: %v", err)
		}
	}
	// host-a stops beating: DeadAfter later, host-b takes it.
	c.Add(hosts.DeadAfter - time.Second)
	_ = b.Beat(ctx)
	if _, err := b.Acquire(ctx, m, tenant); err == nil {
		t.Fatal("taken before DeadAfter")
	}
	c.Add(2 * time.Second)
	cb, err := b.Acquire(ctx, m, tenant)
	if err != nil || cb.TookFrom != "host-a" || cb.Generation != ca.Generation+1 {
		t.Fatalf("takeover: %+v %v", cb, err)
	}
	if err := a.Verify(ctx, m, tenant, ca); !errors.Is(err, hosts.ErrClaimLost) {
		t.Fatalf("the old holder did not learn it lost the claim: %v", err)
	}
	if err := a.Release(ctx, m, tenant, ca); !errors.Is(err, hosts.ErrClaimLost) {
		t.Fatalf("stale release: %v", err)
	}
	if cur, _ := hosts.ReadClaim(ctx, m, "bkt", tenant); cur == nil || cur.Host != "host-b" {
		t.Fatalf("the new claim is gone: %+v", cur)
	}
	// A clean stop: the claim released, the heartbeat deleted.
	if err := b.Release(ctx, m, tenant, cb); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if cur, _ := hosts.ReadClaim(ctx, m, "bkt", tenant); cur != nil {
		t.Fatalf("claim left after a clean stop: %+v", cur)
	}
	if list, _ := hosts.List(ctx, m, "bkt", c.Now); func() bool { _, ok := list["host-b"]; return ok }() {
		t.Fatal("heartbeat left after a clean stop")
	}
}

// TestTakeoverRaceInMemory: eight hosts race for a dead host's tenant, 20
// rounds: exactly one wins each time.
func TestTakeoverRaceInMemory(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)}
	m := newMem(c)
	dead := beater(t, m, c, "dead")
	takers := make([]*hosts.Beater, 8)
	for i := range takers {
		takers[i] = beater(t, m, c, fmt.Sprintf("taker-%d", i))
	}
	for round := range 20 {
		key := fmt.Sprintf("databases/race-%02d", round)
		if _, err := dead.Acquire(ctx, m, key); err != nil {
			t.Fatal(err)
		}
	}
	// Each taker sees the host's heartbeat once; it is dead to them once
	// it has stayed the same for DeadAfter after that.
	for _, tk := range takers {
		var held *hosts.HeldError
		if _, err := tk.Acquire(ctx, m, "databases/race-00"); !errors.As(err, &held) {
			t.Fatalf("a host first seen now was not held alive: %v", err)
		}
	}
	c.Add(hosts.DeadAfter + time.Second)
	for _, tk := range takers {
		_ = tk.Beat(ctx)
	}
	for round := range 20 {
		key := fmt.Sprintf("databases/race-%02d", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []string
		for _, tk := range takers {
			wg.Go(func() {
				if cl, err := tk.Acquire(ctx, m, key); err == nil {
					mu.Lock()
					won = append(won, cl.Host)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		cur, _ := hosts.ReadClaim(ctx, m, "bkt", key)
		if len(won) != 1 || cur == nil || cur.Host != won[0] {
			t.Fatalf("round %d: winners %v, claim %+v", round, won, cur)
		}
	}
}

// TestSkewedLastModifiedInMemory: whatever the LastModified S3 stamps (an
// hour behind or ahead of every host's clock), a host that beats is never
// dead to another, and one that stopped is dead exactly DeadAfter after
// the other first saw its last heartbeat, by the other's own clock.
func TestSkewedLastModifiedInMemory(t *testing.T) {
	for _, skew := range []time.Duration{-time.Hour, time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			ctx := context.Background()
			c := &clock{now: time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)}
			m := newMem(c)
			m.skew = skew
			a, b := beater(t, m, c, "host-a"), beater(t, m, c, "host-b")
			if _, err := a.Acquire(ctx, m, tenant); err != nil {
				t.Fatal(err)
			}
			for range 12 {
				var held *hosts.HeldError
				if _, err := b.Acquire(ctx, m, tenant); !errors.As(err, &held) || held.Host != "host-a" {
					t.Fatalf("a live host's tenant was taken with LastModified skewed %s: %v", skew, err)
				}
				c.Add(hosts.BeatEvery)
				_ = a.Beat(ctx)
				_ = b.Beat(ctx)
			}
			// host-a stops; host-b sees its last heartbeat now.
			var held *hosts.HeldError
			if _, err := b.Acquire(ctx, m, tenant); !errors.As(err, &held) {
				t.Fatalf("taken at once: %v", err)
			}
			c.Add(hosts.DeadAfter - time.Second)
			_ = b.Beat(ctx)
			if _, err := b.Acquire(ctx, m, tenant); !errors.As(err, &held) {
				t.Fatalf("taken before DeadAfter: %v", err)
			}
			c.Add(time.Second)
			if cl, err := b.Acquire(ctx, m, tenant); err != nil || cl.TookFrom != "host-a" {
				t.Fatalf("not taken DeadAfter after host-a's last heartbeat was first seen: %+v %v", cl, err)
			}
		})
	}
}

// TestTakeoverReadsHeartbeatFresh: a takeover is never decided on a
// listing. host-b's last listing says host-a's heartbeat has not changed
// for DeadAfter; host-a beats again (it was paused); host-b, asked within
// the listing's lifetime, reads the heartbeat fresh and leaves the tenant.
func TestTakeoverReadsHeartbeatFresh(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)}
	m := newMem(c)
	a, b := beater(t, m, c, "host-a"), beater(t, m, c, "host-b")
	if _, err := a.Acquire(ctx, m, tenant); err != nil {
		t.Fatal(err)
	}
	var held *hosts.HeldError
	if _, err := b.Acquire(ctx, m, tenant); !errors.As(err, &held) {
		t.Fatal(err)
	}
	c.Add(hosts.DeadAfter + time.Second) // host-a paused (SIGSTOP)
	if _, err := b.Hosts(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if !b.Silent("host-a") {
		t.Fatal("the listing does not show host-a silent")
	}
	if err := a.Beat(ctx); err != nil { // resumed
		t.Fatal(err)
	}
	c.Add(time.Second)
	if _, err := b.Acquire(ctx, m, tenant); !errors.As(err, &held) || held.Host != "host-a" {
		t.Fatalf("host-b took host-a's tenant on a listing older than host-a's last beat: %v", err)
	}
}

// TestNoHeartbeatWatchedForDeadAfter: a claim whose host has no heartbeat
// (it stopped without releasing, or the heartbeat was deleted) is taken
// once the heartbeat has been seen missing, and the claim unchanged, for
// DeadAfter; a heartbeat that reappears meanwhile starts the watch again.
func TestNoHeartbeatWatchedForDeadAfter(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)}
	m := newMem(c)
	a, b := beater(t, m, c, "host-a"), beater(t, m, c, "host-b")
	if _, err := a.Acquire(ctx, m, tenant); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(ctx); err != nil { // a stop that left its claim
		t.Fatal(err)
	}
	var held *hosts.HeldError
	if _, err := b.Acquire(ctx, m, tenant); !errors.As(err, &held) || !held.NoBeat {
		t.Fatalf("a claim without a heartbeat taken at first sight: %v", err)
	}
	c.Add(hosts.DeadAfter / 2)
	if err := a.Beat(ctx); err != nil { // host-a is back
		t.Fatal(err)
	}
	c.Add(hosts.BeatEvery + time.Second)
	if _, err := b.Acquire(ctx, m, tenant); !errors.As(err, &held) || held.NoBeat {
		t.Fatalf("host-a beats again: %v", err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	c.Add(hosts.BeatEvery + time.Second)
	if _, err := b.Acquire(ctx, m, tenant); !errors.As(err, &held) || !held.NoBeat {
		t.Fatalf("taken before its heartbeat was missing for DeadAfter: %v", err)
	}
	c.Add(hosts.DeadAfter)
	if cl, err := b.Acquire(ctx, m, tenant); err != nil || cl.TookFrom != "host-a" {
		t.Fatalf("not taken after its heartbeat was missing for DeadAfter: %+v %v", cl, err)
	}
}
