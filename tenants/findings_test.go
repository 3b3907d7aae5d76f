package tenants

import (
	"testing"
)

// TestEntryFindingBlocks: the validate command counts as problems exactly
// the local findings the UI lists as invalid or collision; a fallback
// name is listed and still replicates.
func TestEntryFindingBlocks(t *testing.T) {
	for v, want := range map[Verdict]string{
		VerdictInvalid: FindingInvalid, VerdictCollision: FindingCollision, VerdictFallback: FindingFallback,
		VerdictGUID: "", VerdictExplicit: "",
	} {
		got := EntryFinding(Entry{Naming: Naming{Verdict: v}})
		if got != want {
			t.Errorf("%s: %q, want %q", v, got, want)
		}
		if Blocks(got) != (v == VerdictInvalid || v == VerdictCollision) {
			t.Errorf("%s: Blocks = %v", v, Blocks(got))
		}
	}
}
