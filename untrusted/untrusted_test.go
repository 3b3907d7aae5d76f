package untrusted

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"owner-host:1234":    "owner-host:1234",
		"évier-ü":            "évier-ü",
		"evil\x1b]0;pwned\a": `"evil\x1b]0;pwned\a"`,
		"":                   `""`,
		"rtl\u202eexe":       `"rtl\u202eexe"`,
		"bad\xffbyte":        `"bad\xffbyte"`,
		"lost\uFFFD":         `"lost\ufffd"`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzPrintable: whatever the bytes, the result is valid UTF-8 with no
// control, format or replacement character, and printable text stays as
// it is.
func FuzzPrintable(f *testing.F) {
	f.Add("plain")
	f.Add("evil\x1b[31m")
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		got := Printable(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Printable(%q) = %q: not UTF-8", s, got)
		}
		for _, r := range got {
			if r == utf8.RuneError || !unicode.IsGraphic(r) {
				t.Fatalf("Printable(%q) = %q holds %U", s, got, r)
			}
		}
		if s != "" && isPrintable(s) && got != s {
			t.Fatalf("printable %q changed to %q", s, got)
		}
	})
}
