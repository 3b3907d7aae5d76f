package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
	_ "modernc.org/sqlite"
)

// newTenants returns n random GUIDs, the tenant names of a fleet.
func newTenants(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = uuid.NewString()
	}
	return names
}

func dbPath(dir, tenant string) string { return filepath.Join(dir, tenant+".db") }

// openDB opens a tenant's database the way an application does: its own
// connection, WAL mode, waiting on locks (Litestream holds a read
// transaction and checkpoints) rather than failing.
func openDB(path string) (*sql.DB, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// createDatabases writes one small database per tenant in dir: a table of
// ten rows, in WAL mode, closed (so checkpointed, no WAL left), several at
// a time.
func createDatabases(ctx context.Context, dir string, tenants []string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * runtime.NumCPU())
	for _, t := range tenants {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return createDatabase(ctx, dbPath(dir, t))
		})
	}
	return g.Wait()
}

func createDatabase(ctx context.Context, path string) error {
	db, err := openDB(path)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for i := range 10 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t (v, at) VALUES (?, ?)`, fmt.Sprintf("row %d", i), time.Now().UnixNano()); err != nil {
			return fmt.Errorf("fill %s: %w", path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("fill %s: %w", path, err)
	}
	return db.Close()
}

// commit is one committed write: its tenant and when COMMIT returned.
type commit struct {
	tenant string
	at     time.Time
}

// commitLog collects the commits of every writer.
type commitLog struct {
	mu      sync.Mutex
	commits []commit
	errs    []error
}

func (l *commitLog) add(c commit) {
	l.mu.Lock()
	l.commits = append(l.commits, c)
	l.mu.Unlock()
}

func (l *commitLog) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *commitLog) take() ([]commit, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, e := l.commits, l.errs
	l.commits, l.errs = nil, nil
	return c, e
}

// write commits one row (an autocommit INSERT) and records when the
// commit returned.
func write(ctx context.Context, db *sql.DB, tenant string, log *commitLog) {
	_, err := db.ExecContext(ctx, `INSERT INTO t (v, at) VALUES ('bench', ?)`, time.Now().UnixNano())
	at := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			log.fail(fmt.Errorf("write to %s: %w", tenant, err))
		}
		return
	}
	log.add(commit{tenant: tenant, at: at})
}
