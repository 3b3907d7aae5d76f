package replication

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// closeCounter is a body that records being closed.
type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

// TestSpool: an object is read whole and its body closed before spool
// returns (its connection is free), in memory when small and in a
// temporary file of the folder given otherwise, which leaves nothing
// behind once closed; a body shorter or longer than S3 announced, or one
// that breaks, is an error, not a truncated file.
func TestSpool(t *testing.T) {
	dir := t.TempDir()
	left := func() []string {
		names, _ := filepath.Glob(filepath.Join(dir, "*"))
		return names
	}
	for _, size := range []int{0, 100, spoolInMemory, spoolInMemory + 1, 3 << 20} {
		for _, announced := range []bool{true, false} {
			want := make([]byte, size)
			_, _ = rand.Read(want)
			body := &closeCounter{Reader: bytes.NewReader(want)}
			length := int64(size)
			if !announced {
				length = -1
			}
			rc, err := spool(body, length, "k", dir)
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if body.closed != 1 {
				t.Fatalf("size %d: body closed %d times before spool returned, want 1", size, body.closed)
			}
			sf, onDisk := rc.(*spoolFile)
			if wantDisk := size > spoolInMemory || !announced; onDisk != wantDisk {
				t.Fatalf("size %d, length %d: on disk %t, want %t", size, length, onDisk, wantDisk)
			}
			if onDisk && filepath.Dir(sf.Name()) != dir {
				t.Fatalf("size %d: spooled to %s, not under %s", size, sf.Name(), dir)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("size %d: read back %d bytes (%v), want the %d sent", size, len(got), err, size)
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("size %d: close: %v", size, err)
			}
			if l := left(); len(l) != 0 {
				t.Fatalf("size %d: %v left after Close", size, l)
			}
		}
	}
	for _, c := range []struct {
		size      int
		announced int64
	}{{100, 200}, {200, 100}, {spoolInMemory + 10, spoolInMemory + 20}, {spoolInMemory + 20, spoolInMemory + 10}} {
		body := &closeCounter{Reader: bytes.NewReader(make([]byte, c.size))}
		_, err := spool(body, c.announced, "k", dir)
		if err == nil || !strings.Contains(err.Error(), "where S3 announced") {
			t.Errorf("%d bytes announced as %d: %v, want an error", c.size, c.announced, err)
		}
		if l := left(); len(l) != 0 {
			t.Fatalf("%v left after a failed spool", l)
		}
	}
	for _, length := range []int64{10, spoolInMemory + 10} {
		if _, err := spool(&closeCounter{Reader: failingReader{}}, length, "k", dir); !errors.Is(err, errBroken) {
			t.Errorf("a body of %d bytes that breaks: %v, want its error", length, err)
		}
	}
	// A folder that is gone (the database's state folder removed): the
	// system's temporary folder instead.
	t.Setenv("TMPDIR", t.TempDir())
	rc, err := spool(&closeCounter{Reader: bytes.NewReader(make([]byte, spoolInMemory+1))}, -1, "k", filepath.Join(dir, "gone"))
	if err != nil {
		t.Fatalf("spool into a missing folder: %v", err)
	}
	if sf := rc.(*spoolFile); filepath.Dir(sf.Name()) != os.Getenv("TMPDIR") {
		t.Errorf("spooled to %s, want the temporary folder %s", sf.Name(), os.Getenv("TMPDIR"))
	}
	_ = rc.Close()
}

var errBroken = errors.New("connection reset")

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errBroken }
