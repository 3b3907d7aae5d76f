package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/testpeer"
)

// TestMakeDemoKillSession is issue 20's `tmux new-session -d 'make demo'`
// then `tmux kill-session`: make leads the pane's session and the demo
// runs under it, as `make demo` runs it. Closing the terminal sends no
// signal that reaches them; the UI finds its terminal gone when a read
// of it fails, quits, and the demo's cleanup stops everything it started:
// within seconds nothing is left (make, demo, versitygw, replicators, UI).
func TestMakeDemoKillSession(t *testing.T) {
	testpeer.Integration(t)
	for _, tool := range []string{"tmux", "make"} {
		_, err := exec.LookPath(tool)
		testpeer.Require(t, err == nil, tool)
	}
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
	tmp := t.TempDir()
	demoDir := filepath.Join(tmp, ".demo")
	makefile := filepath.Join(tmp, "Makefile")
	rule := ".PHONY: demo\ndemo:\n\t" + filepath.Join(bin, "demo") + " -dir " + demoDir + " -litefleet " + filepath.Join(bin, "litefleet") + "\n"
	if err := os.WriteFile(makefile, []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}

	socket := "litefleet-makedemo-" + strconv.Itoa(os.Getpid())
	tmux := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("tmux", append([]string{"-L", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	start := exec.Command("tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "demo", "-x", "160", "-y", "45", "-c", root,
		"make -s -f "+makefile+" demo")
	start.Env = append(testpeer.Without(os.Environ(), "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "MAKEFLAGS", "MAKELEVEL"),
		"TERM=xterm-256color", "NO_COLOR=1", "HOME="+t.TempDir())
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", socket, "kill-server").Run() })
	screen := func() string {
		out, _ := exec.Command("tmux", "-L", socket, "capture-pane", "-p", "-t", "demo").Output()
		return string(out)
	}
	testpeer.Eventually(t, 2*time.Minute, "the demo's UI on screen", func() bool {
		return strings.Contains(screen(), "demo-fleet") && strings.Contains(screen(), "12345678-1234-5678-9abc-123456789012")
	})

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
	for _, want := range []string{"make", "/demo -dir", "versitygw", "litefleet replicate", "litefleet -config"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("no %q in the pane's process tree:\n%s", want, joined)
		}
	}
	tmux("kill-session", "-t", "demo")
	testpeer.WaitGone(t, pids, 15*time.Second)
}
