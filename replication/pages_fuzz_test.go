package replication

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/litefleet/litefleet/layout"
)

// FuzzLoadPageTable: the saved page table sits in a folder beside the
// tenant's database and may be damaged or written by anyone who can write
// there. Whatever its bytes, loading gives an invalid table or one that
// saves back to the same bytes; never a panic.
func FuzzLoadPageTable(f *testing.F) {
	good := make([]byte, pageTableHeader+8*3)
	copy(good, pageTableMagic[:])
	binary.BigEndian.PutUint64(good[8:], 7)
	binary.BigEndian.PutUint32(good[16:], 4096)
	binary.BigEndian.PutUint32(good[20:], 3)
	for i := 24; i < pageTableHeader; i++ {
		good[i] = byte(i)
	}
	binary.BigEndian.PutUint64(good[pageTableHeader:], 0xdeadbeef)
	f.Add(good)
	f.Add(good[:pageTableHeader])
	f.Add(good[:20])
	bad := bytes.Clone(good)
	binary.BigEndian.PutUint32(bad[16:], 1000) // not a power of two
	f.Add(bad)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		in, out := filepath.Join(dir, "in.db"), filepath.Join(dir, "out.db")
		for _, p := range []string{in, out} {
			if err := os.Mkdir(metaDir(p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(metaDir(in), layout.PageTableFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		pt := loadPageTable(in)
		if !pt.valid {
			return
		}
		if ps := pt.pageSize; ps < 512 || ps > 65536 || ps&(ps-1) != 0 || pt.key == ([32]byte{}) {
			t.Fatalf("valid table with page size %d, key %x", ps, pt.key)
		}
		if err := pt.save(out); err != nil {
			t.Fatal(err)
		}
		again, err := os.ReadFile(filepath.Join(metaDir(out), layout.PageTableFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("loaded %d bytes, saved %d different ones", len(data), len(again))
		}
	})
}
