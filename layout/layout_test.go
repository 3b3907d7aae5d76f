package layout_test

import (
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/layout"
)

// iamMatch is IAM's resource wildcard match: '?' is one character, '*'
// any run of characters, '/' included.
func iamMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if iamMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && iamMatch(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && iamMatch(pattern[1:], s[1:])
}

var layoutTenants = []string{
	"databases/12345678-1234-5678-9abc-123456789012",
	"databases/a",
	"databases/a.at-20260101-000000", // a tenant whose name looks like an archive
	"a.stray-x",
	"deep/er/prefix/t_1",
}

// TestArchiveBuildParse: every archive key the engine builds parses back
// to the same tenant path, kind and time, and its prefix is rebuilt the
// same way.
func TestArchiveBuildParse(t *testing.T) {
	at := time.Date(2026, 12, 7, 11, 30, 59, 0, time.FixedZone("x", 3600))
	for _, tp := range layoutTenants {
		for _, c := range []struct {
			kind   layout.ArchiveKind
			prefix string
		}{
			{layout.ArchiveTakeover, layout.ArchivePrefix(tp, at)},
			{layout.ArchiveStray, layout.StrayArchivePrefix(tp, at)},
			{layout.ArchiveStrayGap, layout.StrayGapArchivePrefix(tp, at)},
		} {
			key := c.prefix + "/0000/0000000000000001-0000000000000002.ltx"
			a, ok := layout.ParseArchive(key)
			if !ok {
				t.Fatalf("%s: not parsed", key)
			}
			if a.TenantPath != tp || a.Kind != c.kind || !a.At.Equal(at.Truncate(time.Second)) {
				t.Errorf("%s: parsed %+v, want %s kind %d at %s", key, a, tp, c.kind, at)
			}
			if a.Prefix() != c.prefix {
				t.Errorf("%s: rebuilt %s", key, a.Prefix())
			}
		}
	}
}

func TestParseArchiveRefuses(t *testing.T) {
	for _, key := range []string{
		"databases/a/0000/x.ltx",
		layout.ArchiveRoot + "databases/a/0000/x.ltx",
		layout.ArchiveRoot + "databases/a.at-2026-01-01/x",
		layout.ArchiveRoot + "databases/a.at-20261301-000000/x", // month 13
		layout.ArchiveRoot + "databases/.at-20260101-000000/x",  // no tenant
		layout.ArchiveRoot + "databases/a.gone-20260101-000000/x",
		layout.ArchiveRoot + "databases/a.at-20260101-000000-2/x", // gap marks strays only
		layout.HeartbeatKey("h1"),
	} {
		if a, ok := layout.ParseArchive(key); ok {
			t.Errorf("%s parsed as %+v", key, a)
		}
	}
}

// TestArchivePatterns: a tenant's archive patterns cover every archive
// key the engine builds for it, and none of another tenant's, even one
// whose name starts like an archive of the first.
func TestArchivePatterns(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	keys := func(tp string) []string {
		return []string{
			layout.ArchivePrefix(tp, at) + "/0000/x.ltx",
			layout.StrayArchivePrefix(tp, at) + "/0001/y.ltx",
			layout.StrayGapArchivePrefix(tp, at) + "/0000/z.ltx",
		}
	}
	covered := func(tp, key string) bool {
		for _, p := range layout.ArchivePatterns(tp) {
			if iamMatch(p, key) {
				return true
			}
		}
		return false
	}
	for _, tp := range layoutTenants {
		for _, k := range keys(tp) {
			if !covered(tp, k) {
				t.Errorf("%s's patterns %q miss its archive key %s", tp, layout.ArchivePatterns(tp), k)
			}
		}
		for _, other := range layoutTenants {
			if other == tp {
				continue
			}
			for _, k := range append(keys(other), other+"/0000/x.ltx", layout.ClaimKey(other)) {
				if covered(tp, k) {
					t.Errorf("%s's patterns reach %s", tp, k)
				}
			}
		}
		if p := layout.ArchivePatterns(tp)[0]; !strings.HasPrefix(p, layout.ArchiveRoot) {
			t.Errorf("pattern %s outside %s", p, layout.ArchiveRoot)
		}
	}
}

func TestTenantPath(t *testing.T) {
	for _, c := range [][3]string{
		{"databases", "a", "databases/a"},
		{"/databases/", "a", "databases/a"},
		{"", "a", "a"},
		{"x/y", "a", "x/y/a"},
	} {
		if got := layout.TenantPath(c[0], c[1]); got != c[2] {
			t.Errorf("TenantPath(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// FuzzParseArchive: keys from S3 are untrusted; whatever parses rebuilds
// to a prefix of the key it was read from.
func FuzzParseArchive(f *testing.F) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tp := range layoutTenants {
		f.Add(layout.ArchivePrefix(tp, at) + "/0000/x.ltx")
		f.Add(layout.StrayGapArchivePrefix(tp, at) + "/0000/x.ltx")
	}
	f.Add(layout.ArchiveRoot + "a.stray--2/x")
	f.Fuzz(func(t *testing.T, key string) {
		a, ok := layout.ParseArchive(key)
		if !ok {
			return
		}
		if p := a.Prefix(); !strings.HasPrefix(key, p) || (len(key) > len(p) && key[len(p)] != '/') {
			t.Fatalf("%q parsed as %+v, which rebuilds to %q", key, a, p)
		}
	})
}
