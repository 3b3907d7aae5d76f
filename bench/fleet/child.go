package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a replicator the benchmark runs and measures: its output goes
// to a log file and, line by line, to its log parser.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	log     *procLog
	exited  chan struct{} // closed when the process has exited
	waitErr error
	readers sync.WaitGroup
}

func startChild(name string, args, env []string, logPath string, log *procLog) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = pw, pw
	// The kernel stops the child if the benchmark dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pw.Close() // the child holds the writing end
	c := &child{name: name, cmd: cmd, logPath: logPath, log: log, exited: make(chan struct{})}
	c.readers.Add(1)
	go func() {
		defer c.readers.Done()
		defer logFile.Close()
		defer pr.Close()
		r := bufio.NewReaderSize(pr, 64<<10)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				_, _ = logFile.Write(line)
				log.line(bytes.TrimRight(line, "\n"))
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// errExited says a replicator stopped while it was being measured.
func (c *child) errExited() error {
	return fmt.Errorf("%s exited during the benchmark (%v); its log: %s\n%s", c.name, c.waitErr, c.logPath, c.log.tail())
}

// stop sends SIGTERM and waits up to timeout for the process to exit, then
// kills it. It returns how long the process took to exit after SIGTERM,
// its exit code, and whether it had to be killed.
func (c *child) stop(timeout time.Duration) (took time.Duration, code int, killed bool) {
	start := time.Now()
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(timeout):
			killed = true
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	took = time.Since(start)
	c.readers.Wait()
	code = -1
	if ps := c.cmd.ProcessState; ps != nil {
		code = ps.ExitCode()
	}
	return took, code, killed
}

// States of litefleet's tenants, as it logs them (replication.State).
var fleetStates = map[string]bool{
	"starting": true, "replicating": true, "sleeping": true, "leased elsewhere": true,
	"lease lost (retrying)": true, "diverged": true, "missing": true, "failed": true, "stopped": true,
}

// procLog parses a replicator's log: litefleet's -log-format json (tenant
// states, warnings and errors) or Litestream's text (warnings and errors).
type procLog struct {
	json bool

	mu       sync.Mutex
	state    map[string]string // tenant -> its last state (litefleet)
	count    map[string]int    // state -> tenants in it
	sleeps   map[string]int    // tenant -> times it fell asleep
	txns     int               // "new transaction" lines
	warns    int
	errs     int
	problems map[string]int // "LEVEL message" -> lines
	last     []string       // the last lines, for an error message
	changed  chan struct{}  // closed and replaced on every state change
}

func newProcLog(json bool) *procLog {
	return &procLog{json: json, state: map[string]string{}, count: map[string]int{}, sleeps: map[string]int{}, problems: map[string]int{}, changed: make(chan struct{})}
}

const tailLines = 20

func (l *procLog) line(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.last) == tailLines {
		l.last = l.last[1:]
	}
	l.last = append(l.last, string(b))
	if !l.json {
		s := string(b)
		switch {
		case strings.Contains(s, "level=ERROR"):
			l.errs++
			l.problems["ERROR "+guids.ReplaceAllString(textMsg(s), "GUID")]++
		case strings.Contains(s, "level=WARN"):
			l.warns++
			l.problems["WARN "+textMsg(s)]++
		}
		return
	}
	var rec struct {
		Level, Msg, DB string
		Error, Reason  string
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return // a line that is not litefleet's (a panic, say) stays in the tail
	}
	switch rec.Level {
	case "WARN":
		l.warns++
	case "ERROR":
		l.errs++
	}
	if rec.Level == "WARN" || rec.Level == "ERROR" {
		what := rec.Level + " " + rec.Msg
		if rec.Reason != "" {
			what += ": " + rec.Reason
		} else if rec.Error != "" {
			what += ": " + rec.Error
		}
		l.problems[clip(guids.ReplaceAllString(what, "GUID"), 200)]++
	}
	if rec.Msg == "new transaction" {
		l.txns++
	}
	if rec.DB != "" && fleetStates[rec.Msg] {
		if old, ok := l.state[rec.DB]; ok {
			l.count[old]--
		}
		l.state[rec.DB] = rec.Msg
		l.count[rec.Msg]++
		if rec.Msg == "sleeping" {
			l.sleeps[rec.DB]++
		}
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// guids matches tenant names, so that one message about many tenants is
// counted as one.
var guids = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// textMsg is the msg= of a Litestream text log line.
func textMsg(s string) string {
	i := strings.Index(s, "msg=")
	if i < 0 {
		return clip(s, 120)
	}
	s = s[i+4:]
	if strings.HasPrefix(s, `"`) {
		if j := strings.Index(s[1:], `"`); j >= 0 {
			return s[1 : j+1]
		}
	}
	if j := strings.IndexByte(s, ' '); j >= 0 {
		s = s[:j]
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// wait returns a channel closed at the next state change.
func (l *procLog) wait() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// inState counts the tenants whose last state is s.
func (l *procLog) inState(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[s]
}

// sleepCounts returns how many times each tenant fell asleep.
func (l *procLog) sleepCounts(tenants []string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int, len(tenants))
	for i, t := range tenants {
		out[i] = l.sleeps[t]
	}
	return out
}

func (l *procLog) stateOf(t string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state[t]
}

// states counts tenants by state.
func (l *procLog) states() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]int{}
	for s, n := range l.count {
		if n > 0 {
			m[s] = n
		}
	}
	return m
}

func (l *procLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.last, "\n")
}

// summary describes the warnings and errors logged, the most frequent first.
func (l *procLog) summary(w io.Writer, indent string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(w, "%slog: %d warnings, %d errors", indent, l.warns, l.errs)
	if l.json {
		fmt.Fprintf(w, ", %d \"new transaction\" lines", l.txns)
	}
	fmt.Fprintln(w)
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range l.problems {
		all = append(all, kv{k, n})
	}
	slices.SortFunc(all, func(a, b kv) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.k, b.k)
	})
	for i, p := range all {
		if i == 8 {
			fmt.Fprintf(w, "%s  … and %d other messages\n", indent, len(all)-i)
			break
		}
		fmt.Fprintf(w, "%s  %6d × %s\n", indent, p.n, p.k)
	}
}

var errTimeout = errors.New("timed out")
