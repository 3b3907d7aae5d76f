package s3browse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/untrusted"
)

// maxLeaseBytes bounds how much of lock.json is read: a real lease is about
// 200 bytes, and the file is untrusted. The same limit as the replicator's
// (hosts.MaxClaimBytes), so that both call the same file unreadable.
const maxLeaseBytes = hosts.MaxClaimBytes

// Lease is the content of a tenant's lock.json, the lease Litestream's
// s3.Leaser writes (litestream.Lease). Owner is untrusted text: print it
// with untrusted.Printable.
type Lease struct {
	Owner      string    `json:"owner"`
	Generation int64     `json:"generation"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	// ModifiedAt is the LastModified of lock.json: its last renewal.
	ModifiedAt time.Time `json:"modified_at,omitzero"`
	Size       int64     `json:"size"`
	// Error says why the lease could not be read or decoded; the other
	// fields are then what is known from the listing.
	Error string `json:"error,omitempty"`
	// Host is the litefleet host whose claim this is ("" for a plain
	// Litestream lease): the claim is held while that host's heartbeat
	// keeps changing, whatever ExpiresAt says (hosts.Observer). One look
	// cannot prove a host dead, so HostAlive is true whenever it has a
	// heartbeat (HostBeat); HostAge is that heartbeat's age by S3's clock
	// and HostStale says it looks DeadAfter old, a hint for display only:
	// a proxy's or another node's Date may run ahead. HostWatched says
	// WatchLease applied the engine's rule (to any lease, a plain
	// Litestream one or an unreadable one too), and HostDead its verdict:
	// free.
	Host        string        `json:"host,omitempty"`
	HostAlive   bool          `json:"host_alive,omitempty"`
	HostAge     time.Duration `json:"host_age_ns,omitempty"`
	HostBeat    bool          `json:"host_beat,omitempty"`
	HostStale   bool          `json:"host_stale,omitempty"`
	HostWatched bool          `json:"host_watched,omitempty"`
	HostDead    bool          `json:"host_dead,omitempty"`
	// Why is WatchLease's reason for a lease it found held.
	Why string `json:"-"`
}

// Live reports whether the lease is held by someone alive, or may be, at
// now. Once WatchLease has applied the engine's rule it is that verdict.
// Before, one look decides for display and notes: a litefleet claim is
// live (one look at a heartbeat cannot tell a dead host from a live one
// without comparing clocks), a Litestream lease until it expires, an
// unreadable one is not; what must not be wrong watches first.
func (l *Lease) Live(now time.Time) bool {
	switch {
	case l == nil:
		return false
	case l.HostWatched:
		return !l.HostDead
	case l.Error != "":
		return false
	case l.Host != "":
		return true
	}
	return !l.Expired(now)
}

// WatchLease applies the engine's rule to the lease in one sitting
// (hosts.WatchClaim, the same rule as Beater.Acquire's): a litefleet
// host's claim is free once its heartbeat stayed unchanged or missing for
// DeadAfter, a Litestream lease once expired and unchanged for DeadAfter,
// an unreadable lock.json once unchanged for DeadAfter; what cannot be
// read is held (fail closed), and Why says so. Within a beat for a live
// host, up to DeadAfter otherwise: only what must not be wrong waits for
// it, restore's refusal to write over a live database.
func WatchLease(ctx context.Context, api s3conn.API, conn s3conn.Conn, l *Lease, tenant string, timing hosts.Timing) error {
	if l == nil || l.HostWatched {
		return nil
	}
	c := &hosts.Claim{Generation: l.Generation, ExpiresAt: l.ExpiresAt, Owner: l.Owner, Host: l.Host, Unreadable: l.Error}
	err := hosts.WatchClaim(ctx, api, conn.Bucket, conn.TenantPath(tenant), c, timing)
	var held *hosts.HeldError
	switch {
	case errors.As(err, &held):
		l.HostWatched, l.HostDead, l.Why = true, false, cmp.Or(held.Reason, held.Error())
	case err != nil:
		return err
	default:
		l.HostWatched, l.HostDead = true, true
	}
	return nil
}

// Holder names who holds the lease, for messages; untrusted parts are
// made printable.
func (l *Lease) Holder() string {
	switch {
	case l == nil:
		return "nobody"
	case l.Host != "" && l.HostWatched && l.HostDead:
		return fmt.Sprintf("host %s (its heartbeat did not change while watched: dead)", untrusted.Printable(l.Host))
	case l.Host != "" && l.HostBeat:
		return fmt.Sprintf("host %s (heartbeat %s old by S3's clock)", untrusted.Printable(l.Host), l.HostAge.Round(time.Second))
	case l.Host != "":
		return fmt.Sprintf("host %s (no heartbeat)", untrusted.Printable(l.Host))
	case l.Owner != "":
		return untrusted.Printable(l.Owner)
	}
	return "an unnamed replicator"
}

// judgeHost fills in the claim's host liveness from the bucket's
// heartbeats.
func judgeHost(ctx context.Context, api s3conn.API, conn s3conn.Conn, l *Lease) error {
	if l == nil || l.Host == "" {
		return nil
	}
	list, err := hosts.List(ctx, api, conn.Bucket, nil)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		l.Error = "cannot tell whether host " + untrusted.Printable(l.Host) + " is alive: " + s3conn.Explain(err, conn).Error()
		return nil
	}
	if h, ok := list[l.Host]; ok {
		now := time.Now()
		l.HostBeat, l.HostAge, l.HostAlive, l.HostStale = true, h.AgeAt(now), true, h.Stale(now)
	}
	return nil
}

// Expired reports whether the lease had expired at now. A lease that could
// not be decoded has no expiry and counts as expired.
func (l *Lease) Expired(now time.Time) bool {
	return l.ExpiresAt.IsZero() || !now.Before(l.ExpiresAt)
}

// ReadLease reads a tenant's lock.json: nil when there is none, and a
// Lease with Error set when it cannot be read or decoded. Only a cancelled
// context is returned as an error.
func ReadLease(ctx context.Context, api s3conn.API, conn s3conn.Conn, tenant string) (*Lease, error) {
	if err := CheckName(tenant); err != nil {
		return nil, err
	}
	return readLease(ctx, api, conn, conn.TenantPath(tenant)+"/"+layout.ClaimFile, object{})
}

// readLease fetches lock.json at key. It returns nil when the object is gone
// (released between the listing and the GET), and a Lease with Error set
// when it cannot be read or decoded: a bad lease must not hide the rest of
// the report. Only a cancelled context is returned as an error.
func readLease(ctx context.Context, api s3conn.API, conn s3conn.Conn, key string, listed object) (*Lease, error) {
	l := &Lease{ModifiedAt: listed.modified, Size: listed.size}
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key)})
	if err != nil {
		var noKey *types.NoSuchKey
		var resp *awshttp.ResponseError
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("read %s: %w", key, ctx.Err())
		case errors.As(err, &noKey), errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound:
			return nil, nil
		}
		l.Error = fmt.Sprintf("read %s: %v", key, s3conn.ExplainKey(err, conn, key))
		return l, nil
	}
	defer out.Body.Close()
	if out.LastModified != nil {
		l.ModifiedAt = out.LastModified.UTC()
	}
	if out.ContentLength != nil {
		l.Size = *out.ContentLength
	}
	tooLarge := fmt.Sprintf("%s is over %d KiB, where a lease is about 200 bytes: ignored, it holds nothing; delete %s if no replicator of this tenant wrote it", layout.ClaimFile, maxLeaseBytes>>10, untrusted.Printable(key))
	if l.Size > maxLeaseBytes {
		l.Error = tooLarge // not even read
		return l, nil
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, maxLeaseBytes+1))
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %w", key, ctx.Err())
		}
		l.Error = fmt.Sprintf("read %s: %v", key, err)
		return l, nil
	case len(body) > maxLeaseBytes:
		l.Error = tooLarge
		return l, nil
	}
	c := hosts.DecodeClaim(body)
	l.Owner, l.Generation, l.ExpiresAt, l.Host = c.Owner, c.Generation, c.ExpiresAt.UTC(), c.Host
	if c.Unreadable != "" {
		l.Error = "decode " + layout.ClaimFile + ": " + c.Unreadable
		return l, nil
	}
	return l, judgeHost(ctx, api, conn, l)
}
