//go:build unix

package restore

import (
	"os"
	"syscall"

	"github.com/litefleet/litefleet/dbfile"
)

// openByOther reports the id of a process that has the SQLite database at
// path open, as far as its locks show (dbfile owns the probe: it must never
// drop this process's own locks).
func openByOther(path string) (int, bool) { return dbfile.LockedByOther(path) }

// lockFile takes an exclusive flock on f without waiting. flock locks are
// apart from SQLite's POSIX locks, and die with their process.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
