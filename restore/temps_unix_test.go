//go:build unix

package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCleanupWaitsForTheFolderLock: a lock file between its creation and
// its flock (here made by hand, the folder locked as its restore would
// hold it) is never taken for a stale one: a claim waits for the folder
// and, when it may not wait, cleans nothing.
func TestCleanupWaitsForTheFolderLock(t *testing.T) {
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".x.db.restore-0123456789ab.tmp")
	lock, err := os.OpenFile(tmp+".lock", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := os.WriteFile(tmp, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := claimTemp(ctx, filepath.Join(dir, "y.db")); !errors.Is(err, context.Canceled) {
		t.Fatalf("claim with the folder locked elsewhere: %v, want it to wait and be cancelled", err)
	}
	for _, f := range []string{tmp, tmp + ".lock"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("a claim that did not get the folder lock removed %s: %v", filepath.Base(f), err)
		}
	}

	// The other restore locks its file and lets the folder go: its files
	// stay through the next claim.
	if err := lockFile(lock); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	_, release, err := claimTemp(context.Background(), filepath.Join(dir, "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	release()
	for _, f := range []string{tmp, tmp + ".lock"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("a live restore's %s was removed: %v", filepath.Base(f), err)
		}
	}
}

// TestCleanupAcrossProcesses: a restore of another process keeps its
// temporaries while it lives; once it is killed, the next claim removes
// them.
func TestCleanupAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperClaimTemp$")
	cmd.Env = append(os.Environ(), "LITEFLEET_CLAIM_TEMP="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var tmp string
	if _, err := fmt.Fscanln(stdout, &tmp); err != nil {
		t.Fatalf("helper: %v", err)
	}
	_, release, err := claimTemp(context.Background(), filepath.Join(dir, "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	release()
	for _, suf := range append(tempSuffixes, ".lock") {
		if _, err := os.Stat(tmp + suf); err != nil {
			t.Fatalf("another process's live temporary %s was removed: %v", filepath.Base(tmp+suf), err)
		}
	}

	_ = cmd.Process.Signal(syscall.SIGKILL)
	_, _ = io.Copy(io.Discard, stdout)
	_ = cmd.Wait()
	_, release, err = claimTemp(context.Background(), filepath.Join(dir, "y.db"))
	if err != nil {
		t.Fatal(err)
	}
	release()
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Fatalf("a killed process's temporaries were left: %d, first %s", len(ents), ents[0].Name())
	}
}

// TestHelperClaimTemp is TestCleanupAcrossProcesses's restore: it claims
// a temporary, makes every file beside it, prints its name and waits to be
// killed.
func TestHelperClaimTemp(t *testing.T) {
	dir := os.Getenv("LITEFLEET_CLAIM_TEMP")
	if dir == "" {
		t.Skip("helper process")
	}
	tmp, _, err := claimTemp(context.Background(), filepath.Join(dir, "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, suf := range tempSuffixes {
		if err := os.WriteFile(tmp+suf, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println(tmp)
	time.Sleep(time.Minute) // killed by the parent before
}

// TestFolderSlotsFreed: the per-folder turns of this process's claims are
// dropped once no claim uses them (a replicator claims in a new folder for
// every history check).
func TestFolderSlotsFreed(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	var wg sync.WaitGroup
	for i := range 40 {
		dir := dirs[i%len(dirs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				_, release, err := claimTemp(context.Background(), filepath.Join(dir, fmt.Sprintf("x%d.db", i)))
				if err != nil {
					t.Error(err)
					return
				}
				release()
			}
		}()
	}
	wg.Wait()
	folderSlots.Lock()
	defer folderSlots.Unlock()
	if n := len(folderSlots.m); n != 0 {
		t.Fatalf("%d folder slots left after every claim was released", n)
	}
}
