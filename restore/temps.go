package restore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/litefleet/litefleet/untrusted"
)

// A restore writes into temporary files beside its output and renames the
// checked database into place. A restore killed with SIGKILL leaves them
// behind, so the next restore into the folder removes them, and must never
// remove those of a restore still running, in this process or another:
// restore -all runs many in one folder at once.
//
// Ownership works so. Every temporary of a restore (TMP, its -wal, -shm,
// -journal, and the TMP.tmp of Litestream's v0.3 restore) belongs to its
// lock file TMP.lock, held with flock for as long as the restore runs; the
// restore removes its temporaries before it removes and unlocks TMP.lock.
// A lock file cannot be created and locked in one step, so it is created
// and locked while its restore holds the folder's own lock (a flock on the
// folder), and stale temporaries are removed only under that same lock:
// no cleanup ever sees a lock file that exists but is not locked yet. What
// a cleanup finds is therefore a lock file held by a live restore (kept),
// one whose holder died (removed, with its temporaries), or temporaries
// with no lock file at all (an older version's, removed).

// tempName matches the files of a restore's temporary TMP: the first group
// is TMP, the second what follows it.
var tempName = regexp.MustCompile(`^(\..+\.restore-[0-9a-f]{12}\.tmp)(.*)$`)

// tempSuffixes are what a restore makes beside its temporary TMP: SQLite's
// -wal, -shm and -journal, and the .tmp (with its own) that Litestream's
// v0.3 restore writes and renames to TMP.
var tempSuffixes = []string{"", "-wal", "-shm", "-journal", ".tmp", ".tmp-wal", ".tmp-shm", ".tmp-journal"}

// tempPath returns a new name beside out for the file being restored. It
// is hidden and ends in .tmp, so that discovery never takes it for a
// database.
func tempPath(out string) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".restore-"+hex.EncodeToString(b[:])+".tmp"), nil
}

// claimTemp names the temporary file of a restore into out and owns it
// before it exists: TMP.lock is created and flocked under the folder's
// lock, after stale temporaries of earlier restores are removed. release
// removes every temporary, then the lock file, then lets the lock go.
// It waits for the folder's lock as long as ctx allows.
func claimTemp(ctx context.Context, out string) (tmp string, release func(), err error) {
	dir := filepath.Dir(out)
	unlockDir, err := lockFolder(ctx, dir)
	if errors.Is(err, errNoFolderLock) {
		// Nobody can clean this folder safely: stale temporaries stay for
		// the operator, and a new lock file is never mistaken for one.
		unlockDir = func() {}
	} else if err != nil {
		return "", nil, fmt.Errorf("lock folder %s for a temporary file: %w", untrusted.Printable(dir), err)
	} else {
		cleanStaleTemps(dir)
	}
	defer unlockDir()

	tmp, err = tempPath(out)
	if err != nil {
		return "", nil, err
	}
	f, err := os.OpenFile(tmp+".lock", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("lock the temporary file beside %s: %w", untrusted.Printable(out), err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		os.Remove(tmp + ".lock")
		return "", nil, fmt.Errorf("lock the temporary file beside %s: %w", untrusted.Printable(out), err)
	}
	return tmp, func() {
		// Temporaries first: a cleanup that takes the lock once it is let
		// go finds nothing of this restore left to remove.
		removeTemps(tmp)
		os.Remove(tmp + ".lock")
		f.Close()
	}, nil
}

// cleanStaleTemps removes the temporaries of earlier restores into dir that
// no live restore owns: those of a lock file nobody holds, and those with
// no lock file at all. The caller holds dir's folder lock, so no lock file
// appears meanwhile and every lock file found is already locked by its
// restore if that restore is alive.
func cleanStaleTemps(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var locks []string
	orphans := map[string]bool{}
	for _, e := range ents {
		m := tempName.FindStringSubmatch(e.Name())
		switch {
		case m == nil:
		case m[2] == ".lock":
			locks = append(locks, m[1])
		case slices.Contains(tempSuffixes, m[2]):
			orphans[m[1]] = true
		}
	}
	for _, stem := range locks {
		delete(orphans, stem)
		tmp := filepath.Join(dir, stem)
		if lockAbandoned(tmp + ".lock") {
			removeTemps(tmp)
			os.Remove(tmp + ".lock")
		}
	}
	for stem := range orphans {
		tmp := filepath.Join(dir, stem)
		// A listing read while a restore finished may show its temporary
		// and not its lock file (removed last); such a restore has removed
		// its temporaries already. Lock files are only made under the
		// folder lock, so one missing now stays missing.
		if _, err := os.Lstat(tmp + ".lock"); errors.Is(err, os.ErrNotExist) {
			removeTemps(tmp)
		}
	}
}

// lockAbandoned reports whether no live restore holds the lock file at
// path: its lock could be taken, and it is still the file at path (not one
// its restore removed meanwhile, on finishing). Anything unclear is
// "held": a cleanup removes nothing it is unsure of.
func lockAbandoned(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if lockFile(f) != nil {
		return false
	}
	held, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Lstat(path)
	return err == nil && os.SameFile(held, now)
}

// removeTemps removes a temporary restore file and everything that may have
// been made beside it (tempSuffixes).
func removeTemps(tmp string) {
	for _, suf := range tempSuffixes {
		_ = os.Remove(tmp + suf)
	}
}
