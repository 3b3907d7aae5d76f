package s3browse

import (
	"errors"
	"strings"
	"testing"

	"github.com/litefleet/litefleet/untrusted"
)

func TestNameChecks(t *testing.T) {
	long := strings.Repeat("a", MaxNameBytes+1)
	tests := []struct {
		name    string
		valid   bool
		problem string // substring of Prefix.Problem
		display string
	}{
		{"12345678-1234-5678-9abc-123456789012", true, "", "12345678-1234-5678-9abc-123456789012"},
		{"legacy-001", true, "", "legacy-001"},
		{"Ünïcode ok", true, "", "Ünïcode ok"},
		{"a..b", true, "", "a..b"},
		{strings.Repeat("a", MaxNameBytes), true, "", strings.Repeat("a", MaxNameBytes)},
		{"", false, "empty", `""`},
		{".", false, "relative", "."},
		{"..", false, "relative", ".."},
		{"a/b", false, "separator", "a/b"},
		{`a\b`, false, "separator", `a\b`},
		{long, false, "256 bytes", long},
		{"red\x1b[31m", false, "ESC", `"red\x1b[31m"`},
		{"bell\a", false, "control", `"bell\a"`},
		{"nul\x00", false, "control", `"nul\x00"`},
		{"tab\t", false, "control", `"tab\t"`},
		{"new\nline", false, "control", `"new\nline"`},
		{"del\x7f", false, "control", `"del\x7f"`},
		{"c1\u009b31m", false, "control", `"c1\u009b31m"`},
		{"bad\xffutf8", false, "UTF-8", `"bad\xffutf8"`},
		{"\xc0\xaf", false, "UTF-8", `"\xc0\xaf"`},
		{"rtl\u202eexe.gpj", false, "non-printable", `"rtl\u202eexe.gpj"`},
		{"lost\uFFFDbyte", false, "U+FFFD", `"lost\ufffdbyte"`},
		{"nbsp\u00a0x", false, "non-printable", "\"nbsp\u00a0x\""},
	}
	for _, tt := range tests {
		t.Run(untrusted.Printable(tt.name), func(t *testing.T) {
			p := newPrefix(tt.name)
			if p.Valid != tt.valid {
				t.Fatalf("Valid = %v (problem %q), want %v", p.Valid, p.Problem, tt.valid)
			}
			if !strings.Contains(p.Problem, tt.problem) || (tt.valid && p.Problem != "") {
				t.Errorf("Problem = %q, want it to contain %q", p.Problem, tt.problem)
			}
			if got := p.Display(); got != tt.display {
				t.Errorf("Display = %s, want %s", got, tt.display)
			}
			if got := p.Display(); strings.ContainsAny(got, "\x1b\x00\a\n\u009b\u202e\uFFFD") {
				t.Errorf("Display = %q still holds a control character", got)
			}
			err := CheckName(tt.name)
			if (err == nil) != tt.valid {
				t.Fatalf("CheckName = %v, want valid %v", err, tt.valid)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidName) {
					t.Errorf("CheckName error %v does not wrap ErrInvalidName", err)
				}
				if strings.ContainsAny(err.Error(), "\x1b\x00\a\n\u009b\u202e") {
					t.Errorf("CheckName error %q prints a control character", err)
				}
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"owner-host:1234":    "owner-host:1234",
		"evil\x1b]0;pwned\a": `"evil\x1b]0;pwned\a"`,
		"":                   `""`,
	} {
		if got := untrusted.Printable(in); got != want {
			t.Errorf("untrusted.Printable(%q) = %s, want %s", in, got, want)
		}
	}
}
