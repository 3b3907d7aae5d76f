package tenants

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/dbfile"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/untrusted"
)

// DiscoverOptions says where Discover looks for tenant databases.
type DiscoverOptions struct {
	// Dirs are folders to scan. An entry that is a file is taken as one
	// database whatever its extension, so a config file can list its paths.
	Dirs []string
	// Recursive also scans subfolders, except hidden ones.
	Recursive bool
	// Names gives an explicit tenant name per absolute database path, as a
	// config file does. A key may be the path as found or with symlinks
	// resolved.
	Names map[string]string
	// InUse, when set, reports whether this process has the database at
	// path open through SQLite (the replication supervisor does). Discover
	// then trusts that file and does not open it to check its header:
	// closing any descriptor of a file drops every POSIX lock the process
	// holds on it, SQLite's included (sqlite.org/howtocorrupt.html, 2.2),
	// which would let another process checkpoint under Litestream's read
	// lock. It is called with Local.Path and, if different, with the path
	// with symlinks resolved, from several goroutines at once.
	InUse func(path string) bool
}

// AddTargets adds a config file's databases: their paths to look at, and
// the tenant names their replica paths give. validate, ls and the terminal
// UI all read a config this way, so they judge its names alike.
func (o *DiscoverOptions) AddTargets(targets []Target) {
	for _, t := range targets {
		o.Dirs = append(o.Dirs, t.Path)
		if t.Tenant.Verdict == VerdictExplicit {
			if o.Names == nil {
				o.Names = map[string]string{}
			}
			o.Names[t.Path] = t.Tenant.Name
		}
	}
}

// Local is one database found on this host, with what the disk says about
// it and its local Litestream position.
//
// Files that look like databases but cannot be used are returned too, so the
// operator sees them rather than wondering where a tenant went: a file that
// is not SQLite (Note "not an SQLite database"), a file that cannot be read,
// a symlink whose target is gone, or a subfolder that cannot be listed. They
// carry VerdictInvalid, which is not Usable, and MarkCollisions ignores them.
type Local struct {
	// Entry holds Path (absolute, cleaned, as found under a Dirs entry:
	// symlinks are kept so the operator sees their own spelling) and the
	// tenant name, with collisions marked across the whole result.
	Entry
	Size     int64     `json:"size"`      // main file bytes
	WALSize  int64     `json:"wal_size"`  // -wal file bytes, 0 if none
	Changed  time.Time `json:"changed"`   // newest mtime of the file and its -wal
	TXID     uint64    `json:"txid"`      // max TXID of the local level-0 LTX files, 0 if Litestream never ran
	TXIDTime time.Time `json:"txid_time"` // timestamp in the header of that LTX file
	L0       []LTXRef  `json:"l0,omitempty"`
	// WALAhead says the -wal holds frames Litestream's last local sync did
	// not read: the database changed since that sync.
	WALAhead bool `json:"wal_ahead,omitempty"`
	// StateErr describes a problem reading the .<file>-litestream state.
	// It is for display: the rest of the entry is still valid.
	StateErr string `json:"state_error,omitempty"`
	// Journal is the journal mode the file's header records: JournalWAL,
	// JournalRollback, or "" when unknown (an empty file, or a file this
	// process replicates and so does not open).
	Journal string `json:"journal,omitempty"`
}

// discoverWorkers bounds the goroutines doing per-database syscalls: enough
// to overlap disk latency, few enough not to starve a replicator sharing the
// machine.
const discoverWorkers = 8

// Discover scans opt.Dirs for tenant databases (files ending in .db, .sqlite
// or .sqlite3, any case) and returns one Local per file, sorted by tenant
// name then path, with collisions marked. It reads directory listings, file
// metadata, the first 16 bytes of each database and the header of its newest
// local LTX file; it never opens a database with SQLite, takes no lock and
// writes nothing, so it is safe next to a running replicator. A Dirs entry
// that does not exist or cannot be listed is an error.
func Discover(ctx context.Context, opt DiscoverOptions) ([]Local, error) {
	s := &scanner{
		ctx:       ctx,
		recursive: opt.Recursive,
		inUse:     opt.InUse,
		byReal:    map[string]int{},
		names:     resolveNames(opt.Names),
	}
	for _, d := range opt.Dirs {
		if err := s.addRoot(d); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}

	found := make([]Local, len(s.cands))
	keep := make([]bool, len(s.cands))
	var g errgroup.Group
	g.SetLimit(discoverWorkers)
	for i := range s.cands {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			found[i], keep[i] = s.inspect(s.cands[i])
			return nil
		})
	}
	_ = g.Wait() // inspect reports problems in the Local it returns
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}

	out := make([]Local, 0, len(s.problems)+len(found))
	out = append(out, s.problems...)
	for i, l := range found {
		if keep[i] {
			out = append(out, l)
		}
	}
	entries := make([]Entry, len(out))
	for i := range out {
		entries[i] = out[i].Entry
	}
	MarkCollisions(entries)
	for i := range out {
		out[i].Entry = entries[i]
	}
	// layout.PrefixKey first keeps names that collide only by case next to each other.
	slices.SortFunc(out, func(a, b Local) int {
		if c := strings.Compare(layout.PrefixKey(a.Name), layout.PrefixKey(b.Name)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// candidate is a database file found by the walk, not yet inspected.
type candidate struct {
	path string // absolute, cleaned, as found
	real string // path with symlinks resolved: SQLite puts the -wal next to it
	// dir lists the folder holding path (and real, as they differ only for
	// symlinks, whose dir is nil). It spares a failing stat or readdir per
	// database for the -wal and the state folder, most of which are absent.
	dir *dirIndex
}

// dirIndex holds the names in one folder that can be a -wal file or a
// Litestream state folder.
type dirIndex struct{ names map[string]struct{} }

func (d *dirIndex) has(name string) bool {
	_, ok := d.names[name]
	return ok
}

type scanner struct {
	ctx       context.Context
	recursive bool
	inUse     func(string) bool
	names     map[string]string
	cands     []candidate
	byReal    map[string]int // real path → index in cands, to drop the same file seen twice
	problems  []Local        // unusable things found by the walk itself
}

// resolveNames adds, for each explicit name, the key with symlinks resolved,
// so a config path spelled through a symlink still names the file found.
func resolveNames(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		if abs, err := filepath.Abs(k); err == nil {
			k = abs
		}
		out[k] = v
	}
	for k, v := range in {
		abs, err := filepath.Abs(k)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			if _, taken := out[real]; !taken {
				out[real] = v
			}
		}
	}
	return out
}

func (s *scanner) addRoot(d string) error {
	abs, err := filepath.Abs(d)
	if err != nil {
		return fmt.Errorf("folder %s: %w", untrusted.Printable(d), err)
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		// No flag named: validate takes paths, ls takes -dir and -config.
		return fmt.Errorf("no such file or folder: %s: %w", untrusted.Printable(abs), fs.ErrNotExist)
	} else if err != nil {
		return fmt.Errorf("folder %s: %w", untrusted.Printable(abs), err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("folder %s: %w", untrusted.Printable(abs), err)
	}
	switch {
	case fi.IsDir():
		return s.scanDir(abs, real, true)
	case fi.Mode().IsRegular():
		s.add(candidate{path: abs, real: real})
		return nil
	default:
		return fmt.Errorf("%s is neither a folder nor a file (%s)", untrusted.Printable(abs), fi.Mode().Type())
	}
}

// scanDir collects the databases in dir, whose symlink-free spelling is
// realDir. Symlinked subfolders are not followed, which rules out loops.
func (s *scanner) scanDir(dir, realDir string, root bool) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("discover: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if root {
			return fmt.Errorf("cannot list folder %s: %w", untrusted.Printable(dir), err)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since its parent was listed
		}
		s.problems = append(s.problems, Local{Entry: Entry{Path: dir, Naming: Naming{
			Verdict: VerdictInvalid,
			Note:    fmt.Sprintf("folder cannot be listed, its databases are not shown: %v", err),
		}}})
		return nil
	}
	idx := &dirIndex{names: map[string]struct{}{}}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, "-wal") || (strings.HasPrefix(name, ".") && strings.HasSuffix(name, layout.StateDirSuffix)) {
			idx.names[name] = struct{}{}
		}
	}
	var subdirs []string
	for _, e := range ents {
		name := e.Name()
		t := e.Type()
		switch {
		case t.IsDir():
			// Hidden folders include Litestream's own .<file>-litestream state.
			if s.recursive && !strings.HasPrefix(name, ".") {
				subdirs = append(subdirs, name)
			} else if HasDBSuffix(name) && !strings.HasPrefix(name, ".") {
				s.notAFile(filepath.Join(dir, name), "a folder")
			}
		case !HasDBSuffix(name):
			// -wal, -shm and -journal files end up here too.
		case IsRestoredCopy(name):
			// A restore's output beside the live file, not a tenant.
		case t.IsRegular():
			s.add(candidate{path: filepath.Join(dir, name), real: filepath.Join(realDir, name), dir: idx})
		case t&fs.ModeSymlink != 0:
			s.addLink(filepath.Join(dir, name))
		case t&fs.ModeNamedPipe != 0:
			s.notAFile(filepath.Join(dir, name), "a named pipe (FIFO)")
		default:
			s.notAFile(filepath.Join(dir, name), "not a regular file")
		}
		// Sockets, pipes and devices are never opened: opening a pipe blocks.
	}
	slices.Sort(subdirs)
	for _, name := range subdirs {
		if err := s.scanDir(filepath.Join(dir, name), filepath.Join(realDir, name), false); err != nil {
			return err
		}
	}
	return nil
}

// notAFile lists something named like a database that is not a file, so
// that it is not skipped without a word.
func (s *scanner) notAFile(path, what string) {
	s.problems = append(s.problems, Local{Entry: Entry{Path: path, Naming: Naming{
		Verdict: VerdictInvalid,
		Note:    what + ", not a database file: rename it or move it out of the folder",
	}}})
}

func (s *scanner) addLink(path string) {
	real, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.problems = append(s.problems, Local{Entry: Entry{Path: path, Naming: Naming{
			Verdict: VerdictInvalid,
			Note:    "symlink to a file that does not exist",
		}}})
		return
	} else if err != nil {
		s.problems = append(s.problems, Local{Entry: Entry{Path: path, Naming: Naming{
			Verdict: VerdictInvalid,
			Note:    fmt.Sprintf("symlink cannot be resolved: %v", err),
		}}})
		return
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() {
		return // a folder named like a database, or gone: nothing to list
	}
	s.add(candidate{path: path, real: real})
}

// add records c unless the same file was already found under another path;
// then the path without symlinks wins, else the lexically smaller one, so
// the result does not depend on listing order.
func (s *scanner) add(c candidate) {
	i, seen := s.byReal[c.real]
	if !seen {
		s.byReal[c.real] = len(s.cands)
		s.cands = append(s.cands, c)
		return
	}
	old := s.cands[i]
	if old.path == old.real {
		return
	}
	if c.path == c.real || c.path < old.path {
		s.cands[i] = c
	}
}

// errNotSQLite marks a file whose first bytes are not SQLite's magic string.
var errNotSQLite = errors.New("not an SQLite database")

const sqliteMagic = "SQLite format 3\x00"

// inspect gathers what the disk says about one candidate. It returns false
// when the file vanished since the listing.
func (s *scanner) inspect(c candidate) (Local, bool) {
	explicit, ok := s.names[c.path]
	if !ok {
		explicit = s.names[c.real]
	}
	l := Local{Entry: Entry{Path: c.path, Naming: NameFor(c.path, explicit)}}
	inUse := s.inUse != nil && (s.inUse(c.path) || (c.real != c.path && s.inUse(c.real)))
	fi, journal, err := statMain(c.real, !inUse)
	l.Journal = journal
	if errors.Is(err, fs.ErrNotExist) {
		return l, false
	}
	if fi != nil {
		l.Size = fi.Size()
		l.Changed = fi.ModTime()
	}
	if err != nil {
		l.Verdict = VerdictInvalid
		l.Note = err.Error()
		if !errors.Is(err, errNotSQLite) {
			l.Note = "cannot read: " + err.Error()
		}
		return l, true
	}

	if c.dir == nil || c.dir.has(filepath.Base(c.real)+"-wal") {
		if wfi, err := os.Stat(c.real + "-wal"); err == nil {
			l.WALSize = wfi.Size()
			if wfi.ModTime().After(l.Changed) {
				l.Changed = wfi.ModTime()
			}
		}
	}

	readLocalState(&l, c)
	return l, true
}

// openRead opens a file to read a header from it. O_NONBLOCK spares the
// four fcntl calls with which os.Open puts a descriptor in non-blocking
// mode for the poller, then back when the poller refuses a regular file:
// Discover opens two files per database, and this takes its system calls
// per database from 23 to 15. It changes nothing for reads of a regular
// file, and a file replaced by a FIFO since the listing opens at once
// instead of blocking.
func openRead(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// statMain returns the metadata of the database file and, when check is
// set, verifies its first bytes and reads the journal mode its header
// records. Empty files pass: SQLite creates databases empty and writes the
// header with the first transaction.
func statMain(path string, check bool) (fs.FileInfo, string, error) {
	if !check {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, "", err
		}
		if !fi.Mode().IsRegular() {
			return fi, "", fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
		}
		return fi, "", nil
	}
	// Through dbfile: this process may hold SQLite connections to the
	// file (the UI replicates in-process), and closing a descriptor of
	// our own would drop their locks.
	var (
		info    fs.FileInfo
		journal string
	)
	err := dbfile.Read(path, func(f *os.File, fi fs.FileInfo) error {
		info = fi
		if fi.Size() == 0 {
			return nil
		}
		var head [HeaderBytes]byte
		n, err := f.ReadAt(head[:], 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		journal, err = HeaderJournal(head[:n])
		return err
	})
	if errors.Is(err, dbfile.ErrNotRegular) {
		fi, serr := os.Stat(path)
		if serr != nil {
			return nil, "", serr
		}
		return fi, "", fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	return info, journal, err
}

// Journal modes, as a database's header records them.
const (
	JournalWAL      = "wal"
	JournalRollback = "rollback"
)

// RollbackNote says, once per database, what replicating a database in
// rollback-journal mode does to it: validate shows it, and a replicator
// logs it before Litestream opens the file.
const RollbackNote = "rollback-journal mode: Litestream switches it to WAL, for good, when it starts replicating it (litefleet needs WAL)"

// HeaderBytes is how much of a database's header Discover reads: the
// magic string and the file format versions at bytes 18 and 19.
const HeaderBytes = 20

// HeaderJournal checks the start of a database file and returns the
// journal mode it records: the file format versions are 2 in WAL mode and
// 1 with a rollback journal.
func HeaderJournal(head []byte) (string, error) {
	if len(head) < len(sqliteMagic) || string(head[:len(sqliteMagic)]) != sqliteMagic {
		return "", errNotSQLite
	}
	if len(head) < HeaderBytes {
		return "", nil
	}
	switch {
	case head[18] == 2 && head[19] == 2:
		return JournalWAL, nil
	case head[18] == 1 && head[19] == 1:
		return JournalRollback, nil
	}
	return "", nil
}

// JournalMode reads the journal mode recorded in the header of the
// database at path, without opening it with SQLite (which would take
// locks, and could leave a -wal behind): JournalWAL, JournalRollback, or ""
// for an empty file. Litestream switches a rollback-journal database to
// WAL when it starts replicating it, for good: callers say so first.
func JournalMode(path string) (string, error) {
	_, journal, err := statMain(path, true)
	if err != nil {
		if errors.Is(err, errNotSQLite) {
			return "", fmt.Errorf("%s: %w", untrusted.Printable(path), err)
		}
		return "", err
	}
	return journal, nil
}
