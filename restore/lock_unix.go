//go:build unix

package restore

import (
	"os"
	"syscall"
)

// openByOther reports the id of another process that has the SQLite
// database at path open, as far as its locks show. A connection to a
// WAL-mode database (every database Litestream replicates) holds a read
// lock on the "dead man switch" byte of the -shm file for as long as it is
// open; a rollback-journal database is locked only during a transaction,
// on the pending/reserved/shared bytes of the file itself. Locks held by
// this process do not show: use Options.IsReplicating for those.
func openByOther(path string) (int, bool) {
	const (
		shmDMS      = 128        // UNIX_SHM_DMS in SQLite's os_unix.c
		pendingByte = 0x40000000 // PENDING_BYTE; RESERVED and SHARED follow
		sharedSize  = 510
	)
	if pid, ok := lockHolder(path+"-shm", shmDMS, 1); ok {
		return pid, true
	}
	return lockHolder(path, pendingByte, 2+sharedSize)
}

func lockHolder(path string, start, length int64) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: start, Len: length}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK {
		return 0, false
	}
	return int(lk.Pid), true
}

// lockFile takes an exclusive flock on f without waiting. flock locks are
// apart from SQLite's POSIX locks, and die with their process.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
