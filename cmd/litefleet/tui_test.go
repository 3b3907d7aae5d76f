package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// tmuxSession is the real binary running in a detached tmux session of a
// fixed size, on a private tmux server: the end-to-end test reads the
// screen as an operator would see it.
type tmuxSession struct {
	t      *testing.T
	socket string
	name   string
}

func requireTmux(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	testpeer.Require(t, err == nil, "tmux (the terminal UI's end-to-end test drives it; apt-get install tmux)")
	return bin
}

func startTmux(t *testing.T, w, h int, env []string, rcFile string, args ...string) *tmuxSession {
	t.Helper()
	requireTmux(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &tmuxSession{t: t, socket: "litefleet-test-" + hex.EncodeToString(b[:]), name: "lf"}
	// The shell records the exit code, so the test can check a clean quit.
	script := "exec 2>>" + shellQuote(rcFile+".stderr") + "; " + shellQuote(binary)
	for _, a := range args {
		script += " " + shellQuote(a)
	}
	script += "; echo $? > " + shellQuote(rcFile)
	cmd := exec.Command("tmux", "-L", s.socket, "-f", "/dev/null", "new-session", "-d", "-s", s.name,
		"-x", strconv.Itoa(w), "-y", strconv.Itoa(h), "sh", "-c", script)
	cmd.Env = append(env, "TERM=xterm-256color")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-L", s.socket, "kill-server").Run()
	})
	return s
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// screen is the pane's text.
func (s *tmuxSession) screen() string {
	out, err := exec.Command("tmux", "-L", s.socket, "capture-pane", "-p", "-t", s.name).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// waitScreen waits until the screen holds every one of subs.
func (s *tmuxSession) waitScreen(timeout time.Duration, subs ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		scr := s.screen()
		ok := true
		for _, sub := range subs {
			if !strings.Contains(scr, sub) {
				ok = false
			}
		}
		if ok {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("screen lacks %q after %s:\n%s", subs, timeout, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keys sends tmux key names (j, Enter, Escape, C-r) or literal text.
func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	args := append([]string{"-L", s.socket, "send-keys", "-t", s.name}, keys...)
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		s.t.Fatalf("tmux send-keys %v: %v\n%s", keys, err, out)
	}
}

func (s *tmuxSession) alive() bool {
	return exec.Command("tmux", "-L", s.socket, "has-session", "-t", s.name).Run() == nil
}

// TestTUIEndToEnd runs the real binary in tmux against the real S3 server:
// one tenant replicated beforehand, one only on disk. It waits for the
// GUID on screen, opens the detail page, filters, starts replicating the
// local-only tenant with r, and quits with q, which stops that replication
// with a final sync: the tenant is then in S3.
func TestTUIEndToEnd(t *testing.T) {
	testpeer.Integration(t)
	requireTmux(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()

	replicated := filepath.Join(dir, guid1+".db")
	testpeer.NewDB(t, replicated, 20)
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", replicated)...)
	p.WaitFor(seedTx(guid1), 30*time.Second)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("replicate exited %d:\n%s", code, p.Out.String())
	}
	localOnly := filepath.Join(dir, guid3+".db")
	testpeer.NewDB(t, localOnly, 5)

	rc := filepath.Join(t.TempDir(), "rc")
	env := append(testpeer.CredEnv(srv), "NO_COLOR=", "HOME="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir())
	s := startTmux(t, 120, 36, env, rc, "-dir", dir, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-refresh", "1s")
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(rc + ".stderr")
			t.Logf("stderr of the TUI:\n%s", b)
		}
	}()

	scr := s.waitScreen(30*time.Second, guid1, guid3, "s3://"+conn.Bucket+"/databases", "2 tenants", "every 1s")
	if !strings.Contains(scr, "in sync") && !strings.Contains(scr, "not replicating") {
		t.Fatalf("no status for the replicated tenant:\n%s", scr)
	}

	// The detail page lists the replicated tenant's restore points.
	s.keys("Enter")
	s.waitScreen(20*time.Second, "Tenant "+guid1, "LTX levels", "0 (one file per sync)", "lease")
	s.keys("j", "Escape")
	s.waitScreen(10*time.Second, "Tenants 2")

	// The filter keeps one tenant.
	s.keys("/")
	s.keys("-l", "abcdef")
	s.waitScreen(10*time.Second, "/abcdef", "1/1")
	s.keys("Enter")
	s.waitScreen(10*time.Second, "/abcdef  1 of 2 tenants")

	// r replicates the local-only tenant in the TUI's process.
	s.keys("r")
	s.waitScreen(30*time.Second, "replicating "+guid3, "▶")

	// The log pane shows the equivalent command line and the sync lines.
	s.keys("l")
	s.waitScreen(30*time.Second, "$ litefleet replicate -dsn", "new transaction: db="+guid3)
	s.keys("l")

	// q stops the replication (final sync) and quits cleanly.
	s.keys("q")
	deadline := time.Now().Add(60 * time.Second)
	for s.alive() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if s.alive() {
		t.Fatalf("the TUI did not quit:\n%s", s.screen())
	}
	code, err := os.ReadFile(rc)
	if err != nil || strings.TrimSpace(string(code)) != "0" {
		b, _ := os.ReadFile(rc + ".stderr")
		t.Fatalf("exit code %q (%v), stderr:\n%s", code, err, b)
	}

	// The tenant replicated from the TUI is in S3, with its lease released.
	out := &bytes.Buffer{}
	cmd := exec.Command(binary, "inspect", guid3, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	cmd.Env, cmd.Stdout, cmd.Stderr = testpeer.CredEnv(srv), out, out
	if err := cmd.Run(); err != nil {
		t.Fatalf("inspect after the TUI: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "lease     none") {
		t.Fatalf("lease not released on quit:\n%s", out)
	}
}

// TestNoArgsPrintsUsageAndHint: with nothing to show, litefleet prints the
// usage and a hint instead of opening an empty screen.
func TestNoArgsPrintsUsageAndHint(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "Usage:") || !strings.Contains(stderr.String(), noFleetHint) {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"tui", "extra"}, &stdout, &stderr); code != 2 {
		t.Fatalf("tui extra: exit %d, want 2", code)
	}
	stderr.Reset()
	if code := run([]string{"-refresh", "-1s", "-dir", "."}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-refresh") {
		t.Fatalf("negative -refresh: exit %d\n%s", code, stderr.String())
	}
}
