package restore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/superfly/ltx"
)

// ltxFile encodes a snapshot of commit pages of 512 bytes.
func ltxFile(tb testing.TB, commit uint32, flags uint32) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		tb.Fatal(err)
	}
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: flags, PageSize: 512, Commit: commit, MinTXID: 1, MaxTXID: 1, Timestamp: 1}); err != nil {
		tb.Fatal(err)
	}
	for pgno := uint32(1); pgno <= commit; pgno++ {
		page := bytes.Repeat([]byte{byte(pgno)}, 512)
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, page); err != nil {
			tb.Fatal(err)
		}
	}
	if flags&ltx.HeaderFlagNoChecksum == 0 {
		enc.SetPostApplyChecksum(ltx.ChecksumFlag | 1)
	}
	if err := enc.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzApplyLTX: an LTX object's header and pages are untrusted (anyone
// with write access to the prefix, or a damaged object). Applying one as
// the first file of a restore either fails with an error or writes at
// most the pages its header commits to; it never panics, and never grows
// the file past the commit size it checked.
func FuzzApplyLTX(f *testing.F) {
	f.Add(ltxFile(f, 2, ltx.HeaderFlagNoChecksum))
	f.Add(ltxFile(f, 3, 0))
	good := ltxFile(f, 1, 0)
	f.Add(good[:ltx.HeaderSize+10])
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := os.Create(filepath.Join(t.TempDir(), "out.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		a := newApplier(file)
		defer a.release()
		hdr, _, err := a.apply(bytes.NewReader(data), 0, ltx.Header{})
		if err != nil {
			return
		}
		st, err := file.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if max := int64(hdr.Commit) * int64(hdr.PageSize); st.Size() > max {
			t.Fatalf("applied file is %d bytes, over the %d its header commits to", st.Size(), max)
		}
	})
}
