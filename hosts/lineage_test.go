package hosts

import (
	"testing"
	"time"
)

// TestLineageStray: a file is stray when a later generation continued the
// history from a TXID below the file's last; files without a generation,
// of the newest generation, or within a later segment's takeover point
// belong to the lineage.
func TestLineageStray(t *testing.T) {
	var rec *Lineage
	rec = rec.Next("a", 1, 0, time.Now()) // generation 1 from TXID 0
	rec = rec.Next("b", 2, 10, time.Now())
	rec = rec.Next("c", 3, 40, time.Now())
	for _, tc := range []struct {
		gen   int64
		max   uint64
		stray bool
		by    int64
	}{
		{gen: 0, max: 100},                    // no metadata: Litestream's, or older litefleet's
		{gen: 1, max: 10},                     // a's history up to b's takeover point
		{gen: 1, max: 11, stray: true, by: 2}, // a's late file after b took over
		{gen: 2, max: 40},                     // b's up to c's takeover point
		{gen: 2, max: 41, stray: true, by: 3}, // b's late file after c took over
		{gen: 1, max: 30, stray: true, by: 2}, // within b's segment: stray by b's point
		{gen: 3, max: 1000},                   // the holder's own
		{gen: 4, max: 1000},                   // a newer holder than the record read
		{gen: -1, max: 1000},                  // junk metadata counts as none
	} {
		seg, stray := rec.Stray(tc.gen, tc.max)
		if stray != tc.stray || (stray && seg.Generation != tc.by) {
			t.Errorf("generation %d up to TXID %d: stray %v (by %d), want %v (by %d)", tc.gen, tc.max, stray, seg.Generation, tc.stray, tc.by)
		}
	}
	if above, ok := rec.MaySeeStrays(); !ok || above != 10 {
		t.Errorf("MaySeeStrays = %d, %v; want 10, true", above, ok)
	}
	if _, ok := (&Lineage{Segments: rec.Segments[:1]}).MaySeeStrays(); ok {
		t.Error("a record of one segment can make files stray")
	}
	if c := rec.Current(); c.Generation != 3 || c.Host != "c" || c.Since != 40 {
		t.Errorf("current segment %+v, want generation 3 of c from 40", c)
	}
}

// TestLineageKeepsItsNewestSegments: the record is bounded, and keeps
// counting generations past what it dropped.
func TestLineageKeepsItsNewestSegments(t *testing.T) {
	var rec *Lineage
	for i := range maxSegments + 10 {
		rec = rec.Next("h", int64(i+1), uint64(i), time.Now())
	}
	if len(rec.Segments) != maxSegments || rec.Current().Generation != maxSegments+10 || rec.Segments[0].Generation != 11 {
		t.Fatalf("%d segments, generations %d to %d; want %d, 11 to %d", len(rec.Segments), rec.Segments[0].Generation, rec.Current().Generation, maxSegments, maxSegments+10)
	}
}

func TestGenerationFromMetadata(t *testing.T) {
	for meta, want := range map[string]int64{"7": 7, "": 0, "0": 0, "-3": 0, "x": 0, "99999999999999999999": 0} {
		if got := Generation(map[string]string{MetaGeneration: meta}); got != want {
			t.Errorf("Generation(%q) = %d, want %d", meta, got, want)
		}
	}
}
