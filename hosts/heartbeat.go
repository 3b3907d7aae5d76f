package hosts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// API is the part of the S3 client the protocol uses.
type API interface {
	ListObjectsV2(ctx context.Context, params *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, params *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, params *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, params *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ API = (*s3.Client)(nil)

// Heartbeat is the content of a host's heartbeat object. Readers judge a
// host by the object's LastModified, S3's own clock, not by At.
type Heartbeat struct {
	Host     string    `json:"host"`
	Instance string    `json:"instance"` // random per process
	Machine  string    `json:"machine"`  // os.Hostname
	PID      int       `json:"pid"`
	Version  string    `json:"version,omitempty"`
	Started  time.Time `json:"started"`
	At       time.Time `json:"at"`
	Seq      uint64    `json:"seq"`
}

// Options configure a Beater.
type Options struct {
	API     API
	Bucket  string
	Host    string // -host, validated with ValidateHost
	Version string
	Logger  *slog.Logger
	// Now is the clock; time.Now when nil. Tests move it.
	Now func() time.Time
	// Requests bounds each heartbeat request; BeatEvery/2 (at least 2 s)
	// when zero.
	Requests time.Duration
	// Fallback is the name used instead of Host when another live process
	// on this machine already beats as Host (several replicators per
	// machine, each with its own tenants); "" refuses to start instead.
	Fallback string
	// Timing is the protocol's timing; the package defaults when zero.
	// Tests shorten it; every host of a bucket must use the same.
	Timing Timing
}

// Timing is when a host beats, when it stops writing, and when others
// count it dead.
type Timing struct {
	BeatEvery, FenceAfter, DeadAfter, WriteMargin time.Duration
}

// DefaultTiming is the protocol's timing.
var DefaultTiming = Timing{BeatEvery: BeatEvery, FenceAfter: FenceAfter, DeadAfter: DeadAfter, WriteMargin: WriteMargin}

// Beater keeps one host's heartbeat in one bucket, answers whether the host
// may still write (Fenced, WriteDeadline), and tells which other hosts are
// alive. Safe for concurrent use.
type Beater struct {
	opt      Options
	instance string // processInstance
	probeID  string // this Beater's, so that two probes never meet
	machine  string
	started  time.Time

	mu      sync.Mutex
	seq     uint64
	lastOK  time.Time // when the last successful beat was sent
	lastErr error
	// epoch counts the beats that succeeded after a failed one or after
	// the host was fenced: a claim proven in an earlier epoch is checked
	// again before the tenant's next upload (Epoch).
	epoch       uint64
	beating     bool
	conditional bool // the server honours If-None-Match/If-Match
	hosts       map[string]HostInfo
	hostsAt     time.Time // local time of the listing
	hostsErr    error

	listMu sync.Mutex // one listing at a time

	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Beater; Start makes the first beat.
func New(opt Options) (*Beater, error) {
	if err := ValidateHost(opt.Host); err != nil {
		return nil, err
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Timing == (Timing{}) {
		opt.Timing = DefaultTiming
	}
	if opt.Requests <= 0 {
		opt.Requests = max(opt.Timing.BeatEvery/2, 2*time.Second)
	}
	machine, _ := os.Hostname()
	return &Beater{opt: opt, instance: processInstance, probeID: randomID(), machine: machine, started: opt.Now(), conditional: true}, nil
}

// processInstance identifies this process in its heartbeats: Beaters of
// one process under one name (one bucket reached through two endpoints)
// are one replicator, not two.
var processInstance = randomID()

func randomID() string {
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand)
	return hex.EncodeToString(id[:])
}

// Host is the host name this Beater beats for.
func (b *Beater) Host() string { return b.opt.Host }

// Bucket is the bucket it beats in.
func (b *Beater) Bucket() string { return b.opt.Bucket }

// HostInUseError says another live replicator beats under the same name.
type HostInUseError struct {
	Host, Machine string
	PID           int
	Age           time.Duration
}

func (e *HostInUseError) Error() string {
	return fmt.Sprintf("host name %q is in use by a live replicator (%s pid %d, heartbeat %s ago): give each replicator its own -host, or stop the other one",
		e.Host, e.Machine, e.PID, e.Age.Round(time.Second))
}

// Start refuses a host name another live process uses, probes whether the
// server honours conditional writes, makes the first beat, and then beats
// every BeatEvery until Stop. An error means S3 could not be written.
func (b *Beater) Start(ctx context.Context) error {
	if err := b.checkInUse(ctx); err != nil {
		var inUse *HostInUseError
		if !errors.As(err, &inUse) || b.opt.Fallback == "" || inUse.Machine != b.machine {
			return err
		}
		b.opt.Logger.Info("host name in use by another replicator on this machine: using its own", "host", b.opt.Host, "other_pid", inUse.PID, "name", b.opt.Fallback)
		b.opt.Host, b.opt.Fallback = b.opt.Fallback, ""
		if err := b.checkInUse(ctx); err != nil {
			return err
		}
	}
	b.probeConditional(ctx)
	if err := b.Beat(ctx); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel, b.done = cancel, make(chan struct{})
	go b.loop(lctx)
	return nil
}

func (b *Beater) loop(ctx context.Context) {
	defer close(b.done)
	t := time.NewTicker(b.opt.Timing.BeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := b.Beat(ctx); err != nil && ctx.Err() == nil {
			b.opt.Logger.Warn("heartbeat failed", "host", b.opt.Host, "bucket", b.opt.Bucket, "error", err)
		}
	}
}

// Beat writes the heartbeat once.
func (b *Beater) Beat(ctx context.Context) error {
	b.mu.Lock()
	if b.beating {
		b.mu.Unlock()
		return nil
	}
	b.beating = true
	b.seq++
	hb := Heartbeat{Host: b.opt.Host, Instance: b.instance, Machine: b.machine, PID: os.Getpid(),
		Version: b.opt.Version, Started: b.started.UTC(), At: b.opt.Now().UTC(), Seq: b.seq}
	b.mu.Unlock()

	sent := b.opt.Now()
	body, _ := json.Marshal(hb)
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	_, err := b.opt.API.PutObject(rctx, &s3.PutObjectInput{
		Bucket: aws.String(b.opt.Bucket), Key: aws.String(HeartbeatKey(b.opt.Host)),
		Body: bytes.NewReader(body), ContentType: aws.String("application/json"),
	})
	cancel()

	b.mu.Lock()
	defer b.mu.Unlock()
	b.beating = false
	if err != nil {
		b.lastErr = err
		return fmt.Errorf("write heartbeat %s: %w", HeartbeatKey(b.opt.Host), err)
	}
	if b.lastErr != nil || (!b.lastOK.IsZero() && sent.Sub(b.lastOK) >= b.opt.Timing.FenceAfter) {
		b.epoch++
	}
	if sent.After(b.lastOK) {
		b.lastOK = sent
	}
	b.lastErr = nil
	return nil
}

// Epoch changes each time the heartbeat comes back from a failure or a
// fence. While it failed, other hosts may have counted this one dead and
// taken its tenants: a claim proven (acquired or verified) in an earlier
// epoch must be read again before the tenant uploads anything. Read it
// before the request that proves a claim.
func (b *Beater) Epoch() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.epoch
}

// Fenced reports that the host may no longer write tenant data: its last
// successful beat began FenceAfter ago or more, so other hosts may soon
// count it dead. It stays fenced until a beat succeeds.
func (b *Beater) Fenced() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastOK.IsZero() || b.opt.Now().Sub(b.lastOK) >= b.opt.Timing.FenceAfter
}

// LastBeat is when the last successful beat was sent, and the error of the
// last one if it failed.
func (b *Beater) LastBeat() (time.Time, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastOK, b.lastErr
}

// WriteDeadline is when a write of tenant data sent now must have finished:
// before any other host could count this one dead and take its tenants.
func (b *Beater) WriteDeadline() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastOK.Add(b.opt.Timing.DeadAfter - b.opt.Timing.WriteMargin)
}

// Conditional reports whether the server honoured conditional writes when
// probed; without them, taking over another host's tenant is refused.
func (b *Beater) Conditional() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conditional
}

// Stop ends the beats and deletes the heartbeat, so that any claim left
// behind is free at once. It returns the delete's error.
func (b *Beater) Stop(ctx context.Context) error {
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	_, err := b.opt.API.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(HeartbeatKey(b.opt.Host))})
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete heartbeat: %w", err)
	}
	return nil
}

func (b *Beater) checkInUse(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	out, err := b.opt.API.GetObject(rctx, &s3.GetObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(HeartbeatKey(b.opt.Host))})
	if err != nil {
		if IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("read heartbeat %s: %w", HeartbeatKey(b.opt.Host), err)
	}
	defer out.Body.Close()
	var hb Heartbeat
	if json.NewDecoder(io.LimitReader(out.Body, 64<<10)).Decode(&hb) != nil {
		return nil // unreadable: ours to overwrite
	}
	age := max(serverNow(out.ResultMetadata, b.opt.Now).Sub(aws.ToTime(out.LastModified)), 0)
	if age >= b.opt.Timing.DeadAfter || hb.Instance == b.instance {
		return nil
	}
	if hb.Machine == b.machine && !processAlive(hb.PID) {
		return nil // this machine's earlier process, gone
	}
	return &HostInUseError{Host: b.opt.Host, Machine: hb.Machine, PID: hb.PID, Age: age}
}

// probeConditional writes a probe object twice with If-None-Match: *. A
// server that accepts the second write ignores conditional writes.
func (b *Beater) probeConditional(ctx context.Context) {
	key := HostsPrefix + b.opt.Host + "/probe-" + b.probeID
	put := func() error {
		rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
		defer cancel()
		_, err := b.opt.API.PutObject(rctx, &s3.PutObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(key),
			Body: bytes.NewReader([]byte("{}")), IfNoneMatch: aws.String("*")})
		return err
	}
	if put() != nil {
		return // cannot tell; Beat reports S3 problems
	}
	err := put()
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	_, _ = b.opt.API.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(key)})
	cancel()
	if err != nil && !IsConflict(err) {
		return // a failure that says nothing about conditional writes
	}
	honoured := err != nil
	b.mu.Lock()
	b.conditional = honoured
	b.mu.Unlock()
	if !honoured {
		b.opt.Logger.Warn("this S3 server ignores conditional writes: taking over tenants of dead hosts is disabled", "bucket", b.opt.Bucket)
	}
}

// serverNow is S3's clock at the response (its Date header), or now when
// the server sent none.
func serverNow(md middleware.Metadata, now func() time.Time) time.Time {
	if t, ok := awsmiddleware.GetServerTime(md); ok && !t.IsZero() {
		return t
	}
	return now()
}
