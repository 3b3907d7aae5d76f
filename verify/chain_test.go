package verify

import (
	"strings"
	"testing"

	"github.com/litefleet/litefleet/s3browse"
)

// TestReach: restore points follow Litestream's planner: a snapshot, then
// files that continue what is reached, overlapping it or not; a gap stops
// them, and a latest beyond it is a broken chain.
func TestReach(t *testing.T) {
	file := func(level int, min, max uint64) *fileCheck {
		return &fileCheck{LTXFile: s3browse.LTXFile{Level: level, MinTXID: min, MaxTXID: max}, ok: true}
	}
	for _, tc := range []struct {
		name   string
		files  []*fileCheck
		ends   []uint64
		broken string
	}{
		{"snapshot and level 0", []*fileCheck{file(9, 1, 5), file(0, 6, 6), file(0, 7, 9)}, []uint64{5, 6, 9}, ""},
		{"compaction overlapping the snapshot", []*fileCheck{file(9, 1, 5), file(1, 3, 8), file(0, 9, 9)}, []uint64{5, 8, 9}, ""},
		{"a gap", []*fileCheck{file(0, 1, 1), file(0, 2, 2), file(0, 4, 4)}, []uint64{1, 2}, "the latest TXID 0000000000000004 cannot be reached from a snapshot: the chain ends at 0000000000000002"},
		{"no snapshot", []*fileCheck{file(0, 3, 3), file(0, 4, 4)}, nil, "no snapshot to start from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &chain{ends: map[uint64]bool{}}
			c.reach(tc.files)
			for _, e := range tc.ends {
				if !c.ends[e] {
					t.Errorf("TXID %d is not a restore point: %v", e, c.ends)
				}
			}
			if len(c.ends) != len(tc.ends) {
				t.Errorf("restore points %v, want %v", c.ends, tc.ends)
			}
			got := strings.Join(c.broken, "; ")
			if (tc.broken == "") != (got == "") || !strings.Contains(got, tc.broken) {
				t.Errorf("broken %q, want %q", got, tc.broken)
			}
		})
	}
}
