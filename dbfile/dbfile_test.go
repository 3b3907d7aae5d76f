package dbfile

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/internal/testpeer"
)

func TestMain(m *testing.M) {
	testpeer.AppMain()
	os.Exit(m.Run())
}

// readTx opens a connection to path holding a read transaction, as
// Litestream's does: in WAL mode it holds a shared lock on the file.
func readTx(t *testing.T, path string) func() {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `CREATE TABLE IF NOT EXISTS x (a); BEGIN; SELECT count(*) FROM x`); err != nil {
		t.Fatal(err)
	}
	return func() {
		conn.ExecContext(context.Background(), `ROLLBACK`)
		conn.Close()
		db.Close()
	}
}

// TestReadKeepsTheProcessLocks: reads of a file this process holds SQLite
// connections to leave their locks in place; a plain open and close of the
// same file drops them (which is what the package exists to prevent, and
// what shows that the check can see it).
func TestReadKeepsTheProcessLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	h, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	hold, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	done := readTx(t, path)
	if !testpeer.HoldsLock(t, os.Getpid(), path) {
		t.Fatal("a connection in a read transaction holds no lock on the file")
	}
	for range 10 {
		err := Read(path, func(f *os.File, fi os.FileInfo) error {
			var b [100]byte
			_, err := f.ReadAt(b[:], 0)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := LockedByOther(path); !ok {
		t.Fatal("LockedByOther does not see this process's own connection")
	}
	if !testpeer.HoldsLock(t, os.Getpid(), path) {
		t.Fatal("reading through dbfile dropped the connection's lock")
	}

	// The hazard itself.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if testpeer.HoldsLock(t, os.Getpid(), path) {
		t.Fatal("closing a descriptor kept the lock: the check cannot see the bug it guards against")
	}
	done()
	hold.Release()
	hold.Release() // twice is once
	if n := openFiles(); n != 0 {
		t.Fatalf("%d files still open after the last hold and read", n)
	}
}

// TestHeldAcrossPaths: a hold is of the file, whatever path reaches it.
func TestHeldAcrossPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	h, err := Acquire(link)
	if err != nil {
		t.Fatal(err)
	}
	if !Held(path) {
		t.Fatal("a hold taken through a link is not seen through the file's path")
	}
	h.Release()
	if Held(path) {
		t.Fatal("held after release")
	}
}

func TestReadRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.db")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "folder.db")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, sub} {
		err := Read(p, func(*os.File, os.FileInfo) error { t.Fatalf("read %s", p); return nil })
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: %v, want ErrNotRegular", filepath.Base(p), err)
		}
		if _, err := Acquire(p); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Acquire %s: %v, want ErrNotRegular", filepath.Base(p), err)
		}
	}
	if n := openFiles(); n != 0 {
		t.Fatalf("%d files left open", n)
	}
}

// TestLockedByOther sees another process's connection, and nothing once it
// closed.
func TestLockedByOther(t *testing.T) {
	testpeer.Integration(t)
	path := filepath.Join(t.TempDir(), "a.db")
	app := testpeer.StartApp(t, path)
	app.Do("open")
	app.Do("exec PRAGMA journal_mode=wal")
	app.Do("exec CREATE TABLE t (id INTEGER PRIMARY KEY, val BLOB)")
	pid, ok := LockedByOther(path)
	if !ok || pid != app.Pid() {
		t.Fatalf("LockedByOther = %d, %v; want the application's %d", pid, ok, app.Pid())
	}
	app.Do("close")
	if pid, ok := LockedByOther(path); ok {
		t.Fatalf("LockedByOther = %d after the application closed", pid)
	}
}
