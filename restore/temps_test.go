package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStaleTempsCleanedLiveKept: a restore's temporaries are removed by the
// next restore into the folder once no process holds their lock, and
// never while one does.
func TestStaleTempsCleanedLiveKept(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.db")
	tmp, unlock, err := claimTemp(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, suf := range []string{"", "-wal", "-shm"} {
		if err := os.WriteFile(tmp+suf, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A second restore into the same folder while the first runs.
	other, unlockOther, err := claimTemp(filepath.Join(dir, "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	unlockOther()
	_ = other
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("a live restore's temporary was removed: %v", err)
	}
	// The first one dies without cleaning up: its lock dies with it (here:
	// the descriptor closes, the lock file stays).
	orphan := tmp + ".lock"
	unlockKeepFile(t, unlock, orphan)
	// A temporary of an older version, with no lock file at all.
	old := filepath.Join(dir, ".z.db.restore-0123456789ab.tmp")
	if err := os.WriteFile(old, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, unlock3, err := claimTemp(out); err != nil {
		t.Fatal(err)
	} else {
		unlock3()
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".restore-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// unlockKeepFile releases a claim as a killed process would: the lock goes
// with the descriptor, the lock file stays.
func unlockKeepFile(t *testing.T, unlock func(), lock string) {
	t.Helper()
	b, err := os.ReadFile(lock)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := os.WriteFile(lock, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
