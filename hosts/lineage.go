package hosts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/layout"
)

// A tenant's lineage: which of the LTX files under its prefix belong to the
// one history restores follow.
//
// A client-side deadline cannot stop a write that the network or a slow
// server applies late, and If-None-Match only protects keys that already
// exist: a deposed host's late upload under a new key (its next L0 file)
// lands beside the new holder's history. So every LTX file litefleet
// uploads carries, in its object metadata, the lineage generation it was
// written in (MetaGeneration) and its host (MetaHost), and each tenant has a
// lineage record (lineage.json beside lock.json, which Litestream ignores)
// listing the segments of its history: each holder that starts writing the
// tenant appends a segment with the next generation and the TXID it
// continues from (Since), the replica's newest TXID as it found it.
//
// A file of generation n is stray when a later segment (generation m > n)
// continued from a TXID below the file's MaxTXID: the file holds
// transactions written after another holder took the history on. A file
// without the metadata (written by Litestream itself, or by litefleet before
// lineages) belongs to whatever lineage it sits in, and so does any file
// when the tenant has no record.
//
// The generation is litefleet's own counter, not the claim's: a claim is
// deleted on a clean release and the next one starts again at 1, while the
// record outlives every claim and only grows.

// Object metadata of every LTX file litefleet uploads (without S3's
// x-amz-meta- prefix, as the SDK keys them).
const (
	MetaGeneration = "litefleet-generation"
	MetaHost       = "litefleet-host"
)

// MaxLineageBytes bounds how much of an untrusted lineage.json is read.
const MaxLineageBytes = 64 << 10

// maxSegments is how many segments a record keeps: the oldest go first.
// A stray of a generation older than every kept segment's predecessor is
// judged by the oldest segment kept, which continued from a later TXID: a
// host deposed 64 takeovers ago is assumed to have no request in flight.
const maxSegments = 64

// LineageKey is the key of a tenant's lineage record.
func LineageKey(tenantPath string) string {
	return strings.TrimSuffix(tenantPath, "/") + "/" + layout.LineageFile
}

// Segment is one holder's part of a tenant's history.
type Segment struct {
	Generation int64  `json:"generation"`
	Since      uint64 `json:"since_txid"` // the replica's newest TXID when it began
	Host       string `json:"host"`
	// ClaimGeneration is the claim's generation when the segment began: a
	// holder restarted under the same claim continues its segment.
	ClaimGeneration int64     `json:"claim_generation"`
	At              time.Time `json:"at"` // the holder's clock, for people
}

// Lineage is a tenant's lineage record.
type Lineage struct {
	Segments []Segment `json:"segments"` // oldest first
	ETag     string    `json:"-"`
}

// Current is the newest segment; the zero Segment when there is none.
func (l *Lineage) Current() Segment {
	if l == nil || len(l.Segments) == 0 {
		return Segment{}
	}
	return l.Segments[len(l.Segments)-1]
}

// Next returns the record with a new segment begun by host at since.
func (l *Lineage) Next(host string, claimGen int64, since uint64, at time.Time) *Lineage {
	var segs []Segment
	if l != nil {
		segs = append(segs, l.Segments...)
	}
	segs = append(segs, Segment{Generation: l.Current().Generation + 1, Since: since, Host: host, ClaimGeneration: claimGen, At: at.UTC()})
	if len(segs) > maxSegments {
		segs = segs[len(segs)-maxSegments:]
	}
	return &Lineage{Segments: segs}
}

// Stray reports whether a file of generation gen (0: no metadata) holding
// transactions up to maxTXID lies outside the lineage, and the segment that
// makes it so.
func (l *Lineage) Stray(gen int64, maxTXID uint64) (Segment, bool) {
	if l == nil || gen <= 0 {
		return Segment{}, false
	}
	for _, s := range l.Segments {
		if s.Generation > gen && maxTXID > s.Since {
			return s, true
		}
	}
	return Segment{}, false
}

// MaySeeStrays is the lowest MaxTXID a stray can have: files at or below it
// need no look at their metadata. ok is false when nothing can be stray
// (no record, or a single segment).
func (l *Lineage) MaySeeStrays() (above uint64, ok bool) {
	if l == nil || len(l.Segments) < 2 {
		return 0, false
	}
	above = l.Segments[1].Since
	for _, s := range l.Segments[1:] {
		above = min(above, s.Since)
	}
	return above, true
}

// Generation reads an object's lineage generation from its metadata: 0
// when it has none or it is not a positive number (untrusted).
func Generation(meta map[string]string) int64 {
	n, err := strconv.ParseInt(meta[MetaGeneration], 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// ReadLineage reads a tenant's lineage record; nil when there is none. A
// record that cannot be decoded is an error: guessing a lineage could hide
// a history or mix two.
func ReadLineage(ctx context.Context, api Getter, bucket, tenantPath string) (*Lineage, error) {
	key := LineageKey(tenantPath)
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, MaxLineageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(body) > MaxLineageBytes {
		return nil, fmt.Errorf("%s is over %s, where a lineage record is a few kB", key, mib(MaxLineageBytes))
	}
	var l Lineage
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("%s is not a lineage record: %w", key, err)
	}
	for _, s := range l.Segments {
		if s.Generation <= 0 {
			return nil, fmt.Errorf("%s holds a segment of generation %d", key, s.Generation)
		}
	}
	l.ETag = aws.ToString(out.ETag)
	return &l, nil
}

// WriteLineage writes a tenant's lineage record: created only if absent
// when ifMatch is "", else only over the record of that ETag, so that a
// segment is never lost to a concurrent writer; unconditional when the
// server honours no conditions. It returns the new ETag.
func WriteLineage(ctx context.Context, api API, bucket, tenantPath string, l *Lineage, ifMatch string, conditional bool) (string, error) {
	body, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	key := LineageKey(tenantPath)
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentType: aws.String("application/json")}
	switch {
	case !conditional:
	case ifMatch != "":
		in.IfMatch = aws.String(ifMatch)
	default:
		in.IfNoneMatch = aws.String("*")
	}
	out, err := api.PutObject(ctx, in)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", key, err)
	}
	return aws.ToString(out.ETag), nil
}
