package hosts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MaxClaimBytes bounds how much of an untrusted lock.json is read: a claim
// is about 200 bytes. A larger one is not read past the limit: it is
// unreadable, and taken like any junk claim once it is DeadAfter old.
const MaxClaimBytes = 64 << 10

// ClaimFile is the claim's file name in a tenant's prefix: Litestream's
// lease file, so Litestream's tools and older readers still name the owner.
const ClaimFile = "lock.json"

// ClaimKey is the key of a tenant's claim.
func ClaimKey(tenantPath string) string { return strings.TrimSuffix(tenantPath, "/") + "/" + ClaimFile }

// Claim is a tenant's lock.json: Litestream's lease fields (generation,
// expires_at, owner) and the litefleet host that holds it. A claim with a
// Host is held while that host's heartbeat is fresh, whatever ExpiresAt
// says; ExpiresAt is when it was written plus DeadAfter, for Litestream's
// tools. A claim without a Host is a plain Litestream lease, held until it
// expires.
type Claim struct {
	Generation int64     `json:"generation"`
	ExpiresAt  time.Time `json:"expires_at"`
	Owner      string    `json:"owner,omitempty"`
	Host       string    `json:"host,omitempty"`
	ClaimedAt  time.Time `json:"claimed_at,omitzero"`

	ETag       string    `json:"-"`
	ModifiedAt time.Time `json:"-"` // LastModified, S3's clock
	// Unreadable says why the object could not be decoded as a claim.
	Unreadable string `json:"-"`
	// TookFrom names the dead host a takeover took the claim from.
	TookFrom string `json:"-"`
}

// HeldError says a tenant's claim belongs to someone alive.
type HeldError struct {
	Key       string
	Host      string        // the litefleet host holding it, "" for a Litestream lease
	Owner     string        // lock.json's owner text (untrusted)
	Age       time.Duration // that host's heartbeat age, when known
	ExpiresAt time.Time     // a Litestream lease's expiry
	Reason    string        // why it counts as held when it is not a live host's
}

func (e *HeldError) Error() string {
	switch {
	case e.Reason != "":
		return fmt.Sprintf("%s: %s", e.Key, e.Reason)
	case e.Host != "":
		return fmt.Sprintf("held by live host %s (heartbeat %s ago)", printable(e.Host), e.Age.Round(time.Second))
	default:
		return fmt.Sprintf("held by %s until %s (a Litestream lease)", printable(cmpOr(e.Owner, "an unnamed replicator")), e.ExpiresAt.UTC().Format(time.RFC3339))
	}
}

// ReadClaim reads a tenant's claim; nil when there is none. A lock.json
// that cannot be decoded is returned with Unreadable set.
func ReadClaim(ctx context.Context, api API, bucket, tenantPath string) (*Claim, error) {
	key := ClaimKey(tenantPath)
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
	if err := json.Unmarshal(body, c); err != nil {
		c = &Claim{Unreadable: "not JSON: " + err.Error()}
	}
	c.ETag, c.ModifiedAt = etag, modified
	if c.Host != "" && ValidateHost(c.Host) != nil {
		c.Unreadable = "host name is not valid"
	}
	return c, nil
}

// Acquire takes the tenant's claim for this host. The claim is adopted
// without a write when it already names this host (a restart); created with
// If-None-Match when there is none; and taken with If-Match on its ETag
// when its host is dead or its Litestream lease expired, so that of two
// takers only one wins. api is the client with the tenant's credentials.
// A claim held by someone alive is a *HeldError.
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
	key := ClaimKey(tenantPath)
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
			ClaimedAt: now.UTC(), ExpiresAt: now.Add(b.opt.Timing.DeadAfter).UTC()}
		ifMatch := ""
		if cur != nil {
			if err := b.judge(ctx, key, cur); err != nil {
				return nil, err
			}
			if cur.Host == b.opt.Host && cur.Unreadable == "" {
				return cur, nil
			}
			if !b.Conditional() {
				return nil, &HeldError{Key: key, Host: cur.Host, Owner: cur.Owner,
					Reason: "the S3 server ignores conditional writes, so taking over a claim could let two hosts win: delete lock.json by hand once its holder is stopped"}
			}
			next.Generation = cur.Generation + 1
			next.TookFrom = cmpOr(cur.Host, cur.Owner)
			ifMatch = cur.ETag
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

// judge returns a *HeldError when cur belongs to someone alive.
func (b *Beater) judge(ctx context.Context, key string, cur *Claim) error {
	now := b.opt.Now()
	switch {
	case cur.Unreadable != "":
		// Junk someone wrote: let it age like a heartbeat before taking it.
		if age := b.serverAge(cur.ModifiedAt); age < b.opt.Timing.DeadAfter {
			return &HeldError{Key: key, Reason: fmt.Sprintf("lock.json is unreadable (%s), written %s ago: it is taken once %s old", cur.Unreadable, age.Round(time.Second), b.opt.Timing.DeadAfter)}
		}
		return nil
	case cur.Host == b.opt.Host:
		return nil
	case cur.Host != "":
		hosts, err := b.Hosts(ctx, b.opt.Timing.BeatEvery)
		if err != nil {
			return fmt.Errorf("cannot tell whether host %s is alive: %w", printable(cur.Host), err)
		}
		if h, ok := hosts[cur.Host]; ok && h.AliveWithin(now, b.opt.Timing.DeadAfter) {
			return &HeldError{Key: key, Host: cur.Host, Owner: cur.Owner, Age: h.AgeAt(now)}
		}
		return nil
	default:
		if now.Before(cur.ExpiresAt) {
			return &HeldError{Key: key, Owner: cur.Owner, ExpiresAt: cur.ExpiresAt}
		}
		return nil
	}
}

// serverAge is how old an object is, by the local clock: only junk claims
// are judged this way, and a few seconds of skew only delay taking them.
func (b *Beater) serverAge(modified time.Time) time.Duration {
	return max(b.opt.Now().Sub(modified), 0)
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

// Verify checks that this host still holds the claim (after an outage long
// enough for others to count it dead), refreshing c's ETag.
func (b *Beater) Verify(ctx context.Context, api API, tenantPath string, c *Claim) error {
	cur, err := ReadClaim(ctx, api, b.opt.Bucket, tenantPath)
	if err != nil {
		return err
	}
	switch {
	case cur == nil:
		return fmt.Errorf("%w: %s was deleted", ErrClaimLost, ClaimKey(tenantPath))
	case cur.Host != b.opt.Host:
		return fmt.Errorf("%w: %s now names %s", ErrClaimLost, ClaimKey(tenantPath), printable(cmpOr(cur.Host, cur.Owner, "nobody")))
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
	key := ClaimKey(tenantPath)
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	in := &s3.DeleteObjectInput{Bucket: aws.String(b.opt.Bucket), Key: aws.String(key)}
	if c.ETag != "" {
		in.IfMatch = aws.String(c.ETag)
	}
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

// printable quotes untrusted text that holds anything but printable ASCII,
// so that a hostile name read from S3 cannot forge a log line or send a
// terminal escape.
func printable(s string) string {
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}
