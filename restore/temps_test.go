package restore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestStaleTempsCleanedLiveKept: a restore's temporaries are removed by the
// next restore into the folder once no process holds their lock, and
// never while one does.
func TestStaleTempsCleanedLiveKept(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.db")
	tmp, unlock, err := claimTemp(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	for _, suf := range []string{"", "-wal", "-shm"} {
		if err := os.WriteFile(tmp+suf, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A second restore into the same folder while the first runs.
	other, unlockOther, err := claimTemp(context.Background(), filepath.Join(dir, "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	unlockOther()
	_ = other
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("a live restore's temporary was removed: %v", err)
	}
	// The first one dies without cleaning up: its lock dies with it (here:
	// the lock is let go and its files are put back).
	orphan := tmp + ".lock"
	unlockKeepFile(t, unlock, orphan)
	// A temporary of an older version, with no lock file at all.
	old := filepath.Join(dir, ".z.db.restore-0123456789ab.tmp")
	if err := os.WriteFile(old, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, unlock3, err := claimTemp(context.Background(), out); err != nil {
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
// with the descriptor, the files stay.
func unlockKeepFile(t *testing.T, release func(), lock string) {
	t.Helper()
	tmp := strings.TrimSuffix(lock, ".lock")
	kept := map[string][]byte{}
	for _, suf := range append(tempSuffixes, ".lock") {
		if b, err := os.ReadFile(tmp + suf); err == nil {
			kept[tmp+suf] = b
		}
	}
	release()
	for name, b := range kept {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClaimTempParallelOwnsItsFiles: restores claiming temporaries in one
// folder at the same time (restore -all) never remove each other's files:
// each claim succeeds, and its temporary and lock file stay until it lets
// them go.
func TestClaimTempParallelOwnsItsFiles(t *testing.T) {
	dir := t.TempDir()
	const workers, rounds = 16, 150
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				out := filepath.Join(dir, fmt.Sprintf("w%02d-r%03d.db", w, r))
				tmp, release, err := claimTemp(context.Background(), out)
				if err != nil {
					fail("claim %s: %v", filepath.Base(out), err)
					continue
				}
				if err := os.WriteFile(tmp, []byte("page"), 0o600); err != nil {
					fail("write %s: %v", filepath.Base(tmp), err)
				}
				runtime.Gosched() // let the other claims' cleanups run
				for _, f := range []string{tmp, tmp + ".lock"} {
					if _, err := os.Stat(f); err != nil {
						fail("another restore removed %s: %v", filepath.Base(f), err)
					}
				}
				release()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failures of %d claims, first: %s", len(failures), workers*rounds, strings.Join(failures[:min(len(failures), 5)], "; "))
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Fatalf("left behind: %d files, first %s", len(ents), ents[0].Name())
	}
}

// TestCleanupKeepsEveryFileOfALiveRestore: another restore's cleanup leaves
// every file a running restore may have made beside its temporary, the
// v0.3 restorer's TMP.tmp included, and removes the same files once their
// restore is dead.
func TestCleanupKeepsEveryFileOfALiveRestore(t *testing.T) {
	dir := t.TempDir()
	tmp, release, err := claimTemp(context.Background(), filepath.Join(dir, "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, suf := range tempSuffixes {
		if err := os.WriteFile(tmp+suf, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, releaseOther, err := claimTemp(context.Background(), filepath.Join(dir, "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	releaseOther()
	for _, suf := range append(tempSuffixes, ".lock") {
		if _, err := os.Stat(tmp + suf); err != nil {
			t.Errorf("a live restore's %s was removed: %v", filepath.Base(tmp+suf), err)
		}
	}
	unlockKeepFile(t, release, tmp+".lock")
	_, releaseLast, err := claimTemp(context.Background(), filepath.Join(dir, "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	releaseLast()
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Fatalf("a dead restore's files were left: %d, first %s", len(ents), ents[0].Name())
	}
}

// TestCleanupLeavesOtherFiles: only names a restore makes are removed; a
// database, its backups and lookalikes with other suffixes stay.
func TestCleanupLeavesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"x.db", "x.db-wal", "x.db.bak-20261207T000000Z",
		".x.db.restore-0123456789ab.tmp.bak", ".x.db.restore-0123456789ab.tmpfile", ".x.db.restore-xyz.tmp"}
	for _, n := range keep {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, release, err := claimTemp(context.Background(), filepath.Join(dir, "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	release()
	var got []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(keep)
	if !slices.Equal(got, keep) {
		t.Fatalf("folder holds %q, want %q", got, keep)
	}
}
