package conf

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeBigConfig writes a config of n database entries to a file, one
// entry at a time, and returns its path; tail is appended as it is.
func writeBigConfig(t *testing.T, n int, compact bool, tail string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "litestream.yml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("dbs:\n")
	for i := range n {
		g := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		if compact {
			fmt.Fprintf(w, "  - {path: /data/%s.db, replica: {url: s3://saas-backups/databases/%s}}\n", g, g)
		} else {
			fmt.Fprintf(w, "  - path: /data/%s.db\n    replica:\n      type: s3\n      bucket: saas-backups\n      path: databases/%s\n", g, g)
		}
	}
	w.WriteString(tail)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func oneLine(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) || strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error %v, want one line with %q", err, want)
	}
}

// A config is refused by its size before it is parsed (a stat, then a
// limited read for what has no size); its entries are counted before any
// is decoded; a malformed one near the limit still names its syntax
// error's line. The limits hold the largest list a process is meant for.
func TestLoadConfigLimits(t *testing.T) {
	// 20,000 databases in the verbose form: under both limits.
	_, targets, err := LoadConfig(writeBigConfig(t, MaxConfigDBs, false, ""))
	if err != nil || len(targets) != MaxConfigDBs {
		t.Fatalf("%d databases, the limit: %d targets, %v", MaxConfigDBs, len(targets), err)
	}

	// Over the size: refused from its size alone (a file of 10 MiB of
	// entries: never read).
	big := writeBigConfig(t, 60_000, false, "")
	_, _, err = LoadConfig(big)
	oneLine(t, err, big+" is 9.7 MiB, over the 4 MiB a config may be (about 20,000 databases): replicate a folder with -dir, or split the list")

	// The same through a FIFO, which has no size: refused by the read.
	fifo := filepath.Join(t.TempDir(), "config.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer w.Close()
		f, err := os.Open(big)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		_, _ = w.ReadFrom(f) // stops with EPIPE once LoadConfig has read enough
		done <- nil
	}()
	_, _, err = LoadConfig(fifo)
	oneLine(t, err, fifo+" is more than that, over the 4 MiB a config may be")
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Too many entries, small enough to parse: refused before decoding,
	// naming the first entry over the limit.
	_, _, err = LoadConfig(writeBigConfig(t, MaxConfigDBs+5, true, ""))
	oneLine(t, err, fmt.Sprintf("line %d: more than 20,000 databases in dbs: replicate a folder with -dir", MaxConfigDBs+2))

	// Malformed near the size limit: its syntax error, with its line.
	_, _, err = LoadConfig(writeBigConfig(t, 23_000, false, "  - path: [unclosed\n"))
	oneLine(t, err, "line 115002: sequence end token ']' not found")
}
