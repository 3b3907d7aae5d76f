package policy

import (
	"fmt"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/untrusted"
)

// Confinable checks that every database can be given a policy of its own:
// a name with no naming finding (fleet.EntryFinding, the rule validate
// applies), so not invalid, not the "default" fallback and not sharing a
// prefix with another entry (entries are marked in place). It fails on the
// first that cannot, counting the others. lines and file, when given, say
// where in a config file each entry was declared.
func Confinable(entries []fleet.Entry, lines []int, file string) error {
	fleet.MarkCollisions(entries)
	first, bad := -1, 0
	for i, e := range entries {
		if fleet.EntryFinding(e) == "" {
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
	if fleet.EntryFinding(e) == fleet.FindingFallback {
		msg = fmt.Sprintf("%s: no tenant name (%s): no policy written", where, e.Note)
	}
	if bad > 1 {
		msg += fmt.Sprintf(" (and %d more: litefleet validate lists them)", bad-1)
	}
	return fmt.Errorf("%s", msg)
}
