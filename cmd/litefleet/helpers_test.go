package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// binary is the litefleet command built once for the integration tests:
// they run it as an operator would, with signals and exit codes.
var binary string

func TestMain(m *testing.M) {
	execTestApp() // the application of replicate -exec's test, when it is one
	dir, err := os.MkdirTemp("", "litefleet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by every user: a test runs it as nobody to meet a
	// read-only folder as root cannot.
	_ = os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "litefleet")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build litefleet:", err)
		os.Exit(1)
	}
	code := s3test.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// startLitefleet starts the litefleet binary with env and args.
func startLitefleet(t testing.TB, env []string, args ...string) *testpeer.Process {
	t.Helper()
	return testpeer.Start(t, env, binary, args...)
}

// startLitefleetAs starts litefleet as another user when cred is set.
func startLitefleetAs(t testing.TB, cred *syscall.Credential, env []string, args ...string) *testpeer.Process {
	t.Helper()
	return testpeer.StartAs(t, cred, env, binary, args...)
}

// runLitefleet runs the litefleet binary to completion and returns its
// exit code and its output (stdout and stderr together).
func runLitefleet(t testing.TB, env []string, args ...string) (int, string) {
	t.Helper()
	return testpeer.Run(t, env, binary, args...)
}
