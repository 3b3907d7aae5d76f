package testpeer

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// An App is a tenant's application in a process of its own: the test
// binary run again (see AppMain), holding SQLite connections to one
// database and driven line by line. SQLite's POSIX locks coordinate only
// between processes: an application in the test's own process would share
// the replicator's lock table and never meet what a real one meets (its
// closing connection deleting the WAL when the replicator holds no lock).
type App struct {
	tb   testing.TB
	path string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	mu   sync.Mutex
	errs bytes.Buffer
}

const appEnv = "LITEFLEET_TEST_APP_DB"

// AppAnswerTimeout bounds the wait for an application's answer to one
// command (an insert of many rows included).
const AppAnswerTimeout = 2 * time.Minute

// AppMain runs the application when this process was started as one by
// StartApp; call it first in the TestMain of a package that uses StartApp.
func AppMain() {
	path := os.Getenv(appEnv)
	if path == "" {
		return
	}
	os.Exit(runApp(path, os.Stdin, os.Stdout))
}

// StartApp starts an application on the database at path. It opens no
// connection until told to.
func StartApp(tb testing.TB, path string) *App {
	tb.Helper()
	a := &App{tb: tb, path: path}
	a.cmd = exec.Command(os.Args[0], "-test.run=^$")
	a.cmd.Env = append(os.Environ(), appEnv+"="+path)
	a.cmd.WaitDelay = 10 * time.Second
	a.cmd.Stderr = &a.errs
	var err error
	if a.in, err = a.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	a.out = bufio.NewReader(stdout)
	if err := a.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Quit)
	return a
}

// Pid is the application's process id.
func (a *App) Pid() int { return a.cmd.Process.Pid }

// Try sends one command and returns its answer:
//
//	open [BUSY_MS]       a new connection (busy timeout 5 s by default; journal mode untouched)
//	exec SQL             run SQL on it
//	query SQL            the first column of the first row
//	insert FROM N        N rows into t (id, val), one transaction each
//	close                close the connection (the last one checkpoints and deletes the WAL)
func (a *App) Try(line string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := fmt.Fprintln(a.in, line); err != nil {
		return "", fmt.Errorf("app: %w (stderr: %s)", err, a.errs.String())
	}
	type answer struct {
		s   string
		err error
	}
	got := make(chan answer, 1)
	go func() {
		s, err := a.out.ReadString('\n')
		got <- answer{s, err}
	}()
	var ans string
	select {
	case r := <-got:
		if r.err != nil {
			return "", fmt.Errorf("app: %w (stderr: %s)", r.err, a.errs.String())
		}
		ans = r.s
	case <-time.After(AppAnswerTimeout):
		// Killed: its pipe closes, and the read above returns.
		_ = a.cmd.Process.Kill()
		<-got
		return "", fmt.Errorf("app %q: no answer within %s: killed (stderr: %s)", line, AppAnswerTimeout, a.errs.String())
	}
	ans = strings.TrimSuffix(ans, "\n")
	if msg, ok := strings.CutPrefix(ans, "err "); ok {
		return "", fmt.Errorf("app %q: %s", line, msg)
	}
	return strings.TrimPrefix(ans, "ok "), nil
}

// Do is Try, failing the test on error.
func (a *App) Do(line string) string {
	a.tb.Helper()
	ans, err := a.Try(line)
	if err != nil {
		a.tb.Fatal(err)
	}
	return ans
}

// Quit ends the application, closing its connection.
func (a *App) Quit() {
	if a.cmd.ProcessState != nil {
		return
	}
	a.in.Close()
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
	}
}

func runApp(path string, in io.Reader, out io.Writer) int {
	var db *sql.DB
	ctx := context.Background()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		ans, err := "", error(nil)
		switch cmd {
		case "open":
			if db != nil {
				db.Close()
			}
			busy := 5000
			if arg != "" {
				busy, _ = strconv.Atoi(arg)
			}
			db, err = sql.Open("sqlite", fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)", path, busy))
			if err == nil {
				db.SetMaxOpenConns(1)
				err = db.PingContext(ctx)
			}
		case "exec":
			_, err = db.ExecContext(ctx, arg)
		case "query":
			var v any
			if err = db.QueryRowContext(ctx, arg).Scan(&v); err == nil {
				ans = fmt.Sprint(v)
			}
		case "insert":
			from, n := 0, 0
			if f := strings.Fields(arg); len(f) == 2 {
				from, _ = strconv.Atoi(f[0])
				n, _ = strconv.Atoi(f[1])
			}
			err = insertRows(ctx, db, from, n)
		case "close":
			if db != nil {
				err = db.Close()
				db = nil
			}
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			fmt.Fprintf(out, "err %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintf(out, "ok %s\n", ans)
		}
	}
	if db != nil {
		db.Close()
	}
	return 0
}

// HoldsLock reports whether process pid holds a POSIX lock on the file at
// path, as /proc/locks lists them (Linux).
func HoldsLock(tb testing.TB, pid int, path string) bool {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	ino := inode(fi)
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		tb.Skipf("no /proc/locks: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		// 1: POSIX  ADVISORY  READ 1234 08:01:5678 1073741826 1073741826
		f := strings.Fields(line)
		if len(f) < 8 || f[1] != "POSIX" {
			continue
		}
		if f[4] != strconv.Itoa(pid) {
			continue
		}
		parts := strings.Split(f[5], ":")
		if len(parts) == 3 && parts[2] == strconv.FormatUint(ino, 10) {
			return true
		}
	}
	return false
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
