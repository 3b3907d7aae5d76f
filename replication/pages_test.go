package replication

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/layout"
)

// snapshotTable builds the page table of the database at path as it is
// now, as the uploads of a full snapshot at TXID txid would.
func snapshotTable(t *testing.T, path string, txid ltx.TXID) *pageTable {
	t.Helper()
	st, err := readState(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: st.pageSize, Commit: st.commit, MinTXID: 1, MaxTXID: txid, Timestamp: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.each(func(pgno uint32, data []byte) error { return enc.EncodePage(ltx.PageHeader{Pgno: pgno}, data) }); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	pt := &pageTable{}
	pt.apply(&buf)
	if _, ok := pt.at(txid); !ok {
		t.Fatal("a full snapshot did not make a valid table")
	}
	return pt
}

func openTestDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, sqls ...string) {
	t.Helper()
	for _, q := range sqls {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// diffCarries writes the diff of the database against table (at TXID 1),
// applies it to the table as an upload would, and checks that the table
// then matches the file page for page: every changed page was carried.
// It returns how many pages the diff carried.
func diffCarries(t *testing.T, path string, pt *pageTable) int {
	t.Helper()
	ctx := context.Background()
	table, ok := pt.at(1)
	if !ok {
		t.Fatal("no table at TXID 1")
	}
	st, err := readState(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.walExists || st.lastFrame == 0 {
		t.Fatal("no WAL frame to position the diff on")
	}
	if err := os.MkdirAll(filepath.Join(metaDir(path), "ltx", "0"), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := encodeDiff(path, st, ltx.Header{MaxTXID: 1}, table)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(metaDir(path), "ltx", "0", ltx.FormatFilename(2, 2)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pt.apply(f)
	after, ok := pt.at(2)
	if !ok {
		t.Fatal("the diff did not follow the table")
	}
	same, err := st.sameAs(after)
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Fatal("after the diff the table differs from the file: a changed page was left out")
	}
	// The database checksum kept beside the hashes is the file's.
	if txid, sum, ok := pt.checksum(); !ok || txid != 2 || sum != fileSum(t, st) {
		t.Fatalf("after the diff the table's checksum is %s at %s (known %v), the file's %s", sum, txid, ok, fileSum(t, st))
	}
	return n
}

// fileSum is the database's LTX checksum as its files hold it now.
func fileSum(t *testing.T, st *dbState) ltx.Checksum {
	t.Helper()
	var sum ltx.Checksum
	if err := st.each(func(pgno uint32, data []byte) error { sum ^= ltx.ChecksumPage(pgno, data); return nil }); err != nil {
		t.Fatal(err)
	}
	return sum | ltx.ChecksumFlag
}

// TestPageTableChecksumSaved: the checksum survives a save and a load; a
// table saved without checksums (an older litefleet's) loads valid, its
// checksum unknown, not wrong.
func TestPageTableChecksumSaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db := openTestDB(t, path)
	exec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50) INSERT INTO t SELECT i, randomblob(300) FROM n`)
	pt := snapshotTable(t, path, 1)
	st, _ := readState(context.Background(), path)
	want := fileSum(t, st)
	if _, sum, ok := pt.checksum(); !ok || sum != want {
		t.Fatalf("snapshot's checksum %s (known %v), the file's %s", sum, ok, want)
	}
	if err := os.MkdirAll(metaDir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pt.save(path); err != nil {
		t.Fatal(err)
	}
	if txid, sum, ok := loadPageTable(path).checksum(); !ok || txid != 1 || sum != want {
		t.Fatalf("loaded checksum %s at %s (known %v), want %s", sum, txid, ok, want)
	}
	file := filepath.Join(metaDir(path), layout.PageTableFile)
	b, _ := os.ReadFile(file)
	n := (len(b) - pageTableHeader) / 16
	if err := os.WriteFile(file, b[:pageTableHeader+8*n], 0o644); err != nil {
		t.Fatal(err)
	}
	old := loadPageTable(path)
	if _, ok := old.at(1); !ok {
		t.Fatal("a table without checksums no longer loads")
	}
	if _, _, ok := old.checksum(); ok {
		t.Fatal("a table without checksums claims to know the database's")
	}
}

func TestDiffCarriesEveryChange(t *testing.T) {
	cases := []struct {
		name   string
		change []string
		most   int // pages the diff may carry at most (0: no bound)
	}{
		{"growth", []string{`WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i+1 FROM n WHERE i < 1100) INSERT INTO t SELECT i, randomblob(3000) FROM n`}, 0},
		{"one row", []string{`UPDATE t SET v = randomblob(100) WHERE id = 7`}, 8},
		{"shrink", []string{`DELETE FROM t WHERE id > 20`, `VACUUM`}, 0},
		{"WAL restarted", []string{`PRAGMA wal_checkpoint(TRUNCATE)`, `UPDATE t SET v = randomblob(100) WHERE id = 3`}, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.db")
			db := openTestDB(t, path)
			exec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200) INSERT INTO t SELECT i, randomblob(3000) FROM n`)
			pt := snapshotTable(t, path, 1)
			exec(t, db, tc.change...)
			n := diffCarries(t, path, pt)
			if tc.most > 0 && n > tc.most {
				t.Errorf("the diff carried %d pages for a small change, want at most %d", n, tc.most)
			}
		})
	}
}

// TestSameAsSeesPageSizeChange: a file of another page size is never the
// table's state (the wake then starts a new history).
func TestSameAsSeesPageSizeChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db := openTestDB(t, path)
	exec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50) INSERT INTO t SELECT i, randomblob(300) FROM n`)
	pt := snapshotTable(t, path, 1)
	exec(t, db, `PRAGMA journal_mode=DELETE`, `PRAGMA page_size=8192`, `VACUUM`, `PRAGMA journal_mode=WAL`)
	st, err := readState(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	table, _ := pt.at(1)
	if same, err := st.sameAs(table); err != nil || same {
		t.Fatalf("sameAs after a page size change: %v %v", same, err)
	}
	if st.pageSize != 8192 {
		t.Fatalf("page size %d, want 8192", st.pageSize)
	}
}

// TestPageTableKeyed: a table's hashes depend on its key, and a saved table
// loads with the same key; damaged or old tables load as invalid.
func TestPageTableKeyed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	db := openTestDB(t, path)
	exec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50) INSERT INTO t SELECT i, randomblob(300) FROM n`)
	a, b := snapshotTable(t, path, 1), snapshotTable(t, path, 1)
	ta, _ := a.at(1)
	tb, _ := b.at(1)
	if ta.key == tb.key || ta.hashes[1] == tb.hashes[1] {
		t.Fatal("two tables share a key or a hash: the hash is not keyed")
	}
	if err := os.MkdirAll(metaDir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := a.save(path); err != nil {
		t.Fatal(err)
	}
	loaded, ok := loadPageTable(path).at(1)
	if !ok || loaded.key != ta.key || len(loaded.hashes) != len(ta.hashes) {
		t.Fatal("a saved table did not load as it was saved")
	}
	st, _ := readState(context.Background(), path)
	if same, err := st.sameAs(loaded); err != nil || !same {
		t.Fatalf("the loaded table does not match its file: %v %v", same, err)
	}
	file := filepath.Join(metaDir(path), layout.PageTableFile)
	good, _ := os.ReadFile(file)
	for name, bad := range map[string][]byte{
		"truncated":   good[:len(good)-3],
		"header only": good[:pageTableHeader-1],
		"old magic":   append([]byte("LFPAGES1"), good[8:]...),
		"zero key":    append(append(append([]byte{}, good[:24]...), make([]byte, 32)...), good[pageTableHeader:]...),
		"page size 3": append(append(append([]byte{}, good[:16]...), 0, 0, 0, 3), good[20:]...),
	} {
		if err := os.WriteFile(file, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, ok := loadPageTable(path).at(1); ok {
			t.Errorf("a %s page table loaded as valid", name)
		}
	}
}

// BenchmarkPageHash is the keyed page hash's cost per 4 KiB page: the
// wake's diff hashes every page of a database once.
func BenchmarkPageHash(b *testing.B) {
	page := bytes.Repeat([]byte{0xa5}, 4096)
	h := newPageHasher([32]byte{1})
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		h.sum(page)
	}
}
