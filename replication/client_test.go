package replication

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/s3conn"
)

// openGate lets every write through, with a minute to finish.
type openGate struct{ cond bool }

func (g openGate) writeDeadline() (time.Time, error) { return time.Now().Add(time.Minute), nil }
func (g openGate) conditional() bool                 { return g.cond }

// makeLTX encodes an LTX file of random pages.
func makeLTX(t *testing.T, minTXID, maxTXID ltx.TXID, pages int) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: 4096, Commit: uint32(pages),
		MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: time.Now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	page := make([]byte, 4096)
	for pgno := 1; pgno <= pages; pgno++ {
		_, _ = rand.Read(page)
		if err := enc.EncodePage(ltx.PageHeader{Pgno: uint32(pgno)}, page); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testClient returns a client of a tenant in a new bucket, and makes more
// clients of the same tenant.
func testClient(t *testing.T, cond bool) (*tenantClient, *s3.Client, func() *tenantClient) {
	t.Helper()
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	api := srv.Client(t, conn)
	mk := func() *tenantClient {
		return &tenantClient{api: api, bucket: conn.Bucket, path: conn.TenantPath("t1"), tenant: "t1",
			logger: slog.New(slog.DiscardHandler), gate: openGate{cond: cond}, stats: &tenantStats{}, now: time.Now}
	}
	return mk(), api, mk
}

func (c *tenantClient) object(t *testing.T, level int, lo, hi ltx.TXID) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, lo, hi, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientConditionalWrites: a key this tenant wrote is written again
// only while it holds this tenant's object (a snapshot or compaction of the
// same range: If-Match); an object put there by anyone else is never
// replaced, whether the file comes from disk or streamed in parts.
func TestClientConditionalWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	ctx := context.Background()
	c, api, another := testClient(t, true)
	var conflicts []*ConflictError
	c.onConflict = func(e *ConflictError) { conflicts = append(conflicts, e) }
	lvl := litestream.SnapshotLevel

	a := makeLTX(t, 1, 5, 4)
	if _, err := c.WriteLTXFile(ctx, lvl, 1, 5, bytes.NewReader(a)); err != nil {
		t.Fatalf("first write: %v", err)
	}
	b := makeLTX(t, 1, 5, 4)
	if _, err := c.WriteLTXFile(ctx, lvl, 1, 5, bytes.NewReader(b)); err != nil {
		t.Fatalf("rewrite of the tenant's own object: %v", err)
	}
	if got := c.object(t, lvl, 1, 5); !bytes.Equal(got, b) {
		t.Fatal("the rewrite did not land")
	}
	// A fresh client knows the object from its listing, ETag included.
	fresh := another()
	if _, err := fresh.WriteLTXFile(ctx, lvl, 1, 5, bytes.NewReader(a)); err != nil {
		t.Fatalf("rewrite after a listing: %v", err)
	}

	// Someone else's object at a known key, then at a new one: refused.
	theirs := makeLTX(t, 1, 5, 4)
	key := c.key(lvl, 1, 5)
	if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key), Body: bytes.NewReader(theirs)}); err != nil {
		t.Fatal(err)
	}
	var conflict *ConflictError
	if _, err := c.WriteLTXFile(ctx, lvl, 1, 5, bytes.NewReader(b)); !errors.As(err, &conflict) || !errors.Is(err, errFenced) {
		t.Fatalf("write over another's object at a known key: %v, want a conflict", err)
	}
	if got := c.object(t, lvl, 1, 5); !bytes.Equal(got, theirs) {
		t.Fatal("another's object at a known key was replaced")
	}

	// Streamed (a compaction's pipe) and bigger than a part: multipart,
	// refused at completion, and aborted.
	defer SetPartSize(5 << 20)()
	big := makeLTX(t, 6, 9, 3000) // 12 MB
	otherBig := makeLTX(t, 6, 9, 3000)
	key = c.key(1, 6, 9)
	if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key), Body: bytes.NewReader(otherBig)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteLTXFile(ctx, 1, 6, 9, io.MultiReader(bytes.NewReader(big))); !errors.As(err, &conflict) {
		t.Fatalf("streamed write over another's object: %v, want a conflict", err)
	}
	if got := c.object(t, 1, 6, 9); !bytes.Equal(got, otherBig) {
		t.Fatal("another's object was replaced by a streamed upload")
	}
	// The same bytes again (a retry whose first attempt landed): success.
	if _, err := c.WriteLTXFile(ctx, 1, 6, 9, io.MultiReader(bytes.NewReader(otherBig))); err != nil {
		t.Fatalf("streamed retry of the same bytes: %v", err)
	}
	if _, err := c.WriteLTXFile(ctx, 1, 6, 9, bytes.NewReader(otherBig)); err != nil {
		t.Fatalf("retry of the same bytes from a file: %v", err)
	}
	out, err := api.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(c.bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) > 0 {
		t.Fatalf("%d multipart uploads left", len(out.Uploads))
	}
	if len(conflicts) != 2 {
		t.Fatalf("the tenant was told of %d conflicts, want 2", len(conflicts))
	}
}

// TestClientUnconditional: where the server ignores conditions, writes
// are made as before, unconditionally.
func TestClientUnconditional(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	ctx := context.Background()
	c, api, _ := testClient(t, false)
	theirs := makeLTX(t, 1, 1, 2)
	key := c.key(0, 1, 1)
	if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key), Body: bytes.NewReader(theirs)}); err != nil {
		t.Fatal(err)
	}
	ours := makeLTX(t, 1, 1, 2)
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(ours)); err != nil {
		t.Fatal(err)
	}
	if got := c.object(t, 0, 1, 1); !bytes.Equal(got, ours) {
		t.Fatal("an unconditional write did not land")
	}
}

// TestClientSnapshotWhoseAnswerWasLost: a snapshot upload that reached S3
// although its answer was lost is not taken for another host's object
// when the snapshot is taken again (same state, another timestamp, so
// other bytes): S3 keeps the first, which the manifest records.
func TestClientSnapshotWhoseAnswerWasLost(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	ctx := context.Background()
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	var lose atomic.Bool
	lose.Store(true)
	p, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, Fault: func(r s3proxy.Request) s3proxy.Fault {
		return s3proxy.Fault{DropResponse: lose.Load() && r.Method == "PUT"}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	viaProxy := conn
	viaProxy.Endpoint = p.URL()
	api, err := s3conn.NewClient(ctx, viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	var conflicts int
	c := &tenantClient{api: api, bucket: conn.Bucket, path: conn.TenantPath("t1"), tenant: "t1",
		logger: slog.New(slog.DiscardHandler), gate: openGate{cond: true}, stats: &tenantStats{}, now: time.Now,
		onConflict: func(*ConflictError) { conflicts++ }}
	lvl := litestream.SnapshotLevel

	first := makeLTX(t, 1, 5, 4)
	if _, err := c.WriteLTXFile(ctx, lvl, 1, 5, io.MultiReader(bytes.NewReader(first))); err == nil {
		t.Fatal("a write whose every answer was lost succeeded")
	}
	lose.Store(false)
	again := makeLTX(t, 1, 5, 4)
	info, err := c.WriteLTXFile(ctx, lvl, 1, 5, io.MultiReader(bytes.NewReader(again)))
	if err != nil || conflicts > 0 {
		t.Fatalf("snapshot taken again: %v (%d conflicts)", err, conflicts)
	}
	if got := c.object(t, lvl, 1, 5); !bytes.Equal(got, first) {
		t.Fatal("S3 does not hold the first snapshot")
	}
	if info.Size != int64(len(first)) {
		t.Fatalf("recorded size %d, want the first snapshot's %d", info.Size, len(first))
	}
}

// TestUploadProgressWords: the status reason an operator reads during a
// long first snapshot.
func TestUploadProgressWords(t *testing.T) {
	var p uploadProgress
	if _, _, phrase := p.read(); phrase != "" {
		t.Fatalf("idle: %q", phrase)
	}
	u := p.begin(1_200_000_000, true)
	u.add(520_000_000)
	done, total, phrase := p.read()
	if done != 520_000_000 || total != 1_200_000_000 || phrase != "snapshotting 43 %, 520 MB of 1.2 GB" {
		t.Fatalf("got %d of %d, %q", done, total, phrase)
	}
	s := p.begin(-1, false) // a compaction's stream, size unknown
	s.add(8_000_000)
	if _, total, phrase := p.read(); total != 0 || phrase != "snapshotting, 528 MB sent" {
		t.Fatalf("with a stream: total %d, %q", total, phrase)
	}
	p.end(u)
	if _, _, phrase := p.read(); phrase != "uploading, 8 MB sent" {
		t.Fatalf("the stream alone: %q", phrase)
	}
	p.end(s)
	if done, total, phrase := p.read(); done != 0 || total != 0 || phrase != "" {
		t.Fatalf("after both: %d %d %q", done, total, phrase)
	}
}
