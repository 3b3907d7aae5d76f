// Package untrusted holds the one rule for showing untrusted text (tenant
// names, host names, lease owners, keys read from S3) to a person: every
// package that prints such text, down to the lease protocol, goes through
// Printable. It imports nothing of litefleet's, so that every package can.
package untrusted

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s unchanged when it is valid UTF-8 made of printable
// characters, and otherwise a double-quoted, escaped form that shows every
// control, format or invalid byte as an escape (and "" for the empty
// string, which would otherwise print as nothing). Use it for any text read
// from the bucket (tenant names, lease owners) before printing it.
func Printable(s string) string {
	if s != "" && isPrintable(s) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	// QuoteToGraphic keeps a literal U+FFFD, which would hide that the
	// original bytes were lost.
	return strings.ReplaceAll(q, "\uFFFD", `\ufffd`)
}

func isPrintable(s string) bool {
	for _, r := range s {
		// An invalid byte decodes as RuneError too, so this also rejects
		// invalid UTF-8.
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
