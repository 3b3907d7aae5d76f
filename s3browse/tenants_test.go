package s3browse

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/litefleet/litefleet/s3conn"

	"github.com/litefleet/litefleet/untrusted"
)

func names(ps []Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func TestListTenants(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		keys    []string
		maxKeys int32
		want    []string
	}{
		{name: "empty bucket", want: []string{}},
		{name: "only objects outside the prefix", keys: []string{"other/a/lock.json", "databasesX/b/lock.json"}, want: []string{}},
		{name: "objects directly under the prefix are not tenants", keys: []string{"databases/readme.txt", ltxKey("t1", 0, 1, 1)}, want: []string{"t1"}},
		{
			name: "sorted, one entry per tenant, both formats",
			keys: []string{
				ltxKey("b", 0, 1, 1), ltxKey("b", 0, 2, 2), "databases/b/lock.json",
				snapshotKey("a", "0123456789abcdef", 0), walKey("a", "0123456789abcdef", 0, 0),
			},
			want: []string{"a", "b"},
		},
		{
			// gofakes3 counts keys, not prefixes, against MaxKeys, so every
			// page repeats the prefix of the keys it covers, and it ends with
			// an empty truncated page when other keys follow the prefix.
			name:    "paging repeats prefixes across pages",
			keys:    append(manyKeys("t1", 7), append(manyKeys("t2", 5), "zzz/after")...),
			maxKeys: 2,
			want:    []string{"t1", "t2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeS3(t)
			f.put(t, tt.keys...)
			spy := &spyAPI{API: f.client, maxKeys: tt.maxKeys}
			got, err := ListTenants(ctx, spy, f.conn)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(got), tt.want) {
				t.Errorf("ListTenants = %q, want %q", names(got), tt.want)
			}
			for _, p := range got {
				if !p.Valid {
					t.Errorf("%s listed invalid: %s", p.Display(), p.Problem)
				}
			}
			if got == nil {
				t.Error("ListTenants returned nil, want an empty slice (JSON [])")
			}
			if tt.maxKeys > 0 && (spy.lists < 2 || spy.commonPrefixes <= len(tt.want)) {
				t.Errorf("%d requests returned %d prefixes: the case does not exercise repeated prefixes", spy.lists, spy.commonPrefixes)
			}
		})
	}
}

func manyKeys(tenant string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = ltxKey(tenant, 0, uint64(i+1), uint64(i+1))
	}
	return keys
}

// TestListTenantsManyPrefixes lists more than 1,000 prefixes, the most one
// S3 page holds, with pages of 1,000 and of 97.
func TestListTenantsManyPrefixes(t *testing.T) {
	f := newFakeS3(t)
	const n = 1203
	var want []string
	for i := range n {
		name := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		want = append(want, name)
		f.put(t, ltxKey(name, 0, 1, 1), "databases/"+name+"/lock.json")
	}
	for _, maxKeys := range []int32{0, 97} {
		t.Run(fmt.Sprint("maxKeys=", maxKeys), func(t *testing.T) {
			spy := &spyAPI{API: f.client, maxKeys: maxKeys}
			got, err := ListTenants(context.Background(), spy, f.conn)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(got), want) {
				t.Fatalf("got %d tenants (first %q), want %d", len(got), names(got)[:min(3, len(got))], n)
			}
			if spy.lists < 2 || spy.continuationUsed != spy.lists-1 {
				t.Errorf("%d requests, %d with a continuation token: want paging", spy.lists, spy.continuationUsed)
			}
		})
	}
}

// TestListTenantsUntrustedNames stores hostile names in gofakes3 and lists
// them over HTTP: each must come out as an invalid entry that prints safely.
// XML cannot carry ESC or invalid UTF-8, so gofakes3 sends U+FFFD instead,
// which is refused too.
func TestListTenantsUntrustedNames(t *testing.T) {
	hostile := []string{
		"red\x1b[31mALERT\x1b[0m",
		"bad\xffutf8",
		"bell\a",
		"..",
		".",
		"",
		strings.Repeat("n", 300),
		"rtl\u202eexe",
	}
	f := newFakeS3(t)
	f.put(t, ltxKey("good", 0, 1, 1))
	for _, name := range hostile {
		f.put(t, "databases/"+name+"/lock.json")
	}
	got, err := ListTenants(context.Background(), &spyAPI{API: f.client, maxKeys: 3}, f.conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(hostile)+1 {
		t.Fatalf("got %d entries %q, want %d", len(got), names(got), len(hostile)+1)
	}
	for _, p := range got {
		if p.Name == "good" {
			if !p.Valid {
				t.Errorf("good listed invalid: %s", p.Problem)
			}
			continue
		}
		if p.Valid || p.Problem == "" {
			t.Errorf("%s listed valid", p.Display())
		}
		assertSafe(t, p.Display())
		t.Logf("%s: %s", p.Display(), p.Problem)
	}
}

// assertSafe fails when s would put a control, format or invalid byte on a
// terminal.
func assertSafe(t *testing.T, s string) {
	t.Helper()
	if !isPrintable(s) {
		t.Errorf("%q is not safe to print", s)
	}
}

// TestListTenantsRawServer feeds the listing code what servers can send but
// gofakes3 cannot: raw control bytes, URL-encoded keys (encoding-type=url,
// which this package asks for), repeated prefixes and an empty last page.
func TestListTenantsRawServer(t *testing.T) {
	cp := func(names ...string) []types.CommonPrefix {
		var out []types.CommonPrefix
		for _, n := range names {
			out = append(out, types.CommonPrefix{Prefix: aws.String(n)})
		}
		return out
	}
	page := func(truncated bool, token string, prefixes ...string) *s3.ListObjectsV2Output {
		out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(truncated), CommonPrefixes: cp(prefixes...)}
		if token != "" {
			out.NextContinuationToken = aws.String(token)
		}
		return out
	}
	enc := func(p *s3.ListObjectsV2Output) *s3.ListObjectsV2Output {
		p.EncodingType = types.EncodingTypeUrl
		for i, c := range p.CommonPrefixes {
			p.CommonPrefixes[i].Prefix = aws.String(url.QueryEscape(aws.ToString(c.Prefix)))
		}
		return p
	}
	tests := []struct {
		name    string
		pages   []*s3.ListObjectsV2Output
		want    []string
		invalid []string
		err     string
	}{
		{
			name: "raw control bytes, duplicates, empty last page",
			pages: []*s3.ListObjectsV2Output{
				page(true, "p2", "databases/a/", "databases/\x1b[31m/"),
				page(true, "p3", "databases/\x1b[31m/", "databases/b\xff/", "databases/a/"),
				page(true, "p4"),
				page(false, ""),
			},
			want:    []string{"\x1b[31m", "a", "b\xff"},
			invalid: []string{"\x1b[31m", "b\xff"},
		},
		{
			name: "url-encoded keys are decoded",
			pages: []*s3.ListObjectsV2Output{
				enc(page(true, "p2", "databases/has space/", "databases/plus+sign/")),
				enc(page(false, "", "databases/esc\x1b/", "databases/../")),
			},
			want:    []string{"..", "esc\x1b", "has space", "plus+sign"},
			invalid: []string{"..", "esc\x1b"},
		},
		{
			name:  "no token: continue after the last name",
			pages: []*s3.ListObjectsV2Output{page(true, "", "databases/a/"), page(false, "", "databases/b/")},
			want:  []string{"a", "b"},
		},
		{
			name:  "a repeated token is an error, not a loop",
			pages: []*s3.ListObjectsV2Output{page(true, "same", "databases/a/"), page(true, "same", "databases/b/"), page(true, "same")},
			err:   "repeated continuation token",
		},
		{
			name:  "truncated without token or progress is an error",
			pages: []*s3.ListObjectsV2Output{page(true, "")},
			err:   "without a continuation token",
		},
		{
			name:  "prefixes outside the tenants prefix are ignored",
			pages: []*s3.ListObjectsV2Output{page(false, "", "elsewhere/x/", "databases/a/")},
			want:  []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &pagesAPI{pages: tt.pages}
			got, err := ListTenants(context.Background(), api, s3conn.Conn{Bucket: "bkt"})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(got), tt.want) {
				t.Fatalf("ListTenants = %q, want %q", names(got), tt.want)
			}
			for _, p := range got {
				if p.Valid == slices.Contains(tt.invalid, p.Name) {
					t.Errorf("%s: Valid = %v (%s)", p.Display(), p.Valid, p.Problem)
				}
				assertSafe(t, p.Display())
			}
		})
	}
}

// isPrintable says whether untrusted.Printable would show s as it is.
func isPrintable(s string) bool { return s == "" || untrusted.Printable(s) == s }
