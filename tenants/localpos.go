package tenants

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/untrusted"
)

// LTXRef is one local level-0 LTX file, named by the TXID range it holds.
type LTXRef struct {
	MinTXID uint64    `json:"min_txid"`
	MaxTXID uint64    `json:"max_txid"`
	ModTime time.Time `json:"mod_time"` // when Litestream wrote it, at the sync after the change
}

const sep = string(filepath.Separator)

// HasLitestreamState reports whether Litestream keeps state beside the
// database at path: a file some replicator was pointed at, not a copy.
func HasLitestreamState(path string) bool {
	st, err := os.Stat(layout.LitestreamStateDir(path))
	return err == nil && st.IsDir()
}

// readLocalState fills l's position from Litestream's local state, looking
// next to the path as found and, for a symlink, next to its target, since
// Litestream may have been pointed at either.
func readLocalState(l *Local, c candidate) {
	dirs := []string{layout.LitestreamStateDir(c.path)}
	if c.real != c.path {
		dirs = append(dirs, layout.LitestreamStateDir(c.real))
	}
	for _, d := range dirs {
		if c.dir != nil && !c.dir.has(filepath.Base(d)) {
			continue
		}
		if found, hdr, ok := readL0(l, d); found {
			if ok {
				l.WALAhead = walAhead(c.real+"-wal", l.WALSize, hdr)
			}
			return
		}
	}
}

// The WAL's header: its magic (either byte order of the checksums) and
// where its salts are.
const (
	walHeaderSize = 32
	walMagicLE    = 0x377f0682
	walMagicBE    = 0x377f0683
)

// walAhead reports whether the WAL holds frames that Litestream's last
// local sync, whose LTX header is hdr, did not read: the same WAL (same
// salts) grown past the end that sync read, or a WAL restarted since
// (other salts), which SQLite only does to write a new transaction. A WAL
// truncated or deleted by a checkpoint, a clean stop's included, holds
// nothing new: what the checkpoint moved into the file was synced. An
// LTX file without a WAL position (a snapshot) tells nothing.
//
// The -wal is opened and closed outside SQLite, which is safe beside the
// process's own connections: SQLite takes no POSIX lock on the -wal (its
// locks are on the database and the -shm), so closing this descriptor
// releases none of them.
func walAhead(walPath string, walSize int64, hdr ltx.Header) bool {
	if (hdr.WALSalt1 == 0 && hdr.WALSalt2 == 0) || walSize <= walHeaderSize {
		return false
	}
	f, err := openRead(walPath)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [walHeaderSize]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	if magic := binary.BigEndian.Uint32(b[0:4]); magic != walMagicLE && magic != walMagicBE {
		return false
	}
	salt1, salt2 := binary.BigEndian.Uint32(b[16:20]), binary.BigEndian.Uint32(b[20:24])
	if salt1 != hdr.WALSalt1 || salt2 != hdr.WALSalt2 {
		return true
	}
	return walSize > hdr.WALOffset+hdr.WALSize
}

// readL0 reads the level-0 listing under meta and the header of its newest
// file, the same files litestream.DB.Pos reads. It reports whether a level-0
// folder was there. Litestream deletes old L0 files and, when it finds the
// database behind its replica, the whole folder, at any moment: files gone
// between the listing and their stat are skipped, and a newest file gone
// before its header is read starts the listing over once.
func readL0(l *Local, meta string) (found bool, newest ltx.Header, hdrOK bool) {
	// Concatenation, not litestream.LTXLevelDir: its path.Join allocates
	// twice per database for parts already clean.
	dir := meta + sep + "ltx" + sep + "0"
	for attempt := 0; ; attempt++ {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return false, ltx.Header{}, false
		} else if err != nil {
			l.StateErr = fmt.Sprintf("cannot list local Litestream state %s: %v", untrusted.Printable(dir), err)
			return true, ltx.Header{}, false
		}
		refs := make([]LTXRef, 0, len(ents))
		var statErr error
		var newestName string
		var newestTXID uint64
		for _, e := range ents {
			minTXID, maxTXID, err := ltx.ParseFilename(e.Name())
			if err != nil || minTXID > maxTXID || !e.Type().IsRegular() {
				continue // a .tmp file being written, or not Litestream's
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				statErr = err
				continue
			}
			refs = append(refs, LTXRef{MinTXID: uint64(minTXID), MaxTXID: uint64(maxTXID), ModTime: fi.ModTime()})
			if uint64(maxTXID) > newestTXID {
				newestName, newestTXID = e.Name(), uint64(maxTXID)
			}
		}
		slices.SortFunc(refs, func(a, b LTXRef) int {
			return cmp.Or(cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
		})
		l.L0, l.TXID, l.TXIDTime, l.StateErr = refs, 0, time.Time{}, ""
		if statErr != nil {
			l.StateErr = fmt.Sprintf("local Litestream state %s: %v", untrusted.Printable(dir), statErr)
		}
		if len(refs) == 0 {
			return true, ltx.Header{}, false
		}
		l.TXID = newestTXID
		name := dir + sep + newestName
		hdr, err := readLTXHeader(name)
		switch {
		case errors.Is(err, fs.ErrNotExist) && attempt == 0:
			continue
		case errors.Is(err, fs.ErrNotExist):
			// Replaced twice in a row: the TXID from the name stands, without a time.
		case err != nil:
			l.StateErr = fmt.Sprintf("header of %s: %v", untrusted.Printable(name), err)
		case uint64(hdr.MaxTXID) != newestTXID:
			l.StateErr = fmt.Sprintf("header of %s says TXID %d: the file name says %d", untrusted.Printable(name), hdr.MaxTXID, newestTXID)
		default:
			l.TXIDTime = time.UnixMilli(hdr.Timestamp)
			return true, hdr, true
		}
		return true, ltx.Header{}, false
	}
}

// readLTXHeader decodes the fixed-size header at the start of an LTX file
// without reading or verifying the rest: one read instead of the whole file
// that ltx.Decoder.Verify would checksum.
func readLTXHeader(path string) (ltx.Header, error) {
	f, err := openRead(path)
	if err != nil {
		return ltx.Header{}, err
	}
	defer f.Close()
	hdr, _, err := ltx.DecodeHeader(f)
	if err != nil {
		return ltx.Header{}, fmt.Errorf("decode ltx header: %w", err)
	}
	return hdr, nil
}

// OldestUnreplicated returns the time of the oldest local change a replica
// at remoteTXID does not hold yet, and false when it holds them all or
// nothing is known locally. The "lag in time" is now minus this time.
//
// The time is that of the first local L0 file whose MaxTXID is past
// remoteTXID: its header timestamp when it is the newest file (Discover read
// that header already), else its modification time, to avoid opening every
// L0 file of a busy database. Both are taken when Litestream syncs, within
// its monitor interval (1 s by default) after the change. When the replica is
// behind even the oldest local L0 file (Litestream removed older ones, or the
// replica was reset), the result is the oldest time known locally, so the
// lag shown is a lower bound.
func (l Local) OldestUnreplicated(remoteTXID uint64) (time.Time, bool) {
	if l.TXID <= remoteTXID {
		return time.Time{}, false
	}
	for _, r := range l.L0 {
		if r.MaxTXID <= remoteTXID {
			continue
		}
		if r.MaxTXID == l.TXID && !l.TXIDTime.IsZero() {
			return l.TXIDTime, true
		}
		return r.ModTime, true
	}
	return time.Time{}, false
}
