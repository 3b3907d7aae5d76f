package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/untrusted"
)

// How a holder keeps one lineage in its tenant's prefix (see hosts.Lineage
// for the rule). Before its first upload under a claim, the holder begins
// a segment of the tenant's lineage record (or continues its own, after a
// restart under the same claim), and every LTX file it uploads carries the
// segment's generation. Stray files, a deposed host's late uploads, are
// found where they can matter, with a HEAD per object only where objects
// are few:
//   - at a start, before the history check sees them: when the listing
//     differs from the files this host left at its last sleep or stop (a
//     fingerprint saved beside Litestream's state), every file the record
//     could make stray; without a fingerprint, the files beyond the local
//     position; normally the listings are equal, or no file is beyond, and
//     nothing is requested;
//   - at a wake, when the prefix's listing differs from what this host
//     left at its sleep (a fingerprint of keys and sizes, 8 bytes per
//     sleeping tenant): every file the record could make stray is looked
//     at, since someone else wrote while the tenant slept; normally the
//     listings are equal, and nothing is requested;
//   - when S3 refuses a write of the holder's own because its key holds
//     another object: the prefix is listed again and every object the
//     manifest does not know is looked at.
// Strays are copied, with the files they continue (a restore plan up to
// them), to layout.StrayArchivePrefix, where they restore on their own, and
// deleted from the tenant's prefix: even a plain `litestream restore` then
// follows one lineage. The refused write is then made again.

// maxStrayChecks bounds the HEAD requests of one look for strays.
const maxStrayChecks = 256

// lineageState is a tenant's segment of its lineage, kept across sleeps.
type lineageState struct {
	mu       sync.Mutex
	gen      int64 // 0 until a segment is begun or continued
	claimGen int64 // the claim generation it was begun under
	record   *hosts.Lineage
	// fresh says the replica's history was archived: a new segment is
	// begun even under the same claim, from TXID 0.
	fresh bool
}

// forget drops the segment when a claim is newly taken: its generation
// number may repeat a claim this host held before another host's segment
// (a claim deleted at a release starts again at 1), so the record is read
// again before the next upload.
func (l *lineageState) forget() {
	l.mu.Lock()
	l.gen, l.record = 0, nil
	l.mu.Unlock()
}

// renew marks the segment to be begun again before the next upload.
func (l *lineageState) renew() {
	l.mu.Lock()
	l.gen, l.fresh = 0, true
	l.mu.Unlock()
}

// generation returns the lineage generation this client's uploads carry,
// beginning a segment in the tenant's lineage record first when this host
// has none under its current claim. The segment continues from the
// manifest's newest TXID: what this holder found and goes on from.
func (c *tenantClient) generation(ctx context.Context) (int64, error) {
	ls := c.lineage
	if ls == nil {
		return 0, nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.gen != 0 && ls.claimGen == c.claimGen {
		return ls.gen, nil
	}
	for range 3 {
		rec, err := hosts.ReadLineage(ctx, c.api, c.bucket, c.path)
		if err != nil {
			return 0, err
		}
		cur := rec.Current()
		if !ls.fresh && cur.Generation > 0 && cur.Host == c.host && cur.ClaimGeneration == c.claimGen {
			// This host's own segment: a restart or a wake under the claim.
			ls.gen, ls.claimGen, ls.record = cur.Generation, c.claimGen, rec
			return ls.gen, nil
		}
		since, err := c.maxTXID(ctx)
		if err != nil {
			return 0, err
		}
		next := rec.Next(c.host, c.claimGen, uint64(since), c.now())
		etag := ""
		if rec != nil {
			etag = rec.ETag
		}
		deadline, err := c.gate.writeDeadline()
		if err != nil {
			return 0, err
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		next.ETag, err = hosts.WriteLineage(wctx, c.api, c.bucket, c.path, next, etag, c.gate.conditional())
		cancel()
		if hosts.IsConflict(err) {
			continue // written meanwhile (a deposed host's late begin): read it again
		}
		if err != nil {
			return 0, err
		}
		ls.gen, ls.claimGen, ls.record, ls.fresh = next.Current().Generation, c.claimGen, next, false
		c.logger.Info("lineage segment begun", "db", c.tenant, "generation", ls.gen, "since_txid", since.String(), "key", hosts.LineageKey(c.path))
		return ls.gen, nil
	}
	return 0, fmt.Errorf("%s changed three times while this host began its segment", hosts.LineageKey(c.path))
}

// lineageRecord is the record this client judges strays by: its own
// segment's, or the record as read now when it has begun none.
func (c *tenantClient) lineageRecord(ctx context.Context) (*hosts.Lineage, error) {
	if c.lineage != nil {
		c.lineage.mu.Lock()
		rec := c.lineage.record
		ok := c.lineage.gen != 0 && c.lineage.claimGen == c.claimGen
		c.lineage.mu.Unlock()
		if ok {
			return rec, nil
		}
	}
	return hosts.ReadLineage(ctx, c.api, c.bucket, c.path)
}

// stray is an object of the tenant's prefix outside its lineage.
type stray struct {
	info ltx.FileInfo
	gen  int64
	host string
	// since is where the history went on without it: the takeover point
	// of the segment that makes it stray.
	since ltx.TXID
}

func (s stray) String() string {
	return fmt.Sprintf("%04x/%s (generation %d of host %s)", s.info.Level, ltx.FormatFilename(s.info.MinTXID, s.info.MaxTXID), s.gen, printableHost(s.host))
}

// printableHost is the one rule for untrusted text (untrusted.Printable).
func printableHost(h string) string { return untrusted.Printable(h) }

// judge looks at the objects (a HEAD each, at most maxStrayChecks) and
// returns those the lineage record makes stray.
func (c *tenantClient) judge(ctx context.Context, rec *hosts.Lineage, objs []ltxObject) ([]stray, error) {
	above, ok := rec.MaySeeStrays()
	if !ok {
		return nil, nil
	}
	objs = slices.DeleteFunc(slices.Clone(objs), func(o ltxObject) bool { return uint64(o.info.MaxTXID) <= above })
	if len(objs) > maxStrayChecks {
		// The newest first: a deposed host's late files are beyond the
		// history it was deposed in.
		slices.SortFunc(objs, func(a, b ltxObject) int { return int(b.info.MaxTXID) - int(a.info.MaxTXID) })
		c.logger.Warn("too many files to look for strays among: the newest are looked at", "db", c.tenant, "files", len(objs), "looked_at", maxStrayChecks)
		objs = objs[:maxStrayChecks]
	}
	var out []stray
	for _, o := range objs {
		key := c.key(o.info.Level, o.info.MinTXID, o.info.MaxTXID)
		head, err := c.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
		if hosts.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("head %s: %w", key, err)
		}
		gen := hosts.Generation(head.Metadata)
		if seg, ok := rec.Stray(gen, uint64(o.info.MaxTXID)); ok {
			info := o.info
			info.Size = aws.ToInt64(head.ContentLength)
			out = append(out, stray{info: info, gen: gen, host: head.Metadata[hosts.MetaHost], since: ltx.TXID(seg.Since)})
		}
	}
	return out, nil
}

// sweepBeyond moves the stray files beyond txid out of the prefix, before
// the history check or Litestream reads the manifest: files beyond what
// this host last had are few (none, normally), so this costs no request
// unless some are there, and then a GET of the lineage record and a HEAD
// each.
func (c *tenantClient) sweepBeyond(ctx context.Context, txid ltx.TXID) error {
	if err := c.load(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	var beyond []ltxObject
	for _, objs := range c.levels {
		for _, o := range objs {
			if o.info.MaxTXID > txid {
				beyond = append(beyond, o)
			}
		}
	}
	c.mu.Unlock()
	if len(beyond) == 0 {
		return nil
	}
	rec, err := c.lineageRecord(ctx)
	if err != nil {
		return err
	}
	strays, err := c.judge(ctx, rec, beyond)
	if err != nil || len(strays) == 0 {
		return err
	}
	return c.archiveStrays(ctx, strays)
}

// sweepUnknown lists the prefix again and moves out the stray files among
// the objects the manifest does not hold: what others wrote since it was
// loaded. It runs when S3 refused a write of this host's; it reports
// whether key was among the strays moved.
func (c *tenantClient) sweepUnknown(ctx context.Context, key string) (bool, error) {
	var unknown []ltxObject
	in := &s3.ListObjectsV2Input{Bucket: aws.String(c.bucket), Prefix: aws.String(c.path + "/")}
	for {
		out, err := c.api.ListObjectsV2(ctx, in)
		if err != nil {
			return false, fmt.Errorf("list s3://%s/%s/: %w", c.bucket, c.path, err)
		}
		c.mu.Lock()
		for _, o := range out.Contents {
			level, info, ok := parseLTXKey(c.path, aws.ToString(o.Key), aws.ToInt64(o.Size))
			if !ok {
				continue
			}
			etag := aws.ToString(o.ETag)
			known := slices.ContainsFunc(c.levels[level], func(k ltxObject) bool {
				return k.info.MinTXID == info.MinTXID && k.info.MaxTXID == info.MaxTXID && (k.etag == "" || k.etag == etag)
			})
			if !known || aws.ToString(o.Key) == key {
				info.Size = aws.ToInt64(o.Size)
				unknown = append(unknown, ltxObject{info: info, etag: etag})
			}
		}
		c.mu.Unlock()
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			break
		}
		in.ContinuationToken = out.NextContinuationToken
	}
	if len(unknown) == 0 {
		return false, nil
	}
	rec, err := c.lineageRecord(ctx)
	if err != nil {
		return false, err
	}
	strays, err := c.judge(ctx, rec, unknown)
	if err != nil || len(strays) == 0 {
		return false, err
	}
	if err := c.archiveStrays(ctx, strays); err != nil {
		return false, err
	}
	return slices.ContainsFunc(strays, func(s stray) bool { return c.key(s.info.Level, s.info.MinTXID, s.info.MaxTXID) == key }), nil
}

// archiveStrays copies the strays to the archive, then deletes them from
// the tenant's prefix and its manifest. The strays that continue the
// history from where the lineage went on without them (its takeover
// point) go with the files of the lineage up to that point (a restore
// plan), so that they restore on their own; strays after a gap (their
// predecessors never landed) cannot, and are kept in a second archive.
func (c *tenantClient) archiveStrays(ctx context.Context, strays []stray) error {
	slices.SortFunc(strays, func(a, b stray) int {
		if a.info.MinTXID != b.info.MinTXID {
			return int(a.info.MinTXID) - int(b.info.MinTXID)
		}
		return int(a.info.MaxTXID) - int(b.info.MaxTXID)
	})
	since := strays[0].since
	for _, s := range strays {
		since = min(since, s.since)
	}
	// The run of strays that continues the history from since.
	var run, rest []stray
	reach := since
	for _, s := range strays {
		if s.info.MinTXID <= reach+1 && s.info.MaxTXID > reach {
			run, reach = append(run, s), s.info.MaxTXID
		} else {
			rest = append(rest, s)
		}
	}
	now := c.now()
	archive, gapArchive := layout.StrayArchivePrefix(c.path, now), layout.StrayGapArchivePrefix(c.path, now)
	var keys []string
	if len(run) > 0 && since > 0 {
		base, err := litestream.CalcRestorePlan(ctx, c, since, time.Time{}, c.logger.With("db", c.tenant))
		if err != nil {
			// The strays are still moved out, kept if not restorable.
			c.logger.Warn("the files the stray files continue cannot be planned: the archive holds the strays alone", "db", c.tenant, "txid", since.String(), "error", err)
		}
		for _, info := range base {
			keys = append(keys, c.key(info.Level, info.MinTXID, info.MaxTXID))
		}
	}
	copies := map[string]string{}
	for _, k := range keys {
		copies[k] = archive
	}
	for _, s := range run {
		copies[c.key(s.info.Level, s.info.MinTXID, s.info.MaxTXID)] = archive
	}
	for _, s := range rest {
		copies[c.key(s.info.Level, s.info.MinTXID, s.info.MaxTXID)] = gapArchive
	}
	for key, to := range copies {
		deadline, err := c.gate.writeDeadline()
		if err != nil {
			return err
		}
		cctx, cancel := context.WithDeadline(ctx, deadline)
		_, err = c.api.CopyObject(cctx, &s3.CopyObjectInput{
			Bucket:            aws.String(c.bucket),
			Key:               aws.String(to + "/" + strings.TrimPrefix(key, c.path+"/")),
			CopySource:        aws.String(url.PathEscape(c.bucket) + "/" + escapeKey(key)),
			MetadataDirective: types.MetadataDirectiveCopy,
		})
		cancel()
		if err != nil {
			return fmt.Errorf("copy %s to %s: %w", key, to, err)
		}
	}
	deadline, err := c.gate.writeDeadline()
	if err != nil {
		return err
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ids := make([]types.ObjectIdentifier, 0, len(strays))
	names := make([]string, 0, len(strays))
	for _, s := range strays {
		ids = append(ids, types.ObjectIdentifier{Key: aws.String(c.key(s.info.Level, s.info.MinTXID, s.info.MaxTXID))})
		names = append(names, s.String())
	}
	out, err := c.api.DeleteObjects(dctx, &s3.DeleteObjectsInput{Bucket: aws.String(c.bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
	if err == nil && len(out.Errors) > 0 {
		e := out.Errors[0]
		err = errors.New(aws.ToString(e.Key) + ": " + aws.ToString(e.Code) + " " + aws.ToString(e.Message))
	}
	if err != nil {
		return fmt.Errorf("stray files copied to %s, but deleting them from the tenant's prefix failed: %w", archive, err)
	}
	c.mu.Lock()
	for _, s := range strays {
		c.levels[s.info.Level] = slices.DeleteFunc(c.levels[s.info.Level], func(o ltxObject) bool {
			return o.info.MinTXID == s.info.MinTXID && o.info.MaxTXID == s.info.MaxTXID
		})
	}
	c.mu.Unlock()
	args := []any{"db", c.tenant, "files", strings.Join(names, ", "), "since_txid", since.String(), "archive", "s3://" + c.bucket + "/" + archive}
	if len(rest) > 0 {
		args = append(args, "after_a_gap", "s3://"+c.bucket+"/"+archive+"-2")
	}
	c.logger.Warn("stray files moved out of the tenant's prefix: a deposed host's uploads after another took the history on", args...)
	return nil
}

// fingerprint sums the manifest's keys and sizes, in no order: equal
// fingerprints mean (but for a 64-bit collision) the same LTX files.
func (c *tenantClient) fingerprint() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.levels == nil {
		return 0, false
	}
	var sum uint64
	for level, objs := range c.levels {
		for _, o := range objs {
			h := fnv.New64a()
			fmt.Fprintf(h, "%d/%d-%d/%d", level, o.info.MinTXID, o.info.MaxTXID, o.info.Size)
			sum += h.Sum64()
		}
	}
	return sum, true
}

// sweepAll moves out the stray files among every file the lineage record
// could make stray: others wrote the prefix while this host slept.
func (c *tenantClient) sweepAll(ctx context.Context) error {
	return c.sweepBeyond(ctx, 0)
}

// saveListing records the fingerprint of the files the tenant leaves.
func saveListing(path string, fp uint64) error {
	file := filepath.Join(metaDir(path), layout.ListingFile)
	tmp := file + ".tmp"
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], fp)
	if err := os.WriteFile(tmp, b[:], 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// loadListing reads the fingerprint saveListing left; ok is false when
// there is none (or it is damaged).
func loadListing(path string) (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(metaDir(path), layout.ListingFile))
	if err != nil || len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

// sweepAtStart moves out the stray files of the replica before the
// history check reads it: all that the record could make stray when the
// listing is not what this host left, else those beyond the local
// position (localMax) when it left nothing.
func (c *tenantClient) sweepAtStart(ctx context.Context, path string, localMax ltx.TXID) error {
	if err := c.load(ctx); err != nil {
		return err
	}
	fp, _ := c.fingerprint()
	if saved, ok := loadListing(path); ok {
		if saved == fp {
			return nil
		}
		return c.sweepAll(ctx)
	}
	return c.sweepBeyond(ctx, localMax)
}
