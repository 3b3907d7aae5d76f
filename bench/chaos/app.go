package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the pure-Go driver Litestream uses
)

// appEnv marks this program started again as a tenant's application: a
// process of its own, so that its SQLite locks meet the replicator's as a
// real application's do.
const appEnv = "LITEFLEET_CHAOS_APP"

// appMain runs the application when this process was started as one; it
// returns otherwise. Call it first in main and TestMain.
func appMain() {
	if os.Getenv(appEnv) == "" {
		return
	}
	os.Exit(runApp(os.Stdin, os.Stdout))
}

// runApp answers one line per command:
//
//	open PATH          a new connection (closing the previous one)
//	insert ID TAG SIZE a row in t (id, host, val) of SIZE bytes, one transaction
//	ids                every "id:tag" in t, space-separated
//	close              close the connection (the last one may checkpoint and delete the WAL)
func runApp(in io.Reader, out io.Writer) int {
	var db *sql.DB
	ctx := context.Background()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		ans, err := "", error(nil)
		switch {
		case f[0] == "open" && len(f) == 2:
			if db != nil {
				db.Close()
			}
			db, err = sql.Open("sqlite", "file:"+f[1]+"?_pragma=busy_timeout(5000)")
			if err == nil {
				db.SetMaxOpenConns(1)
				err = db.PingContext(ctx)
			}
		case db == nil:
			err = errors.New("no connection")
		case f[0] == "insert" && len(f) == 4:
			id, _ := strconv.ParseInt(f[1], 10, 64)
			size, _ := strconv.Atoi(f[3])
			val := noise(uint64(id), size)
			_, err = db.ExecContext(ctx, `INSERT INTO t (id, host, val) VALUES (?, ?, ?)`, id, f[2], val)
		case f[0] == "ids":
			var rows map[int64]string
			rows, err = readTags(ctx, db)
			var b strings.Builder
			for id, tag := range rows {
				fmt.Fprintf(&b, "%d:%s ", id, tag)
			}
			ans = strings.TrimSpace(b.String())
		case f[0] == "close":
			err = db.Close()
			db = nil
		default:
			err = fmt.Errorf("unknown command %q", sc.Text())
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

// readTags reads every row's id and tag.
func readTags(ctx context.Context, db *sql.DB) (map[int64]string, error) {
	rs, err := db.QueryContext(ctx, `SELECT id, host FROM t`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := map[int64]string{}
	for rs.Next() {
		var id int64
		var tag string
		if err := rs.Scan(&id, &tag); err != nil {
			return nil, err
		}
		out[id] = tag
	}
	return out, rs.Err()
}

// parseTags reads the answer of "ids".
func parseTags(s string) map[int64]string {
	out := map[int64]string{}
	for f := range strings.FieldsSeq(s) {
		a, b, _ := strings.Cut(f, ":")
		if id, err := strconv.ParseInt(a, 10, 64); err == nil {
			out[id] = b
		}
	}
	return out
}

// app is a running application process, driven by one goroutine.
type app struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	errs *syncBuf
	mu   sync.Mutex
}

func startApp() (*app, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	a := &app{errs: &syncBuf{}}
	a.cmd = exec.Command(self, "-test.run=^$")
	a.cmd.Env = append(os.Environ(), appEnv+"=1")
	a.cmd.Stderr = a.errs
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if a.in, err = a.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	a.out = bufio.NewReaderSize(stdout, 1<<20)
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the application: %w", err)
	}
	return a, nil
}

// errTimeout says the application did not answer in time: whether the
// command took effect is unknown, and the application was killed.
var errTimeout = errors.New("the application did not answer in time")

// do sends one command and waits up to timeout for its answer.
func (a *app) do(line string, timeout time.Duration) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	type answer struct {
		s   string
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		if _, err := fmt.Fprintln(a.in, line); err != nil {
			ch <- answer{err: fmt.Errorf("app: %w", err)}
			return
		}
		s, err := a.out.ReadString('\n')
		ch <- answer{s, err}
	}()
	select {
	case ans := <-ch:
		if ans.err != nil {
			return "", fmt.Errorf("app: %w (stderr: %s)", ans.err, a.errs.String())
		}
		s := strings.TrimSuffix(ans.s, "\n")
		if msg, ok := strings.CutPrefix(s, "err "); ok {
			return "", fmt.Errorf("app %q: %s", line, msg)
		}
		return strings.TrimPrefix(s, "ok "), nil
	case <-time.After(timeout):
		_ = a.cmd.Process.Kill()
		return "", errTimeout
	}
}

// quit ends the application, closing its connection.
func (a *app) quit() {
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

// syncBuf is a buffer safe for a process to write while it is read.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 1<<16 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
