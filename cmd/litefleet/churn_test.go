package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// TestChurn: 50 tenant slots in a folder for 60 s of creating, writing,
// deleting and re-creating databases under one replicator. At the end
// every surviving tenant restores exactly its file's rows, and the
// replicator holds no descriptor of a deleted file.
func TestChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	guid := func(i int) string { return fmt.Sprintf("c0ffee%02x-0000-4000-8000-%012x", i, i) }
	path := func(i int) string { return filepath.Join(dir, guid(i)+".db") }
	remove := func(i int) {
		for _, suf := range []string{"", "-wal", "-shm"} {
			os.Remove(path(i) + suf)
		}
	}
	next := 0 // row ids never repeat, so a stale copy cannot pass for the new file
	write := func(i, n int) {
		db := testpeer.OpenDB(t, path(i))
		testpeer.InsertRows(t, db, next, n)
		next += n
		db.Close()
	}
	live := map[int]bool{}
	for i := range 10 {
		write(i, 3)
		live[i] = true
	}
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dir, "-sleep-after", "2s")...)
	p.WaitFor(`ready: `, 30*time.Second)

	rng := rand.New(rand.NewPCG(1, 2))
	var creations, deletions, writes int
	end := time.Now().Add(60 * time.Second)
	for time.Now().Before(end) {
		i := rng.IntN(50)
		switch r := rng.IntN(10); {
		case live[i] && r < 5:
			write(i, 1+rng.IntN(3))
			writes++
		case live[i] && r < 8:
			remove(i)
			delete(live, i)
			deletions++
		case !live[i]:
			write(i, 1+rng.IntN(4))
			live[i] = true
			creations++
		}
		time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond)
	}
	t.Logf("%d creations, %d deletions, %d writes; %d tenants survive", creations, deletions, writes, len(live))

	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	wants := map[int][]string{}
	for i := range live {
		wants[i] = testpeer.Rows(t, path(i))
	}
	for i, want := range wants {
		wg.Go(func() {
			deadline := time.Now().Add(60 * time.Second)
			for {
				got := restoreRowsQuiet(t, srv, conn, guid(i))
				if slices.Equal(got, want) {
					return
				}
				if time.Now().After(deadline) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: S3 restores %d rows, the file holds %d", guid(i), len(got), len(want)))
					mu.Unlock()
					return
				}
				time.Sleep(time.Second)
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		slices.Sort(bad)
		t.Fatalf("%d of %d surviving tenants do not restore their file:\n%s", len(bad), len(live), strings.Join(bad, "\n"))
	}
	// ls says so too: every surviving tenant in sync, each deleted one
	// no longer replicated here (missing, or gone from the host's record).
	eventually(t, 30*time.Second, func() string {
		_, rows := lsHostsJSON(t, srv, conn, "-dir", dir)
		for i := range 50 {
			r := rows[guid(i)]
			switch {
			case live[i] && r.Status != "in sync":
				return fmt.Sprintf("ls -json: surviving %s is %q (host state %q, note %q), want in sync", guid(i), r.Status, r.State, r.Note)
			case !live[i] && (r.State == "replicating" || r.State == "sleeping"):
				return fmt.Sprintf("ls -json: deleted %s is still %q on its host", guid(i), r.State)
			}
		}
		return ""
	})
	deleted := deletedDescriptors(t, p.Cmd.Process.Pid, dir)
	if len(deleted) > 0 {
		t.Fatalf("the replicator holds %d descriptors of deleted files: %v", len(deleted), deleted)
	}
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// deletedDescriptors lists a process's open descriptors of deleted files
// under dir.
func deletedDescriptors(t *testing.T, pid int, dir string) []string {
	t.Helper()
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fds)
	if err != nil {
		t.Skipf("cannot read %s: %v", fds, err)
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fds, e.Name()))
		if err == nil && strings.HasPrefix(target, dir) && strings.HasSuffix(target, " (deleted)") {
			out = append(out, target)
		}
	}
	return out
}
