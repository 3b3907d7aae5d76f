package hosts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/layout"
)

// Liveness is judged by change, never by comparing clocks. A host is dead
// when its heartbeat object has not changed for DeadAfter, measured on
// the observer's own monotonic clock from when the observer first saw that
// version of it; a host first seen now is not dead until DeadAfter of
// watching has passed without change. The writer sent that version before
// anyone could see it, so its own fence (FenceAfter) and write deadline
// (DeadAfter − WriteMargin after sending) fall before the observer's
// verdict, whatever the clocks of the two machines or of S3 say: only the
// rate of the two monotonic clocks matters. S3's Date header and
// LastModified are used for display only.
//
// A claim whose host has no heartbeat object at all (it stopped, or its
// heartbeat was deleted) is judged the same way: the absence of the
// heartbeat together with the claim's ETag is the version watched, so the
// claim is taken once the heartbeat has been seen missing, and the claim
// unchanged, for DeadAfter. A heartbeat that reappears, or a claim
// rewritten, starts the watch again.
//
// This relies on what S3 promises: a GET or a listing after a PUT
// completes returns the new object (strong read-after-write consistency),
// and a rewritten object has a new ETag. A server or cache that serves a
// stale heartbeat for DeadAfter breaks it; ETags that differ between a
// listing and a GET of the same object only delay every takeover (the
// object looks changed at each look), which fails closed.

// Observer remembers, per key, the version last seen and since when, on
// its own clock. Safe for concurrent use.
type Observer struct {
	now func() time.Time // monotonic in production (time.Now)

	mu    sync.Mutex
	seen  map[string]sighting
	limit int // prune when seen grows past it (amortized: it doubles)
}

type sighting struct {
	version string
	since   time.Time // when this version was first seen
	last    time.Time // when it was last looked at
}

// NewObserver returns an Observer reading now (time.Now when nil). Times
// from time.Now carry the monotonic clock, so wall-clock jumps do not move
// its judgement.
func NewObserver(now func() time.Time) *Observer {
	if now == nil {
		now = time.Now
	}
	return &Observer{now: now, seen: map[string]sighting{}, limit: 4096}
}

// See records that key held version at a look that ended now, and
// returns how long that version has been seen unchanged: zero for a new
// one. The look's end, not its start, is used: the later the first
// sighting, the later any verdict.
func (o *Observer) See(key, version string) time.Duration {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.seen[key]
	if !ok || s.version != version {
		s = sighting{version: version, since: now}
	}
	s.last = now
	o.seen[key] = s
	if len(o.seen) > o.limit {
		o.pruneLocked(now)
		if len(o.seen) > o.limit/2 {
			o.limit *= 2
		}
	}
	return now.Sub(s.since)
}

// Unchanged is how long key's last-seen version has been seen unchanged
// as of now; false when key was never seen.
func (o *Observer) Unchanged(key string) (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.seen[key]
	if !ok {
		return 0, false
	}
	return o.now().Sub(s.since), true
}

// pruneLocked forgets keys not looked at for an hour: junk claims that
// were taken, hosts long gone.
func (o *Observer) pruneLocked(now time.Time) {
	for k, s := range o.seen {
		if now.Sub(s.last) > time.Hour {
			delete(o.seen, k)
		}
	}
}

// Version is what identifies one write of an object: its ETag, which S3
// changes on every write (a heartbeat's body changes every beat, so even
// an MD5 ETag does), or LastModified and size when the server sent none.
func Version(etag string, modified time.Time, size int64) string {
	if e := strings.Trim(etag, `"`); e != "" {
		return "etag:" + e
	}
	return fmt.Sprintf("lm:%d:%d", modified.Unix(), size)
}

// absentVersion is the version of a missing heartbeat, tied to the claim
// being judged (its ETag) so that a rewritten claim starts the watch again.
func absentVersion(claimETag string) string { return "absent:" + claimETag }

// Getter is what a one-look read of a heartbeat needs of an S3 client.
type Getter interface {
	GetObject(ctx context.Context, params *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// BeatRead is one read of a host's heartbeat.
type BeatRead struct {
	Found    bool
	Beat     Heartbeat // zero when Unreadable
	ETag     string
	Version  string
	Modified time.Time // LastModified: S3's clock, for display only
	// Unreadable says why the body is not a heartbeat.
	Unreadable string
}

// ReadBeat reads host's heartbeat fresh (a GET, never a listing).
func ReadBeat(ctx context.Context, api Getter, bucket, host string) (BeatRead, error) {
	key := layout.HeartbeatKey(host)
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if IsNotFound(err) {
			return BeatRead{}, nil
		}
		return BeatRead{}, fmt.Errorf("read heartbeat %s: %w", key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, 64<<10))
	if err != nil {
		return BeatRead{}, fmt.Errorf("read heartbeat %s: %w", key, err)
	}
	r := BeatRead{Found: true, ETag: aws.ToString(out.ETag), Modified: aws.ToTime(out.LastModified).UTC()}
	r.Version = Version(r.ETag, aws.ToTime(out.LastModified), int64(len(body)))
	r.Beat, r.Unreadable = DecodeBeat(body)
	return r, nil
}

// DecodeBeat decodes a heartbeat's bytes (untrusted, bounded by the
// caller). Bytes that are no heartbeat come back as unreadable, with why:
// a heartbeat's liveness is its object changing, never what it says.
func DecodeBeat(body []byte) (b Heartbeat, unreadable string) {
	if err := json.Unmarshal(body, &b); err != nil {
		return Heartbeat{}, "not JSON: " + err.Error()
	}
	return b, ""
}

// Watch decides in one sitting whether host is alive, for a one-shot
// command that has no earlier observation (restore's refusal to write over
// a live database): it reads the heartbeat every BeatEvery/4 until it
// changes (alive, usually within BeatEvery) or has stayed unchanged, or
// missing, for DeadAfter (dead). It is the engine's rule with the
// observation made on the spot; a read that fails is an error, never a
// verdict.
func Watch(ctx context.Context, api Getter, bucket, host string, t Timing) (alive bool, err error) {
	if t == (Timing{}) {
		t = DefaultTiming
	}
	obs := NewObserver(nil)
	key := layout.HeartbeatKey(host)
	first := ""
	for {
		r, err := ReadBeat(ctx, api, bucket, host)
		if err != nil {
			return false, err
		}
		v := r.Version
		if !r.Found {
			v = absentVersion("")
		}
		switch {
		case first == "":
			first = v
		case v == first:
		case !r.Found:
			// It stopped (a clean stop deletes its heartbeat): watch
			// the absence instead.
			first = v
		default:
			return true, nil
		}
		if obs.See(key, v) >= t.DeadAfter {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("watch heartbeat of %s: %w", printable(host), ctx.Err())
		case <-time.After(max(t.BeatEvery/4, 10*time.Millisecond)):
		}
	}
}

// WatchClaim applies the engine's rule (Beater.Acquire) to a claim in one
// sitting, for a one-shot command that has no earlier observation
// (restore's refusal to write over a live database). It returns nil when
// the claim is free by that rule, observed on the spot with this
// process's monotonic clock, and a *HeldError saying why otherwise:
//
//   - a litefleet host's claim is held until its heartbeat has stayed
//     unchanged, or missing, for DeadAfter (Watch);
//   - a Litestream lease is held until it has expired and has stayed
//     unchanged (not renewed) for DeadAfter;
//   - an unreadable lock.json is held until it has stayed unchanged for
//     DeadAfter.
//
// What cannot be watched (a read fails) fails closed: held, with the
// reason. Only a cancelled ctx is returned as an error.
func WatchClaim(ctx context.Context, api Getter, bucket, tenantPath string, c *Claim, t Timing) error {
	if t == (Timing{}) {
		t = DefaultTiming
	}
	key := layout.ClaimKey(tenantPath)
	obs := NewObserver(nil) // the watch's one clock (time.Now): the lease's expiry and its staying unchanged
	switch {
	case c == nil:
		return nil
	case c.Host != "" && c.Unreadable == "":
		alive, err := Watch(ctx, api, bucket, c.Host, t)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return &HeldError{Key: key, Host: c.Host, Reason: fmt.Sprintf("the heartbeat of host %s cannot be read (%v): treated as live", printable(c.Host), err)}
		case alive:
			return &HeldError{Key: key, Host: c.Host, Owner: c.Owner, DeadAfter: t.DeadAfter, Reason: fmt.Sprintf("the heartbeat of host %s changed while watched: live", printable(c.Host))}
		}
		return nil
	case c.Unreadable == "" && obs.now().Before(c.ExpiresAt):
		// The writer's clock: the lease is not taken before it, as the
		// engine does not; its staying unchanged is judged on ours.
		return &HeldError{Key: key, Owner: c.Owner, ExpiresAt: c.ExpiresAt,
			Reason: fmt.Sprintf("a Litestream lease of %s until %s by its writer's clock", printable(cmpOr(c.Owner, "an unnamed replicator")), c.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	for {
		cur, err := ReadClaim(ctx, api, bucket, tenantPath)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("watch %s: %w", key, ctx.Err())
		case err != nil:
			return &HeldError{Key: key, Owner: c.Owner, Reason: fmt.Sprintf("lock.json cannot be read to tell whether it is renewed (%v): treated as held", err)}
		case cur == nil:
			return nil // released meanwhile
		}
		if cur.Unreadable == "" && (cur.Host != "" || obs.now().Before(cur.ExpiresAt)) {
			// Rewritten meanwhile by a live writer.
			return WatchClaim(ctx, api, bucket, tenantPath, cur, t)
		}
		if obs.See(key, Version(cur.ETag, cur.ModifiedAt, 0)) >= t.DeadAfter {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("watch %s: %w", key, ctx.Err())
		case <-time.After(max(t.BeatEvery/4, 10*time.Millisecond)):
		}
	}
}
