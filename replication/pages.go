package replication

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"
	"github.com/zeebo/blake3"

	"github.com/litefleet/litefleet/dbfile"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/untrusted"
)

// A sleeping tenant holds no read transaction, so the application may
// checkpoint its WAL into the database, restart it, or delete it on close.
// Litestream then cannot continue from the WAL and snapshots the whole
// database on the next open. To avoid that, litefleet keeps a hash of
// every page of the replicated state (the page table, built from the LTX
// files as they are uploaded), and on waking writes the next LTX file
// itself with only the pages that differ, positioned so that Litestream
// continues incrementally from the WAL as it is now.

// pageTable is a hash of each page of the database at TXID txid.
//
// The hash is keyed (BLAKE3 with a random key kept with the table, cut to
// 64 bits): the tenant's application writes its pages' bytes, and with an
// unkeyed hash it could make a changed page hash like the old one, which
// the wake's diff would then leave out of the replica.
type pageTable struct {
	mu       sync.Mutex
	txid     ltx.TXID
	pageSize uint32
	key      [32]byte
	hashes   []uint64 // index pgno-1; 0: unknown
	valid    bool
	// sums are each page's LTX checksum (ltx.ChecksumPage), index pgno-1,
	// and sum their XOR: the database's LTX checksum at txid, which the
	// host record carries for `litefleet verify` (Litestream v0.5.18
	// writes no post-apply checksum). Unkeyed, unlike hashes: it is
	// compared with a restore made elsewhere, never trusted for a diff.
	// sumsValid is false for a table loaded from an older file.
	sums      []ltx.Checksum
	sum       ltx.Checksum
	sumsValid bool
}

// tableView is a valid table as of one TXID, to compare files with.
type tableView struct {
	hashes   []uint64
	pageSize uint32
	key      [32]byte
}

// LFPAGES1 files held unkeyed hashes: they load as invalid (the next wake
// snapshots once) and are replaced.
var pageTableMagic = [8]byte{'L', 'F', 'P', 'A', 'G', 'E', 'S', '2'}

// pageHasher hashes pages with a table's key, reusing one hasher.
type pageHasher struct {
	h   *blake3.Hasher
	out [32]byte
}

func newPageHasher(key [32]byte) *pageHasher {
	h, err := blake3.NewKeyed(key[:])
	if err != nil {
		panic(err) // only for a key that is not 32 bytes
	}
	return &pageHasher{h: h}
}

func (p *pageHasher) sum(data []byte) uint64 {
	p.h.Reset()
	p.h.Write(data)
	p.h.Sum(p.out[:0])
	return binary.LittleEndian.Uint64(p.out[:8])
}

// ensureKeyLocked gives the table a random key if it has none.
func (pt *pageTable) ensureKeyLocked() {
	if pt.key == ([32]byte{}) {
		if _, err := rand.Read(pt.key[:]); err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
	}
}

// apply updates the table with an L0 LTX file: a file that follows the
// table's TXID, or one holding every page (a snapshot), which starts it
// afresh. Any other file invalidates it.
func (pt *pageTable) apply(r io.Reader) {
	dec := ltx.NewDecoder(r)
	if err := dec.DecodeHeader(); err != nil {
		pt.invalidate()
		return
	}
	hdr := dec.Header()
	pt.mu.Lock()
	pt.ensureKeyLocked()
	hasher := newPageHasher(pt.key)
	pt.mu.Unlock()
	pages := make(map[uint32]uint64)
	sums := make(map[uint32]ltx.Checksum)
	crc := ltx.NewHasher()
	buf := make([]byte, hdr.PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, buf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			pt.invalidate()
			return
		}
		pages[ph.Pgno] = hasher.sum(buf)
		sums[ph.Pgno] = ltx.ChecksumPageWithHasher(crc, ph.Pgno, buf)
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	full := len(pages) == int(hdr.Commit)-lockPageIn(hdr.PageSize, hdr.Commit)
	switch {
	case full:
		pt.hashes = make([]uint64, hdr.Commit)
		pt.sums, pt.sum, pt.sumsValid = make([]ltx.Checksum, hdr.Commit), 0, true
		pt.pageSize, pt.valid = hdr.PageSize, true
	case !pt.valid || hdr.MinTXID != pt.txid+1 || hdr.PageSize != pt.pageSize:
		pt.valid = false
		return
	}
	for pgno, h := range pages {
		if int(pgno) <= len(pt.hashes) {
			pt.hashes[pgno-1] = h
		} else if int(pgno) <= int(hdr.Commit) {
			pt.hashes = append(pt.hashes, make([]uint64, int(pgno)-len(pt.hashes))...)
			pt.hashes[pgno-1] = h
		}
	}
	if pt.sumsValid {
		for pgno, c := range sums {
			if int(pgno) > int(hdr.Commit) {
				continue
			}
			if int(pgno) > len(pt.sums) {
				pt.sums = append(pt.sums, make([]ltx.Checksum, int(pgno)-len(pt.sums))...)
			}
			pt.sum ^= pt.sums[pgno-1] ^ c
			pt.sums[pgno-1] = c
		}
		if int(hdr.Commit) < len(pt.sums) {
			for _, c := range pt.sums[hdr.Commit:] {
				pt.sum ^= c
			}
			pt.sums = pt.sums[:hdr.Commit]
		}
	}
	if int(hdr.Commit) < len(pt.hashes) {
		pt.hashes = pt.hashes[:hdr.Commit]
	} else if int(hdr.Commit) > len(pt.hashes) {
		pt.valid = false // pages the file did not carry
		return
	}
	pt.txid = hdr.MaxTXID
}

// checksum is the database's LTX checksum at the table's TXID, when the
// table is valid and knows it.
func (pt *pageTable) checksum() (ltx.TXID, ltx.Checksum, bool) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if !pt.valid || !pt.sumsValid {
		return 0, 0, false
	}
	return pt.txid, pt.sum | ltx.ChecksumFlag, true
}

func (pt *pageTable) invalidate() {
	pt.mu.Lock()
	pt.valid = false
	pt.mu.Unlock()
}

// rollForward brings a table saved at an older TXID up to txid with
// Litestream's local level-0 files, the ones written since the save: a
// tenant that never slept (its table is saved while awake, see
// Options.SavePagesEvery) and whose replicator was killed starts from the
// table of its last save, not from a snapshot of the whole database. A gap
// in the local files, or a file that cannot be applied, stops the table
// short of txid: not valid there, and Litestream snapshots as before.
// Litestream keeps local L0 files at least DefaultL0Retention (5 min)
// after their compaction, far longer than the save interval.
func (pt *pageTable) rollForward(path string, to ltx.TXID) {
	pt.mu.Lock()
	valid, at := pt.valid, pt.txid
	pt.mu.Unlock()
	if !valid || at >= to {
		return
	}
	dir := layout.LTXLevelDir(metaDir(path), 0)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	next := map[ltx.TXID]string{} // min TXID → file name
	for _, ent := range ents {
		if lo, hi, err := ltx.ParseFilename(ent.Name()); err == nil && lo > at && hi <= to && lo <= hi {
			next[lo] = ent.Name()
		}
	}
	for at < to {
		name, ok := next[at+1]
		if !ok {
			return
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return
		}
		pt.apply(bufio.NewReader(f))
		f.Close()
		pt.mu.Lock()
		valid, at = pt.valid, pt.txid
		pt.mu.Unlock()
		if !valid {
			return
		}
	}
}

// at returns the table if it is valid for txid.
func (pt *pageTable) at(txid ltx.TXID) (tableView, bool) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if !pt.valid || pt.txid != txid {
		return tableView{}, false
	}
	return tableView{hashes: pt.hashes, pageSize: pt.pageSize, key: pt.key}, true
}

// matches compares the database file as it is now with the table valid
// for txid: known is false when there is no such table or the file cannot
// be read.
func (pt *pageTable) matches(ctx context.Context, path string, txid ltx.TXID) (same, known bool) {
	table, ok := pt.at(txid)
	if !ok {
		return false, false
	}
	st, err := readState(ctx, path)
	if err != nil {
		return false, false
	}
	same, err = st.sameAs(table)
	return same, err == nil
}

func lockPageIn(pageSize, commit uint32) int {
	if ltx.LockPgno(pageSize) <= commit {
		return 1
	}
	return 0
}

// save writes the table beside Litestream's state, for the next wake and
// the next start.
func (pt *pageTable) save(path string) error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	file := filepath.Join(metaDir(path), layout.PageTableFile)
	if !pt.valid {
		_ = os.Remove(file)
		return nil
	}
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var hdr [pageTableHeader]byte
	copy(hdr[:8], pageTableMagic[:])
	binary.BigEndian.PutUint64(hdr[8:], uint64(pt.txid))
	binary.BigEndian.PutUint32(hdr[16:], pt.pageSize)
	binary.BigEndian.PutUint32(hdr[20:], uint32(len(pt.hashes)))
	copy(hdr[24:], pt.key[:])
	w.Write(hdr[:])
	var b [8]byte
	for _, h := range pt.hashes {
		binary.BigEndian.PutUint64(b[:], h)
		w.Write(b[:])
	}
	// The checksums follow, when known: a table without them (an older
	// litefleet's) still loads, with sumsValid false.
	if pt.sumsValid && len(pt.sums) == len(pt.hashes) {
		for _, c := range pt.sums {
			binary.BigEndian.PutUint64(b[:], uint64(c))
			w.Write(b[:])
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, file)
}

// pageTableHeader is the saved table's header: magic, TXID, page size,
// page count, key.
const pageTableHeader = 56

// loadPageTable reads the saved table; an absent or damaged one is invalid.
func loadPageTable(path string) *pageTable {
	pt := &pageTable{}
	b, err := os.ReadFile(filepath.Join(metaDir(path), layout.PageTableFile))
	if err != nil || len(b) < pageTableHeader || [8]byte(b[:8]) != pageTableMagic {
		return pt
	}
	n := int(binary.BigEndian.Uint32(b[20:]))
	pageSize := binary.BigEndian.Uint32(b[16:])
	withSums := len(b) == pageTableHeader+16*n
	if (len(b) != pageTableHeader+8*n && !withSums) || pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return pt
	}
	pt.txid = ltx.TXID(binary.BigEndian.Uint64(b[8:]))
	pt.pageSize = pageSize
	copy(pt.key[:], b[24:pageTableHeader])
	if pt.key == ([32]byte{}) {
		return pt
	}
	pt.hashes = make([]uint64, n)
	for i := range pt.hashes {
		pt.hashes[i] = binary.BigEndian.Uint64(b[pageTableHeader+8*i:])
	}
	if withSums {
		pt.sums = make([]ltx.Checksum, n)
		for i := range pt.sums {
			pt.sums[i] = ltx.Checksum(binary.BigEndian.Uint64(b[pageTableHeader+8*n+8*i:]))
			pt.sum ^= pt.sums[i]
		}
		pt.sumsValid = true
	}
	pt.valid = true
	return pt
}

// dbState is a database as its files say now: the main file with the
// committed frames of its WAL over it.
type dbState struct {
	path      string
	pageSize  uint32
	wal       bool // the header says WAL mode (not a rollback journal)
	commit    uint32
	walExists bool
	salt1     uint32
	salt2     uint32
	walEnd    int64            // end of the last committed frame; 32 with none
	walPages  map[uint32]int64 // page → offset of its newest committed frame
	lastFrame uint32           // the page of the last committed frame, 0 with none
}

// readState reads a database's files without SQLite and without a lock:
// callers either hold SQLite's write lock or only need to tell whether
// anything changed. The database file is read through dbfile (this process
// may hold SQLite connections to it); the WAL carries no POSIX lock of
// SQLite's, and is opened directly.
func readState(ctx context.Context, path string) (*dbState, error) {
	st, size, err := readHeader(path)
	if err != nil {
		return nil, err
	}
	st.commit = uint32(size / int64(st.pageSize))

	wal, err := os.Open(path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	} else if err != nil {
		return nil, err
	}
	defer wal.Close()
	var wh [litestream.WALHeaderSize]byte
	if n, _ := io.ReadFull(wal, wh[:]); n < litestream.WALHeaderSize {
		return st, nil // empty or zeroed: no frames
	}
	st.walExists = true
	st.salt1, st.salt2 = binary.BigEndian.Uint32(wh[16:]), binary.BigEndian.Uint32(wh[20:])
	if binary.BigEndian.Uint32(wh[8:]) != st.pageSize {
		return st, nil // a WAL of another page size: SQLite ignores it
	}
	rd, err := litestream.NewWALReader(wal, slog.New(slog.DiscardHandler))
	if err != nil {
		return st, nil // not a WAL SQLite would replay
	}
	m, maxOffset, commit, err := rd.PageMap(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the WAL of %s: %w", untrusted.Printable(path), err)
	}
	if maxOffset > 0 && commit > 0 {
		st.walPages, st.walEnd, st.commit = m, maxOffset, commit
		frame := int64(litestream.WALFrameHeaderSize) + int64(st.pageSize)
		for pgno, off := range m {
			if off == maxOffset-frame {
				st.lastFrame = pgno
			}
		}
	}
	return st, nil
}

// readHeader reads what the database file's header says (page size,
// journal mode) and its size, through dbfile, without its WAL: for callers
// that need no more, the WAL's page map is not read.
func readHeader(path string) (*dbState, int64, error) {
	st := &dbState{path: path, walEnd: litestream.WALHeaderSize}
	var size int64
	err := dbfile.Read(path, func(f *os.File, fi os.FileInfo) error {
		var head [100]byte
		if _, err := f.ReadAt(head[:], 0); err != nil {
			return fmt.Errorf("read the header of %s: %w", untrusted.Printable(path), err)
		}
		st.pageSize = uint32(binary.BigEndian.Uint16(head[16:]))
		if st.pageSize == 1 {
			st.pageSize = 65536
		}
		if st.pageSize < 512 || st.pageSize&(st.pageSize-1) != 0 {
			return fmt.Errorf("%s: page size %d in its header: not an SQLite database", untrusted.Printable(path), st.pageSize)
		}
		st.wal = head[18] == 2 && head[19] == 2
		size = fi.Size()
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return st, size, nil
}

// each calls fn with every page of the state, in order, reusing one buffer.
func (st *dbState) each(fn func(pgno uint32, data []byte) error) error {
	var wal *os.File
	if len(st.walPages) > 0 {
		var err error
		if wal, err = os.Open(st.path + "-wal"); err != nil {
			return err
		}
		defer wal.Close()
	}
	return dbfile.Read(st.path, func(f *os.File, fi os.FileInfo) error {
		r := bufio.NewReaderSize(io.NewSectionReader(f, 0, fi.Size()), 1<<20)
		buf := make([]byte, st.pageSize)
		lock := ltx.LockPgno(st.pageSize)
		for pgno := uint32(1); pgno <= st.commit; pgno++ {
			n, err := io.ReadFull(r, buf)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				return err
			}
			clear(buf[n:]) // past the file's end: the WAL must have the page
			if pgno == lock {
				continue
			}
			if off, ok := st.walPages[pgno]; ok {
				if _, err := wal.ReadAt(buf, off+litestream.WALFrameHeaderSize); err != nil {
					return err
				}
			}
			if err := fn(pgno, buf); err != nil {
				return err
			}
		}
		return nil
	})
}

// sameAs reports whether the state's pages are the table's.
func (st *dbState) sameAs(table tableView) (bool, error) {
	if st.pageSize != table.pageSize || int(st.commit) != len(table.hashes) {
		return false, nil
	}
	hasher := newPageHasher(table.key)
	same := true
	errDiffer := errors.New("differ")
	err := st.each(func(pgno uint32, data []byte) error {
		if hasher.sum(data) != table.hashes[pgno-1] {
			same = false
			return errDiffer // no need to read further
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDiffer) {
		return false, err
	}
	return same, nil
}

// lastLocalHeader reads the header of the newest local L0 file.
func lastLocalHeader(path string) (ltx.Header, bool, error) {
	minTXID, maxTXID, _, err := localL0(path)
	if err != nil || maxTXID == 0 {
		return ltx.Header{}, false, err
	}
	f, err := os.Open(layout.LTXPath(metaDir(path), 0, minTXID, maxTXID))
	if err != nil {
		return ltx.Header{}, false, err
	}
	defer f.Close()
	hdr, _, err := ltx.PeekHeader(f)
	return hdr, err == nil, err
}

// continues reports whether Litestream can go on from the WAL as it is:
// the WAL it last read is still there, same salt, not shorter.
func continues(last ltx.Header, st *dbState) bool {
	if !st.walExists || st.salt1 != last.WALSalt1 || st.salt2 != last.WALSalt2 {
		return false
	}
	fi, err := os.Stat(st.path + "-wal")
	return err == nil && fi.Size() >= last.WALOffset+last.WALSize
}

// pin holds a read transaction on a database from the moment the engine
// decides how a tenant wakes until Litestream holds its own: while a read
// transaction is held, no checkpoint can restart or truncate the WAL, so
// what was decided from the files stays true. Release it only then.
//
// The pin's connections, like Litestream's, are made under the tenant's
// dbfile hold; the pin is closed before Litestream's DB, whose close of its
// own descriptor would drop the pin's locks.
type pin struct {
	db   *sql.DB
	conn *sql.Conn
}

func openPin(ctx context.Context, path string) (*pin, error) {
	// wal_autocheckpoint(0): the pin's own write (the diff's) must not
	// checkpoint the WAL it is pinning.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(2000)&_pragma=wal_autocheckpoint(0)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	p := &pin{db: db, conn: conn}
	if err := hold(ctx, conn); err != nil {
		p.release()
		return nil, err
	}
	return p, nil
}

// hold starts a read transaction on conn.
func hold(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `SELECT count(*) FROM sqlite_master`); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		return err
	}
	return nil
}

// move takes a new read transaction, at the database as it is now, on
// another connection, then lets the old one go: one of them holds the WAL
// at every moment.
func (p *pin) move(ctx context.Context) error {
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return err
	}
	if err := hold(ctx, conn); err != nil {
		conn.Close()
		return err
	}
	old := p.conn
	p.conn = conn
	_, _ = old.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
	old.Close()
	return nil
}

func (p *pin) release() {
	_, _ = p.conn.ExecContext(context.Background(), `ROLLBACK`)
	p.conn.Close()
	p.db.Close()
}

// writeDiff writes the next L0 LTX file of a waking tenant from its files:
// only the pages that differ from the table at the last TXID, positioned at
// the end of the WAL as it is under SQLite's write lock, so that Litestream
// continues from the WAL incrementally. It reports false when it could not
// (busy database): Litestream then snapshots as it would. The pin holds its
// read transaction throughout, on another connection than the diff's write,
// and is moved to the diff's position before the write lock is let go.
func writeDiff(ctx context.Context, p *pin, path string, last ltx.Header, table tableView) (int, bool, error) {
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return 0, false, err
	}
	defer conn.Close()
	// A write starts (or continues) a WAL with a header Litestream can
	// resume from; Litestream makes the same write when it finds none.
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)`); err != nil {
		return 0, false, nil
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO _litestream_seq (id, seq) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET seq = seq + 1`); err != nil {
		return 0, false, nil
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return 0, false, nil // busy: let Litestream snapshot
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)

	st, err := readState(ctx, path)
	if err != nil {
		return 0, false, err
	}
	if !st.walExists || st.pageSize != table.pageSize || st.lastFrame == 0 {
		return 0, false, nil
	}
	n, err := encodeDiff(path, st, last, table)
	if err != nil {
		return 0, false, err
	}
	// Still under the write lock: the WAL is where the file says it is.
	if err := p.move(ctx); err != nil {
		return n, true, fmt.Errorf("pin the WAL after the diff: %w", err)
	}
	return n, true, nil
}

// encodeDiff writes the LTX file of TXID last+1 with the pages of st that
// differ from table (and the last frame's page).
func encodeDiff(path string, st *dbState, last ltx.Header, table tableView) (int, error) {
	pageSize := table.pageSize
	hasher := newPageHasher(table.key)
	txid := last.MaxTXID + 1
	dir := layout.LTXLevelDir(metaDir(path), 0)
	file := filepath.Join(dir, ltx.FormatFilename(txid, txid))
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	enc, err := ltx.NewEncoder(f)
	if err != nil {
		f.Close()
		return 0, err
	}
	err = enc.EncodeHeader(ltx.Header{
		Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: pageSize, Commit: st.commit,
		MinTXID: txid, MaxTXID: txid, Timestamp: time.Now().UnixMilli(),
		WALOffset: litestream.WALHeaderSize, WALSize: st.walEnd - litestream.WALHeaderSize,
		WALSalt1: st.salt1, WALSalt2: st.salt2,
	})
	n := 0
	if err == nil {
		err = st.each(func(pgno uint32, data []byte) error {
			// The last frame's page always goes in: Litestream checks it
			// against this file to trust the WAL position.
			if int(pgno) <= len(table.hashes) && table.hashes[pgno-1] == hasher.sum(data) && pgno != st.lastFrame {
				return nil
			}
			n++
			return enc.EncodePage(ltx.PageHeader{Pgno: pgno}, data)
		})
	}
	if err == nil {
		err = enc.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return 0, err
	}
	return n, nil
}
