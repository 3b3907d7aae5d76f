package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/s3conn"
)

// How an LTX file reaches S3.
//
// The fencing rule gives every write request a deadline: it must finish
// before this host's claims could be taken over, as of when it starts. A
// file bigger than a few seconds of upload goes up in parts, each part a
// request with its own deadline, so that a snapshot of any size uploads;
// the completion, like every single PUT, is conditional (If-None-Match: *
// for a new key, If-Match on the ETag for a key this tenant wrote), so
// that S3 itself refuses what a deposed host sends late. Memory is bounded
// by the part size: files are read in place, streams (compactions,
// snapshots) one part at a time.

// partSize is the size of a part, and of the buffer of each part of a
// stream in flight. A variable for tests: S3's smallest part is 5 MiB.
var partSize = 8 << 20

// partSlots bounds the parts in flight in the whole process. Each part
// must finish within its fencing deadline (DeadAfter − WriteMargin −
// BeatEvery at worst, 27 s by default): parts of several uploads sharing
// one uplink would otherwise each get too little of it, all miss their
// deadlines and start again together. A part waits for a slot before its
// deadline is taken. A variable for tests.
var partSlots = make(chan struct{}, 4)

const (
	// partsInFlight parts of one file are sent at once: a slow link is
	// filled, and a stream holds at most partsInFlight+1 buffers.
	partsInFlight = 2
	// partAttempts is how often a part that missed its deadline is sent
	// again, each time with the deadline as of then, before the upload
	// fails: a moment of contention must not restart a whole snapshot.
	partAttempts = 3
	// maxParts is S3's limit of parts per upload.
	maxParts = 10000
	// abortTimeout bounds the abort of a failed multipart upload. An abort
	// cannot overwrite anything, so it has its own deadline, not the
	// fencing one: a fenced host still cleans up after itself.
	abortTimeout = 10 * time.Second
)

// partBuffers recycles the buffers of streamed parts.
var partBuffers = sync.Pool{New: func() any { b := make([]byte, partSize); return &b }}

// ConflictError says an LTX key this tenant was about to write already holds
// another object: another host wrote it (this one may have been deposed),
// or the replica holds another history. S3 refused the write; nothing more
// of the tenant is uploaded.
type ConflictError struct {
	URL            string
	Size           int64
	Checksum       ltx.Checksum
	RemoteSize     int64
	RemoteChecksum ltx.Checksum // zero when the sizes already differ
	// RemoteGeneration and RemoteHost are the object's lineage, from its
	// metadata (0 and "" when it has none); Generation is this host's.
	RemoteGeneration int64
	RemoteHost       string
	Generation       int64
}

func (e *ConflictError) Error() string {
	remote := fmt.Sprintf("%d bytes", e.RemoteSize)
	if e.RemoteChecksum != 0 {
		remote += ", checksum " + e.RemoteChecksum.String()
	}
	if e.RemoteGeneration > 0 {
		remote += fmt.Sprintf(", lineage generation %d of host %s, this host's %d", e.RemoteGeneration, printableHost(e.RemoteHost), e.Generation)
	}
	return fmt.Sprintf("lineage conflict: %s already holds another object (%s; this host's: %d bytes, checksum %s): "+
		"another host wrote it, or the replica holds another history; S3 refused the write and nothing more is uploaded: "+
		"check which host holds the tenant (litefleet inspect), then restore the replica over the file or replicate with -takeover",
		e.URL, remote, e.Size, e.Checksum)
}

// Unwrap makes a conflict a write this host may not make: Litestream's
// callers and the engine stop writing, as for a fence.
func (e *ConflictError) Unwrap() error { return errFenced }

// ltxSource is an LTX file to upload: a file read in place (size known),
// or a stream read once (size known at its end).
type ltxSource struct {
	ra   io.ReaderAt // a file, or a whole small stream in memory
	size int64       // the file's; -1 for a stream until its end
	// A stream: its reader, the first part read ahead, the bytes read so
	// far and the last TrailerSize of them.
	r    io.Reader
	head *[]byte
	n    int64
	tail []byte
	eof  bool // read to its end
	// buf is a pooled buffer to give back.
	buf *[]byte
}

// openSource looks at r: a file at offset 0 is read in place; anything
// else is read ahead by one part of head bytes (at most partSize), which
// holds a small stream whole.
func openSource(r io.Reader, head int) (*ltxSource, error) {
	if ra, ok := r.(io.ReaderAt); ok {
		if s, ok := r.(io.Seeker); ok {
			if pos, err := s.Seek(0, io.SeekCurrent); err == nil && pos == 0 {
				size, err := s.Seek(0, io.SeekEnd)
				if err != nil {
					return nil, err
				}
				if _, err := s.Seek(0, io.SeekStart); err != nil {
					return nil, err
				}
				return &ltxSource{ra: ra, size: size}, nil
			}
		}
	}
	// Most streams are small compactions: a part's buffer is taken only
	// for a stream longer than smallStream.
	small := make([]byte, smallStream)
	n, err := io.ReadFull(r, small)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &ltxSource{ra: bytes.NewReader(small[:n]), size: int64(n)}, nil
	case err != nil:
		return nil, err
	}
	buf := partBuffers.Get().(*[]byte)
	if cap(*buf) < head {
		*buf = make([]byte, head)
	}
	*buf = (*buf)[:head]
	copy(*buf, small)
	m, err := io.ReadFull(r, (*buf)[n:])
	n += m
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &ltxSource{ra: bytes.NewReader((*buf)[:n]), size: int64(n), buf: buf}, nil
	case err != nil:
		partBuffers.Put(buf)
		return nil, err
	}
	s := &ltxSource{r: r, size: -1, head: buf, buf: buf}
	s.note((*buf)[:n])
	return s, nil
}

// smallStream is what is read of a stream before a part's buffer is taken.
const smallStream = 64 << 10

func (s *ltxSource) release() {
	if s.buf != nil {
		partBuffers.Put(s.buf)
		s.buf = nil
	}
}

// note records bytes read from a stream.
func (s *ltxSource) note(b []byte) {
	s.n += int64(len(b))
	s.tail = append(s.tail, b[max(len(b)-ltx.TrailerSize, 0):]...)
	s.tail = s.tail[max(len(s.tail)-ltx.TrailerSize, 0):]
}

// header reads the LTX header.
func (s *ltxSource) header() (ltx.Header, error) {
	var r io.Reader
	if s.ra != nil {
		r = io.NewSectionReader(s.ra, 0, s.size)
	} else {
		r = bytes.NewReader(*s.head)
	}
	hdr, _, err := ltx.PeekHeader(r)
	return hdr, err
}

// trailer is the file's LTX trailer; for a stream, once it was read whole.
func (s *ltxSource) trailer() (ltx.Trailer, error) {
	var b []byte
	if s.ra != nil {
		if s.size < ltx.HeaderSize+ltx.TrailerSize {
			return ltx.Trailer{}, fmt.Errorf("%d bytes: too small for an LTX file", s.size)
		}
		b = make([]byte, ltx.TrailerSize)
		if _, err := s.ra.ReadAt(b, s.size-ltx.TrailerSize); err != nil {
			return ltx.Trailer{}, err
		}
	} else {
		if s.n < ltx.HeaderSize+ltx.TrailerSize {
			return ltx.Trailer{}, fmt.Errorf("%d bytes: too small for an LTX file", s.n)
		}
		b = s.tail
	}
	var t ltx.Trailer
	return t, t.UnmarshalBinary(b)
}

// length is the file's size; for a stream, what was read of it.
func (s *ltxSource) length() int64 {
	if s.ra != nil {
		return s.size
	}
	return s.n
}

// precondition is the condition of a write: create only, replace the
// object of a known ETag, or none (the server honours no conditions).
type precondition struct {
	create  bool
	ifMatch string
}

func (p precondition) apply(ifNoneMatch, ifMatch **string) {
	switch {
	case p.ifMatch != "":
		*ifMatch = aws.String(p.ifMatch)
	case p.create:
		*ifNoneMatch = aws.String("*")
	}
}

// condition decides how a write to key is made conditional. A key in the
// manifest is this tenant's own object (a compaction or a snapshot written
// again over the same range): it is replaced only if it is still the
// object this host knows. Any other key is created only if absent.
func (c *tenantClient) condition(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (precondition, error) {
	if !c.gate.conditional() || c.unconditional.Load() {
		return precondition{}, nil
	}
	c.mu.Lock()
	i := slices.IndexFunc(c.levels[level], func(o ltxObject) bool { return o.info.MinTXID == minTXID && o.info.MaxTXID == maxTXID })
	known, etag := i >= 0, ""
	if known {
		etag = c.levels[level][i].etag
	}
	c.mu.Unlock()
	if !known {
		return precondition{create: true}, nil
	}
	if etag == "" {
		out, err := c.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(c.key(level, minTXID, maxTXID))})
		if hosts.IsNotFound(err) {
			return precondition{create: true}, nil
		}
		if err != nil {
			return precondition{}, fmt.Errorf("head %s: %w", c.key(level, minTXID, maxTXID), err)
		}
		etag = aws.ToString(out.ETag)
	}
	return precondition{ifMatch: etag}, nil
}

// unsure is an upload of this client that failed after it may have
// reached S3: its bytes may have landed.
type unsure struct {
	size    int64
	trailer ltx.Trailer
	ts      time.Time
}

// noteUnsure remembers an upload whose outcome is unknown. Only a stream
// read to its end has a trailer; a few per key are kept, for a few keys.
func (c *tenantClient) noteUnsure(key string, src *ltxSource, ts time.Time) {
	if src.ra == nil && !src.eof {
		return
	}
	t, err := src.trailer()
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unsure == nil || len(c.unsure) >= 32 {
		c.unsure = map[string][]unsure{}
	}
	c.unsure[key] = append(c.unsure[key][max(len(c.unsure[key])-3, 0):], unsure{size: src.length(), trailer: t, ts: ts})
}

// existing compares the object at key with the local file: a write whose
// condition failed may be a retry of one that landed (the same bytes: a
// success) or another host's object (a conflict). Size and the LTX
// trailer's checksums identify an LTX file's bytes. An earlier attempt of
// this client that failed but landed is a success too, with that
// attempt's size and time: within one open of the database a key's
// content is one state, and only a snapshot's timestamp differs between
// two writes of it.
func (c *tenantClient) existing(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, src *ltxSource) (string, *unsure, error) {
	key := c.key(level, minTXID, maxTXID)
	local, err := src.trailer()
	if err != nil {
		return "", nil, fmt.Errorf("ltx trailer of %s: %w", key, err)
	}
	out, err := c.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	if err != nil {
		return "", nil, fmt.Errorf("head %s: %w", key, err)
	}
	etag := aws.ToString(out.ETag)
	conflict := &ConflictError{URL: "s3://" + c.bucket + "/" + key, Size: src.length(), Checksum: local.FileChecksum, RemoteSize: aws.ToInt64(out.ContentLength),
		RemoteGeneration: hosts.Generation(out.Metadata), RemoteHost: out.Metadata[hosts.MetaHost]}
	c.mu.Lock()
	earlier := slices.Clone(c.unsure[key])
	c.mu.Unlock()
	if conflict.RemoteSize == conflict.Size || slices.ContainsFunc(earlier, func(u unsure) bool { return u.size == conflict.RemoteSize }) {
		remote, err := c.readTrailer(ctx, ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: conflict.RemoteSize})
		if err != nil {
			return "", nil, err
		}
		if conflict.RemoteSize == conflict.Size && remote == local {
			return etag, nil, nil
		}
		for _, u := range earlier {
			if u.size == conflict.RemoteSize && u.trailer == remote {
				return etag, &u, nil
			}
		}
		conflict.RemoteChecksum = remote.FileChecksum
	}
	return "", nil, conflict
}

// retryAfterStray resolves a conflict, and reports whether the write is
// to be made again; if not, *err is the error to return. A key refilled
// with strays again and again stops the tenant after three moves.
func (c *tenantClient) retryAfterStray(ctx context.Context, key string, conflict *ConflictError, evicted *int, err *error) bool {
	if *evicted >= 3 {
		if c.onConflict != nil {
			c.onConflict(conflict)
		}
		*err = conflict
		return false
	}
	retry, rerr := c.resolve(ctx, key, conflict)
	if retry {
		*evicted++
		return true
	}
	*err = rerr
	return false
}

// resolve decides what a conflict at key is: an object of an older
// lineage generation that the lineage makes stray is moved out of the
// prefix with the other strays (lineage.go), and the write is made again
// (retry); anything else (no lineage, the same or a newer generation, not
// stray) stops the tenant.
func (c *tenantClient) resolve(ctx context.Context, key string, conflict *ConflictError) (retry bool, err error) {
	gen, gerr := c.generation(ctx)
	conflict.Generation = gen
	if gerr == nil && conflict.RemoteGeneration > 0 && conflict.RemoteGeneration < gen {
		moved, err := c.sweepUnknown(ctx, key)
		switch {
		case moved:
			return true, nil
		case err != nil && errors.Is(err, errFenced):
			return false, err
		case err != nil:
			// Unknown, not judged: written again later, judged again then.
			return false, fmt.Errorf("%s holds an object of an older lineage, which could not be moved out: %w", conflict.URL, err)
		}
	}
	if c.onConflict != nil {
		c.onConflict(conflict)
	}
	return false, conflict
}

// isPreconditionFailed reports S3's 412: the object exists (If-None-Match)
// or is not the one named (If-Match). A 409 (a concurrent write) is not:
// it is retried as any failure.
func isPreconditionFailed(err error) bool {
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusPreconditionFailed {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "PreconditionFailed"
}

// isNotImplemented reports S3's 501: a header or an operation the server
// does not support.
func isNotImplemented(err error) bool {
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotImplemented {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NotImplemented"
}

// put sends the file in one request, or in parts when it is bigger than
// singlePutMax (a stream: than a part); a refused condition is resolved by
// comparing the object S3 holds. It returns the object's ETag, and the
// earlier attempt S3 holds when that is what it found.
func (c *tenantClient) put(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, src *ltxSource, meta map[string]string, ts time.Time) (string, *unsure, error) {
	key := c.key(level, minTXID, maxTXID)
	if err := c.slow.wait(src.length(), c.now()); err != nil {
		return "", nil, err
	}
	cond, err := c.condition(ctx, level, minTXID, maxTXID)
	if err != nil {
		return "", nil, err
	}
	evicted := 0
	for attempt := 0; ; attempt++ {
		var etag string
		var landed *unsure
		budget, berr := c.budget()
		if berr != nil {
			return "", nil, berr
		}
		if src.ra != nil && src.size <= link.singleMax(budget) {
			etag, err = c.putOnce(ctx, level, minTXID, maxTXID, src, meta, cond)
		} else {
			etag, landed, err = c.multipart(ctx, level, minTXID, maxTXID, src, meta, cond)
		}
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			// multipart's look before a big upload found another object.
			if c.retryAfterStray(ctx, key, conflict, &evicted, &err) {
				cond = precondition{create: true}
				continue
			}
			return "", nil, err
		}
		switch {
		case err == nil:
			c.mu.Lock()
			delete(c.unsure, key)
			c.mu.Unlock()
			c.slow.note(nil, c.now())
			return etag, landed, nil
		case cond.ifMatch != "" && hosts.IsNotFound(err) && attempt == 0:
			// The object this host knew is gone: creating it again
			// overwrites nobody's.
			cond = precondition{create: true}
			continue
		case isPreconditionFailed(err) && (cond.create || cond.ifMatch != ""):
			etag, landed, err := c.existing(ctx, level, minTXID, maxTXID, src)
			if err == nil {
				c.mu.Lock()
				delete(c.unsure, key)
				c.mu.Unlock()
				return etag, landed, nil
			}
			if errors.As(err, &conflict) && c.retryAfterStray(ctx, key, conflict, &evicted, &err) {
				// The stray is gone: the key is created again.
				cond = precondition{create: true}
				continue
			}
			return "", nil, err
		case isNotImplemented(err) && (cond.create || cond.ifMatch != ""):
			// A server that rejects the condition, where the start's probe
			// could not tell: written as before, unconditionally.
			if !c.unconditional.Swap(true) {
				c.logger.Warn("this S3 server rejects conditional writes: this tenant's LTX files are written unconditionally", "db", c.tenant, "error", err)
			}
			cond = precondition{}
			continue
		}
		// It may have landed (a lost answer); one refused before it was
		// sent is noted too, harmlessly: no other object has its trailer.
		c.noteUnsure(key, src, ts)
		c.slow.note(err, c.now())
		return "", nil, err
	}
}

// budget is how long a request starting now may take: until the fencing
// deadline. Both are readings of the engine's clock, whose monotonic
// reading (time.Now's) keeps the duration right across wall-clock jumps.
func (c *tenantClient) budget() (time.Duration, error) {
	d, err := c.gate.writeDeadline()
	if err != nil {
		return 0, err
	}
	return d.Sub(c.now()), nil
}

// deadline is the fencing deadline of one request starting now.
func (c *tenantClient) deadline(ctx context.Context) (context.Context, context.CancelFunc, error) {
	d, err := c.gate.writeDeadline()
	if err != nil {
		return nil, nil, err
	}
	// d is on the engine's clock and the context's timer on the real one:
	// the same clock in production (time.Now); a test that moves the clock
	// ahead fences the host instead (Fenced), before any request.
	rctx, cancel := context.WithDeadline(ctx, d)
	return rctx, cancel, nil
}

// late turns a request cut by its fencing deadline into a fence error.
func late(ctx context.Context, err error, what string) error {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("%w: %s did not finish before this host's claims could be taken over", errFenced, what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (c *tenantClient) putOnce(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, src *ltxSource, meta map[string]string, cond precondition) (string, error) {
	key := c.key(level, minTXID, maxTXID)
	in := &s3.PutObjectInput{
		Bucket: aws.String(c.bucket), Key: aws.String(key), Metadata: meta,
		Body: io.NewSectionReader(src.ra, 0, src.size), ContentLength: aws.Int64(src.size),
	}
	cond.apply(&in.IfNoneMatch, &in.IfMatch)
	wctx, cancel, err := c.deadline(ctx)
	if err != nil {
		return "", err
	}
	defer cancel()
	dl, _ := wctx.Deadline()
	sent := link.begin(src.size, c.now)
	out, err := c.api.PutObject(wctx, in, s3conn.ForUploads)
	company := sent.end(err == nil, cutByDeadline(ctx, err))
	if err != nil {
		if isPreconditionFailed(err) || isNotImplemented(err) || hosts.IsNotFound(err) {
			return "", err
		}
		if slow := c.tooSlow(ctx, err, "put "+key, src.size, false, dl.Sub(sent.start), company); slow != err {
			return "", slow
		}
		return "", late(ctx, err, "put "+key)
	}
	return aws.ToString(out.ETag), nil
}

// cutByDeadline reports a request cut by its fencing deadline (not by
// ctx, the caller's).
func cutByDeadline(ctx context.Context, err error) bool {
	return err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
}

// tooSlow turns a request cut by its deadline while it had the link to
// itself into a SlowLinkError, logged at most once a minute: the operator
// reads why the tenant does not replicate, in its status, and the upload
// is not sent again at once (slowBackoff).
func (c *tenantClient) tooSlow(ctx context.Context, err error, request string, size int64, part bool, budget time.Duration, company float64) error {
	if !cutByDeadline(ctx, err) {
		return err
	}
	slow := link.slow(request, size, part, budget, company)
	if slow == nil {
		return err
	}
	if link.warnSlow(c.now()) {
		c.logger.Warn("uplink too slow for the fencing deadline", "db", c.tenant, "bytes", size, "reason", slow.Error())
	}
	return slow
}

// slowBackoff holds back a tenant's uploads as big as one that failed on
// a link too slow for it (a part: any file sent in parts): one deadline
// (about 30 s), doubling to 5 min, so that a doomed upload does not take
// the link from the others every second. Smaller files (most changes) go
// on.
type slowBackoff struct {
	mu    sync.Mutex
	until time.Time
	delay time.Duration
	err   *SlowLinkError
}

func (b *slowBackoff) wait(size int64, now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil || !now.Before(b.until) {
		return nil
	}
	if least := b.err.Bytes; size >= least || (b.err.Part && size > minPart) {
		return b.err
	}
	return nil
}

func (b *slowBackoff) note(err error, now time.Time) {
	var slow *SlowLinkError
	b.mu.Lock()
	defer b.mu.Unlock()
	if !errors.As(err, &slow) {
		if err == nil {
			b.delay, b.until, b.err = 0, time.Time{}, nil
		}
		return
	}
	b.delay = min(max(b.delay*2, slow.Budget, time.Second), 5*time.Minute)
	b.until, b.err = now.Add(b.delay), slow
}

// streamPartSize is the size of part n (from 1) of a stream of unknown
// size, when the link fits parts of ps: parts grow past 2,000 so that
// maxParts reach about 300 GB even at 5 MiB.
func streamPartSize(n int, ps int64) int { return int(ps) << min((n-1)/2000, 4) }

// multipart uploads the file in parts. Each part gets the fencing deadline
// as of when it starts; the completion is conditional. A failed upload is
// aborted, so that no parts stay in the bucket.
func (c *tenantClient) multipart(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, src *ltxSource, meta map[string]string, cond precondition) (etag string, landed *unsure, err error) {
	key := c.key(level, minTXID, maxTXID)
	if src.ra != nil && cond.create {
		// A retry of a big file whose first upload landed costs a HEAD,
		// not the file again.
		if etag, landed, err := c.existing(ctx, level, minTXID, maxTXID, src); err == nil {
			return etag, landed, nil
		} else if !hosts.IsNotFound(err) {
			return "", nil, err
		}
	}
	// A history's first file and the daily snapshot hold the whole
	// database; compactions are uploads.
	snapshot := level == litestream.SnapshotLevel || (level == 0 && minTXID == 1)
	prog := c.stats.progress.begin(src.size, snapshot)
	defer c.stats.progress.end(prog)

	if c.orphansLeft.Load() {
		// Until a sweep finds nothing: a part of an aborted upload that
		// was still on its way (in a dead sender's socket buffers, a slow
		// proxy) revives the upload when it lands.
		n, err := c.abortOrphans(ctx, nil, true)
		switch {
		case err != nil:
			c.logger.Warn("abandoned multipart uploads not swept", "db", c.tenant, "error", err)
		case n == 0 && c.now().Sub(time.Unix(0, c.orphansAt.Load())) > orphanWindow:
			c.orphansLeft.Store(false)
		}
	}
	wctx, cancel, err := c.deadline(ctx)
	if err != nil {
		return "", nil, err
	}
	created, err := c.api.CreateMultipartUpload(wctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(c.bucket), Key: aws.String(key), Metadata: meta}, s3conn.ForUploads)
	cancel()
	if err != nil {
		return "", nil, late(ctx, err, "start multipart upload of "+key)
	}
	id := aws.ToString(created.UploadId)
	ownUploads.Store(id, struct{}{})
	start := c.now()
	defer func() {
		if err != nil {
			c.abort(ctx, key, id, err)
		}
		ownUploads.Delete(id)
	}()

	var (
		mu    sync.Mutex
		parts []types.CompletedPart
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partsInFlight)
	send := func(n int32, body io.ReadSeeker, size int64, done func()) {
		g.Go(func() error {
			if done != nil {
				defer done()
			}
			etag, err := c.uploadPart(gctx, key, id, n, body, size)
			if err != nil {
				return err
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: aws.String(etag), PartNumber: aws.Int32(n)})
			mu.Unlock()
			prog.add(size)
			return nil
		})
	}
	if src.ra != nil {
		// Each part is sized to the link as it is sent (parts may differ:
		// only the last may be under 5 MiB), in at most maxParts.
		for n, off := int32(1), int64(0); off < src.size && gctx.Err() == nil; n++ {
			budget, err := c.budget()
			if err != nil {
				_ = g.Wait()
				return "", nil, err
			}
			if n > maxParts {
				_ = g.Wait()
				return "", nil, fmt.Errorf("upload of %s: more than %d parts", key, maxParts)
			}
			left := int64(maxParts - n + 1)
			size := min(link.partFor(budget, (src.size-off+left-1)/left), src.size-off)
			send(n, io.NewSectionReader(src.ra, off, size), size, nil)
			off += size
		}
	} else {
		// The first part was read ahead; the others are read as the
		// parts before them leave.
		head := src.head
		src.buf = nil // owned by the part now
		send(1, bytes.NewReader(*head), int64(len(*head)), func() { partBuffers.Put(head) })
		for n := int32(2); gctx.Err() == nil; n++ {
			budget, err := c.budget()
			if err != nil {
				_ = g.Wait()
				return "", nil, err
			}
			buf := partBuffers.Get().(*[]byte)
			b := *buf
			if ps := streamPartSize(int(n), link.partFor(budget, 0)); ps > cap(b) {
				b = make([]byte, ps)
			} else {
				b = b[:ps]
			}
			k, rerr := io.ReadFull(src.r, b)
			src.note(b[:k])
			if k > 0 {
				send(n, bytes.NewReader(b[:k]), int64(k), func() { partBuffers.Put(buf) })
			} else {
				partBuffers.Put(buf)
			}
			if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				src.eof = true
				break
			}
			if rerr != nil {
				_ = g.Wait()
				return "", nil, fmt.Errorf("read ltx file for %s: %w", key, rerr)
			}
		}
	}
	if err := g.Wait(); err != nil {
		return "", nil, err
	}
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber)) })
	in := &s3.CompleteMultipartUploadInput{Bucket: aws.String(c.bucket), Key: aws.String(key), UploadId: aws.String(id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}
	cond.apply(&in.IfNoneMatch, &in.IfMatch)
	wctx, cancel, err = c.deadline(ctx)
	if err != nil {
		return "", nil, err
	}
	defer cancel()
	out, err := c.api.CompleteMultipartUpload(wctx, in, s3conn.ForUploads)
	if err != nil {
		if isPreconditionFailed(err) || isNotImplemented(err) || hosts.IsNotFound(err) {
			return "", nil, err
		}
		return "", nil, late(ctx, err, "complete multipart upload of "+key)
	}
	c.logger.Debug("multipart upload", "db", c.tenant, "key", key, "bytes", src.length(), "parts", len(parts), "elapsed", roundElapsed(c.now().Sub(start)))
	return aws.ToString(out.ETag), nil, nil
}

// uploadPart sends one part, in a process-wide slot, with the fencing
// deadline as of when it starts; one that missed its deadline is sent
// again with a new one, unless the host is fenced by then.
func (c *tenantClient) uploadPart(ctx context.Context, key, id string, n int32, body io.ReadSeeker, size int64) (string, error) {
	select {
	case partSlots <- struct{}{}:
		defer func() { <-partSlots }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	// A part that needs the link to itself to fit its deadline waits for
	// the others (link.go), before its deadline is taken.
	release, err := link.acquirePart(ctx, size, c.budget)
	if err != nil {
		return "", err
	}
	defer release()
	what := fmt.Sprintf("part %d of %s", n, key)
	for attempt := 1; ; attempt++ {
		pctx, cancel, err := c.deadline(ctx)
		if err != nil {
			return "", err
		}
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			cancel()
			return "", err
		}
		dl, _ := pctx.Deadline()
		sent := link.begin(size, c.now)
		out, err := c.api.UploadPart(pctx, &s3.UploadPartInput{Bucket: aws.String(c.bucket), Key: aws.String(key), UploadId: aws.String(id),
			PartNumber: aws.Int32(n), Body: body, ContentLength: aws.Int64(size)}, s3conn.ForUploads)
		company := sent.end(err == nil, cutByDeadline(ctx, err))
		cancel()
		if err == nil {
			return aws.ToString(out.ETag), nil
		}
		if slow := c.tooSlow(ctx, err, what, size, true, dl.Sub(sent.start), company); slow != err {
			// A link too slow for the part alone would miss it again.
			return "", slow
		}
		err = late(ctx, err, what)
		if !errors.Is(err, errFenced) || attempt == partAttempts {
			return "", err
		}
		c.logger.Debug("part missed its deadline: sending it again", "db", c.tenant, "key", key, "part", n, "attempt", attempt)
	}
}

// abort discards a failed multipart upload's parts. The tenant's uploads
// are swept before its next one (orphans.go): this one if the abort
// failed, or if a part cut at its deadline lands later and revives it.
func (c *tenantClient) abort(ctx context.Context, key, id string, cause error) {
	c.noteOrphans()
	if err := c.abortUpload(ctx, key, id); err != nil {
		c.logger.Warn("failed multipart upload not aborted: aborted before the tenant's next one, or by an AbortIncompleteMultipartUpload lifecycle rule",
			"db", c.tenant, "key", key, "upload_id", id, "cause", cause, "error", err)
		return
	}
	c.logger.Info("failed multipart upload aborted", "db", c.tenant, "key", key, "cause", cause)
}

// uploadProgress is what a tenant's multipart uploads in flight have sent:
// a long first snapshot shows as progress, not as a silence.
type uploadProgress struct {
	mu        sync.Mutex
	done      int64
	total     int64 // of the uploads of known size
	unknown   int   // uploads of a stream, size unknown
	snapshots int
	n         int
}

// upload is one upload's share of its tenant's progress.
type upload struct {
	p        *uploadProgress
	size     int64
	snapshot bool
	done     int64
}

func (p *uploadProgress) begin(size int64, snapshot bool) *upload {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if size < 0 {
		p.unknown++
	} else {
		p.total += size
	}
	if snapshot {
		p.snapshots++
	}
	return &upload{p: p, size: size, snapshot: snapshot}
}

func (u *upload) add(n int64) {
	u.p.mu.Lock()
	u.done += n
	u.p.done += n
	u.p.mu.Unlock()
}

func (p *uploadProgress) end(u *upload) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n--
	p.done -= u.done
	if u.size < 0 {
		p.unknown--
	} else {
		p.total -= u.size
	}
	if u.snapshot {
		p.snapshots--
	}
}

// read returns the bytes sent and the total (0 when a stream's size is
// unknown), and a phrase for the tenant's status, "" when idle.
func (p *uploadProgress) read() (done, total int64, phrase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return 0, 0, ""
	}
	verb := "uploading"
	if p.snapshots > 0 {
		verb = "snapshotting"
	}
	if p.unknown > 0 {
		return p.done, 0, fmt.Sprintf("%s, %s sent", verb, humanBytes(p.done))
	}
	pct := p.done * 100 / max(p.total, 1)
	return p.done, p.total, fmt.Sprintf("%s %d %%, %s of %s", verb, pct, humanBytes(p.done), humanBytes(p.total))
}

// humanBytes writes a size in decimal units, as operators read them.
func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%d MB", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%d kB", n/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// stopConflicted closes a tenant one of whose uploads S3 refused because
// its key held another object. Nothing more is written (the client's gate
// already refuses), the claim is released if it is still this host's (a
// release is conditional on its ETag), and the tenant waits as diverged,
// with the conflict as its reason, for the operator or a change of its
// file, which checks its history again.
func (e *Engine) stopConflicted(ctx context.Context, t *tenant) {
	e.mu.Lock()
	a, claim, b := t.run, t.claim, t.bucket
	e.mu.Unlock()
	conflict := a.conflict.Load()
	e.closeDB(a, false)
	e.release(ctx, t, b, claim)
	base, err := statIdentity(t.path)
	e.apply(t, outcome{state: StateDiverged, reason: conflict.Error(), base: base, baseOK: err == nil})
}
