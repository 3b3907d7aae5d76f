package hosts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/benbjohnson/litestream"
	lss3 "github.com/benbjohnson/litestream/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/layout"
)

// The reproductions of issue 17 (clock skew, two processes under one
// name, servers that ignore conditional writes), against a real S3
// server.

// skewedBucket is a bucket reached directly and through a proxy that
// moves the Date header of every response by skew.
func skewedBucket(t *testing.T, skew time.Duration) (direct, skewed bucket) {
	t.Helper()
	srv := s3test.Start(t)
	c := srv.Conn(t)
	p, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, DateSkew: skew})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	pc := c
	pc.Endpoint = p.URL()
	return bucket{api: srv.Client(t, c), name: c.Bucket}, bucket{api: srv.Client(t, pc), name: c.Bucket}
}

// TestSkewNeverTakesLiveHost: host-b sees S3's Date 120 s ahead of, or
// behind, the clock that stamped host-a's heartbeat. While host-a beats,
// host-b never takes its tenant; once host-a stops beating (killed),
// host-b takes it after watching the heartbeat unchanged for DeadAfter,
// whichever way the clocks are skewed.
func TestSkewNeverTakesLiveHost(t *testing.T) {
	for _, skew := range []time.Duration{120 * time.Second, -120 * time.Second} {
		t.Run(fmt.Sprintf("date%+ds", int(skew.Seconds())), func(t *testing.T) {
			ctx := context.Background()
			direct, skewed := skewedBucket(t, skew)
			a := direct.started(t, "host-a")
			bHost := skewed.started(t, "host-b")
			if _, err := a.Acquire(ctx, direct.api, tenant); err != nil {
				t.Fatal(err)
			}
			// Three times DeadAfter of host-a beating: never taken.
			until := time.Now().Add(3 * fast.DeadAfter)
			for time.Now().Before(until) {
				_, err := bHost.Acquire(ctx, skewed.api, tenant)
				var held *hosts.HeldError
				if !errors.As(err, &held) || held.Host != "host-a" {
					t.Fatalf("host-b took live host-a's tenant with Date skewed %s: %v", skew, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			stopBeating(t, a)
			// host-a may write until its write deadline: a takeover that
			// returned before it came too early, whatever the clocks.
			writesEnd := a.WriteDeadline()
			waitFor(t, 4*fast.DeadAfter, "host-b takes the tenant of a host that stopped beating", func() bool {
				c, err := bHost.Acquire(ctx, skewed.api, tenant)
				return err == nil && c.TookFrom == "host-a"
			})
			if now := time.Now(); now.Before(writesEnd) {
				t.Fatalf("taken %s before host-a's last write could have ended", writesEnd.Sub(now))
			}
		})
	}
}

// TestSameNameSecondProcessRefused: a second process under a live
// process's -host, from another machine, is refused in one line naming
// the other's machine, pid and start time.
func TestSameNameSecondProcessRefused(t *testing.T) {
	b := newBucket(t)
	a := b.beater(t, "web-1", fast)
	a.PretendProcess("process-a", "machine-a")
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })

	second := b.beater(t, "web-1", fast)
	second.PretendProcess("process-b", "machine-b")
	err := second.Start(context.Background())
	var inUse *hosts.HostInUseError
	if !errors.As(err, &inUse) || inUse.Machine != "machine-a" || !inUse.Beating {
		t.Fatalf("a second live process under web-1 started: %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "web-1") || !strings.Contains(msg, "machine-a") ||
		!strings.Contains(msg, fmt.Sprintf("pid %d", inUse.PID)) || !strings.Contains(msg, "started "+inUse.Started.UTC().Format(time.RFC3339)) {
		t.Fatalf("the refusal does not name the other process in one line: %q", msg)
	}
}

// syncBuffer is a log sink tests read while it is written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.buf.String() }

// TestReplacementWaitsForPartitionedProcess: a replacement started under
// the name of a partitioned host adopts nothing while the old process
// may be alive: if the old one beats again while it watches, it is
// refused. Once the old heartbeat has stayed unchanged for DeadAfter, it
// takes the name and adopts the claims; the old process, back, finds its
// name taken at its next beat and stays fenced, its claims lost.
func TestReplacementWaitsForPartitionedProcess(t *testing.T) {
	ctx := context.Background()
	b := newBucket(t)
	old := b.beater(t, "web-1", fast)
	old.PretendProcess("process-old", "machine-a")
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	claim, err := old.Acquire(ctx, b.api, tenant)
	if err != nil {
		t.Fatal(err)
	}
	stopBeating(t, old) // partitioned

	logs := &syncBuffer{}
	repl, err := hosts.New(hosts.Options{API: b.api, Bucket: b.name, Host: "web-1", Timing: fast, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	repl.PretendProcess("process-new", "machine-b")
	done := make(chan error, 1)
	go func() { done <- repl.Start(ctx) }()
	waitFor(t, 5*time.Second, "the replacement watches the old heartbeat", func() bool {
		return strings.Contains(logs.String(), "watching its heartbeat")
	})
	if err := old.Beat(ctx); err != nil { // the partition heals a moment
		t.Fatal(err)
	}
	var inUse *hosts.HostInUseError
	if err := <-done; !errors.As(err, &inUse) || inUse.Machine != "machine-a" {
		t.Fatalf("the replacement started while the old process beat: %v", err)
	}

	// The old process is gone for good now.
	repl2 := b.beater(t, "web-1", fast)
	repl2.PretendProcess("process-new-2", "machine-b")
	if err := repl2.Start(ctx); err != nil {
		t.Fatalf("replacement of a dead process: %v", err)
	}
	t.Cleanup(func() { _ = repl2.Stop(ctx) })
	adopted, err := repl2.Acquire(ctx, b.api, tenant)
	if err != nil || adopted.ETag != claim.ETag {
		t.Fatalf("the replacement did not adopt the dead process's claim: %+v %v", adopted, err)
	}
	// The old process comes back: its beat is refused, it stays fenced
	// and knows its claim is lost.
	if err := old.Beat(ctx); !errors.As(err, &inUse) {
		t.Fatalf("the old process beat over its replacement's heartbeat: %v", err)
	}
	if !old.Fenced() {
		t.Fatal("the old process may write after its name was taken")
	}
	if err := old.Verify(ctx, b.api, tenant, claim); !errors.Is(err, hosts.ErrClaimLost) {
		t.Fatalf("the old process still believes it holds the claim: %v", err)
	}
	if r, err := hosts.ReadBeat(ctx, b.api, b.name, "web-1"); err != nil || r.Beat.Instance != "process-new-2" {
		t.Fatalf("the heartbeat is %+v, %v: want the replacement's", r.Beat, err)
	}
}

// stripping is a client for a server that ignores some conditional
// headers: they are dropped before the request is signed.
type stripping struct {
	*s3.Client
	putIfMatch, putIfNoneMatch, deleteIfMatch bool
}

func (s stripping) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	cp := *in
	if s.putIfMatch {
		cp.IfMatch = nil
	}
	if s.putIfNoneMatch {
		cp.IfNoneMatch = nil
	}
	return s.Client.PutObject(ctx, &cp, opts...)
}

func (s stripping) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	cp := *in
	if s.deleteIfMatch {
		cp.IfMatch = nil
	}
	return s.Client.DeleteObject(ctx, &cp, opts...)
}

// TestIgnoredConditionsNoTakeoverNoNewClaim: on a server that ignores any
// one of the conditional forms the protocol uses, a host takes no dead
// host's tenant and makes no new claim, saying why.
func TestIgnoredConditionsNoTakeoverNoNewClaim(t *testing.T) {
	for _, tc := range []struct {
		name string
		api  func(*s3.Client) stripping
	}{
		{"put-if-match", func(c *s3.Client) stripping { return stripping{Client: c, putIfMatch: true} }},
		{"put-if-none-match", func(c *s3.Client) stripping { return stripping{Client: c, putIfNoneMatch: true} }},
		{"delete-if-match", func(c *s3.Client) stripping { return stripping{Client: c, deleteIfMatch: true} }},
		{"all", func(c *s3.Client) stripping {
			return stripping{Client: c, putIfMatch: true, putIfNoneMatch: true, deleteIfMatch: true}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := newBucket(t)
			dead := b.started(t, "dead")
			if _, err := dead.Acquire(ctx, b.api, tenant); err != nil {
				t.Fatal(err)
			}
			stopBeating(t, dead)

			api := tc.api(b.api)
			x, err := hosts.New(hosts.Options{API: api, Bucket: b.name, Host: "taker", Timing: fast})
			if err != nil {
				t.Fatal(err)
			}
			if err := x.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = x.Stop(ctx) })
			if tr := x.Trusted(); tr.OK || !tr.Known {
				t.Fatalf("the probe trusts a server that ignores %s: %+v", tc.name, tr)
			}
			// Past the time the dead host would be taken: refused, saying why.
			deadline := time.Now().Add(2 * fast.DeadAfter)
			var untrusted *hosts.UntrustedError
			for time.Now().Before(deadline) {
				_, err := x.Acquire(ctx, api, tenant)
				var held *hosts.HeldError
				if !errors.As(err, &untrusted) && !errors.As(err, &held) {
					t.Fatalf("took a dead host's tenant on a server that ignores %s: %v", tc.name, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if _, err := x.Acquire(ctx, api, tenant); !errors.As(err, &untrusted) || !strings.Contains(err.Error(), "not trusted") {
				t.Fatalf("refusal does not say the server is not trusted: %v", err)
			}
			if cur, _ := hosts.ReadClaim(ctx, b.api, b.name, tenant); cur == nil || cur.Host != "dead" {
				t.Fatalf("the claim is %+v, want the dead host's", cur)
			}
			// A tenant nobody claims: no new claim either.
			const fresh = "databases/fresh"
			for _, acquire := range []func(context.Context, hosts.API, string) (*hosts.Claim, error){x.Acquire, x.AcquireAbsent} {
				if _, err := acquire(ctx, api, fresh); !errors.As(err, &untrusted) {
					t.Fatalf("a new claim was made on a server that ignores %s: %v", tc.name, err)
				}
			}
			if cur, _ := hosts.ReadClaim(ctx, b.api, b.name, fresh); cur != nil {
				t.Fatalf("lock.json written: %+v", cur)
			}
		})
	}
}

// timingOut fails every conditional request as a server that never
// answers would, until healed.
type timingOut struct {
	*s3.Client
	mu     sync.Mutex
	broken bool
}

func (s *timingOut) fail(cond bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken && cond
}

func (s *timingOut) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if s.fail(in.IfMatch != nil || in.IfNoneMatch != nil) {
		return nil, context.DeadlineExceeded
	}
	return s.Client.PutObject(ctx, in, opts...)
}

func (s *timingOut) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if s.fail(in.IfMatch != nil) {
		return nil, context.DeadlineExceeded
	}
	return s.Client.DeleteObject(ctx, in, opts...)
}

// TestProbeThatCannotTellFailsClosed: a probe that times out leaves
// conditional writes untrusted (no new claim) until a later probe can
// tell.
func TestProbeThatCannotTellFailsClosed(t *testing.T) {
	ctx := context.Background()
	b := newBucket(t)
	api := &timingOut{Client: b.api, broken: true}
	x, err := hosts.New(hosts.Options{API: api, Bucket: b.name, Host: "x", Timing: fast})
	if err != nil {
		t.Fatal(err)
	}
	if tr := x.ProbeConditional(ctx); tr.OK || tr.Known {
		t.Fatalf("a probe that timed out reached a verdict: %+v", tr)
	}
	if err := x.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	var untrusted *hosts.UntrustedError
	if _, err := x.Acquire(ctx, api, tenant); !errors.As(err, &untrusted) {
		t.Fatalf("claimed a tenant without knowing the server honours conditional writes: %v", err)
	}
	api.mu.Lock()
	api.broken = false
	api.mu.Unlock()
	if tr := x.ProbeConditional(ctx); !tr.OK {
		t.Fatalf("the probe again, the server answering: %+v", tr)
	}
	if _, err := x.Acquire(ctx, api, tenant); err != nil {
		t.Fatal(err)
	}
}

// TestRestartedContainerTakesItsName: a heartbeat written on this machine
// under this process's own pid is an earlier run of it (a restarted
// container is pid 1 again): the name is taken at once, not refused.
func TestRestartedContainerTakesItsName(t *testing.T) {
	b := newBucket(t)
	machine, _ := os.Hostname()
	now := time.Now().UTC()
	body, _ := json.Marshal(hosts.Heartbeat{Host: "web-1", Instance: "earlier-run", Machine: machine, PID: os.Getpid(), Started: now, At: now, Seq: 9})
	if _, err := b.api.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(layout.HeartbeatKey("web-1")), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	bt := b.beater(t, "web-1", hosts.Timing{BeatEvery: time.Minute, FenceAfter: 2 * time.Minute, DeadAfter: 3 * time.Minute, WriteMargin: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // far less than DeadAfter
	defer cancel()
	if err := bt.Start(ctx); err != nil {
		t.Fatalf("a restart under its own pid was not given its name: %v", err)
	}
	_ = bt.Stop(context.Background())
}

// TestLitestreamLeaserRefusesClaim: a tool built on Litestream's own
// leaser (which takes a lease once its expires_at passed) refuses a
// litefleet claim however long after it was made, since nothing renews a
// claim per tenant.
func TestLitestreamLeaserRefusesClaim(t *testing.T) {
	ctx := context.Background()
	b := newBucket(t)
	a := b.started(t, "host-a")
	if _, err := a.Acquire(ctx, b.api, tenant); err != nil {
		t.Fatal(err)
	}
	time.Sleep(fast.DeadAfter + time.Second) // the claim's old expiry
	l := lss3.NewLeaser()
	l.SetClient(b.api)
	l.Bucket, l.Path = b.name, tenant
	lease, err := l.AcquireLease(ctx)
	var exists *litestream.LeaseExistsError
	if !errors.As(err, &exists) || !strings.Contains(exists.Owner, "host-a") {
		t.Fatalf("Litestream's leaser took a litefleet claim: %+v %v", lease, err)
	}
}

// TestListAgeNotFooledByDateBehind: read through a proxy whose Date runs
// 120 s behind S3's, a heartbeat that stopped while others went on must
// not look fresh: ages are measured from the newest heartbeat's
// LastModified when it is later than the Date (bench/chaos seed 36: `ls`
// called a cut-off host's tenants in sync).
func TestListAgeNotFooledByDateBehind(t *testing.T) {
	ctx := context.Background()
	direct, skewed := skewedBucket(t, -120*time.Second)
	put := func(host string) time.Time {
		t.Helper()
		if _, err := direct.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(direct.name), Key: aws.String(layout.HeartbeatKey(host)), Body: strings.NewReader("{}")}); err != nil {
			t.Fatal(err)
		}
		out, err := direct.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(direct.name), Key: aws.String(layout.HeartbeatKey(host))})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToTime(out.LastModified)
	}
	stopped := put("cut-off")
	// The live host beats on until S3's LastModified (second resolution)
	// is 2 s past the stopped one's.
	deadline := time.Now().Add(10 * time.Second)
	for put("alive").Sub(stopped) < 2*time.Second {
		if time.Now().After(deadline) {
			t.Fatal("S3's LastModified did not move 2 s in 10 s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	list, err := hosts.List(ctx, skewed.api, skewed.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if age := list["cut-off"].Age; age < 2*time.Second {
		t.Errorf("the stopped heartbeat's age is %s through a Date 120 s behind, want at least 2 s (the live host beat since)", age)
	}
	if age := list["alive"].Age; age > time.Second {
		t.Errorf("the live heartbeat's age is %s, want about 0", age)
	}
}
