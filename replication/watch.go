package replication

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// watcher turns inotify events on the tenants' folders into work: a write
// wakes a sleeping tenant at once, a database replaced under an open one
// stops its uploads at once, and a new database in a -dir folder joins.
// The sweep and the rescan are its safety nets: events can be dropped.
type watcher struct {
	e  *Engine
	fs *fsnotify.Watcher

	mu   sync.Mutex
	dirs map[string]bool
}

func newWatcher(e *Engine) (*watcher, error) {
	w, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, fmt.Errorf("watch folders: %w", err)
	}
	return &watcher{e: e, fs: w, dirs: map[string]bool{}}, nil
}

// add watches the folder of a database.
func (w *watcher) add(path string) { w.watchDir(filepath.Dir(path)) }

// addDir watches a -dir folder, and its subfolders when recursive.
func (w *watcher) addDir(dir string, recursive bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	w.watchDir(abs)
	if !recursive {
		return
	}
	_ = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == abs {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		w.watchDir(p)
		return nil
	})
}

func (w *watcher) watchDir(dir string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dirs[dir] {
		return
	}
	if err := w.fs.Add(dir); err != nil {
		// The sweep still sees every change, only later.
		w.e.log.Warn("cannot watch folder: changes are seen by the periodic check only", "dir", dir, "error", err)
		return
	}
	w.dirs[dir] = true
}

func (w *watcher) close() { _ = w.fs.Close() }

func (w *watcher) run(ctx context.Context) {
	defer w.e.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			w.e.onEvent(ev)
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.e.log.Warn("folder watcher overflowed: checking every file now")
				w.e.sweep()
			}
		}
	}
}

// dbPathOf maps a database's file or one of its sidecars to the database.
func dbPathOf(name string) (string, bool) {
	for _, suf := range []string{"-wal", "-shm", "-journal"} {
		if p, ok := strings.CutSuffix(name, suf); ok {
			return p, false
		}
	}
	return name, true
}

func (e *Engine) onEvent(ev fsnotify.Event) {
	path, main := dbPathOf(ev.Name)
	e.mu.Lock()
	t, ok := e.byPath[path]
	if !ok {
		e.mu.Unlock()
		if main && ev.Has(fsnotify.Create|fsnotify.Rename) {
			e.discover(path)
		}
		return
	}
	if strings.HasSuffix(ev.Name, "-shm") {
		e.mu.Unlock()
		return
	}
	if t.run == nil {
		// A closed tenant changes only if its files say so: litefleet's own
		// checks and the application's checkpoints move them too.
		base := t.base
		e.mu.Unlock()
		now, err := statIdentity(path)
		if err != nil || !base.written(now) {
			return
		}
		e.mu.Lock()
		if t.run != nil {
			e.mu.Unlock()
			return
		}
		e.markHotLocked(t, now)
	}
	if t.run != nil {
		// Litestream's own checkpoints move an open tenant's files too:
		// its activity is read from its positions (tick), and only a
		// replaced file matters here.
		if main && ev.Has(fsnotify.Remove|fsnotify.Rename|fsnotify.Create) {
			// The file under the open database was replaced: no upload may
			// mix the two files.
			t.run.lost.Store(true)
			t.changed = true
		}
	} else {
		t.markDirty(e.opt.Now())
	}
	if t.wanted && !t.busy {
		e.enqueueLocked(t)
	}
	e.mu.Unlock()
}

// discover adds a database that appeared in a -dir folder.
func (e *Engine) discover(path string) {
	if !tenants.HasDBSuffix(filepath.Base(path)) || tenants.IsRestoredCopy(filepath.Base(path)) {
		return
	}
	tg, err := e.dirTarget(path)
	if err != nil {
		return
	}
	// A folder, a FIFO or a link named like a database is added too: its
	// start refuses it with the reason (checkDatabase), where an operator
	// sees it, instead of being skipped without a word.
	if _, err := os.Lstat(path); err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return
	}
	if _, ok := e.byPath[tg.Path]; ok {
		return
	}
	t := e.addLocked(tg, !e.src.OnRequest)
	e.log.Info("new database", "db", t.name, "path", t.path)
}

// dirTarget builds the target of a database inside one of the -dir folders.
func (e *Engine) dirTarget(path string) (tenants.Target, error) {
	for _, d := range e.src.Dirs {
		root, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		if !e.src.Recursive && strings.Contains(rel, string(filepath.Separator)) {
			continue
		}
		return tenants.Target{Path: path, Tenant: tenants.NameFor(path, ""), Conn: e.src.DirConn, Retention: e.src.Retention}, nil
	}
	return tenants.Target{}, fmt.Errorf("%s is neither in a -dir folder nor in the config: give it with -dir or -config", untrusted.Printable(path))
}

// scanDirs lists the -dir folders for databases. It reads folder listings
// only: no database is opened.
func (e *Engine) scanDirs() ([]tenants.Target, error) {
	var out []tenants.Target
	for _, d := range e.src.Dirs {
		root, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(root)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("folder %s does not exist: check -dir", untrusted.Printable(d))
		case err != nil:
			return nil, fmt.Errorf("folder %s: %w", untrusted.Printable(d), err)
		case !st.IsDir():
			return nil, fmt.Errorf("%s is not a folder: give the folder with -dir, or the file with -dsn", untrusted.Printable(d))
		}
		err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				if p == root {
					return err
				}
				return nil
			}
			name := de.Name()
			dbName := tenants.HasDBSuffix(name) && !tenants.IsRestoredCopy(name) && !strings.HasPrefix(name, ".")
			if de.IsDir() {
				if p == root {
					return nil
				}
				if !e.src.Recursive && dbName {
					// A folder named like a database: refused at its
					// start, with the reason.
					out = append(out, tenants.Target{Path: p, Tenant: tenants.NameFor(p, ""), Conn: e.src.DirConn, Retention: e.src.Retention})
				}
				if !e.src.Recursive || strings.HasPrefix(name, ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !dbName {
				return nil
			}
			out = append(out, tenants.Target{Path: p, Tenant: tenants.NameFor(p, ""), Conn: e.src.DirConn, Retention: e.src.Retention})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", untrusted.Printable(d), err)
		}
	}
	return out, nil
}

// sweepLoop checks every file with stat, behind the watcher, and lists the
// -dir folders again every Rescan.
func (e *Engine) sweepLoop() {
	defer e.wg.Done()
	sweep := time.NewTicker(e.opt.Sweep)
	defer sweep.Stop()
	rescan := time.NewTicker(e.opt.Rescan)
	defer rescan.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-sweep.C:
			e.sweepPaced(e.opt.SweepRate)
		case <-rescan.C:
			if found, err := e.scanDirs(); err == nil {
				for _, p := range e.unknownPaths(found) {
					e.discover(p)
				}
			}
		}
	}
}

// unknownPaths is the paths of found that the engine does not know yet,
// looked up under one lock: a rescan of 100,000 known databases costs a
// listing, not a stat and a lock each.
func (e *Engine) unknownPaths(found []tenants.Target) []string {
	var out []string
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, tg := range found {
		if _, ok := e.byPath[tg.Path]; !ok {
			out = append(out, tg.Path)
		}
	}
	return out
}

// sweep stats every known database and its WAL at once, and marks what
// changed: after the watcher overflowed, when events were lost.
func (e *Engine) sweep() { e.sweepPaced(0) }

// sweepChunk is how many tenants the sweep stats between two takes of the
// engine's lock.
const sweepChunk = 256

// sweepPaced is the sweep at most rate tenants a second (0: no limit),
// the open tenants first and unpaced: the sweep is the watcher's safety
// net, and at 100,000 tenants an unpaced one every 10 s was the largest
// CPU cost of an idle process (200,000 stat calls; paced at 2,500 a
// second it was still 4.5 % of a core, a stat costing 6 µs on this VM).
// At the default rate a sweep of 10,000 tenants takes its 10 s period as
// before; one of 100,000 takes 100 s, and a write the watcher missed to a
// sleeping tenant is seen that much later. An open tenant's WAL is also
// read on every tick (observeWALs).
func (e *Engine) sweepPaced(rate int) {
	var buf [sweepChunk]sweepItem
	// The open tenants first (at most MaxAwake, about): a replaced file
	// under one must stop its uploads.
	e.mu.Lock()
	open := make([]*tenant, 0, len(e.awake))
	for t := range e.awake {
		open = append(open, t)
	}
	e.mu.Unlock()
	for len(open) > 0 {
		k := min(len(open), sweepChunk)
		e.sweepItems(e.collect(buf[:0], open[:k]))
		open = open[k:]
	}
	// Then every other one, a chunk at a time from the list of all: no
	// copy of the fleet, no sort.
	for i := 0; ; {
		e.mu.Lock()
		if i >= len(e.all) {
			e.mu.Unlock()
			return
		}
		chunk := buf[:0]
		for ; i < len(e.all) && len(chunk) < sweepChunk; i++ {
			if t := e.all[i]; t.wanted && t.run == nil {
				chunk = append(chunk, sweepItem{t: t, base: t.base})
			}
		}
		e.mu.Unlock()
		e.sweepItems(chunk)
		if rate > 0 && len(chunk) > 0 {
			// A pause for what was done (the stats themselves take a
			// fraction of it): a timer, not a read of the clock.
			pause := time.NewTimer(time.Duration(len(chunk)) * time.Second / time.Duration(rate))
			select {
			case <-e.ctx.Done():
				pause.Stop()
				return
			case <-pause.C:
			}
		}
	}
}

// sweepItem is one tenant in a sweep: what the engine knew of its files,
// and what stat says now.
type sweepItem struct {
	t      *tenant
	open   bool
	opened identity
	base   identity
	now    identity
	err    error
	denied bool
}

// collect takes the engine's lock and appends ts, as the sweep sees
// them, to buf.
func (e *Engine) collect(buf []sweepItem, ts []*tenant) []sweepItem {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range ts {
		if !t.wanted {
			continue
		}
		it := sweepItem{t: t, base: t.base}
		if t.run != nil {
			it.open, it.opened = true, t.run.opened
		}
		buf = append(buf, it)
	}
	return buf
}

// sweepItems stats a chunk of tenants without the engine's lock, then
// marks what changed under one take of it.
func (e *Engine) sweepItems(chunk []sweepItem) {
	for i := range chunk {
		it := &chunk[i]
		it.now, it.err = statIdentity(it.t.path)
		// An open database's permissions are taken away (chmod, chown)
		// without a write: Litestream would fail on every sync, quietly.
		it.denied = it.err == nil && it.open && it.now.db.exists && unix.Access(it.t.path, unix.R_OK|unix.W_OK) != nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range chunk {
		it := &chunk[i]
		if it.err != nil {
			continue
		}
		t, now := it.t, it.now
		t.walBytes = now.wal.size // 0 without a WAL: statID's zero fileID
		switch {
		case it.open && t.run != nil && it.opened.replaced(now):
			t.run.lost.Store(true)
			t.changed = true
			e.enqueueLocked(t)
		case it.denied && t.run != nil && !t.denied:
			t.denied = true
			e.enqueueLocked(t)
		case !it.open && t.run == nil && it.base.written(now):
			e.markHotLocked(t, now)
			t.markDirty(e.opt.Now())
			if !t.busy {
				e.enqueueLocked(t)
			}
		}
	}
}
