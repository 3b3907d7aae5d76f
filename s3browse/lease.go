package s3browse

import (
	"context"
	"encoding/json"
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
)

// maxLeaseBytes bounds how much of lock.json is read: a real lease is about
// 200 bytes, and the file is untrusted. The same limit as the replicator's
// (hosts.MaxClaimBytes), so that both call the same file unreadable.
const maxLeaseBytes = hosts.MaxClaimBytes

// Lease is the content of a tenant's lock.json, the lease Litestream's
// s3.Leaser writes (litestream.Lease). Owner is untrusted text: print it
// with Printable.
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
	// WatchLease observed the heartbeat, and HostDead its verdict.
	Host        string        `json:"host,omitempty"`
	HostAlive   bool          `json:"host_alive,omitempty"`
	HostAge     time.Duration `json:"host_age_ns,omitempty"`
	HostBeat    bool          `json:"host_beat,omitempty"`
	HostStale   bool          `json:"host_stale,omitempty"`
	HostWatched bool          `json:"host_watched,omitempty"`
	HostDead    bool          `json:"host_dead,omitempty"`
}

// Live reports whether the lease is held by someone alive, or may be, at
// now: a litefleet claim is live unless WatchLease saw its host's
// heartbeat unchanged (or missing) for DeadAfter, since one look at a
// heartbeat cannot tell a dead host from a live one without comparing
// clocks; a Litestream lease is live until it expires. An unreadable lease
// is not live. This is the one rule of restore's refusal, the hosts
// package's rule applied by a command that has no earlier observation.
func (l *Lease) Live(now time.Time) bool {
	switch {
	case l == nil || l.Error != "":
		return false
	case l.Host != "":
		return !l.HostWatched || !l.HostDead
	}
	return !l.Expired(now)
}

// WatchLease decides whether a litefleet claim's host is alive by
// watching its heartbeat (hosts.Watch): within a beat for a live host, up
// to DeadAfter for a dead one. Only what must not be wrong waits for it:
// restore's refusal to write over a live database.
func WatchLease(ctx context.Context, api API, conn Conn, l *Lease, timing hosts.Timing) error {
	if l == nil || l.Host == "" || l.Error != "" || l.HostWatched {
		return nil
	}
	alive, err := hosts.Watch(ctx, api, conn.Bucket, l.Host, timing)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		// A host that cannot be judged is live.
		return nil
	}
	l.HostWatched, l.HostDead = true, !alive
	return nil
}

// Holder names who holds the lease, for messages; untrusted parts are
// made printable.
func (l *Lease) Holder() string {
	switch {
	case l == nil:
		return "nobody"
	case l.Host != "" && l.HostWatched && l.HostDead:
		return fmt.Sprintf("host %s (its heartbeat did not change while watched: dead)", Printable(l.Host))
	case l.Host != "" && l.HostBeat:
		return fmt.Sprintf("host %s (heartbeat %s old by S3's clock)", Printable(l.Host), l.HostAge.Round(time.Second))
	case l.Host != "":
		return fmt.Sprintf("host %s (no heartbeat)", Printable(l.Host))
	case l.Owner != "":
		return Printable(l.Owner)
	}
	return "an unnamed replicator"
}

// judgeHost fills in the claim's host liveness from the bucket's
// heartbeats.
func judgeHost(ctx context.Context, api API, conn Conn, l *Lease) error {
	if l == nil || l.Host == "" {
		return nil
	}
	if err := hosts.ValidateHost(l.Host); err != nil {
		l.Error = "lock.json names an invalid host"
		return nil
	}
	list, err := hosts.List(ctx, api, conn.Bucket, nil)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		l.Error = "cannot tell whether host " + Printable(l.Host) + " is alive: " + Explain(err, conn).Error()
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
func ReadLease(ctx context.Context, api API, conn Conn, tenant string) (*Lease, error) {
	if err := CheckName(tenant); err != nil {
		return nil, err
	}
	return readLease(ctx, api, conn, conn.TenantPath(tenant)+"/"+leaseFile, object{})
}

// readLease fetches lock.json at key. It returns nil when the object is gone
// (released between the listing and the GET), and a Lease with Error set
// when it cannot be read or decoded: a bad lease must not hide the rest of
// the report. Only a cancelled context is returned as an error.
func readLease(ctx context.Context, api API, conn Conn, key string, listed object) (*Lease, error) {
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
		l.Error = fmt.Sprintf("read %s: %v", key, ExplainKey(err, conn, key))
		return l, nil
	}
	defer out.Body.Close()
	if out.LastModified != nil {
		l.ModifiedAt = out.LastModified.UTC()
	}
	if out.ContentLength != nil {
		l.Size = *out.ContentLength
	}
	tooLarge := fmt.Sprintf("%s is over %d KiB, where a lease is about 200 bytes: ignored, it holds nothing; delete %s if no replicator of this tenant wrote it", leaseFile, maxLeaseBytes>>10, Printable(key))
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
	var doc struct {
		Generation int64     `json:"generation"`
		ExpiresAt  time.Time `json:"expires_at"`
		Owner      string    `json:"owner"`
		Host       string    `json:"host"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		l.Error = fmt.Sprintf("decode %s: %v", leaseFile, err)
		return l, nil
	}
	l.Owner, l.Generation, l.ExpiresAt, l.Host = doc.Owner, doc.Generation, doc.ExpiresAt.UTC(), doc.Host
	return l, judgeHost(ctx, api, conn, l)
}
