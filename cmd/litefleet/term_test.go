package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// runInTerminal runs the litefleet binary in a tmux pane of w×h on a
// private tmux server, stdout and stderr both on the terminal, and returns
// the screen (wrapped lines joined) once it has exited, and its exit code.
func runInTerminal(t *testing.T, w, h int, env []string, args ...string) (string, int) {
	t.Helper()
	requireTmux(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	socket := "litefleet-term-" + hex.EncodeToString(b[:])
	rc := filepath.Join(t.TempDir(), "rc")
	script := shellQuote(binary)
	for _, a := range args {
		script += " " + shellQuote(a)
	}
	script += "; echo $? > " + shellQuote(rc+".tmp") + " && mv " + shellQuote(rc+".tmp") + " " + shellQuote(rc) + "; exec sleep 600"
	cmd := exec.Command("tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "t",
		"-x", strconv.Itoa(w), "-y", strconv.Itoa(h), "sh", "-c", script)
	cmd.Env = append(env, "TERM=xterm-256color")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", socket, "kill-server").Run() })
	testpeer.Eventually(t, 2*time.Minute, "litefleet "+strings.Join(args, " ")+" exits", func() bool {
		_, err := os.Stat(rc)
		return err == nil
	})
	code, err := os.ReadFile(rc)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(code)))
	if err != nil {
		t.Fatalf("exit code %q: %v", code, err)
	}
	screen, err := exec.Command("tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", "t").Output()
	if err != nil {
		t.Fatalf("tmux capture-pane: %v", err)
	}
	return string(screen), n
}

// TestRestoreAllOnTerminal: on a terminal, restore -all prints each
// tenant's line (TXID, path) above its progress bar, and the bar leaves no
// trace once the summary is printed.
func TestRestoreAllOnTerminal(t *testing.T) {
	testpeer.Integration(t)
	requireTmux(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	tenants := []string{guid1, guid2, guid3}
	var cfg strings.Builder
	cfg.WriteString("dbs:\n")
	for i, tn := range tenants {
		path := filepath.Join(dir, tn+".db")
		testpeer.NewDB(t, path, 10*(i+1))
		fmt.Fprintf(&cfg, "  - path: %s\n    replica:\n      bucket: %s\n      path: databases/%s\n      endpoint: %s\n", path, conn.Bucket, tn, srv.Endpoint)
	}
	cfgPath := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	restoreReplicate(t, srv, []string{"replicate", "-config", cfgPath}, tenants...)

	out := filepath.Join(t.TempDir(), "fleet")
	screen, code := runInTerminal(t, 200, 40, testpeer.CredEnv(srv), "restore", "-all", "-o", out, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	if code != 0 {
		t.Fatalf("restore -all exit %d:\n%s", code, screen)
	}
	summary := strings.Index(screen, "restore -all: 3 restored, 0 failed, 0 skipped, of 3 tenants")
	if summary < 0 {
		t.Fatalf("no summary on screen:\n%s", screen)
	}
	for _, tn := range tenants {
		line := regexp.MustCompile(`(?m)^restored ` + tn + ` -> ` + regexp.QuoteMeta(filepath.Join(out, tn+".db")) + `: TXID [0-9a-f]{16} \(\d+\) at .*integrity ok, current$`)
		loc := line.FindStringIndex(screen)
		if loc == nil || loc[0] > summary {
			t.Errorf("no line for %s above the summary", tn)
		}
	}
	if strings.Contains(screen, "tenants, ") || strings.Contains(screen, "%") {
		t.Errorf("the progress bar is still on screen")
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("screen:\n%s", screen)
	}
}

// TestTUITerminalClosed: closing the terminal (tmux kill-session, SIGHUP)
// stops the UI as q does: the replication started in it gets its final
// sync and its lease is released, and nothing of it is left running.
func TestTUITerminalClosed(t *testing.T) {
	testpeer.Integration(t)
	requireTmux(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid3+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 5)

	rc := filepath.Join(t.TempDir(), "rc")
	env := append(testpeer.CredEnv(srv), "NO_COLOR=", "HOME="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir())
	s := startTmux(t, 120, 36, env, rc, "-dir", dir, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-refresh", "1s")
	s.waitScreen(30*time.Second, guid3, "not replicating")
	s.keys("r")
	s.waitScreen(30*time.Second, "replicating "+guid3, "▶", "in sync")
	// Rows committed just before the terminal closes: the final sync's.
	testpeer.InsertRows(t, db, 5, 20)

	out, err := exec.Command("tmux", "-L", s.socket, "display-message", "-p", "-t", s.name, "#{pane_pid}").Output()
	if err != nil {
		t.Fatalf("tmux display-message: %v", err)
	}
	pane, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	pids := append([]int{pane}, testpeer.Descendants(pane)...)
	if len(pids) < 2 {
		t.Fatalf("no litefleet under the pane's shell %d", pane)
	}
	if err := exec.Command("tmux", "-L", s.socket, "kill-session", "-t", s.name).Run(); err != nil {
		t.Fatalf("tmux kill-session: %v", err)
	}
	testpeer.WaitGone(t, pids, 60*time.Second)

	code, text := runLitefleet(t, testpeer.CredEnv(srv), "inspect", guid3, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	if code != 0 || !strings.Contains(text, "lease     none") {
		b, _ := os.ReadFile(rc + ".stderr")
		t.Fatalf("after the terminal closed, the lease is not released (inspect exit %d):\n%s\nstderr of the UI:\n%s", code, text, b)
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	testpeer.Restore(t, srv, conn, guid3, restored)
	testpeer.SameRows(t, testpeer.Rows(t, restored), testpeer.Rows(t, path))
}
