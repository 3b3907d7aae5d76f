package hosts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/untrusted"
)

// MaxClaimBytes bounds how much of an untrusted lock.json is read: a claim
// is about 200 bytes. A larger one is not read past the limit: it is
// unreadable, and taken like any junk claim once it is DeadAfter old.
const MaxClaimBytes = 64 << 10

// Claim is a tenant's lock.json: Litestream's lease fields (generation,
// expires_at, owner), the litefleet host that holds it and the process
// that wrote it. A claim with a Host is held while that host's heartbeat
// keeps changing (see Observer), whatever ExpiresAt says. Its ExpiresAt is
// HeldUntilReleased: a litefleet claim is never renewed per tenant, so no
// expiry could be true, and a tool built on Litestream's leaser (which
// takes a lease once expired) must refuse it rather than take it after a
// few seconds. A claim without a Host is a plain Litestream lease, held
// until it expires.
type Claim struct {
	Generation int64     `json:"generation"`
	ExpiresAt  time.Time `json:"expires_at"`
	Owner      string    `json:"owner,omitempty"`
	Host       string    `json:"host,omitempty"`
	ClaimedAt  time.Time `json:"claimed_at,omitzero"`
	// The process that wrote it (its heartbeat's Instance), for messages
	// and for Verify: two processes never share a host name for long,
	// but a claim says which one wrote it.
	Instance string `json:"instance,omitempty"`
	Machine  string `json:"machine,omitempty"`
	PID      int    `json:"pid,omitempty"`

	ETag       string    `json:"-"`
	ModifiedAt time.Time `json:"-"` // LastModified, S3's clock
	// Unreadable says why the object could not be decoded as a claim.
	Unreadable string `json:"-"`
	// TookFrom names the dead host a takeover took the claim from.
	TookFrom string `json:"-"`
}

// HeldUntilReleased is the expires_at of every litefleet claim: far
// enough that Litestream's leaser never counts it expired.
var HeldUntilReleased = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// UntrustedError says a claim cannot be made or taken because the server
// was not found to honour conditional writes (Beater.Trusted).
type UntrustedError struct {
	Key    string
	Reason string
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("%s: not claimed: the S3 server's conditional writes are not trusted (%s), and without them two hosts could both hold the tenant", e.Key, e.Reason)
}

// HeldError says a tenant's claim belongs to someone alive.
type HeldError struct {
	Key       string
	Host      string        // the litefleet host holding it, "" for a Litestream lease
	Owner     string        // lock.json's owner text (untrusted)
	Age       time.Duration // how long this host has seen its heartbeat unchanged (or missing)
	NoBeat    bool          // the host has no heartbeat: it stopped, or it was deleted
	DeadAfter time.Duration // when it is taken: Age reaches it
	ExpiresAt time.Time     // a Litestream lease's expiry
	Reason    string        // why it counts as held when it is not a live host's
}

func (e *HeldError) Error() string {
	switch {
	case e.Reason != "":
		return fmt.Sprintf("%s: %s", e.Key, e.Reason)
	case e.Host != "":
		if e.NoBeat {
			return fmt.Sprintf("held by host %s, which has no heartbeat (seen missing for %s; taken once missing for %s)", printable(e.Host), e.Age.Round(time.Second), e.DeadAfter)
		}
		return fmt.Sprintf("held by live host %s (heartbeat unchanged for %s; taken once unchanged for %s)", printable(e.Host), e.Age.Round(time.Second), e.DeadAfter)
	default:
		return fmt.Sprintf("held by %s until %s (a Litestream lease)", printable(cmpOr(e.Owner, "an unnamed replicator")), e.ExpiresAt.UTC().Format(time.RFC3339))
	}
}

// ReadClaim reads a tenant's claim; nil when there is none. A lock.json
// that cannot be decoded is returned with Unreadable set.
func ReadClaim(ctx context.Context, api Getter, bucket, tenantPath string) (*Claim, error) {
	key := layout.ClaimKey(tenantPath)
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer out.Body.Close()
	c := &Claim{ETag: aws.ToString(out.ETag), ModifiedAt: aws.ToTime(out.LastModified).UTC()}
	tooLarge := fmt.Sprintf("over %s, where a claim is about 200 bytes", mib(MaxClaimBytes))
	if aws.ToInt64(out.ContentLength) > MaxClaimBytes {
		c.Unreadable = tooLarge // not even read
		return c, nil
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, MaxClaimBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(body) > MaxClaimBytes {
		c.Unreadable = tooLarge
		return c, nil
	}
	etag, modified := c.ETag, c.ModifiedAt
	c = DecodeClaim(body)
	c.ETag, c.ModifiedAt = etag, modified
	return c, nil
}

// DecodeClaim decodes the bytes of a lock.json (untrusted; the caller
// bounds them by MaxClaimBytes): the one decoder of the engine, ls,
// inspect, restore and the UI. Bytes that are no claim come back with
// Unreadable saying why, never as an error: junk in a tenant's prefix is
// judged like any claim (see WatchClaim).
func DecodeClaim(body []byte) *Claim {
	c := &Claim{}
	if err := json.Unmarshal(body, c); err != nil {
		return &Claim{Unreadable: "not JSON: " + err.Error()}
	}
	if c.Host != "" && layout.ValidateHost(c.Host) != nil {
		c.Unreadable = "host name is not valid"
	}
	return c
}

// Acquire takes the tenant's claim for this host. The claim is adopted
// without a write when it already names this host (a restart: Start made
// sure no other live process uses the name); created with If-None-Match
// when there is none; and taken with If-Match on its ETag when its host is
// dead or its Litestream lease expired, so that of two takers only one
// wins. Creating and taking need a server that honours conditional writes
// (an *UntrustedError otherwise). api is the client with the tenant's
// credentials. A claim held by someone alive is a *HeldError.
func (b *Beater) Acquire(ctx context.Context, api API, tenantPath string) (*Claim, error) {
	return b.acquire(ctx, api, tenantPath, false)
}

// AcquireAbsent is Acquire for a tenant whose listing, a moment ago, had
// no lock.json: it writes the claim at once (If-None-Match), and reads it
// only if someone wrote one meanwhile. It saves a request per tenant when a
// fleet starts.
func (b *Beater) AcquireAbsent(ctx context.Context, api API, tenantPath string) (*Claim, error) {
	return b.acquire(ctx, api, tenantPath, true)
}

func (b *Beater) acquire(ctx context.Context, api API, tenantPath string, absent bool) (*Claim, error) {
	key := layout.ClaimKey(tenantPath)
	for range 3 {
		var cur *Claim
		var err error
		if !absent {
			cur, err = ReadClaim(ctx, api, b.opt.Bucket, tenantPath)
		}
		absent = false
		if err != nil {
			return nil, err
		}
		now := b.opt.Now()
		next := &Claim{Generation: 1, Owner: "litefleet host " + b.opt.Host, Host: b.opt.Host,
			ClaimedAt: now.UTC(), ExpiresAt: HeldUntilReleased,
			Instance: b.instance, Machine: b.machine, PID: os.Getpid()}
		ifMatch := ""
		if cur != nil {
			if err := b.judge(ctx, key, cur); err != nil {
				return nil, err
			}
			if cur.Host == b.opt.Host && cur.Unreadable == "" {
				return cur, nil
			}
			next.Generation = cur.Generation + 1
			next.TookFrom = cmpOr(cur.Host, cur.Owner)
			ifMatch = cur.ETag
		}
		if tr := b.Trusted(); !tr.OK {
			// A takeover or a new claim rests on If-Match/If-None-Match:
			// where they may be ignored, two hosts could both win.
			return nil, &UntrustedError{Key: key, Reason: tr.Reason}
		}
		etag, err := b.putClaim(ctx, api, key, next, ifMatch)
		if IsConflict(err) {
			continue // someone wrote it meanwhile: judge again
		}
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", key, err)
		}
		next.ETag = etag
		return next, nil
	}
	return nil, &HeldError{Key: key, Reason: "the claim changed three times while taking it: another host is taking it"}
}

// judge returns a *HeldError when cur belongs to someone alive, or may be:
// a verdict of dead is only ever given on a fresh read.
func (b *Beater) judge(ctx context.Context, key string, cur *Claim) error {
	dead := b.opt.Timing.DeadAfter
	switch {
	case cur.Unreadable != "":
		// Junk someone wrote: it is taken once it has stayed the same
		// for DeadAfter, as a heartbeat would be.
		if d := b.seen.See(key, Version(cur.ETag, cur.ModifiedAt, 0)); d < dead {
			return &HeldError{Key: key, Reason: fmt.Sprintf("lock.json is unreadable (%s), unchanged for %s: it is taken once unchanged for %s", cur.Unreadable, d.Round(time.Second), dead)}
		}
		return nil
	case cur.Host == b.opt.Host:
		return nil
	case cur.Host != "":
		d, missing, err := b.unchanged(ctx, cur.Host, key, cur.ETag)
		if err != nil {
			return fmt.Errorf("cannot tell whether host %s is alive: %w", printable(cur.Host), err)
		}
		if d < dead {
			return &HeldError{Key: key, Host: cur.Host, Owner: cur.Owner, Age: d, NoBeat: missing, DeadAfter: dead}
		}
		return nil
	default:
		// A plain Litestream lease: its expiry is its writer's clock, so
		// it must also have stayed unchanged (not renewed) for DeadAfter
		// here before it is taken.
		d := b.seen.See(key, Version(cur.ETag, cur.ModifiedAt, 0))
		if b.opt.Now().Before(cur.ExpiresAt) || d < dead {
			return &HeldError{Key: key, Owner: cur.Owner, ExpiresAt: cur.ExpiresAt}
		}
		return nil
	}
}

// unchanged is how long host's heartbeat has been seen unchanged by this
// process. A recent listing that shows it changing within DeadAfter
// answers without a request; any longer answer is checked with a fresh
// read of the heartbeat, so that no takeover is decided on a listing. A
// missing heartbeat is watched together with the claim (claimKey,
// claimETag): the claim is free once the heartbeat has been missing, and
// the claim the same, for DeadAfter.
func (b *Beater) unchanged(ctx context.Context, host, claimKey, claimETag string) (d time.Duration, missing bool, err error) {
	key, nobeat := layout.HeartbeatKey(host), claimKey+"#nobeat"
	if list, err := b.Hosts(ctx, b.opt.Timing.BeatEvery); err == nil {
		if _, ok := list[host]; ok {
			// A heartbeat seen ends any watch of its absence.
			b.seen.See(nobeat, "beat")
			if d, seen := b.seen.Unchanged(key); seen && d < b.opt.Timing.DeadAfter {
				return d, false, nil
			}
		} else if d := b.seen.See(nobeat, absentVersion(claimETag)); d < b.opt.Timing.DeadAfter {
			// Missing from the listing: the watch of its absence starts
			// (no later than now); a verdict still needs a fresh read.
			return d, true, nil
		}
	}
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	r, err := ReadBeat(rctx, b.opt.API, b.opt.Bucket, host)
	cancel()
	if err != nil {
		return 0, false, err
	}
	if !r.Found {
		return b.seen.See(nobeat, absentVersion(claimETag)), true, nil
	}
	b.seen.See(nobeat, "beat")
	return b.seen.See(key, r.Version), false, nil
}

func (b *Beater) putClaim(ctx context.Context, api API, key string, c *Claim, ifMatch string) (string, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentType: aws.String("application/json")}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	} else {
		in.IfNoneMatch = aws.String("*")
	}
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	out, err := api.PutObject(rctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// ErrClaimLost says a claim this host held is gone or names another host.
var ErrClaimLost = errors.New("claim lost")

// Verify checks with a fresh read that this host still holds the claim
// (after an outage long enough for others to count it dead): it is
// unchanged since this host took or adopted it, or this process rewrote
// it. It refreshes c's ETag.
func (b *Beater) Verify(ctx context.Context, api API, tenantPath string, c *Claim) error {
	b.mu.Lock()
	usurped := b.usurped
	b.mu.Unlock()
	if usurped != nil {
		// Another process took this host's name, and with it its claims.
		return fmt.Errorf("%w: %w", ErrClaimLost, usurped)
	}
	cur, err := ReadClaim(ctx, api, b.opt.Bucket, tenantPath)
	if err != nil {
		return err
	}
	switch {
	case cur == nil:
		return fmt.Errorf("%w: %s was deleted", ErrClaimLost, layout.ClaimKey(tenantPath))
	case cur.Host != b.opt.Host:
		return fmt.Errorf("%w: %s now names %s", ErrClaimLost, layout.ClaimKey(tenantPath), printable(cmpOr(cur.Host, cur.Owner, "nobody")))
	case cur.ETag != c.ETag && cur.Instance != b.instance:
		return fmt.Errorf("%w: %s was rewritten by another process under this host name (machine %s, pid %d)", ErrClaimLost, layout.ClaimKey(tenantPath), printable(cmpOr(cur.Machine, "unknown")), cur.PID)
	}
	c.ETag, c.Generation = cur.ETag, cur.Generation
	return nil
}

// Release deletes the claim if it is still this host's (If-Match on its
// ETag). A claim already gone is not an error.
func (b *Beater) Release(ctx context.Context, api API, tenantPath string, c *Claim) error {
	if c == nil {
		return nil
	}
	key := layout.ClaimKey(tenantPath)
	if tr := b.Trusted(); !tr.OK || c.ETag == "" {
		// A DELETE whose If-Match may be ignored could delete the claim
		// of a host that took the tenant since: leave it. It is free
		// once this host's heartbeat is gone for DeadAfter.
		b.opt.Logger.Info("claim left in place: conditional DELETE is not trusted on this server", "key", key, "reason", tr.Reason)
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	in := &s3.DeleteObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(key), IfMatch: aws.String(c.ETag)}
	_, err := api.DeleteObject(rctx, in)
	switch {
	case err == nil, IsNotFound(err):
		return nil
	case IsConflict(err):
		return fmt.Errorf("%w: %s was rewritten by another host", ErrClaimLost, key)
	}
	return fmt.Errorf("release %s: %w", key, err)
}

func cmpOr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// printable is the one rule for untrusted text in messages.
func printable(s string) string { return untrusted.Printable(s) }
