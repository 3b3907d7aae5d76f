package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/benbjohnson/litestream"
	lss3 "github.com/benbjohnson/litestream/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
)

// objectAPI is the part of the S3 client a tenant's replica needs.
type objectAPI interface {
	hosts.API
	HeadObject(ctx context.Context, params *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	DeleteObjects(ctx context.Context, params *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	CopyObject(ctx context.Context, params *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	ListParts(ctx context.Context, params *s3.ListPartsInput, optFns ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	ListMultipartUploads(ctx context.Context, params *s3.ListMultipartUploadsInput, optFns ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	manager.UploadAPIClient
}

var _ objectAPI = (*s3.Client)(nil)

// singlePutMax is the largest LTX file sent in one PutObject, on a link
// fast enough for it; larger ones go up in parts (upload.go, link.go).
const singlePutMax = 16 << 20

// errFenced is returned for a write the tenant may not make: its host's
// heartbeat is failing or its claim is gone.
var errFenced = errors.New("not written: this host may not write the tenant now")

// gate decides whether a tenant's data may be written, and by when a write
// must be done.
type gate interface {
	// writeDeadline returns when a write sent now must have finished, or
	// an error wrapping errFenced.
	writeDeadline() (time.Time, error)
	// conditional reports whether the server honours conditional writes;
	// without them writes are made as before, unconditional.
	conditional() bool
}

// ltxObject is one LTX file of the replica as the manifest knows it.
type ltxObject struct {
	info ltx.FileInfo
	// exact says CreatedAt is the LTX header's timestamp (it was written
	// here), not the listing's LastModified.
	exact bool
	// etag is the object's, when known: rewriting the key (a compaction
	// or snapshot of the same range) is conditional on it.
	etag string
}

// tenantClient is Litestream's ReplicaClient for one tenant, over an S3
// client shared by every tenant with the same credentials. It answers
// listings from a manifest of the tenant's LTX files, loaded with one LIST
// and kept current by its own writes and deletes: Litestream lists levels
// every few seconds (L0 retention, compaction checks, positions), and while
// this host holds the tenant's claim nobody else writes the prefix.
type tenantClient struct {
	api    objectAPI
	bucket string
	path   string // tenant prefix, no trailing slash
	tenant string
	logger *slog.Logger // litefleet's: the seed's "new transaction" lines
	gate   gate
	stats  *tenantStats
	// check runs before an upload; an error refuses it (the file at the
	// tenant's path is no longer the one Litestream has open).
	check func() error
	// checkHeader runs before an upload with the LTX file's header; an
	// error refuses it (a file that cannot continue the history).
	checkHeader func(ltx.Header) error
	// pages follows the replicated state's pages from each L0 upload.
	pages *pageTable
	// onConflict is told when an LTX key held another object: the tenant
	// must stop.
	onConflict func(*ConflictError)
	// unconditional: the server rejected a conditional write (501).
	unconditional atomic.Bool
	// orphansLeft: the tenant's prefix may hold abandoned multipart
	// uploads, swept before its next one and at its close (noteOrphans).
	orphansLeft atomic.Bool
	orphansAt   atomic.Int64 // unix nanoseconds of the last abort
	// spoolDir holds objects read whole that are too large for memory
	// (spool): Litestream's state folder beside the database; "" for the
	// system's temporary folder.
	spoolDir string
	// noSweep: the tenant's keys are its own (a per-tenant policy), which
	// cannot list multipart uploads: abandoned ones are left to the
	// bucket's lifecycle rule.
	noSweep bool
	// slow holds uploads back after one failed on a link too slow for it.
	slow slowBackoff
	// unsure are uploads that failed but may have landed, by key (mu).
	unsure map[string][]unsure
	// lineage is the tenant's segment of its lineage (lineage.go), begun
	// under claim generation claimGen by host; nil writes no lineage.
	lineage  *lineageState
	host     string
	claimGen int64
	// observe is told of each sync's duration and latency (Options.Observer).
	observe Observer
	// now is the engine's clock (Options.Now): request durations and the
	// fencing budget are measured on it, so they need its monotonic reading.
	now func() time.Time

	mu       sync.Mutex
	levels   map[int][]ltxObject // nil until loaded
	loadedAt time.Time
}

var _ litestream.ReplicaClient = (*tenantClient)(nil)

// tenantStats are a tenant's counters, kept across sleeps.
type tenantStats struct {
	uploadedBytes atomic.Int64
	uploads       atomic.Int64
	// syncErrors counts failed syncs: uploads of a change (level 0) that
	// failed or were refused, and Litestream's local syncs seen failing.
	syncErrors atomic.Int64
	lastUpload atomic.Int64 // unix nanoseconds
	health     syncHealth
	progress   uploadProgress
}

func (c *tenantClient) Type() string                  { return lss3.ReplicaClientType }
func (c *tenantClient) Init(context.Context) error    { return nil }
func (c *tenantClient) SetLogger(logger *slog.Logger) {}

func (c *tenantClient) levelPrefix(level int) string { return fmt.Sprintf("%s/%04x/", c.path, level) }

func (c *tenantClient) key(level int, minTXID, maxTXID ltx.TXID) string {
	return c.levelPrefix(level) + ltx.FormatFilename(minTXID, maxTXID)
}

// load lists the tenant's prefix once and builds the manifest.
func (c *tenantClient) load(ctx context.Context) error {
	c.mu.Lock()
	loaded := c.levels != nil
	c.mu.Unlock()
	if loaded {
		return nil
	}
	levels := map[int][]ltxObject{}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(c.bucket), Prefix: aws.String(c.path + "/")}
	for {
		out, err := c.api.ListObjectsV2(ctx, in)
		if err != nil {
			err = fmt.Errorf("list s3://%s/%s/: %w", c.bucket, c.path, err)
			// Without the manifest no sync can find the replica's position.
			if ctx.Err() == nil {
				c.stats.syncErrors.Add(1)
				c.stats.health.uploadFailed(err, c.now())
			}
			return err
		}
		for _, o := range out.Contents {
			level, info, ok := parseLTXKey(c.path, aws.ToString(o.Key), aws.ToInt64(o.Size))
			if !ok {
				continue
			}
			info.Size = aws.ToInt64(o.Size)
			info.CreatedAt = aws.ToTime(o.LastModified).UTC()
			levels[level] = append(levels[level], ltxObject{info: info, etag: aws.ToString(o.ETag)})
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			break
		}
		in.ContinuationToken = out.NextContinuationToken
	}
	for l := range levels {
		sortObjects(levels[l])
	}
	c.mu.Lock()
	if c.levels == nil {
		c.levels, c.loadedAt = levels, c.now()
	}
	c.mu.Unlock()
	return nil
}

// parseLTXKey parses PATH/LLLL/MIN-MAX.ltx of the given size by
// layout.LTXObject, the one rule for every reader; anything else is
// skipped.
func parseLTXKey(path, key string, size int64) (int, ltx.FileInfo, bool) {
	rest, ok := strings.CutPrefix(key, path+"/")
	if !ok {
		return 0, ltx.FileInfo{}, false
	}
	dir, file, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(file, "/") {
		return 0, ltx.FileInfo{}, false
	}
	level, minTXID, maxTXID, ok := layout.LTXObject(dir, file, size)
	if !ok {
		return 0, ltx.FileInfo{}, false
	}
	return level, ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: size}, true
}

func sortObjects(a []ltxObject) {
	slices.SortFunc(a, func(x, y ltxObject) int {
		if x.info.MinTXID != y.info.MinTXID {
			return int(x.info.MinTXID) - int(y.info.MinTXID)
		}
		return int(x.info.MaxTXID) - int(y.info.MaxTXID)
	})
}

// LTXFiles lists a level from the manifest.
func (c *tenantClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	objs := slices.Clone(c.levels[level])
	c.mu.Unlock()
	infos := make([]*ltx.FileInfo, 0, len(objs))
	for _, o := range objs {
		if o.info.MinTXID < seek {
			continue
		}
		info := o.info
		if useMetadata && !o.exact {
			// Point-in-time restores want the LTX timestamp Litestream
			// stores in the object's metadata.
			if t, ok := c.headTimestamp(ctx, c.key(level, info.MinTXID, info.MaxTXID)); ok {
				info.CreatedAt = t
			}
		}
		infos = append(infos, &info)
	}
	return ltx.NewFileInfoSliceIterator(infos), nil
}

func (c *tenantClient) headTimestamp(ctx context.Context, key string) (time.Time, bool) {
	out, err := c.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	if err != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, out.Metadata[lss3.MetadataKeyTimestamp])
	return t, err == nil
}

// latest returns the file with the highest MaxTXID of a level.
func (c *tenantClient) latest(ctx context.Context, level int) (ltx.FileInfo, bool, error) {
	if err := c.load(ctx); err != nil {
		return ltx.FileInfo{}, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var best ltx.FileInfo
	found := false
	for _, o := range c.levels[level] {
		if !found || o.info.MaxTXID > best.MaxTXID {
			best, found = o.info, true
		}
	}
	return best, found, nil
}

// lastFullState is when the replica last received the whole database: its
// newest snapshot (level 9), or else the start of its history (the oldest
// file, which begins at TXID 1 with every page).
func (c *tenantClient) lastFullState() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.levels == nil {
		return time.Time{}, false
	}
	var newest time.Time
	for _, o := range c.levels[litestream.SnapshotLevel] {
		if o.info.CreatedAt.After(newest) {
			newest = o.info.CreatedAt
		}
	}
	if !newest.IsZero() {
		return newest, true
	}
	var oldest time.Time
	for _, objs := range c.levels {
		for _, o := range objs {
			if o.info.MinTXID == 1 && (oldest.IsZero() || o.info.CreatedAt.Before(oldest)) {
				oldest = o.info.CreatedAt
			}
		}
	}
	return oldest, !oldest.IsZero()
}

// maxTXID is the highest TXID of any level.
func (c *tenantClient) maxTXID(ctx context.Context) (ltx.TXID, error) {
	if err := c.load(ctx); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var m ltx.TXID
	for _, objs := range c.levels {
		for _, o := range objs {
			m = max(m, o.info.MaxTXID)
		}
	}
	return m, nil
}

// OpenLTXFile reads an LTX file, or a byte range of it, whole before it
// returns.
func (c *tenantClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	key := c.key(level, minTXID, maxTXID)
	rng := fmt.Sprintf("bytes=%d-", offset)
	if size > 0 {
		rng = fmt.Sprintf("bytes=%d-%d", offset, offset+size-1)
	}
	in := &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)}
	if offset > 0 || size > 0 {
		in.Range = aws.String(rng)
	}
	out, err := c.api.GetObject(ctx, in)
	if err != nil {
		if hosts.IsNotFound(err) {
			return nil, os.ErrNotExist
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	// Read to the end now: Litestream holds every file of a compaction
	// open at once, and an open stream would hold a connection (spool).
	length := int64(-1) // unknown: spooled to disk
	if out.ContentLength != nil {
		length = *out.ContentLength
	}
	return spool(out.Body, length, key, c.spoolDir)
}

// WriteLTXFile uploads an LTX file, if the tenant may be written, and
// records it in the manifest. A level-0 upload is one synced change: it is
// logged in the seed's shape.
func (c *tenantClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	start := c.now()
	info, err := c.write(ctx, level, minTXID, maxTXID, r)
	if level == 0 && c.observe != nil {
		done := c.now()
		c.observe.ObserveSync(done.Sub(start))
		if err == nil && !info.CreatedAt.IsZero() {
			// Litestream stamps a level-0 file when it takes the TXID from
			// the WAL, to the millisecond: the latency of each change, where
			// the tick's one-second look (pending) would miss those that
			// reach S3 within it.
			c.observe.ObserveCommitToS3(max(done.Sub(info.CreatedAt), 0))
		}
	}
	if err != nil {
		if level == 0 {
			// A change not uploaded: a failed sync, whether Litestream's
			// replica loop or the engine asked for it.
			c.stats.syncErrors.Add(1)
			c.stats.health.uploadFailed(err, c.now())
		}
		return nil, err
	}
	if level == 0 {
		c.stats.health.uploadOK()
	}
	c.stats.uploadedBytes.Add(info.Size)
	c.stats.uploads.Add(1)
	c.stats.lastUpload.Store(c.now().UnixNano())
	if level == 0 {
		pre := ltx.TXID(0)
		if minTXID > 0 {
			pre = minTXID - 1
		}
		c.logger.Info("new transaction", "db", c.tenant, "pre", pre.String(), "post", maxTXID.String(), "elapsed", roundElapsed(c.now().Sub(start)))
	}
	return info, nil
}

func (c *tenantClient) write(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	key := c.key(level, minTXID, maxTXID)
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	if c.check != nil {
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("%w: %v", errFenced, err)
		}
	}
	// Refused before the file is read: a stream read ahead would be lost.
	budget, err := c.budget()
	if err != nil {
		return nil, err
	}
	src, err := openSource(r, int(link.partFor(budget, 0)))
	if err != nil {
		return nil, fmt.Errorf("read ltx file for %s: %w", key, err)
	}
	defer src.release()
	hdr, err := src.header()
	if err != nil {
		return nil, fmt.Errorf("ltx header of %s: %w", key, err)
	}
	if c.checkHeader != nil {
		if err := c.checkHeader(hdr); err != nil {
			return nil, fmt.Errorf("%w: %v", errFenced, err)
		}
	}
	gen, err := c.generation(ctx)
	if err != nil {
		return nil, fmt.Errorf("lineage of %s: %w", key, err)
	}
	ts := time.UnixMilli(hdr.Timestamp).UTC()
	meta := map[string]string{lss3.MetadataKeyTimestamp: ts.Format(time.RFC3339Nano)}
	if gen > 0 {
		// Every file says which lineage it belongs to: a deposed host's
		// late upload is then known for a stray (hosts.Lineage).
		meta[hosts.MetaGeneration], meta[hosts.MetaHost] = strconv.FormatInt(gen, 10), c.host
	}
	etag, landed, err := c.put(ctx, level, minTXID, maxTXID, src, meta, ts)
	if err != nil {
		return nil, err
	}
	info := ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: src.length(), CreatedAt: ts}
	if landed != nil {
		// An earlier attempt is what S3 holds (a snapshot of the same
		// state, taken a moment before).
		info.Size, info.CreatedAt = landed.size, landed.ts
	}
	if level == 0 && c.pages != nil {
		if src.ra != nil {
			c.pages.apply(io.NewSectionReader(src.ra, 0, src.size))
		} else {
			c.pages.invalidate()
		}
	}
	c.mu.Lock()
	objs := slices.DeleteFunc(c.levels[level], func(o ltxObject) bool {
		return o.info.MinTXID == minTXID && o.info.MaxTXID == maxTXID
	})
	objs = append(objs, ltxObject{info: info, exact: true, etag: etag})
	sortObjects(objs)
	c.levels[level] = objs
	c.mu.Unlock()
	return &info, nil
}

// DeleteLTXFiles deletes files, if the tenant may be written.
func (c *tenantClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	if len(a) == 0 {
		return nil
	}
	deadline, err := c.gate.writeDeadline()
	if err != nil {
		return err
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ids := make([]types.ObjectIdentifier, 0, len(a))
	for _, info := range a {
		ids = append(ids, types.ObjectIdentifier{Key: aws.String(c.key(info.Level, info.MinTXID, info.MaxTXID))})
	}
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		out, err := c.api.DeleteObjects(dctx, &s3.DeleteObjectsInput{Bucket: aws.String(c.bucket), Delete: &types.Delete{Objects: ids[:n], Quiet: aws.Bool(true)}})
		if err != nil {
			return fmt.Errorf("delete %d objects under s3://%s/%s/: %w", n, c.bucket, c.path, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete %s: %s %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
		ids = ids[n:]
	}
	c.mu.Lock()
	for _, info := range a {
		c.levels[info.Level] = slices.DeleteFunc(c.levels[info.Level], func(o ltxObject) bool {
			return o.info.MinTXID == info.MinTXID && o.info.MaxTXID == info.MaxTXID
		})
	}
	c.mu.Unlock()
	return nil
}

// DeleteAll deletes every LTX file of the tenant; its claim stays.
func (c *tenantClient) DeleteAll(ctx context.Context) error {
	if err := c.load(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	var all []*ltx.FileInfo
	for _, objs := range c.levels {
		for _, o := range objs {
			info := o.info
			all = append(all, &info)
		}
	}
	c.mu.Unlock()
	return c.DeleteLTXFiles(ctx, all)
}

// readTrailer fetches the 16-byte trailer of a remote LTX file: its file
// checksum identifies the file's exact bytes.
func (c *tenantClient) readTrailer(ctx context.Context, info ltx.FileInfo) (ltx.Trailer, error) {
	if info.Size < ltx.HeaderSize+ltx.TrailerSize {
		return ltx.Trailer{}, fmt.Errorf("%s is %d bytes: too small for an LTX file", c.key(info.Level, info.MinTXID, info.MaxTXID), info.Size)
	}
	rc, err := c.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, info.Size-ltx.TrailerSize, ltx.TrailerSize)
	if err != nil {
		return ltx.Trailer{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, ltx.TrailerSize+1))
	if err != nil {
		return ltx.Trailer{}, err
	}
	if len(b) != ltx.TrailerSize {
		return ltx.Trailer{}, fmt.Errorf("trailer of %s: read %d bytes", c.key(info.Level, info.MinTXID, info.MaxTXID), len(b))
	}
	var t ltx.Trailer
	return t, t.UnmarshalBinary(b)
}

func roundElapsed(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}
