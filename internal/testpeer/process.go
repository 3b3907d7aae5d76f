// Package testpeer holds what the integration tests of several packages
// share: running a command as an operator would (litefleet, the real
// litestream as a peer), the databases a tenant's application writes, and
// reading their rows back. Every helper fails the test it is given, from
// the test's own goroutine; what runs in the background reports errors
// instead.
package testpeer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
)

// Buffer is an io.Writer safe to read while a process writes to it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Without returns env without the variables named.
func Without(env []string, names ...string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, name)
	})
}

// CredEnv is this process's environment with the server's credentials
// given the standard AWS way (AWS_CA_BUNDLE kept).
func CredEnv(srv *s3test.Server) []string {
	return append(Without(os.Environ(), "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"),
		"AWS_ACCESS_KEY_ID="+srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+srv.SecretKey,
	)
}

// Integration skips the test with -short: it needs the S3 server and the
// real peers.
func Integration(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test")
	}
}

// Process is a running command whose stdout and stderr are read together.
type Process struct {
	tb   testing.TB
	Cmd  *exec.Cmd
	Out  *Buffer
	done chan struct{}
	err  error
}

// Start runs bin with args and env (nil: this process's) until it exits
// or the test ends, when it is killed. Its output is logged if the test
// failed.
func Start(tb testing.TB, env []string, bin string, args ...string) *Process {
	tb.Helper()
	return StartAs(tb, nil, env, bin, args...)
}

// StartAs is Start as another user when cred is set (a test running as
// root meets a read-only folder only as someone else).
func StartAs(tb testing.TB, cred *syscall.Credential, env []string, bin string, args ...string) *Process {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	p := &Process{tb: tb, Cmd: cmd, Out: &Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
	// A child of the process that keeps its output pipe open must not
	// hold up Wait (and every wait on done) once the process has exited.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if tb.Failed() {
			tb.Logf("%s %s output:\n%s", bin, strings.Join(args, " "), p.Out.String())
		}
	})
	return p
}

// Run runs bin to completion (two minutes at most) and returns its exit
// code and its output.
func Run(tb testing.TB, env []string, bin string, args ...string) (int, string) {
	tb.Helper()
	p := Start(tb, env, bin, args...)
	code := p.Wait(2 * time.Minute)
	return code, p.Out.String()
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// WaitFor waits until the output matches re and returns the match and its
// groups, failing the test on timeout or when the process exits first.
func (p *Process) WaitFor(re string, timeout time.Duration) []string {
	p.tb.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := rx.FindStringSubmatch(p.Out.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(p.Out.String()); m != nil {
				return m
			}
			p.tb.Fatalf("%s exited (%v) before printing %q:\n%s", p.Cmd.Path, p.err, re, p.Out.String())
		case <-deadline.C:
			p.tb.Fatalf("%s did not print %q within %s:\n%s", p.Cmd.Path, re, timeout, p.Out.String())
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM, as a service manager would, and returns the exit code.
func (p *Process) Stop(timeout time.Duration) int {
	p.tb.Helper()
	p.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) {
	_ = p.Cmd.Process.Signal(sig)
}

// Wait waits for the exit and returns the exit code, failing the test
// when it takes longer than timeout.
func (p *Process) Wait(timeout time.Duration) int {
	p.tb.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.tb.Fatalf("%s did not exit within %s:\n%s", p.Cmd.Path, timeout, p.Out.String())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := errors.AsType[*exec.ExitError](p.err); ok {
		return ee.ExitCode()
	}
	p.tb.Fatalf("wait: %v", p.err)
	return -1
}

// Eventually polls cond until it holds, failing the test with what after
// timeout. For conditions on state the test cannot be told about.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			tb.Fatalf("%s: not within %s", what, timeout)
		case <-tick.C:
		}
	}
}

// Require skips the test when ok is false, saying what it needs, except
// in CI (CI set in the environment, as CI services and .ci/run do), where
// a missing need fails the test instead: CI provides tmux, make, root and
// the user nobody, so a test skipped there would hide that it never ran.
func Require(tb testing.TB, ok bool, need string) {
	tb.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("this test needs %s, which CI provides (.ci/run installs tmux and runs as root): fix the CI machine", need)
		return
	}
	tb.Skipf("this test needs %s (CI runs it)", need)
}
