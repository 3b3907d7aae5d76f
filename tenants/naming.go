// Package tenants is a tenant's name and its rules (the GUID, an explicit
// name, the fallback, collisions), the naming problems validate and the UI
// list, and the discovery of local databases with their Litestream
// positions and SQLite headers.
package tenants

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/untrusted"
)

// FallbackName is the tenant name used when a database file name is not a
// GUID and no explicit name was given (the seed's rule).
const FallbackName = "default"

// Verdict says how a tenant name was obtained, or why it cannot be used.
type Verdict string

const (
	VerdictGUID      Verdict = "guid"      // taken from the file name, format kept
	VerdictExplicit  Verdict = "explicit"  // given with -db-name or a config path
	VerdictFallback  Verdict = "fallback"  // neither: the seed's "default"
	VerdictInvalid   Verdict = "invalid"   // an explicit name that breaks the rules
	VerdictCollision Verdict = "collision" // shares a prefix with another database
)

// Usable reports whether a database with this verdict may be replicated.
func (v Verdict) Usable() bool {
	return v == VerdictGUID || v == VerdictExplicit || v == VerdictFallback
}

// Naming is the outcome of naming one database.
type Naming struct {
	Name    string  `json:"name"`
	Verdict Verdict `json:"verdict"`
	// Note explains a fallback, an invalid name or a collision; empty otherwise.
	Note string `json:"note,omitempty"`
}

var (
	guidShape     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	explicitShape = regexp.MustCompile(`^[a-z0-9_-][a-z0-9._-]{0,62}$`)
)

// dbSuffixes are the file extensions stripped before a file name is read as a GUID.
var dbSuffixes = []string{".sqlite3", ".sqlite", ".db"}

// IsGUID reports whether s is a GUID in the canonical 8-4-4-4-12 hex form.
// Braces, "urn:uuid:" and the 32-digit form are not accepted: a prefix in S3
// must have exactly one spelling.
func IsGUID(s string) bool {
	if !guidShape.MatchString(s) {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// ValidateName is the one check of a tenant name, whoever gives it (-db-name,
// a config path, a name typed by an operator, a prefix listed in S3): a
// GUID, or 1–63 characters of lower-case letters, digits, '.', '_' and '-',
// not starting with '.'. A name that passes is also safe as an S3 key
// segment, a file name and terminal output (s3browse.CheckName, whose
// reason it gives first for a name that is not). Its errors wrap
// s3browse.ErrInvalidName.
func ValidateName(name string) error {
	if name == "" {
		return nameError("tenant name is empty: give 1-63 characters of a-z, 0-9, '.', '_' or '-'")
	}
	if err := s3browse.CheckName(name); err != nil {
		return err
	}
	switch {
	case IsGUID(name):
		return nil
	case len(name) > 63:
		return nameError(fmt.Sprintf("tenant name %s is %d bytes long: the limit is 63", untrusted.Printable(Shorten(name, 40)), len(name)))
	case strings.HasPrefix(name, "."):
		return nameError(fmt.Sprintf("tenant name %s starts with '.': start with a letter, digit, '_' or '-'", untrusted.Printable(name)))
	case !explicitShape.MatchString(name):
		return nameError(fmt.Sprintf("tenant name %s has characters outside a-z, 0-9, '.', '_', '-'", untrusted.Printable(name)))
	}
	return nil
}

// nameError is a name that breaks the naming rules.
type nameError string

func (e nameError) Error() string { return string(e) }
func (e nameError) Unwrap() error { return s3browse.ErrInvalidName }

// NameFor names the database at path: the explicit name when one is given,
// else the GUID in the file name with its format kept, else "default".
func NameFor(path, explicit string) Naming {
	if explicit != "" {
		if err := ValidateName(explicit); err != nil {
			return Naming{Name: explicit, Verdict: VerdictInvalid, Note: err.Error()}
		}
		return Naming{Name: explicit, Verdict: VerdictExplicit}
	}
	stem := FileStem(path)
	if IsGUID(stem) {
		return Naming{Name: stem, Verdict: VerdictGUID}
	}
	note := fmt.Sprintf("file name %s is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): using %q; rename the file or pass -db-name", untrusted.Printable(filepath.Base(path)), FallbackName)
	if u, err := uuid.Parse(stem); err == nil {
		note = fmt.Sprintf("file name %s holds a GUID in another spelling: rename it to %s.db or pass -db-name %s; using %q meanwhile", untrusted.Printable(filepath.Base(path)), u.String(), u.String(), FallbackName)
	}
	return Naming{Name: FallbackName, Verdict: VerdictFallback, Note: note}
}

// FileStem is the base name of path without its database extension.
func FileStem(path string) string {
	base := filepath.Base(path)
	lower := strings.ToLower(base)
	for _, suf := range dbSuffixes {
		if strings.HasSuffix(lower, suf) && len(base) > len(suf) {
			return base[:len(base)-len(suf)]
		}
	}
	return base
}

// HasDBSuffix reports whether a file name ends in a database extension
// (.db, .sqlite, .sqlite3) that discovery looks for.
func HasDBSuffix(name string) bool {
	lower := strings.ToLower(name)
	for _, suf := range dbSuffixes {
		if strings.HasSuffix(lower, suf) && len(name) > len(suf) {
			return true
		}
	}
	return false
}

// RestoredMarker is in the name of a restored copy written beside a live
// database (NAME.restored-TIME.db, the terminal UI's default): a copy for
// the operator to look at, not a tenant to list or replicate.
const RestoredMarker = ".restored-"

// IsRestoredCopy reports whether a file name is a restored copy.
func IsRestoredCopy(name string) bool { return strings.Contains(name, RestoredMarker) }

// Entry is one database with its name, as validate and discovery see it.
type Entry struct {
	Path string `json:"path"`
	Naming
}

// MarkCollisions marks every entry whose prefix is shared with another entry
// as a collision, naming the other paths in its note. Entries are changed in
// place; the number of colliding entries is returned.
func MarkCollisions(entries []Entry) int {
	byKey := map[string][]int{}
	for i, e := range entries {
		if e.Verdict == VerdictInvalid {
			continue
		}
		k := layout.PrefixKey(e.Name)
		byKey[k] = append(byKey[k], i)
	}
	n := 0
	for _, idx := range byKey {
		if len(idx) < 2 {
			continue
		}
		for _, i := range idx {
			var others []string
			for _, j := range idx {
				if j != i {
					others = append(others, untrusted.Printable(entries[j].Path))
				}
			}
			entries[i].Note = fmt.Sprintf("prefix %s is also claimed by %s: give each database its own -db-name", untrusted.Printable(entries[i].Name), strings.Join(others, ", "))
			entries[i].Verdict = VerdictCollision
			n++
		}
	}
	return n
}

// Shorten cuts s to at most n runes by taking runes out of its middle,
// marked with "…": both ends of a name are what tell names apart (the
// last 12 hex digits of a GUID, a "-restored" suffix), so neither is lost.
func Shorten(s string, n int) string {
	r := []rune(s)
	switch {
	case len(r) <= n:
		return s
	case n <= 0:
		return ""
	case n == 1:
		return "…"
	}
	// The head gets the odd rune: names are read from the left.
	tail := (n - 1) / 2
	head := n - 1 - tail
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}
