package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/testpeer"
)

// TestDemoInATerminal runs the demo as `make demo` does, in a tmux pane,
// with the real litefleet binary: the CLI works against the demo's S3
// through the config it writes (.demo/litestream.yml); the UI's default
// restore output for the remote-only tenant lands in the demo's folder;
// and closing the terminal (tmux kill-session: SIGHUP) stops everything
// the demo started, with no process left behind.
func TestDemoInATerminal(t *testing.T) {
	testpeer.Integration(t)
	_, err := exec.LookPath("tmux")
	testpeer.Require(t, err == nil, "tmux (apt-get install tmux)")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, b := range [][]string{{"litefleet", "../cmd/litefleet"}, {"demo", "."}} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, b[0]), b[1])
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b[0], err, out)
		}
	}
	litefleet := filepath.Join(bin, "litefleet")
	// Short: the UI shows the output path in a box of 100 columns.
	tmp, err := os.MkdirTemp("", "d")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	demoDir := filepath.Join(tmp, ".demo")

	socket := "litefleet-demo-" + strconv.Itoa(os.Getpid())
	tmux := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("tmux", append([]string{"-L", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	start := exec.Command("tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "demo", "-x", "160", "-y", "45", "-c", root,
		filepath.Join(bin, "demo")+" -dir "+demoDir+" -litefleet "+litefleet)
	start.Env = append(testpeer.Without(os.Environ(), "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"),
		"TERM=xterm-256color", "NO_COLOR=1", "HOME="+t.TempDir())
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", socket, "kill-server").Run() })
	screen := func() string {
		out, _ := exec.Command("tmux", "-L", socket, "capture-pane", "-p", "-t", "demo").Output()
		return string(out)
	}
	waitScreen := func(timeout time.Duration, subs ...string) {
		t.Helper()
		testpeer.Eventually(t, timeout, "screen showing "+strings.Join(subs, ", "), func() bool {
			s := screen()
			for _, sub := range subs {
				if !strings.Contains(s, sub) {
					return false
				}
			}
			return true
		})
	}
	defer func() {
		if t.Failed() {
			t.Logf("screen:\n%s", screen())
			for _, f := range []string{"replicate.log", "versitygw.log"} {
				b, _ := os.ReadFile(filepath.Join(demoDir, f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	}()
	const remoteOnly = "0badc0de-0000-4000-8000-000000000001"
	waitScreen(2*time.Minute, "demo-fleet", remoteOnly, "12345678-1234-5678-9abc-123456789012")

	// The CLI against the demo, with nothing but the config it wrote.
	cfg := filepath.Join(demoDir, "litestream.yml")
	cli := testpeer.Without(os.Environ(), "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")
	code, out := testpeer.Run(t, cli, litefleet, "ls", "-config", cfg, "-no-cache", "-json")
	var v struct {
		Tenants []struct {
			Tenant string          `json:"tenant"`
			Remote json.RawMessage `json:"remote"`
		} `json:"tenants"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 {
		t.Fatalf("ls -config %s: exit %d, %v:\n%s", cfg, code, err, out)
	}
	remote := map[string]bool{}
	for _, tn := range v.Tenants {
		remote[tn.Tenant] = string(tn.Remote) != "null"
	}
	if !remote["12345678-1234-5678-9abc-123456789012"] || !remote[remoteOnly] {
		t.Errorf("ls -config: the demo's tenants in S3 are missing: %v", remote)
	}
	if code, out := testpeer.Run(t, cli, litefleet, "inspect", "-config", cfg, remoteOnly); code != 0 || !strings.Contains(out, "format    ltx") {
		t.Errorf("inspect -config: exit %d:\n%s", code, out)
	}
	if code, out := testpeer.Run(t, cli, litefleet, "restore", "-config", cfg, remoteOnly, "-o", filepath.Join(t.TempDir(), "x.db")); code != 0 {
		t.Errorf("restore -config: exit %d:\n%s", code, out)
	}

	// R on the remote-only tenant (the first row): latest, default output.
	tmux("send-keys", "-t", "demo", "R")
	waitScreen(20*time.Second, "1/3 · restore point")
	tmux("send-keys", "-t", "demo", "Enter")
	waitScreen(20*time.Second, "2/3 · output file")
	tmux("send-keys", "-t", "demo", "Enter")
	waitScreen(30*time.Second, demoDir+"/"+remoteOnly+".restored-")
	tmux("send-keys", "-t", "demo", "Escape")

	// Close the terminal: everything the demo started stops.
	pane, err := strconv.Atoi(strings.TrimSpace(tmux("display-message", "-p", "-t", "demo", "#{pane_pid}")))
	if err != nil {
		t.Fatal(err)
	}
	pids := append([]int{pane}, testpeer.Descendants(pane)...)
	var names []string
	for _, p := range pids {
		names = append(names, testpeer.Cmdline(p))
	}
	joined := strings.Join(names, "\n")
	for _, want := range []string{"versitygw", "litefleet replicate", "litefleet -config"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("no %q in the demo's process tree:\n%s", want, joined)
		}
	}
	tmux("kill-session", "-t", "demo")
	testpeer.WaitGone(t, pids, time.Minute)
}
