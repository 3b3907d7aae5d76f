package s3browse

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/litefleet/litefleet/s3conn"
)

// rangeNames are tenant names in every part of the key space that a range
// could start or end in: before '0' ('-', '.', '!', space), digits, between
// '9' and 'A', upper case, between 'Z' and 'a' ('_'), lower case, after 'z'
// ('~'), multi-byte UTF-8 up to 4 bytes, bytes that are not UTF-8, control
// characters, and names that are prefixes of one another, whose keys
// interleave ("a-b/" < "a.b/" < "a/" < "a0/").
var rangeNames = []string{
	"!bang", " space", "-dash", "--", ".dot", ".", "..", "0", "00000000-0000-4000-8000-000000000000",
	"12345678-1234-5678-9ABC-123456789012", "12345678-1234-5678-9abc-123456789012", "9", "9z",
	":colon", "=eq", "@at", "A", "ABCDEF01-2345-6789-ABCD-EF0123456789", "Z", "[br", "_under", "__", "`tick",
	"a", "a-b", "a.b", "a0", "ab", "a b", "a\x01", "abcdef01-2345-6789-abcd-ef0123456789", "legacy-client-001",
	"z", "zz", "{brace", "~tilde", "\x7fdel", "é", "ée", "Ω", "日本", "🙂", "🙂🙂", "bad\xffutf8", "\xff", "\xc3",
	"red\x1b[31m", "nul\x00x", strings.Repeat("n", 300), "tenant-00001", "tenant-00002", "tenant-00010",
}

// rangeBucket returns keys for rangeNames and many filler tenants (so that
// ranges are planned at all), with 1 to 9 objects each, one tenant with
// many, leases, folder markers, v0.3 keys, and objects that belong to no
// tenant.
func rangeBucket() map[string]int64 {
	keys := map[string]int64{
		"databases/stray.txt": 5, "databases/zz-stray": 5, "databases/": 0, "databases/!": 1,
		"elsewhere/a/lock.json": 1, "databasesX/a/lock.json": 1, "a": 1,
	}
	names := slices.Clone(rangeNames)
	for i := range 120 {
		names = append(names, fmt.Sprintf("%08x-0000-4000-8000-%012x", i*7919, i))
	}
	for i, name := range names {
		n := 1 + i%9
		if i == 7 {
			n = 60 // a tenant larger than any page
		}
		for j := range n {
			keys[ltxKey(name, j%3, uint64(j+1), uint64(j+1))] = int64(10 + j)
		}
		if i%4 == 0 {
			keys["databases/"+name+"/lock.json"] = 1
		}
		if i%7 == 0 {
			// A folder marker: the very first key of the tenant, exactly
			// where a range that starts at it begins.
			keys["databases/"+name+"/"] = 0
		}
		if i%5 == 0 {
			keys[snapshotKey(name, "00000000000000a1", 0)] = 3
			keys[walKey(name, "00000000000000a1", 0, 0)] = 3
		}
	}
	return keys
}

// TestScanRangesComplete: listed in parallel ranges, with pages of a few
// keys, every tenant comes out once with exactly the figures of one
// sequential listing, whatever its name.
func TestScanRangesComplete(t *testing.T) {
	keys := rangeBucket()
	conn := s3conn.Conn{Bucket: "bkt"}
	want, err := scan(context.Background(), newMemS3(keys), conn, scanOptions{pageSize: 1000, parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	tenants := map[string]bool{}
	for k := range keys {
		if rel, ok := strings.CutPrefix(k, "databases/"); ok {
			if name, _, ok := strings.Cut(rel, "/"); ok {
				tenants[name] = true
			}
		}
	}
	if len(want) != len(tenants) {
		t.Fatalf("sequential listing: %d tenants, want %d", len(want), len(tenants))
	}
	for _, name := range rangeNames {
		if !tenants[name] {
			t.Fatalf("bucket lacks %q", name)
		}
	}

	for _, opt := range []scanOptions{
		{pageSize: 2, parallel: 2, rangePages: 1, firstPages: 1},
		{pageSize: 3, parallel: 8, rangePages: 1, firstPages: 1},
		{pageSize: 5, parallel: 3, rangePages: 2, firstPages: 2},
		{pageSize: 7, parallel: 4, rangePages: 3, firstPages: 4},
		{pageSize: 64, parallel: 4, rangePages: 1, firstPages: 1},
	} {
		t.Run(fmt.Sprintf("%+v", opt), func(t *testing.T) {
			api := newMemS3(keys)
			got, err := scan(context.Background(), api, conn, opt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parallel and sequential listings differ:\n%s", diffSummaries(got, want))
			}
			assertRanges(t, api.listings(), opt)
		})
	}
}

// TestScanRangesBoundaryKeys: a range starts exactly at a tenant's first
// possible key, "<root><name>/": here every tenant holds only that key (a
// folder marker), so a range that started just after it would lose it.
func TestScanRangesBoundaryKeys(t *testing.T) {
	keys := map[string]int64{}
	for i := range 200 {
		keys[fmt.Sprintf("databases/t%03d/", i)] = 0
		keys[fmt.Sprintf("databases/t%03d", i)] = 1 // no tenant's
	}
	opt := scanOptions{pageSize: 3, parallel: 4, rangePages: 1, firstPages: 1}
	api := newMemS3(keys)
	got, err := scan(context.Background(), api, s3conn.Conn{Bucket: "bkt"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 {
		t.Errorf("%d tenants, want 200", len(got))
	}
	assertRanges(t, api.listings(), opt)
}

// assertRanges fails unless the listing was cut into several ranges: a
// delimited listing of prefixes, then listings from StartAfter.
func assertRanges(t *testing.T, reqs []s3.ListObjectsV2Input, opt scanOptions) {
	t.Helper()
	delimited, starts := 0, map[string]bool{}
	for _, in := range reqs {
		if aws.ToString(in.Delimiter) == "/" {
			delimited++
		} else if in.StartAfter != nil && in.ContinuationToken == nil {
			starts[aws.ToString(in.StartAfter)] = true
		}
		if n := aws.ToInt32(in.MaxKeys); n < 1 || n > opt.pageSize {
			t.Errorf("MaxKeys %d, want 1 to %d", n, opt.pageSize)
		}
	}
	if delimited == 0 || len(starts) < 2 {
		t.Errorf("%d requests, %d delimited, %d ranges: want the listing cut into ranges", len(reqs), delimited, len(starts))
	}
}

func diffSummaries(got, want []TenantSummary) string {
	var b strings.Builder
	g := map[string]TenantSummary{}
	for _, s := range got {
		if _, dup := g[s.Name]; dup {
			fmt.Fprintf(&b, "  %q listed twice\n", s.Name)
		}
		g[s.Name] = s
	}
	for _, w := range want {
		s, ok := g[w.Name]
		switch {
		case !ok:
			fmt.Fprintf(&b, "  %q missing\n", w.Name)
		case !reflect.DeepEqual(s, w):
			fmt.Fprintf(&b, "  %q:\n    got  %+v\n    want %+v\n", w.Name, s, w)
		}
		delete(g, w.Name)
	}
	for name := range g {
		fmt.Fprintf(&b, "  %q not expected\n", name)
	}
	return b.String()
}

// TestScanRangesConcurrent: ranges are listed at once, up to the limit.
func TestScanRangesConcurrent(t *testing.T) {
	api := newMemS3(rangeBucket())
	api.delay = 5 * time.Millisecond
	opt := scanOptions{pageSize: 4, parallel: 3, rangePages: 1, firstPages: 1}
	if _, err := scan(context.Background(), api, s3conn.Conn{Bucket: "bkt"}, opt); err != nil {
		t.Fatal(err)
	}
	if api.peak < 2 || api.peak > opt.parallel {
		t.Errorf("peak of %d listings in flight, want 2 to %d", api.peak, opt.parallel)
	}
}

// TestScanRangesSmallBucket: a bucket that ends within the first pages is
// one sequential listing, whatever the options.
func TestScanRangesSmallBucket(t *testing.T) {
	keys := map[string]int64{}
	for i := range 30 {
		keys[ltxKey(fmt.Sprintf("t%02d", i), 0, 1, 1)] = 1
	}
	api := newMemS3(keys)
	got, err := scan(context.Background(), api, s3conn.Conn{Bucket: "bkt"}, scanOptions{pageSize: 10, parallel: 4, rangePages: 1, firstPages: 3})
	if err != nil || len(got) != 30 {
		t.Fatalf("got %d tenants, %v", len(got), err)
	}
	reqs := api.listings()
	for i, in := range reqs {
		if in.Delimiter != nil || in.StartAfter != nil || (i > 0) != (in.ContinuationToken != nil) {
			t.Errorf("request %d: %+v: want one paginated listing", i, in)
		}
	}
	if len(reqs) != 3 && len(reqs) != 4 {
		t.Errorf("%d requests for 30 keys in pages of 10", len(reqs))
	}
}

// TestScanRangesReplacedNames: a server that does not URL-encode keys (as
// gofakes3 and versitygw) sends U+FFFD for bytes XML cannot carry, so that
// some names are not the keys it sorts by. Without such names, ranges are
// used as with any server; with them, the listing starts over in one
// sequence, and finds what one sequence finds.
func TestScanRangesReplacedNames(t *testing.T) {
	opt := scanOptions{pageSize: 4, parallel: 4, rangePages: 1, firstPages: 1}
	conn := s3conn.Conn{Bucket: "bkt"}
	plain := map[string]int64{}
	for k, v := range rangeBucket() {
		if xmlReplace(k) == k && !strings.ContainsRune(k, utf8.RuneError) {
			plain[k] = v
		}
	}
	for _, tt := range []struct {
		name     string
		keys     map[string]int64
		fallback bool
	}{
		{"without replaced names", plain, false},
		{"with replaced names", rangeBucket(), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seq := newMemS3(tt.keys)
			seq.noEncoding = true
			want, err := scan(context.Background(), seq, conn, scanOptions{pageSize: 1000, parallel: 1})
			if err != nil {
				t.Fatal(err)
			}
			api := newMemS3(tt.keys)
			api.noEncoding = true
			got, err := scan(context.Background(), api, conn, opt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("differ:\n%s", diffSummaries(got, want))
			}
			reqs := api.listings()
			assertRanges(t, reqs, scanOptions{pageSize: 1000})
			last := reqs[len(reqs)-1]
			restarted := slices.ContainsFunc(reqs[1:], func(in s3.ListObjectsV2Input) bool {
				return in.StartAfter == nil && in.ContinuationToken == nil && in.Delimiter == nil
			})
			if restarted != tt.fallback || (tt.fallback && last.StartAfter != nil) {
				t.Errorf("started over: %v, want %v", restarted, tt.fallback)
			}
		})
	}
}

// TestScanRangesError: a failing range stops the others and its error is
// returned, not the cancellation it caused; a failing prefix listing too.
func TestScanRangesError(t *testing.T) {
	opt := scanOptions{pageSize: 3, parallel: 4, rangePages: 1, firstPages: 1}
	for _, tt := range []struct {
		name string
		fail func(in *s3.ListObjectsV2Input) bool
	}{
		{"range", func(in *s3.ListObjectsV2Input) bool {
			return in.StartAfter != nil && in.ContinuationToken == nil && in.Delimiter == nil && aws.ToString(in.StartAfter) > "databases/m"
		}},
		{"prefixes", func(in *s3.ListObjectsV2Input) bool { return in.Delimiter != nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api := newMemS3(rangeBucket())
			boom := errors.New("boom")
			api.fail = func(in *s3.ListObjectsV2Input) error {
				if tt.fail(in) {
					return boom
				}
				return nil
			}
			_, err := scan(context.Background(), api, s3conn.Conn{Bucket: "bkt"}, opt)
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want boom", err)
			}
		})
	}
}

// TestScanRangesCanceled: canceling the context stops every listing.
func TestScanRangesCanceled(t *testing.T) {
	api := newMemS3(rangeBucket())
	api.delay = 2 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	api.fail = func(in *s3.ListObjectsV2Input) error {
		if in.StartAfter != nil && in.Delimiter == nil {
			cancel()
		}
		return nil
	}
	_, err := scan(ctx, api, s3conn.Conn{Bucket: "bkt"}, scanOptions{pageSize: 3, parallel: 4, rangePages: 1, firstPages: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestScanRangesDropOutside: keys a server sends outside a range (here, one
// that ignores StartAfter and lists every range from the start) are
// dropped, not counted twice.
func TestScanRangesDropOutside(t *testing.T) {
	keys := rangeBucket()
	conn := s3conn.Conn{Bucket: "bkt"}
	want, err := scan(context.Background(), newMemS3(keys), conn, scanOptions{pageSize: 1000, parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	api := &ignoreStartAfter{memS3: newMemS3(keys)}
	got, err := scan(context.Background(), api, conn, scanOptions{pageSize: 6, parallel: 3, rangePages: 1, firstPages: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("differ:\n%s", diffSummaries(got, want))
	}
	assertRanges(t, api.asked, scanOptions{pageSize: 6})
}

type ignoreStartAfter struct {
	*memS3
	mu    sync.Mutex
	asked []s3.ListObjectsV2Input
}

func (a *ignoreStartAfter) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	a.mu.Lock()
	a.asked = append(a.asked, *in)
	a.mu.Unlock()
	c := *in
	if c.Delimiter == nil {
		c.StartAfter = nil
	}
	return a.memS3.ListObjectsV2(ctx, &c, opts...)
}

// TestScanRangesGofakes3: the same through an HTTP server and the SDK:
// gofakes3, which sends keys as they are, and with keys URL-encoded on
// their way back, as S3 does.
func TestScanRangesGofakes3(t *testing.T) {
	f := newFakeS3(t)
	var keys []string
	for k := range rangeBucket() {
		// What XML 1.0 cannot carry would not survive gofakes3.
		if strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }) || !strings.HasPrefix(k, "databases/") {
			continue
		}
		if !strings.ContainsRune(k, 0xfffd) && strings.ToValidUTF8(k, "") == k {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	f.put(t, keys...)
	want, err := scan(context.Background(), f.client, f.conn, scanOptions{pageSize: 1000, parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 100 {
		t.Fatalf("only %d tenants", len(want))
	}
	for _, opt := range []scanOptions{
		{pageSize: 5, parallel: 4, rangePages: 1, firstPages: 1},
		{pageSize: 16, parallel: 2, rangePages: 2, firstPages: 2},
	} {
		spy := &spyAPI{API: f.client}
		if opt.pageSize == 5 {
			spy.API = &urlEncoding{f.client}
		}
		got, err := scan(context.Background(), spy, f.conn, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%+v: differ:\n%s", opt, diffSummaries(got, want))
		}
		if spy.commonPrefixes == 0 || spy.continuationUsed == spy.lists-1 {
			t.Errorf("%+v: %d requests, %d continued, %d prefixes: want ranges", opt, spy.lists, spy.continuationUsed, spy.commonPrefixes)
		}
	}
}

// urlEncoding makes a server that ignores EncodingType look as if it
// honored it.
type urlEncoding struct{ s3conn.API }

func (u *urlEncoding) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	out, err := u.API.ListObjectsV2(ctx, in, opts...)
	if err != nil || in.EncodingType != types.EncodingTypeUrl || out.EncodingType == types.EncodingTypeUrl {
		return out, err
	}
	for i := range out.Contents {
		out.Contents[i].Key = aws.String(url.QueryEscape(aws.ToString(out.Contents[i].Key)))
	}
	for i := range out.CommonPrefixes {
		out.CommonPrefixes[i].Prefix = aws.String(url.QueryEscape(aws.ToString(out.CommonPrefixes[i].Prefix)))
	}
	out.EncodingType = types.EncodingTypeUrl
	return out, nil
}

func TestJustBelow(t *testing.T) {
	for _, s := range []string{"", "a", "databases/x/", "a\x00", "\x00", "é", "\xff"} {
		b := justBelow(s)
		if s != "" && b >= s {
			t.Errorf("justBelow(%q) = %q, not below", s, b)
		}
		if s != "" && !strings.HasPrefix(s, b[:max(len(b)-1, 0)]) {
			t.Errorf("justBelow(%q) = %q, not close", s, b)
		}
	}
	if got := justBelow("databases/x/"); got != "databases/x." {
		t.Errorf("justBelow = %q", got)
	}
}
