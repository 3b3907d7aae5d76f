package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"

	"github.com/mattn/go-shellwords"
)

// app is the application that replicate -exec runs as its child, as
// litestream replicate -exec does: the command line split into words as
// Litestream splits it (no shell), the same environment, stdout and
// stderr. It runs in a process group of its own, so a Ctrl-C on the
// terminal reaches it once, forwarded, and not a second time from the
// terminal.
type app struct {
	cmd  *exec.Cmd
	done chan error // Wait's answer, once
}

// startApp starts the command line line.
func startApp(line string, stdout, stderr io.Writer) (*app, error) {
	args, err := shellwords.Parse(line)
	if err != nil {
		return nil, errUsage("-exec %q: %v", line, err)
	}
	if len(args) == 0 {
		return nil, errUsage("-exec: no command given")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("-exec: start %s: %w", args[0], err)
	}
	a := &app{cmd: cmd, done: make(chan error, 1)}
	go func() { a.done <- cmd.Wait() }()
	return a, nil
}

// wait waits for the application to exit by itself, or forwards it the
// first signal and waits for it then; a second signal kills it. It
// returns Wait's answer.
func (a *app) wait(signals <-chan os.Signal, logger *slog.Logger) error {
	select {
	case err := <-a.done:
		logger.Info("application exited: final sync", "code", exitCode(err))
		return err
	case sig := <-signals:
		logger.Info("forwarding the signal to the application, then a final sync", "signal", sig.String(), "pid", a.cmd.Process.Pid)
		if err := a.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			logger.Error("cannot signal the application", "error", err)
		}
	}
	select {
	case err := <-a.done:
		logger.Info("application exited", "code", exitCode(err))
		return err
	case sig := <-signals:
		logger.Error("second signal: killing the application", "signal", sig.String())
		_ = a.cmd.Process.Kill()
		return <-a.done
	}
}

// exitCode is the code a shell would report for Wait's answer: the
// application's exit status, or 128 + the signal that killed it.
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}
