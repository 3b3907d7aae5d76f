//go:build unix

package dbfile

import (
	"os"
	"syscall"
)

// LockedByOther reports whether a process has the SQLite database at path
// open, as far as its locks show, and the id of that process (this
// process's own id when it holds connections to the file: its locks never
// show to itself). A connection to a WAL-mode database holds a read lock on
// the "dead man switch" byte of the -shm file for as long as it is open; a
// rollback-journal database is locked only during a transaction, on the
// pending, reserved and shared bytes of the file itself.
//
// The probe opens the -shm file: closing that descriptor would drop this
// process's own locks on it, so it runs only while this process holds no
// connection to the database, with mu held so that none can start.
func LockedByOther(path string) (int, bool) {
	const (
		shmDMS      = 128        // UNIX_SHM_DMS in SQLite's os_unix.c
		pendingByte = 0x40000000 // PENDING_BYTE; RESERVED and SHARED follow
		sharedSize  = 510
	)
	fi, statErr := os.Stat(path)
	mu.Lock()
	defer mu.Unlock()
	if statErr == nil {
		if k, ok := keyOf(fi); ok {
			if e := files[k]; e != nil && e.holds > 0 {
				return os.Getpid(), true
			}
		}
	}
	if pid, ok := lockHolder(path+"-shm", shmDMS, 1); ok {
		return pid, true
	}
	return lockHolder(path, pendingByte, 2+sharedSize)
}

// lockHolder asks F_GETLK who holds a lock on the bytes; mu is held.
func lockHolder(path string, start, length int64) (int, bool) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
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
