package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/testpeer"
)

// TestTUILocalOnly: `litefleet -dir DIR -readonly` without a bucket opens
// on the local side, saying S3 is not configured, and q quits with 0
// (issue 20 item 18; it exited 2 before).
func TestTUILocalOnly(t *testing.T) {
	requireTmux(t)
	dir := t.TempDir()
	testpeer.NewDB(t, filepath.Join(dir, guid1+".db"), 3)
	rc := filepath.Join(t.TempDir(), "rc")
	env := []string{"PATH=" + os.Getenv("PATH"), "NO_COLOR=", "HOME=" + t.TempDir(), "XDG_CACHE_HOME=" + t.TempDir()}
	s := startTmux(t, 120, 30, env, rc, "-dir", dir, "-readonly")
	s.waitScreen(30*time.Second, "S3 not configured (local only)", guid1, "READ-ONLY")
	s.keys("q")
	testpeer.Eventually(t, 30*time.Second, "the UI quits", func() bool { return !s.alive() })
	code, err := os.ReadFile(rc)
	if err != nil || strings.TrimSpace(string(code)) != "0" {
		b, _ := os.ReadFile(rc + ".stderr")
		t.Fatalf("exit code %q (%v), stderr:\n%s", code, err, b)
	}
}
