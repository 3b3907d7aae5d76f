package testpeer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Descendants lists the processes below pid (children, their children…),
// read from /proc: the process tree a terminal's session leaves behind
// when it closes, whatever process group each one is in.
func Descendants(pid int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		child, ppid, _, ok := procStat(st)
		if ok {
			children[ppid] = append(children[ppid], child)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// procStat reads pid, parent pid and state from a /proc/PID/stat file.
func procStat(path string) (pid, ppid int, state string, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, "", false
	}
	s := string(b)
	// The command name is in parentheses and may hold spaces.
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return 0, 0, "", false
	}
	fields := strings.Fields(s[close+1:])
	if len(fields) < 2 {
		return 0, 0, "", false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(s[:open]))
	ppid, err2 := strconv.Atoi(fields[1])
	return pid, ppid, fields[0], err1 == nil && err2 == nil
}

// Alive reports whether pid is a running process (a zombie is not).
func Alive(pid int) bool {
	_, _, state, ok := procStat("/proc/" + strconv.Itoa(pid) + "/stat")
	return ok && state != "Z" && state != "X"
}

// Cmdline is pid's command line, for messages.
func Cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// WaitGone waits until none of pids runs, and fails the test naming those
// still running after timeout (which it then kills: they are the test's).
func WaitGone(tb testing.TB, pids []int, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var alive []int
		for _, p := range pids {
			if Alive(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var names []string
			for _, p := range alive {
				names = append(names, strconv.Itoa(p)+" "+Cmdline(p))
				if proc, err := os.FindProcess(p); err == nil {
					_ = proc.Kill()
				}
			}
			tb.Fatalf("still running %s later:\n%s", timeout, strings.Join(names, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
