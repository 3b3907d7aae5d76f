package replication

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/litefleet/litefleet/dbfile"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// fileID is what stat says of one file: enough to notice that it was
// written (size, mtime) or replaced (device, inode).
type fileID struct {
	exists bool
	dev    uint64
	ino    uint64
	size   int64
	mtime  time.Time
	mode   os.FileMode
}

// identity is a database and its WAL.
type identity struct {
	db, wal fileID
}

func statID(path string) (fileID, error) {
	// unix.Stat, not os.Stat: the sweep stats every tenant's two files
	// every 10 s, and os.Stat allocates a FileInfo each time, and an error
	// for each missing WAL (most tenants sleep without one).
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	for err == unix.EINTR {
		err = unix.Stat(path, &st)
	}
	switch {
	case err == unix.ENOENT:
		return fileID{}, nil
	case err != nil:
		return fileID{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	// mode is compared, never shown: the raw bits tell a chmod as well.
	return fileID{exists: true, size: st.Size, mtime: time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)), mode: os.FileMode(st.Mode),
		dev: uint64(st.Dev), ino: st.Ino}, nil
}

func statIdentity(path string) (identity, error) {
	db, err := statID(path)
	if err != nil {
		return identity{}, err
	}
	wal, err := statID(path + "-wal")
	if err != nil {
		return identity{}, err
	}
	return identity{db: db, wal: wal}, nil
}

// sameFile: the same inode at the path.
func (a fileID) sameFile(b fileID) bool {
	return a.exists == b.exists && a.dev == b.dev && a.ino == b.ino
}

// replaced reports that the database at the path is no longer the file it
// was: deleted, re-created, renamed over, or truncated below a header.
func (a identity) replaced(b identity) bool {
	return !a.db.sameFile(b.db) || (b.db.exists && b.db.size < a.db.size && b.db.size < 100)
}

// written reports any change to the database or its WAL.
func (a identity) written(b identity) bool {
	return a.replaced(b) || a.db.size != b.db.size || !a.db.mtime.Equal(b.db.mtime) || a.db.mode != b.db.mode ||
		a.wal.exists != b.wal.exists || a.wal.ino != b.wal.ino || a.wal.size != b.wal.size || !a.wal.mtime.Equal(b.wal.mtime)
}

// changedAt is the latest mtime of the database and its WAL.
func (a identity) changedAt() time.Time {
	if a.wal.exists && a.wal.mtime.After(a.db.mtime) {
		return a.wal.mtime
	}
	return a.db.mtime
}

// checkDatabase refuses, with the reason an operator can act on, a file
// that cannot be replicated: not a regular file, not SQLite, or a file or
// folder this process may not write (Litestream writes the WAL, the shm
// and its own state beside the database).
func checkDatabase(path string) (journal string, err error) {
	lst, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", untrusted.Printable(path), err)
	}
	if lst.Mode()&os.ModeSymlink != 0 {
		// SQLite resolves the link and keeps the -wal and -shm beside the
		// file it points to, where Litestream, given the link, would not
		// look.
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "", fmt.Errorf("%s is a symbolic link to a file that cannot be reached: give the database's real path", untrusted.Printable(path))
		}
		return "", fmt.Errorf("%s is a symbolic link to %s: SQLite keeps the -wal beside %s, where Litestream would not look: give that path (-dsn, or -dir its folder)", untrusted.Printable(path), untrusted.Printable(real), untrusted.Printable(filepath.Base(real)))
	}
	// Through dbfile: the engine may hold connections to the file (a
	// restart check of a tenant the process already has open).
	err = dbfile.Read(path, func(f *os.File, st os.FileInfo) error {
		if st.Size() == 0 {
			return fmt.Errorf("%s is empty (0 bytes), not an SQLite database yet: it replicates once the application has written it (litefleet never turns an empty file into a database)", untrusted.Printable(path))
		}
		head := make([]byte, tenants.HeaderBytes)
		n, _ := f.ReadAt(head, 0)
		var herr error
		if journal, herr = tenants.HeaderJournal(head[:n]); herr != nil {
			return fmt.Errorf("%s is not an SQLite database (its first bytes are not SQLite's header): give a database file", untrusted.Printable(path))
		}
		return nil
	})
	switch {
	case errors.Is(err, dbfile.ErrNotRegular):
		kind := "not a regular file"
		if fi, serr := os.Stat(path); serr == nil {
			switch {
			case fi.IsDir():
				kind = "a folder"
			case fi.Mode()&os.ModeNamedPipe != 0:
				kind = "a named pipe (FIFO)"
			case fi.Mode()&os.ModeDevice != 0:
				kind = "a device"
			case fi.Mode()&os.ModeSocket != 0:
				kind = "a socket"
			}
		}
		return "", fmt.Errorf("%s is %s, not a database file: rename it or move it out of the folder", untrusted.Printable(path), kind)
	case errors.Is(err, os.ErrPermission):
		return "", fmt.Errorf("cannot read %s: permission denied: give this user read and write access", untrusted.Printable(path))
	case err != nil && errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("open %s: %w", untrusted.Printable(path), err)
	case err != nil:
		return "", err
	}
	if unix.Access(path, unix.W_OK) != nil {
		return "", fmt.Errorf("%s is read-only for this user: Litestream must write it (WAL mode, its bookkeeping tables)", untrusted.Printable(path))
	}
	if dir := filepath.Dir(path); unix.Access(dir, unix.W_OK|unix.X_OK) != nil {
		return "", fmt.Errorf("folder %s is read-only for this user: SQLite and Litestream create files beside the database (-wal, -shm, .%s-litestream)", untrusted.Printable(dir), filepath.Base(path))
	}
	return journal, nil
}

// metaDir is Litestream's local state folder of a database, located by
// its one owner (layout.LitestreamStateDir).
func metaDir(path string) string { return layout.LitestreamStateDir(path) }
