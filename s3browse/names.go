package s3browse

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes is the longest tenant name this package accepts: most file
// systems refuse a longer file name, and a tenant name becomes one on restore.
const MaxNameBytes = 255

// Prefix is one tenant prefix found under Conn.TenantsPrefix.
//
// Name is exactly what S3 returned and is untrusted: print it with Display,
// and use it as a path or key only when Valid is true.
type Prefix struct {
	Name    string `json:"name"`
	Valid   bool   `json:"valid"`
	Problem string `json:"problem,omitempty"` // why Valid is false
}

// Display returns the name in a form safe to print on a terminal: the name
// itself when every character is printable, otherwise a Go-quoted string
// with the offending bytes escaped.
func (p Prefix) Display() string { return Printable(p.Name) }

func newPrefix(name string) Prefix {
	problem := nameProblem(name)
	return Prefix{Name: name, Valid: problem == "", Problem: problem}
}

// ErrInvalidName is wrapped by the errors of CheckName, so callers can tell
// a refused name from an S3 failure.
var ErrInvalidName = errors.New("invalid tenant name")

// CheckName returns an error saying what is wrong when name cannot be used
// as a tenant prefix (see Prefix), or nil. It checks safety, not the
// fleet's naming rules: those live in package fleet.
func CheckName(name string) error {
	if problem := nameProblem(name); problem != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidName, Printable(name), problem)
	}
	return nil
}

// nameProblem describes the first reason name is unsafe as a key segment, a
// file name or terminal output, or returns "".
func nameProblem(name string) string {
	switch {
	case name == "":
		return "empty name"
	case len(name) > MaxNameBytes:
		return fmt.Sprintf("%d bytes long, more than %d", len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		return "not valid UTF-8"
	case name == "." || name == "..":
		return "a relative folder name"
	}
	for _, r := range name {
		switch {
		case r == 0x1b:
			return "contains ESC, the start of a terminal escape sequence"
		case r == utf8.RuneError:
			// Servers put U+FFFD where a key holds bytes XML cannot carry.
			return "contains U+FFFD, a stand-in for bytes the server could not send"
		case r == '/' || r == '\\':
			return fmt.Sprintf("contains the path separator %q", r)
		case unicode.IsControl(r):
			return fmt.Sprintf("contains the control character %U", r)
		case !unicode.IsPrint(r):
			// Format characters such as U+202E reorder what the terminal shows.
			return fmt.Sprintf("contains the non-printable character %U", r)
		}
	}
	return ""
}

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
