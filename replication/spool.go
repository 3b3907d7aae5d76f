package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// spoolInMemory is the largest object read into memory by spool; larger
// ones go to a temporary file. A level-0 file, one synced change, is
// usually a few kB.
const spoolInMemory = 256 << 10

// spool reads an object's body to its end and closes it, so that its
// connection goes back to the shared client at once, and returns the bytes
// as a reader: in memory up to spoolInMemory (by its Content-Length),
// otherwise in a temporary file in dir ("": the system's temporary
// folder), unlinked at once where the system allows it and at Close
// otherwise, so that a killed process leaves nothing behind.
//
// Litestream compacts a level by opening every source file before reading
// any, and holds them all open until the merge is done. Streams held open
// each kept one of the shared client's connections (s3conn caps them per
// host): a compaction of more files than that waited forever for a
// connection that only it could free, and every request behind it on the
// client — the heartbeat's first — timed out (chaos seed 35: a replacement
// that took over a tenant held none of its 130 level-0 files on disk).
func spool(body io.ReadCloser, length int64, key, dir string) (io.ReadCloser, error) {
	defer body.Close()
	if length >= 0 && length <= spoolInMemory {
		b, err := io.ReadAll(io.LimitReader(body, length+1))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", key, err)
		}
		if int64(len(b)) != length {
			return nil, fmt.Errorf("read %s: %d bytes where S3 announced %d", key, len(b), length)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	f, err := os.CreateTemp(dir, "litefleet-ltx-*")
	if err != nil && dir != "" {
		f, err = os.CreateTemp("", "litefleet-ltx-*")
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	sp := &spoolFile{File: f, unlinked: os.Remove(f.Name()) == nil}
	src := body
	if length >= 0 {
		src = io.NopCloser(io.LimitReader(body, length+1))
	}
	n, err := io.Copy(f, src)
	if err == nil && length >= 0 && n != length {
		err = fmt.Errorf("%d bytes where S3 announced %d", n, length)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("read %s: %w", key, err), sp.Close())
	}
	return sp, nil
}

// spoolFile is a spooled object on disk; Close removes it if it could not
// be unlinked while open.
type spoolFile struct {
	*os.File
	unlinked bool
}

func (s *spoolFile) Close() error {
	err := s.File.Close()
	if s.unlinked {
		return err
	}
	if rerr := os.Remove(s.Name()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}
