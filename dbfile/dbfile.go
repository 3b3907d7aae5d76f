// Package dbfile owns every descriptor this process opens on an SQLite
// database file outside SQLite.
//
// POSIX advisory locks belong to the process, not to the descriptor: a
// close() of any descriptor of a file drops every lock the process holds on
// it, those of SQLite connections opened elsewhere in the same process
// included. SQLite's unix VFS protects only the descriptors it opened
// itself (it defers their close while a lock is held). A replicator that
// drops its own shared lock lets the application's last connection believe
// it is alone: that connection checkpoints and deletes the WAL under
// Litestream. So in litefleet nothing opens a database file with os.Open;
// it asks this package, which keeps one descriptor per file (by device and
// inode) for as long as any SQLite connection of the process may be open on
// it, and closes descriptors only when none can be.
//
// The rule for callers: Acquire before opening an SQLite connection to a
// database and Release after closing the last one; read the file only
// through Read (with ReadAt: the descriptor is shared); probe other
// processes' locks only through LockedByOther. Litestream's own descriptor
// (DB.f) is closed by Litestream after its connection: a Litestream DB
// must therefore be the last connection of the process to close.
package dbfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
)

// fileKey names a file whatever path reaches it.
type fileKey struct{ dev, ino uint64 }

// entry is one database file this process reads or holds connections to.
type entry struct {
	f     *os.File    // the descriptor reads go through
	fi    fs.FileInfo // as of when it was opened; Read stats again
	spare []*os.File  // further descriptors of the same file, closed with f
	holds int         // Acquire calls not yet released
	reads int         // Read calls in progress
}

var (
	// mu guards files, and is held across every close of a descriptor it
	// owns: a close happens only when no hold exists, and no hold can start
	// (and no SQLite connection open after it) until the close is done.
	mu    sync.Mutex
	files = map[fileKey]*entry{}
)

// ErrNotRegular is returned for a path that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Hold is the process's promise that it may have SQLite connections open on
// one database file.
type Hold struct {
	key  fileKey
	once sync.Once
}

// Acquire registers that this process is about to open SQLite connections
// on the database at path. Call Release after the last of them closed.
func Acquire(path string) (*Hold, error) {
	k, e, err := open(path)
	if err != nil {
		return nil, err
	}
	e.holds++
	mu.Unlock()
	return &Hold{key: k}, nil
}

// Release ends the hold; the descriptor is closed once no hold and no read
// is left.
func (h *Hold) Release() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		mu.Lock()
		defer mu.Unlock()
		if e := files[h.key]; e != nil {
			e.holds--
			closeIfUnusedLocked(h.key, e)
		}
	})
}

// Read calls fn with a descriptor of the database file at path and what
// fstat says of it now. fn must read with ReadAt (or io.NewSectionReader):
// the descriptor may be shared with concurrent readers; it must not close
// it. A path that is not a regular file (a folder, a FIFO, a device) is
// refused with ErrNotRegular before it is read.
func Read(path string, fn func(f *os.File, fi fs.FileInfo) error) error {
	k, e, err := open(path)
	if err != nil {
		return err
	}
	e.reads++
	mu.Unlock()
	defer func() {
		mu.Lock()
		e.reads--
		closeIfUnusedLocked(k, e)
		mu.Unlock()
	}()
	fi, err := e.f.Stat()
	if err != nil {
		return err
	}
	return fn(e.f, fi)
}

// Held reports whether this process holds (or is about to hold) SQLite
// connections on the file at path.
func Held(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	k, ok := keyOf(fi)
	if !ok {
		return false
	}
	mu.Lock()
	defer mu.Unlock()
	e := files[k]
	return e != nil && e.holds > 0
}

// open returns the entry of the file at path with mu held, opening a
// descriptor when the file has none yet. The descriptor is opened before
// the file is known, and a file that turns out to have an entry keeps it
// as a spare: closing it could drop that entry's locks.
func open(path string) (fileKey, *entry, error) {
	// O_NONBLOCK: a FIFO named like a database opens at once (and is then
	// refused) instead of blocking.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fileKey{}, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close() // nothing of this process can be known to hold it yet
		return fileKey{}, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	k, ok := keyOf(fi)
	mu.Lock()
	e := files[k]
	if !fi.Mode().IsRegular() || !ok {
		// No SQLite connection of this process opens a folder, a FIFO
		// or a device; a file that has an entry keeps the descriptor.
		if e != nil {
			e.spare = append(e.spare, f)
		} else {
			f.Close()
		}
		mu.Unlock()
		return fileKey{}, nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, fi.Mode().Type())
	}
	if e == nil {
		e = &entry{f: f, fi: fi}
		files[k] = e
	} else {
		e.spare = append(e.spare, f)
	}
	return k, e, nil
}

func closeIfUnusedLocked(k fileKey, e *entry) {
	if e.holds > 0 || e.reads > 0 || files[k] != e {
		return
	}
	delete(files, k)
	e.f.Close()
	for _, f := range e.spare {
		f.Close()
	}
}

func keyOf(fi fs.FileInfo) (fileKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, false
	}
	return fileKey{dev: uint64(st.Dev), ino: st.Ino}, true
}

// open files, for tests: how many files have an entry.
func openFiles() int {
	mu.Lock()
	defer mu.Unlock()
	return len(files)
}
