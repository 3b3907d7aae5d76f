package hosts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/litefleet/litefleet/layout"
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
// host by whether the object changes (see Observer), never by At or by
// LastModified; Instance and Seq make every beat's body, and so its ETag,
// new.
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
	Host    string // -host, validated with layout.ValidateHost
	Version string
	Logger  *slog.Logger
	// Now is the clock; time.Now when nil. Tests move it. Liveness is
	// measured on it, so in production it must be time.Now (monotonic).
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
	seen     *Observer // other hosts' heartbeats, on this process's clock

	mu      sync.Mutex
	seq     uint64
	lastOK  time.Time // when the last successful beat was sent
	lastErr error
	// epoch counts the beats that succeeded after a failed one or after
	// the host was fenced: a claim proven in an earlier epoch is checked
	// again before the tenant's next upload (Epoch).
	epoch   uint64
	beating bool
	trust   Trust // what the probe found of conditional writes
	// beatETag is the ETag of this Beater's heartbeat as last written (or,
	// before the first beat, of the ended process's it replaces; "" when
	// there was none): beats are conditional on it, so a second process
	// writing under this name is noticed at the next beat.
	beatETag string
	// usurped is set once another process was found beating under this
	// name: the host is fenced for good.
	usurped *HostInUseError
	// recordETag is the ETag of the host record this process last wrote;
	// recordDropped says the record was deleted after a gap in the beats
	// (dropStaleRecord) and not written again since.
	recordETag    string
	recordDropped bool
	hosts         map[string]HostInfo
	hostsAt       time.Time // local time of the listing
	hostsErr      error

	listMu sync.Mutex // one listing at a time

	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Beater; Start makes the first beat.
func New(opt Options) (*Beater, error) {
	if err := layout.ValidateHost(opt.Host); err != nil {
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
	return &Beater{opt: opt, instance: processInstance, probeID: randomID(), machine: machine, started: opt.Now(),
		seen: NewObserver(opt.Now), trust: Trust{Reason: "not probed yet"}}, nil
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

// Timing is the protocol's timing this Beater uses.
func (b *Beater) Timing() Timing { return b.opt.Timing }

// HostInUseError says another live replicator beats under the same name.
type HostInUseError struct {
	Host, Machine string
	PID           int
	Started       time.Time
	// Beating says its heartbeat was seen to change.
	Beating bool
}

func (e *HostInUseError) Error() string {
	return fmt.Sprintf("host name %s is in use by a live replicator (machine %s, pid %d, started %s; its heartbeat is being written): give each replicator its own -host, or stop the other one",
		printable(e.Host), printable(cmpOr(e.Machine, "unknown")), e.PID, e.Started.UTC().Format(time.RFC3339))
}

// Start refuses a host name another live process uses, probes whether the
// server honours conditional writes, makes the first beat, and then beats
// every BeatEvery until Stop. An error means S3 could not be written.
//
// When the name's heartbeat was last written by another process that may
// live (on another machine, or a live pid here), Start watches it: if it
// changes, that process lives and Start refuses (or, on this machine, takes
// Fallback); if it stays unchanged for DeadAfter, that process is dead and
// this one takes the name and, with it, the claims it held. So Start may
// take up to DeadAfter plus a beat: give its context that long.
func (b *Beater) Start(ctx context.Context) error {
	prev, err := b.checkInUse(ctx)
	if err != nil {
		var inUse *HostInUseError
		if !errors.As(err, &inUse) || b.opt.Fallback == "" || inUse.Machine != b.machine {
			return err
		}
		b.opt.Logger.Info("host name in use by another replicator on this machine: using its own", "host", b.opt.Host, "other_pid", inUse.PID, "name", b.opt.Fallback)
		b.opt.Host, b.opt.Fallback = b.opt.Fallback, ""
		if prev, err = b.checkInUse(ctx); err != nil {
			return err
		}
	}
	b.mu.Lock()
	b.beatETag = prev
	b.mu.Unlock()
	b.ProbeConditional(ctx)
	if err := b.Beat(ctx); err != nil {
		var inUse *HostInUseError
		if !errors.As(err, &inUse) || b.opt.Fallback == "" || inUse.Machine != b.machine {
			return err
		}
		// Two replicators of this machine started under the default name
		// at once, and the other's beat came first: this one takes its
		// own name, as when the other was seen at the check.
		b.opt.Logger.Info("host name in use by another replicator on this machine: using its own", "host", b.opt.Host, "other_pid", inUse.PID, "name", b.opt.Fallback)
		b.mu.Lock()
		b.opt.Host, b.opt.Fallback = b.opt.Fallback, ""
		b.usurped, b.lastErr, b.beatETag = nil, nil, ""
		b.mu.Unlock()
		if prev, err = b.checkInUse(ctx); err != nil {
			return err
		}
		b.mu.Lock()
		b.beatETag = prev
		b.mu.Unlock()
		if err := b.Beat(ctx); err != nil {
			return err
		}
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
	untrusted := 0 // beats since the last probe that found conditions ignored
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch tr := b.Trusted(); {
		case !tr.Known:
			// The probe could not tell (a timeout, a 5xx): ask again
			// rather than stay unable to take tenants for good.
			b.ProbeConditional(ctx)
		case !tr.OK:
			// Conditions found ignored may have been a passing fault (a
			// proxy stripping headers while this process started) or a
			// server since fixed: asked again every ReprobeBeats beats,
			// so that a restarted host does not stay, for the rest of
			// its life, unable to claim again the tenants whose only
			// copy of recent commits it holds (chaos seed 33, h2).
			if untrusted++; untrusted >= ReprobeBeats {
				untrusted = 0
				b.ProbeConditional(ctx)
			}
		}
		if err := b.Beat(ctx); err != nil && ctx.Err() == nil {
			var inUse *HostInUseError
			if errors.As(err, &inUse) {
				b.opt.Logger.Error("another replicator took this host name: this one writes nothing more", "host", b.opt.Host, "bucket", b.opt.Bucket, "error", err)
				continue
			}
			b.opt.Logger.Warn("heartbeat failed", "host", b.opt.Host, "bucket", b.opt.Bucket, "error", err)
		}
	}
}

// Beat writes the heartbeat once. Where the server honours conditional
// writes it is conditional on the ETag of this host's last beat, so that
// a second process under the same name is found out: this host is then
// fenced for good and Beat returns a *HostInUseError.
func (b *Beater) Beat(ctx context.Context) error {
	b.mu.Lock()
	if b.beating {
		b.mu.Unlock()
		return nil
	}
	if b.usurped != nil {
		err := b.usurped
		b.mu.Unlock()
		return err
	}
	b.beating = true
	b.seq++
	first := b.lastOK.IsZero()
	gap := first || b.lastErr != nil || b.opt.Now().Sub(b.lastOK) >= b.opt.Timing.BeatEvery*3/2
	b.mu.Unlock()
	if gap {
		b.dropStaleRecord(ctx)
	}
	b.mu.Lock()
	hb := Heartbeat{Host: b.opt.Host, Instance: b.instance, Machine: b.machine, PID: os.Getpid(),
		Version: b.opt.Version, Started: b.started.UTC(), At: b.opt.Now().UTC(), Seq: b.seq}
	cond, etag := b.trust.OK, b.beatETag
	b.mu.Unlock()

	sent := b.opt.Now()
	body, _ := json.Marshal(hb)
	var newETag string
	var err error
	if !cond || (gap && !first) {
		// No conditional writes to notice a second writer: look first.
		// A race remains, narrow; such a server gets no new claims. After
		// a gap, look first even where conditions were honoured: another
		// process may have taken the name meanwhile, and a server that
		// has since begun to ignore If-Match would let this beat
		// overwrite its heartbeat unseen (chaos seed 33: both then wrote
		// the same LTX keys).
		err = b.checkOwnBeat(ctx, etag)
	}
	if err == nil {
		newETag, err = b.putBeat(ctx, body, cond, etag)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	b.beating = false
	var inUse *HostInUseError
	if errors.As(err, &inUse) {
		b.usurped, b.lastOK = inUse, time.Time{}
	}
	if err != nil {
		b.lastErr = err
		return fmt.Errorf("write heartbeat %s: %w", layout.HeartbeatKey(b.opt.Host), err)
	}
	if b.lastErr != nil || (!b.lastOK.IsZero() && sent.Sub(b.lastOK) >= b.opt.Timing.FenceAfter) {
		b.epoch++
	}
	b.beatETag = newETag
	if sent.After(b.lastOK) {
		b.lastOK = sent
	}
	b.lastErr = nil
	return nil
}

// dropStaleRecord deletes this host's record before a beat that follows a
// gap: this process's first beat (the record is an ended process's), or a
// beat after a failed or missed one (the process was paused, or cut off
// from S3, while the application may have written). A reader pairs the
// record with the heartbeat's age: a fresh beat must never vouch for a
// record written before the gap, which says nothing of the writes made
// during it. Without a record the host's tenants are judged from their
// objects until the engine writes a new one (RecordDropped). A delete that
// fails is logged and the beat goes on: liveness does not wait on the
// record. The delete is conditional on this process's own record where the
// server honours that, so that it never removes the record of another
// process that took the name meanwhile.
func (b *Beater) dropStaleRecord(ctx context.Context) {
	b.mu.Lock()
	etag, cond, dropped := b.recordETag, b.trust.OK, b.recordDropped
	first := b.lastOK.IsZero()
	b.mu.Unlock()
	if dropped || (!first && etag == "") {
		return // nothing of this process's is out there
	}
	in := &s3.DeleteObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(layout.RecordKey(b.opt.Host))}
	if cond && etag != "" {
		in.IfMatch = aws.String(etag)
	}
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	_, err := b.opt.API.DeleteObject(rctx, in)
	cancel()
	if err != nil && !IsNotFound(err) && !IsConflict(err) {
		b.opt.Logger.Warn("host record written before a gap in the heartbeat not deleted", "host", b.opt.Host, "bucket", b.opt.Bucket, "error", err)
		return
	}
	b.mu.Lock()
	b.recordDropped, b.recordETag = true, ""
	b.mu.Unlock()
}

// RecordDropped says this host's record was deleted after a gap in its
// beats and not written since: the next Publish must be made even if the
// record's content did not change.
func (b *Beater) RecordDropped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.recordDropped
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

// putBeat writes the heartbeat body, conditionally when cond: on etag, or
// as a new object when etag is "". A refused condition is read out: the
// heartbeat is still this process's when a beat that timed out had in fact
// landed, or when another Beater of this process (one bucket, two
// endpoints) wrote it; then the write is made again on the ETag read.
func (b *Beater) putBeat(ctx context.Context, body []byte, cond bool, etag string) (string, error) {
	for attempt := 0; ; attempt++ {
		in := &s3.PutObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(layout.HeartbeatKey(b.opt.Host)),
			Body: bytes.NewReader(body), ContentType: aws.String("application/json")}
		if cond {
			if etag == "" {
				in.IfNoneMatch = aws.String("*")
			} else {
				in.IfMatch = aws.String(etag)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
		out, err := b.opt.API.PutObject(rctx, in)
		cancel()
		if err == nil {
			return aws.ToString(out.ETag), nil
		}
		if !cond || attempt > 0 || !(IsConflict(err) || IsNotFound(err)) {
			return "", err
		}
		rctx, cancel = context.WithTimeout(ctx, b.opt.Requests)
		r, rerr := ReadBeat(rctx, b.opt.API, b.opt.Bucket, b.opt.Host)
		cancel()
		switch {
		case rerr != nil:
			return "", rerr
		case !r.Found:
			etag = ""
		case r.Beat.Instance != b.instance:
			return "", &HostInUseError{Host: b.opt.Host, Machine: r.Beat.Machine, PID: r.Beat.PID, Started: r.Beat.Started, Beating: true}
		default:
			etag = r.ETag
		}
	}
}

// checkOwnBeat reads the heartbeat and returns a *HostInUseError when
// another process wrote it since this one last did (its ETag is not
// last, the one this process wrote or replaces).
func (b *Beater) checkOwnBeat(ctx context.Context, last string) error {
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	r, err := ReadBeat(rctx, b.opt.API, b.opt.Bucket, b.opt.Host)
	if err != nil || !r.Found || r.Beat.Instance == b.instance || (last != "" && r.ETag == last) {
		return err
	}
	return &HostInUseError{Host: b.opt.Host, Machine: r.Beat.Machine, PID: r.Beat.PID, Started: r.Beat.Started, Beating: true}
}

// Fenced reports that the host may no longer write tenant data: its last
// successful beat began FenceAfter ago or more, so other hosts may soon
// count it dead, or another process took its name. It stays fenced until a
// beat succeeds.
func (b *Beater) Fenced() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.usurped != nil || b.lastOK.IsZero() || b.opt.Now().Sub(b.lastOK) >= b.opt.Timing.FenceAfter
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
// Others count DeadAfter from when they first saw the beat that was sent
// at lastOK, which is later; so the deadline holds whatever the clocks say.
func (b *Beater) WriteDeadline() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastOK.Add(b.opt.Timing.DeadAfter - b.opt.Timing.WriteMargin)
}

// Conditional reports whether the server was found to honour every
// conditional write the protocol uses; without them, no tenant is taken
// over and no new claim is made.
func (b *Beater) Conditional() bool { return b.Trusted().OK }

// Trusted is what the probe found of the server's conditional writes.
func (b *Beater) Trusted() Trust {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.trust
}

// Stop ends the beats and deletes the heartbeat, so that any claim left
// behind is free once others have seen it missing for DeadAfter. The
// delete is conditional on this host's last beat where the server
// honours that, so that a stopping process never deletes the heartbeat of
// another that has since taken the name. It returns the delete's error.
func (b *Beater) Stop(ctx context.Context) error {
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
	b.mu.Lock()
	usurped, cond, etag := b.usurped != nil, b.trust.OK, b.beatETag
	b.mu.Unlock()
	if usurped {
		return nil // not ours any more
	}
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	in := &s3.DeleteObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(layout.HeartbeatKey(b.opt.Host))}
	if cond && etag != "" {
		in.IfMatch = aws.String(etag)
	}
	_, err := b.opt.API.DeleteObject(rctx, in)
	if err != nil && !IsNotFound(err) && !IsConflict(err) {
		return fmt.Errorf("delete heartbeat: %w", err)
	}
	return nil
}

// checkInUse decides whether this process may beat under its name. It
// returns the ETag of the heartbeat it finds ("" when none), which the
// first beat replaces conditionally. A heartbeat of this process, or of
// an ended process on this machine, is ours at once; any other is watched,
// on this process's clock, until it changes (its process lives: refused)
// or stays unchanged for DeadAfter (it is dead: the name, and its claims,
// are this process's).
func (b *Beater) checkInUse(ctx context.Context) (string, error) {
	var (
		first    string
		watching bool
	)
	for {
		rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
		r, err := ReadBeat(rctx, b.opt.API, b.opt.Bucket, b.opt.Host)
		cancel()
		switch {
		case err != nil:
			return "", err
		case !r.Found:
			return "", nil // free, or its process stopped and deleted it
		case r.Beat.Instance == b.instance:
			return r.ETag, nil
		case r.Unreadable == "" && r.Beat.Machine == b.machine && (r.Beat.PID == os.Getpid() || !processAlive(r.Beat.PID)):
			// This machine's earlier process, gone (a restarted container
			// is pid 1 again: that pid is this process).
			return r.ETag, nil
		}
		// A live pid on this machine may be a reused one: the heartbeat
		// decides, as for another machine's.
		if !watching {
			watching, first = true, r.Version
			b.opt.Logger.Info("host name last used by another replicator: watching its heartbeat before taking the name",
				"host", b.opt.Host, "machine", printable(r.Beat.Machine), "pid", r.Beat.PID, "up_to", b.opt.Timing.DeadAfter)
		} else if r.Version != first {
			return "", &HostInUseError{Host: b.opt.Host, Machine: r.Beat.Machine, PID: r.Beat.PID, Started: r.Beat.Started, Beating: true}
		}
		if b.seen.See(layout.HeartbeatKey(b.opt.Host)+"#start", r.Version) >= b.opt.Timing.DeadAfter {
			b.opt.Logger.Warn("host name taken over from a replicator whose heartbeat stopped", "host", b.opt.Host,
				"machine", printable(r.Beat.Machine), "pid", r.Beat.PID, "started", r.Beat.Started)
			return r.ETag, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("watch heartbeat %s of an earlier replicator: %w", layout.HeartbeatKey(b.opt.Host), ctx.Err())
		case <-time.After(max(b.opt.Timing.BeatEvery/4, 10*time.Millisecond)):
		}
	}
}

// ReprobeBeats is how many beats apart conditional writes found ignored
// are probed again (a minute with the default timing).
const ReprobeBeats = 6

// Trust is what probing found of the server's conditional writes.
type Trust struct {
	// Known says the probe reached a verdict; OK that every form the
	// protocol uses was honoured.
	Known, OK bool
	// Reason says what was ignored, or why the probe could not tell.
	Reason string
}

// ProbeConditional checks, on a probe object of this Beater's own, every
// conditional write the protocol relies on: If-None-Match: * and If-Match
// on PUT, and If-Match on DELETE, each refused when it must be and
// accepted when it must be. Anything else — a condition ignored, a form
// the server rejects, a timeout — leaves conditional writes untrusted:
// no takeover and no new claim. A probe that could not tell is repeated
// at the next beat, one that found conditions ignored every ReprobeBeats
// beats.
func (b *Beater) ProbeConditional(ctx context.Context) Trust {
	key := layout.HostsPrefix + b.opt.Host + "/probe-" + b.probeID
	tr := b.probe(ctx, key)
	// The probe object goes, whatever happened.
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	_, _ = b.opt.API.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(key)})
	cancel()
	b.mu.Lock()
	was := b.trust
	if tr.Known || !b.trust.Known {
		b.trust = tr
	}
	b.mu.Unlock()
	switch {
	case tr.OK && was.Known && !was.OK:
		b.opt.Logger.Info("this S3 server honours conditional writes again: tenants may be claimed and taken over", "bucket", b.opt.Bucket)
	case tr.Known && !tr.OK && tr != was:
		b.opt.Logger.Warn("this S3 server does not honour conditional writes: no tenant is taken over and no new claim is made", "bucket", b.opt.Bucket, "reason", tr.Reason)
	case !tr.Known:
		b.opt.Logger.Warn("could not tell whether this S3 server honours conditional writes: no tenant is taken over and no new claim is made until it can", "bucket", b.opt.Bucket, "reason", tr.Reason)
	}
	return tr
}

func (b *Beater) probe(ctx context.Context, key string) Trust {
	req := func(f func(ctx context.Context) error) error {
		rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
		defer cancel()
		return f(rctx)
	}
	put := func(ifNone, ifMatch string) (string, error) {
		var etag string
		err := req(func(ctx context.Context) error {
			in := &s3.PutObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(key), Body: bytes.NewReader([]byte(b.probeID))}
			if ifNone != "" {
				in.IfNoneMatch = aws.String(ifNone)
			}
			if ifMatch != "" {
				in.IfMatch = aws.String(ifMatch)
			}
			out, err := b.opt.API.PutObject(ctx, in)
			if err == nil {
				etag = aws.ToString(out.ETag)
			}
			return err
		})
		return etag, err
	}
	del := func(ifMatch string) error {
		return req(func(ctx context.Context) error {
			in := &s3.DeleteObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(key)}
			if ifMatch != "" {
				in.IfMatch = aws.String(ifMatch)
			}
			_, err := b.opt.API.DeleteObject(ctx, in)
			return err
		})
	}
	// unsure: the answer says nothing either way (network, 5xx);
	// broken: the server answered, and not as a conditional write must.
	unsure := func(what string, err error) Trust {
		return Trust{Reason: fmt.Sprintf("%s: %v", what, err)}
	}
	broken := func(what string) Trust { return Trust{Known: true, Reason: what} }
	mustRefuse := func(what string, err error) *Trust {
		switch {
		case err == nil:
			t := broken(what + " was ignored")
			return &t
		case IsConflict(err):
			return nil
		case isServerSide(err):
			t := unsure(what, err)
			return &t
		}
		t := broken(fmt.Sprintf("%s was rejected: %v", what, err))
		return &t
	}
	mustAccept := func(what string, err error) *Trust {
		switch {
		case err == nil:
			return nil
		case isServerSide(err):
			t := unsure(what, err)
			return &t
		}
		t := broken(fmt.Sprintf("%s failed: %v", what, err))
		return &t
	}

	etag, err := put("*", "")
	if IsConflict(err) {
		// A probe of an earlier run of this Beater that was not deleted.
		if err := del(""); err != nil && !IsNotFound(err) {
			return unsure("delete an old probe", err)
		}
		etag, err = put("*", "")
	}
	if t := mustAccept("PUT If-None-Match: * of a new object", err); t != nil {
		return *t
	}
	_, err = put("*", "")
	if t := mustRefuse("PUT If-None-Match: * over an existing object", err); t != nil {
		return *t
	}
	_, err = put("", `"00000000000000000000000000000000"`)
	if t := mustRefuse("PUT If-Match on a wrong ETag", err); t != nil {
		return *t
	}
	etag2, err := put("", etag)
	if t := mustAccept("PUT If-Match on the right ETag", err); t != nil {
		return *t
	}
	err = del(`"00000000000000000000000000000000"`)
	if t := mustRefuse("DELETE If-Match on a wrong ETag", err); t != nil {
		return *t
	}
	err = del(etag2)
	if t := mustAccept("DELETE If-Match on the right ETag", err); t != nil {
		return *t
	}
	return Trust{Known: true, OK: true, Reason: "If-None-Match and If-Match on PUT, If-Match on DELETE: honoured"}
}

// isServerSide reports an error that says nothing about the request's
// conditions: no answer, a timeout, a 5xx, throttling.
func isServerSide(err error) bool {
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		code := resp.HTTPStatusCode()
		// 501 Not Implemented is an answer: the form is not supported.
		return (code >= 500 && code != http.StatusNotImplemented) || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
	}
	return true // no HTTP answer at all
}

// serverNow is S3's clock at the response (its Date header), or now when
// the server sent none.
func serverNow(md middleware.Metadata, now func() time.Time) time.Time {
	if t, ok := awsmiddleware.GetServerTime(md); ok && !t.IsZero() {
		return t
	}
	return now()
}
