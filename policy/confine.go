package policy

import (
	"fmt"

	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// Confinable checks that every database can be given a policy of its own:
// a name with no naming finding (tenants.EntryFinding, the rule validate
// applies), so not invalid, not the "default" fallback and not sharing a
// prefix with another entry (entries are marked in place). It fails on the
// first that cannot, counting the others. lines and file, when given, say
// where in a config file each entry was declared.
func Confinable(entries []tenants.Entry, lines []int, file string) error {
	tenants.MarkCollisions(entries)
	first, bad := -1, 0
	for i, e := range entries {
		if tenants.EntryFinding(e) == "" {
			continue
		}
		if first < 0 {
			first = i
		}
		bad++
	}
	if first < 0 {
		return nil
	}
	e := entries[first]
	where := untrusted.Printable(e.Path)
	if file != "" && first < len(lines) && lines[first] > 0 {
		where = fmt.Sprintf("%s: line %d: %s", file, lines[first], where)
	}
	msg := fmt.Sprintf("%s: %s: no policy written", where, e.Note)
	if tenants.EntryFinding(e) == tenants.FindingFallback {
		msg = fmt.Sprintf("%s: no tenant name (%s): no policy written", where, e.Note)
	}
	if bad > 1 {
		msg += fmt.Sprintf(" (and %d more: litefleet validate lists them)", bad-1)
	}
	return fmt.Errorf("%s", msg)
}
