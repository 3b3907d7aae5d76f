package tenants

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/untrusted"
)

func TestNameFor(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct {
		name     string
		path     string
		explicit string
		want     string
		verdict  Verdict
	}{
		// The seed's naming table, row by row.
		{"seed row 1", "/data/12345678-1234-5678-9abc-123456789012.db", "", "12345678-1234-5678-9abc-123456789012", VerdictGUID},
		{"seed row 2", "aaaaaaaa-1111-2222-3333-444444444444.db", "", "aaaaaaaa-1111-2222-3333-444444444444", VerdictGUID},
		{"seed row 3", "fedcba98-7654-3210-fedc-ba9876543210.db", "", "fedcba98-7654-3210-fedc-ba9876543210", VerdictGUID},
		{"seed row 4", "legacy-client.db", "legacy-001", "legacy-001", VerdictExplicit},
		{"seed row 5", "system.db", "internal-system", "internal-system", VerdictExplicit},
		{"seed row 6: invalid name", "legacy-client.db", "", FallbackName, VerdictFallback},
		// The seed's other examples.
		{"seed full path", "/var/data/clients/abcdef01-2345-6789-abcd-ef0123456789.db", "", "abcdef01-2345-6789-abcd-ef0123456789", VerdictGUID},
		{"seed legacy-client-001", "/data/legacy-client.db", "legacy-client-001", "legacy-client-001", VerdictExplicit},
		// Spellings of a GUID.
		{"upper-case GUID keeps its format", "/data/ABCDEF01-2345-6789-ABCD-EF0123456789.db", "", "ABCDEF01-2345-6789-ABCD-EF0123456789", VerdictGUID},
		{"GUID in braces", "/data/{12345678-1234-5678-9abc-123456789012}.db", "", FallbackName, VerdictFallback},
		{"urn:uuid GUID", "/data/urn:uuid:12345678-1234-5678-9abc-123456789012.db", "", FallbackName, VerdictFallback},
		{"32 hex digits", "/data/12345678123456789abc123456789012.db", "", FallbackName, VerdictFallback},
		{"GUID with a non-hex digit", "/data/1234567g-1234-5678-9abc-123456789012.db", "", FallbackName, VerdictFallback},
		{"GUID, wrong group sizes", "/data/1234567-81234-5678-9abc-123456789012.db", "", FallbackName, VerdictFallback},
		// Suffixes.
		{".sqlite suffix", "/data/12345678-1234-5678-9abc-123456789012.sqlite", "", "12345678-1234-5678-9abc-123456789012", VerdictGUID},
		{".sqlite3 suffix", "/data/12345678-1234-5678-9abc-123456789012.sqlite3", "", "12345678-1234-5678-9abc-123456789012", VerdictGUID},
		{".DB suffix", "/data/12345678-1234-5678-9abc-123456789012.DB", "", "12345678-1234-5678-9abc-123456789012", VerdictGUID},
		{"no suffix", "/data/12345678-1234-5678-9abc-123456789012", "", "12345678-1234-5678-9abc-123456789012", VerdictGUID},
		{"two suffixes", "/data/12345678-1234-5678-9abc-123456789012.db.db", "", FallbackName, VerdictFallback},
		// Explicit names that break the rules.
		{"explicit with spaces", "x.db", "legacy client", "legacy client", VerdictInvalid},
		{"explicit upper-case", "x.db", "Legacy", "Legacy", VerdictInvalid},
		{"explicit unicode", "x.db", "clienté", "clienté", VerdictInvalid},
		{"explicit ..", "x.db", "..", "..", VerdictInvalid},
		{"explicit leading dot", "x.db", ".hidden", ".hidden", VerdictInvalid},
		{"explicit slash", "x.db", "a/b", "a/b", VerdictInvalid},
		{"explicit backslash", "x.db", `a\b`, `a\b`, VerdictInvalid},
		{"explicit control char", "x.db", "a\x1b[31mb", "a\x1b[31mb", VerdictInvalid},
		{"explicit newline", "x.db", "a\nb", "a\nb", VerdictInvalid},
		{"explicit 200 chars", "x.db", long, long, VerdictInvalid},
		{"explicit 63 chars", "x.db", strings.Repeat("b", 63), strings.Repeat("b", 63), VerdictExplicit},
		{"explicit 64 chars", "x.db", strings.Repeat("b", 64), strings.Repeat("b", 64), VerdictInvalid},
		{"explicit with dot, underscore", "x.db", "a.b_c-1", "a.b_c-1", VerdictExplicit},
		{"explicit GUID", "x.db", "12345678-1234-5678-9abc-123456789012", "12345678-1234-5678-9abc-123456789012", VerdictExplicit},
		{"explicit upper-case GUID", "x.db", "ABCDEF01-2345-6789-ABCD-EF0123456789", "ABCDEF01-2345-6789-ABCD-EF0123456789", VerdictExplicit},
		{"explicit wins over GUID file", "/data/12345678-1234-5678-9abc-123456789012.db", "acme", "acme", VerdictExplicit},
		// File names that are not GUIDs.
		{"file with spaces", "/data/my client.db", "", FallbackName, VerdictFallback},
		{"unicode file", "/data/clienté.db", "", FallbackName, VerdictFallback},
		{"control chars in file", "/data/a\x07b.db", "", FallbackName, VerdictFallback},
		{"file named ..", "/data/...db", "", FallbackName, VerdictFallback},
		{"file named .db", "/data/.db", "", FallbackName, VerdictFallback},
		{"200-char file", "/data/" + long + ".db", "", FallbackName, VerdictFallback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NameFor(tt.path, tt.explicit)
			if got.Name != tt.want || got.Verdict != tt.verdict {
				t.Fatalf("NameFor(%q, %q) = %q/%s, want %q/%s (note %q)", tt.path, tt.explicit, got.Name, got.Verdict, tt.want, tt.verdict, got.Note)
			}
			if (got.Verdict == VerdictFallback || got.Verdict == VerdictInvalid) && got.Note == "" {
				t.Fatalf("verdict %s without a note", got.Verdict)
			}
			if strings.ContainsAny(got.Note, "\x1b\x07\n") {
				t.Fatalf("note carries control characters: %q", got.Note)
			}
		})
	}
}

func TestFallbackNoteSuggestsCanonicalGUID(t *testing.T) {
	got := NameFor("/data/{12345678-1234-5678-9ABC-123456789012}.db", "")
	if !strings.Contains(got.Note, "12345678-1234-5678-9abc-123456789012") {
		t.Fatalf("note %q does not suggest the canonical GUID", got.Note)
	}
}

func TestMarkCollisions(t *testing.T) {
	tests := []struct {
		name      string
		entries   []Entry
		collision []bool
	}{
		{
			name: "same GUID in two folders",
			entries: []Entry{
				{Path: "/a/12345678-1234-5678-9abc-123456789012.db", Naming: NameFor("/a/12345678-1234-5678-9abc-123456789012.db", "")},
				{Path: "/b/12345678-1234-5678-9abc-123456789012.db", Naming: NameFor("/b/12345678-1234-5678-9abc-123456789012.db", "")},
				{Path: "/b/98765432-4321-8765-cba9-876543210987.db", Naming: NameFor("/b/98765432-4321-8765-cba9-876543210987.db", "")},
			},
			collision: []bool{true, true, false},
		},
		{
			name: "GUIDs differing only in case",
			entries: []Entry{
				{Path: "/a/abcdef01-2345-6789-abcd-ef0123456789.db", Naming: NameFor("/a/abcdef01-2345-6789-abcd-ef0123456789.db", "")},
				{Path: "/b/ABCDEF01-2345-6789-ABCD-EF0123456789.db", Naming: NameFor("/b/ABCDEF01-2345-6789-ABCD-EF0123456789.db", "")},
			},
			collision: []bool{true, true},
		},
		{
			name: "two fallbacks share default",
			entries: []Entry{
				{Path: "/a/legacy.db", Naming: NameFor("/a/legacy.db", "")},
				{Path: "/a/system.db", Naming: NameFor("/a/system.db", "")},
			},
			collision: []bool{true, true},
		},
		{
			name: "one fallback alone is not a collision",
			entries: []Entry{
				{Path: "/a/legacy.db", Naming: NameFor("/a/legacy.db", "")},
				{Path: "/a/system.db", Naming: NameFor("/a/system.db", "internal-system")},
			},
			collision: []bool{false, false},
		},
		{
			name: "explicit name equal to another's GUID",
			entries: []Entry{
				{Path: "/a/x.db", Naming: NameFor("/a/x.db", "12345678-1234-5678-9abc-123456789012")},
				{Path: "/b/12345678-1234-5678-9abc-123456789012.db", Naming: NameFor("/b/12345678-1234-5678-9abc-123456789012.db", "")},
			},
			collision: []bool{true, true},
		},
		{
			name: "invalid names never collide",
			entries: []Entry{
				{Path: "/a/x.db", Naming: NameFor("/a/x.db", "Bad Name")},
				{Path: "/b/y.db", Naming: NameFor("/b/y.db", "Bad Name")},
			},
			collision: []bool{false, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := MarkCollisions(tt.entries)
			want := 0
			for i, c := range tt.collision {
				got := tt.entries[i].Verdict == VerdictCollision
				if got != c {
					t.Errorf("entry %d (%s): collision=%v, want %v", i, tt.entries[i].Path, got, c)
				}
				if c {
					want++
					if tt.entries[i].Note == "" {
						t.Errorf("entry %d: collision without a note", i)
					}
				}
			}
			if n != want {
				t.Errorf("MarkCollisions returned %d, want %d", n, want)
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain-name", "plain-name"},
		{"with space", "with space"},
		{"\x1b[31mred", `"\x1b[31mred"`},
		{"bell\a", `"bell\a"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{"clienté", "clienté"},
	}
	for _, tt := range tests {
		if got := untrusted.Printable(tt.in); got != tt.want {
			t.Errorf("untrusted.Printable(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestValidateNameIsTheOneCheck: every name ValidateName accepts is safe as
// a key segment, a file name and output (s3browse.CheckName), and every
// refusal wraps s3browse.ErrInvalidName, whichever rule it breaks.
func TestValidateNameIsTheOneCheck(t *testing.T) {
	for _, name := range []string{
		"", ".", "..", ".hidden", "a/b", `a\b`, "red\x1b[31m", "bell\a", "rtl\u202eexe", "bad\xffutf8", "U+FFFD\uFFFD",
		strings.Repeat("a", 64), strings.Repeat("a", 300), "Bad Name", "UPPER", "ok-name", "legacy-client-001",
		"12345678-1234-5678-9abc-123456789012", "12345678-1234-5678-9ABC-123456789012", "{12345678-1234-5678-9abc-123456789012}",
	} {
		err := ValidateName(name)
		if err == nil {
			if cerr := s3browse.CheckName(name); cerr != nil {
				t.Errorf("%q passes ValidateName but not CheckName: %v", name, cerr)
			}
			continue
		}
		if !errors.Is(err, s3browse.ErrInvalidName) {
			t.Errorf("%q: %v does not wrap ErrInvalidName", name, err)
		}
		if strings.ContainsAny(err.Error(), "\x1b\a\n") {
			t.Errorf("%q: the error prints raw control characters: %q", name, err)
		}
	}
}

func TestShortenKeepsBothEnds(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"12345678-1234-5678-9abc-123456789012", 36, "12345678-1234-5678-9abc-123456789012"},
		{"12345678-1234-5678-9abc-123456789012", 21, "12345678-1…3456789012"},
		{"abcdefghij", 5, "ab…ij"},
		{"abcdefghij", 6, "abc…ij"},
		{"abcdefghij", 1, "…"},
		{"abcdefghij", 0, ""},
		{"ééééé-ààààà", 5, "éé…àà"},
	} {
		got := Shorten(c.in, c.n)
		if got != c.want {
			t.Errorf("Shorten(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
		if n := utf8.RuneCountInString(got); n > max(c.n, 0) {
			t.Errorf("Shorten(%q, %d) is %d runes long", c.in, c.n, n)
		}
	}
}
