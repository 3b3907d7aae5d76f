package replication

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/superfly/ltx"
)

// writeLocalL0 writes a level-0 LTX file into the tenant's local state, as
// Litestream does before it uploads it.
func writeLocalL0(t *testing.T, path string, txid ltx.TXID, pageSize, commit uint32, pages map[uint32]byte) {
	t.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: pageSize, Commit: commit, MinTXID: txid, MaxTXID: txid, Timestamp: 1}); err != nil {
		t.Fatal(err)
	}
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if b, ok := pages[pgno]; ok {
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, bytes.Repeat([]byte{b}, int(pageSize))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(metaDir(path), "ltx", "0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ltx.FormatFilename(txid, txid)), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRollForwardFromLocalFiles: a table saved at an older TXID (a tenant
// that never slept, its replicator killed) is brought up to the last local
// TXID with the local level-0 files written since, and then equals the
// table of a replicator that uploaded them; a missing file leaves it at
// the last TXID before it (the wake then snapshots, never diffs against a
// wrong table).
func TestRollForwardFromLocalFiles(t *testing.T) {
	const pageSize, commit = 4096, 4
	path := filepath.Join(t.TempDir(), "t.db")
	all := map[uint32]byte{1: 1, 2: 2, 3: 3, 4: 4}
	writeLocalL0(t, path, 1, pageSize, commit, all)
	writeLocalL0(t, path, 2, pageSize, commit, map[uint32]byte{2: 9})
	writeLocalL0(t, path, 3, pageSize, commit+1, map[uint32]byte{5: 5})

	// What the replicator's table was when it uploaded all three.
	uploaded := &pageTable{}
	for txid := ltx.TXID(1); txid <= 3; txid++ {
		f, err := os.Open(filepath.Join(metaDir(path), "ltx", "0", ltx.FormatFilename(txid, txid)))
		if err != nil {
			t.Fatal(err)
		}
		uploaded.apply(f)
		f.Close()
	}
	want, ok := uploaded.at(3)
	if !ok {
		t.Fatal("the uploaded files made no table at TXID 3")
	}

	// Saved after TXID 1 (one key, so that the hashes compare), loaded
	// after a crash at TXID 3.
	saved := &pageTable{key: uploaded.key}
	f, err := os.Open(filepath.Join(metaDir(path), "ltx", "0", ltx.FormatFilename(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	saved.apply(f)
	f.Close()
	if err := saved.save(path); err != nil {
		t.Fatal(err)
	}
	loaded := loadPageTable(path)
	if _, ok := loaded.at(3); ok {
		t.Fatal("a table saved at TXID 1 is valid at 3 before rolling forward")
	}
	loaded.rollForward(path, 3)
	got, ok := loaded.at(3)
	if !ok {
		t.Fatal("rolled forward through the local files 2 and 3, the table is not valid at TXID 3")
	}
	if !slices.Equal(got.hashes, want.hashes) {
		t.Fatalf("rolled forward, the table differs from the uploader's:\n got %x\nwant %x", got.hashes, want.hashes)
	}

	// A gap: file 3 gone, file 4 there. The table stops at TXID 2.
	if err := os.Remove(filepath.Join(metaDir(path), "ltx", "0", ltx.FormatFilename(3, 3))); err != nil {
		t.Fatal(err)
	}
	writeLocalL0(t, path, 4, pageSize, commit, map[uint32]byte{1: 7})
	gapped := loadPageTable(path)
	gapped.rollForward(path, 4)
	if _, ok := gapped.at(4); ok {
		t.Fatal("the table rolled over a missing local file to TXID 4")
	}
	if _, ok := gapped.at(2); !ok {
		t.Fatal("the table did not follow the local files up to the gap (TXID 2)")
	}
}
