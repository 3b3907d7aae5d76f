package testpeer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the pure-Go driver Litestream uses
)

// OpenDB opens (creating) a database the way a tenant's application beside
// Litestream does: WAL mode, a busy timeout (the replicator takes locks
// of its own), one connection, and the table t (id, val) that the row
// helpers write and read.
func OpenDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, val BLOB NOT NULL)`); err != nil {
		tb.Fatalf("create table in %s: %v", path, err)
	}
	return db
}

// NewDB creates a database at path holding n rows, closed again.
func NewDB(tb testing.TB, path string, n int) {
	tb.Helper()
	db := OpenDB(tb, path)
	InsertRows(tb, db, 0, n)
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
}

// InsertRows commits n small rows with ids from..from+n-1, one transaction
// each, as an application's steady writes.
func InsertRows(tb testing.TB, db *sql.DB, from, n int) {
	tb.Helper()
	if err := insertRows(context.Background(), db, from, n); err != nil {
		tb.Fatal(err)
	}
}

func insertRows(ctx context.Context, db *sql.DB, from, n int) error {
	for i := from; i < from+n; i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO t (id, val) VALUES (?, ?)`, i, fmt.Sprintf("row-%d-%s", i, strings.Repeat("x", i%50))); err != nil {
			return fmt.Errorf("insert row %d: %w", i, err)
		}
	}
	return nil
}

// InsertBlobs commits n rows with ids from..from+n-1, each holding size
// random bytes, in one transaction.
func InsertBlobs(tb testing.TB, db *sql.DB, from, n, size int) {
	tb.Helper()
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		val := make([]byte, size)
		_, _ = rand.Read(val)
		if _, err := tx.Exec(`INSERT INTO t (id, val) VALUES (?, ?)`, i, val); err != nil {
			_ = tx.Rollback()
			tb.Fatalf("insert row %d: %v", i, err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// Writer commits one row at a time in the background, as a tenant's
// application does, until Stop.
type Writer struct {
	cancel context.CancelFunc
	done   chan struct{}
	next   atomic.Int64
	err    error
}

// WriterStopTimeout bounds how long Writer.Stop waits for the commit in
// flight: a commit that never returns (a lock held forever, a machine
// overloaded past any use) fails the test instead of hanging the suite.
const WriterStopTimeout = 2 * time.Minute

// StartWriter commits a row every interval (ids from from on) until Stop.
func StartWriter(db *sql.DB, from int, every time.Duration) *Writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{cancel: cancel, done: make(chan struct{})}
	w.next.Store(int64(from))
	go func() {
		defer close(w.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			// Not cancelled by Stop: a commit that returned an error
			// after it was made would go uncounted.
			if err := insertRows(context.Background(), db, int(w.next.Load()), 1); err != nil {
				w.err = err
				return
			}
			w.next.Add(1)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Next is the id the writer's next row will have: rows below it are
// committed.
func (w *Writer) Next() int { return int(w.next.Load()) }

// WaitCommitted waits until the writer has committed ids up to n (Next
// passes n), failing the test after timeout or if the writer failed.
func (w *Writer) WaitCommitted(tb testing.TB, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for w.Next() <= n {
		select {
		case <-w.done:
			tb.Fatalf("writer stopped at row %d before committing row %d: %v", w.Next(), n, w.err)
		case <-deadline.C:
			tb.Fatalf("writer: row %d not committed within %s (at row %d)", n, timeout, w.Next())
		case <-tick.C:
		}
	}
}

// Stop stops the writer and returns the id its next row would have had,
// failing the test if a commit failed, or if the commit in flight does not
// return within WriterStopTimeout.
func (w *Writer) Stop(tb testing.TB) int {
	tb.Helper()
	w.cancel()
	select {
	case <-w.done:
	case <-time.After(WriterStopTimeout):
		tb.Fatalf("writer: the commit of row %d did not return within %s of Stop (a lock held, or the machine overloaded)", w.Next(), WriterStopTimeout)
	}
	if w.err != nil {
		tb.Fatalf("writer: %v", w.err)
	}
	return w.Next()
}

// Rows reads every row of t in a database that may be live (with a -wal),
// read-only, in id order.
func Rows(tb testing.TB, path string) []string {
	tb.Helper()
	// Waits out a writer's lock, as an application's reader would:
	// replicators and checkpoints take it briefly.
	return Query(tb, "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
}

// Restored reads every row of a restored database, opened immutable so
// that reading leaves no -wal or -shm beside it.
func Restored(tb testing.TB, path string) []string {
	tb.Helper()
	return Query(tb, "file:"+path+"?mode=ro&immutable=1")
}

// RowsOfCopy reads the rows of a database left with a -wal and -shm (by a
// crashed writer) from a copy, so that the files stay as they are.
func RowsOfCopy(tb testing.TB, path string) []string {
	tb.Helper()
	dir := tb.TempDir()
	for _, suf := range []string{"", "-wal", "-shm"} {
		data, err := os.ReadFile(path + suf)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "copy.db"+suf), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return Query(tb, "file:"+filepath.Join(dir, "copy.db"))
}

// Query reads every row of t through dsn, in id order, each as
// "id=HASH:LEN" of its value, so that large rows compare cheaply.
func Query(tb testing.TB, dsn string) []string {
	tb.Helper()
	out, err := QueryErr(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// QueryErr is Query for goroutines, which must not call Fatal.
func QueryErr(dsn string) ([]string, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rs, err := db.Query(`SELECT id, val FROM t ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dsn, err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var id int
		var val []byte
		if err := rs.Scan(&id, &val); err != nil {
			return nil, fmt.Errorf("read %s: %w", dsn, err)
		}
		sum := sha256.Sum256(val)
		out = append(out, fmt.Sprintf("%d=%x:%d", id, sum[:6], len(val)))
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", dsn, err)
	}
	return out, nil
}

// SameRows fails the test unless got holds exactly the rows of want.
func SameRows(tb testing.TB, got, want []string) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("restored %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			tb.Fatalf("row %d: restored %s, want %s", i, got[i], want[i])
		}
	}
}

// DirNames lists the names in dir, sorted.
func DirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// OpenRO opens a database that may be live read-only, waiting out a
// writer's lock as an application's reader would.
func OpenRO(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
