package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// procSample is what /proc says of a process at one moment.
type procSample struct {
	rss, hwm   int64 // resident and peak resident bytes
	threads    int
	fds        int
	cpu        time.Duration // user + system time so far, every thread
	goroutines int           // -1 when unknown
}

// clockTick is the unit of /proc/PID/stat's times: USER_HZ, 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

func readProc(pid int) (procSample, error) {
	s := procSample{goroutines: -1}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rss = n << 10
		case "VmHWM":
			s.hwm = n << 10
		case "Threads":
			s.threads = int(n)
		}
	}
	if s.cpu, err = cpuTime(pid); err != nil {
		return s, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	return s, nil
}

// cpuTime is a process's utime + stime (/proc/PID/stat fields 14 and 15).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

func parseStatCPU(stat string) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat line %.40q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat line %.40q", stat)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc stat times %q %q", f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// goroutines reads the goroutine count from a net/http/pprof server
// (litefleet's LITEFLEET_PPROF, Litestream's addr:).
func goroutines(ctx context.Context, addr string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("goroutine profile at %s: %w", addr, err)
	}
	return parseGoroutineHeader(line)
}

func parseGoroutineHeader(line string) (int, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("unexpected goroutine profile header %.60q", line)
	}
	return strconv.Atoi(rest)
}

// sample reads a process's figures and its goroutine count.
func sample(ctx context.Context, pid int, pprofAddr string) (procSample, error) {
	s, err := readProc(pid)
	if err != nil {
		return s, err
	}
	if pprofAddr != "" {
		if n, err := goroutines(ctx, pprofAddr); err == nil {
			s.goroutines = n
		}
	}
	return s, nil
}

// peak keeps the highest of each figure over several samples.
type peak struct{ procSample }

func (p *peak) add(s procSample) {
	p.rss = max(p.rss, s.rss)
	p.hwm = max(p.hwm, s.hwm)
	p.threads = max(p.threads, s.threads)
	p.fds = max(p.fds, s.fds)
	p.goroutines = max(p.goroutines, s.goroutines)
}
