package hosts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/litefleet/litefleet/layout"
)

// HostInfo is what one listing of the hosts prefix says of a host. Its
// ages are S3's clock against S3's clock, for display: whether a host is
// dead is never decided by them (see Observer).
type HostInfo struct {
	Name string `json:"host"`
	// LastBeat is the LastModified of its heartbeat: S3's clock.
	LastBeat time.Time `json:"last_beat"`
	// Age is how old that heartbeat was by S3's clock at the listing.
	Age time.Duration `json:"age_ns"`
	// Version identifies the heartbeat's write (see Version).
	Version string `json:"-"`
	// HasRecord says a host record is beside the heartbeat.
	HasRecord  bool      `json:"has_record,omitempty"`
	RecordSize int64     `json:"record_size,omitempty"`
	RecordAt   time.Time `json:"record_at,omitzero"`
	// HasDelta says a delta record is beside it (see layout.DeltaKey).
	HasDelta  bool      `json:"has_delta,omitempty"`
	DeltaSize int64     `json:"delta_size,omitempty"`
	DeltaAt   time.Time `json:"delta_at,omitzero"`
	listedAt  time.Time // local clock at the listing
}

// AgeAt is the heartbeat's age at local time now.
func (h HostInfo) AgeAt(now time.Time) time.Duration {
	if h.listedAt.IsZero() {
		return h.Age
	}
	return h.Age + max(now.Sub(h.listedAt), 0)
}

// Stale reports whether S3's clock says the heartbeat is DeadAfter old at
// local time now: a hint for display (the host may be dead), never a
// verdict, since the Date of a proxy or of another S3 node may run ahead.
func (h HostInfo) Stale(now time.Time) bool { return h.AgeAt(now) >= DeadAfter }

// Lister is what List needs of an S3 client.
type Lister interface {
	ListObjectsV2(ctx context.Context, params *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// List lists every host with a heartbeat in the bucket: one LIST request
// per 1,000 objects. Ages are measured by S3's clock (its Date header, or the
// newest heartbeat's LastModified when later), for
// display only.
func List(ctx context.Context, api Lister, bucket string, now func() time.Time) (map[string]HostInfo, error) {
	if now == nil {
		now = time.Now
	}
	out := map[string]HostInfo{}
	records, deltas := map[string]types.Object{}, map[string]types.Object{}
	// S3's now is its Date header, or the newest heartbeat's LastModified
	// when that is later: both are S3's clocks, but a proxy in front of S3
	// may set a Date of its own (nginx does), and a Date running behind
	// made a host cut off for a minute look as if it had just beaten, so
	// that ls called its tenants in sync (bench/chaos seed 36, a Date
	// 120 s behind). Live hosts beat every BeatEvery: their newest beat is
	// within a beat of S3's now.
	var s3Now time.Time
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(layout.HostsPrefix)}
	for {
		page, err := api.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", layout.HostsPrefix, err)
		}
		at := now()
		if srv := serverNow(page.ResultMetadata, func() time.Time { return at }); srv.After(s3Now) {
			s3Now = srv
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if host := layout.HostFromKey(key); host != "" {
				lm := aws.ToTime(o.LastModified)
				if lm.After(s3Now) {
					s3Now = lm
				}
				out[host] = HostInfo{Name: host, LastBeat: lm.UTC(), listedAt: at,
					Version: Version(aws.ToString(o.ETag), lm, aws.ToInt64(o.Size))}
				continue
			}
			if rest, ok := cutRecord(key, "/record.json.gz"); ok {
				records[rest] = o
			} else if rest, ok := cutRecord(key, "/record.delta.json.gz"); ok {
				deltas[rest] = o
			}
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			break
		}
		in.ContinuationToken = page.NextContinuationToken
	}
	for host, h := range out {
		h.Age = max(s3Now.Sub(h.LastBeat), 0)
		out[host] = h
	}
	for host, o := range records {
		if h, ok := out[host]; ok {
			h.HasRecord, h.RecordSize, h.RecordAt = true, aws.ToInt64(o.Size), aws.ToTime(o.LastModified).UTC()
			out[host] = h
		}
	}
	for host, o := range deltas {
		if h, ok := out[host]; ok {
			h.HasDelta, h.DeltaSize, h.DeltaAt = true, aws.ToInt64(o.Size), aws.ToTime(o.LastModified).UTC()
			out[host] = h
		}
	}
	return out, nil
}

func cutRecord(key, suffix string) (string, bool) {
	rest, ok := strings.CutPrefix(key, layout.HostsPrefix)
	if !ok {
		return "", false
	}
	host, ok := strings.CutSuffix(rest, suffix)
	if !ok || layout.ValidateHost(host) != nil {
		return "", false
	}
	return host, true
}

// Sorted returns the hosts by name.
func Sorted(m map[string]HostInfo) []HostInfo {
	out := make([]HostInfo, 0, len(m))
	for _, h := range m {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Hosts returns the host table, listing the bucket when the last listing
// is older than maxAge. Concurrent callers share one listing. Each listing
// is an observation of every heartbeat (see Observer); Silent reads them.
func (b *Beater) Hosts(ctx context.Context, maxAge time.Duration) (map[string]HostInfo, error) {
	b.listMu.Lock()
	defer b.listMu.Unlock()
	b.mu.Lock()
	fresh := b.hosts != nil && b.opt.Now().Sub(b.hostsAt) < maxAge
	hosts, err := b.hosts, b.hostsErr
	b.mu.Unlock()
	if fresh {
		return hosts, err
	}
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	hosts, err = List(rctx, b.opt.API, b.opt.Bucket, b.opt.Now)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		return b.hosts, err
	}
	b.hosts, b.hostsAt, b.hostsErr = hosts, b.opt.Now(), nil
	for name, h := range hosts {
		b.seen.See(layout.HeartbeatKey(name), h.Version)
	}
	return hosts, nil
}

// Silent reports whether host may be dead by the last listing: its
// heartbeat was missing, or this process has seen it unchanged for
// DeadAfter. It is a hint to try its tenants again; a takeover itself is
// decided on a fresh read.
func (b *Beater) Silent(host string) bool {
	b.mu.Lock()
	_, listed := b.hosts[host]
	b.mu.Unlock()
	if !listed {
		return true
	}
	d, _ := b.seen.Unchanged(layout.HeartbeatKey(host))
	return d >= b.opt.Timing.DeadAfter
}

// IsConflict reports a failed conditional write: 412 Precondition Failed,
// or 409 when a concurrent conditional write won.
func IsConflict(err error) bool {
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		switch resp.HTTPStatusCode() {
		case http.StatusPreconditionFailed, http.StatusConflict:
			return true
		}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	return false
}

// IsNotFound reports a missing object (NoSuchKey, NotFound or HTTP 404).
func IsNotFound(err error) bool {
	var noKey *types.NoSuchKey
	var notFound *types.NotFound
	if errors.As(err, &noKey) || errors.As(err, &notFound) {
		return true
	}
	var resp *awshttp.ResponseError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound
}
