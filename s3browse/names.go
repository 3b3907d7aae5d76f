package s3browse

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/litefleet/litefleet/untrusted"
)

// MaxNameBytes is the longest tenant name this package accepts: most file
// systems refuse a longer file name, and a tenant name becomes one on restore.
const MaxNameBytes = 255

// Prefix is one tenant prefix found under s3conn.Conn.TenantsPrefix.
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
func (p Prefix) Display() string { return untrusted.Printable(p.Name) }

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
		return fmt.Errorf("%w %s: %s", ErrInvalidName, untrusted.Printable(name), problem)
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
