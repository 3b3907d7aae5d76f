package s3browse

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/s3conn"
)

// t0 is the LastModified of the first object a fake bucket receives; each
// further object is one second later, so times are predictable.
func t0() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }

// tN is the LastModified of the n-th object (from 0) put in a fake bucket.
func tN(n int) time.Time { return t0().Add(time.Duration(n) * time.Second) }

// fakeS3 is an in-process gofakes3 (s3mem backend) with one bucket.
type fakeS3 struct {
	conn    s3conn.Conn
	client  *s3.Client
	backend *s3mem.Backend
	clock   gofakes3.TimeSourceAdvancer
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	clock := gofakes3.FixedTimeSource(t0())
	backend := s3mem.New(s3mem.WithTimeSource(clock))
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	conn := s3conn.Conn{Bucket: "fleet", Prefix: s3conn.DefaultPrefix, Endpoint: srv.URL, AccessKeyID: "fake-id", SecretAccessKey: "fake-secret-8c1f"}
	if err := backend.CreateBucket(conn.Bucket); err != nil {
		t.Fatal(err)
	}
	client, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeS3{conn: conn, client: client, backend: backend, clock: clock}
}

// put stores objects straight into the backend, in order, one second apart:
// much faster than PutObject over HTTP for thousands of keys, and it keeps
// bytes that an HTTP path would not carry.
func (f *fakeS3) put(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		body := []byte("x")
		if strings.HasSuffix(k, ".ltx") {
			body = bytes.Repeat([]byte("x"), fakeSize)
		}
		f.putBody(t, k, body)
	}
}

// fakeSize is the size of every object put: room for an LTX header and
// trailer, the least an LTX file can be (layout.LTXObject).
const fakeSize = 116

func (f *fakeS3) putBody(t *testing.T, key string, body []byte) {
	t.Helper()
	if _, err := f.backend.PutObject(f.conn.Bucket, key, nil, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	f.clock.Advance(time.Second)
}

// spyAPI wraps an s3conn.API to force small pages and to count and time requests.
type spyAPI struct {
	s3conn.API
	maxKeys int32 // when > 0, replaces MaxKeys of every listing
	delay   time.Duration

	mu               sync.Mutex
	lists, gets      int
	inFlight, peak   int
	prefixes         []string
	continuationUsed int
	commonPrefixes   int // returned, duplicates included
}

func (s *spyAPI) enter() {
	s.mu.Lock()
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
	s.mu.Unlock()
	time.Sleep(s.delay)
}

func (s *spyAPI) leave() {
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
}

func (s *spyAPI) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	s.enter()
	defer s.leave()
	c := *in
	if s.maxKeys > 0 {
		c.MaxKeys = aws.Int32(s.maxKeys)
	}
	s.mu.Lock()
	s.lists++
	s.prefixes = append(s.prefixes, aws.ToString(in.Prefix))
	if in.ContinuationToken != nil {
		s.continuationUsed++
	}
	s.mu.Unlock()
	out, err := s.API.ListObjectsV2(ctx, &c, opts...)
	if err == nil {
		s.mu.Lock()
		s.commonPrefixes += len(out.CommonPrefixes)
		s.mu.Unlock()
	}
	return out, err
}

func (s *spyAPI) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	s.enter()
	defer s.leave()
	s.mu.Lock()
	s.gets++
	s.mu.Unlock()
	return s.API.GetObject(ctx, in, opts...)
}

// pagesAPI replays fixed listing pages, whatever the request: it gives
// exact control over what a server sends (raw control bytes, URL-encoded
// keys, repeated prefixes, empty pages, broken tokens).
type pagesAPI struct {
	pages []*s3.ListObjectsV2Output
	calls int
}

func (p *pagesAPI) ListObjectsV2(_ context.Context, _ *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if p.calls >= len(p.pages) {
		return &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}, nil
	}
	out := p.pages[p.calls]
	p.calls++
	return out, nil
}

func (p *pagesAPI) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	panic("pagesAPI serves listings only")
}

func levelDir(level int) string { return fmt.Sprintf("%04x", level) }

// ltxKey, snapshotKey and walKey build keys the way Litestream writes them,
// under the default tenants prefix.
func ltxKey(tenant string, level int, minTXID, maxTXID uint64) string {
	return "databases/" + tenant + "/" + levelDir(level) + "/" + ltx.FormatFilename(ltx.TXID(minTXID), ltx.TXID(maxTXID))
}

func snapshotKey(tenant, gen string, index int) string {
	return fmt.Sprintf("databases/%s/generations/%s/snapshots/%08x.snapshot.lz4", tenant, gen, index)
}

func walKey(tenant, gen string, index int, offset int64) string {
	return fmt.Sprintf("databases/%s/generations/%s/wal/%08x_%08x.wal.lz4", tenant, gen, index, offset)
}
