package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3proxy"
)

func TestLTXKey(t *testing.T) {
	tests := []struct {
		key, tenant string
		level       int
		ok          bool
	}{
		{"databases/0b6f-a/0000/0000000000000001-0000000000000001.ltx", "0b6f-a", 0, true},
		{"databases/0b6f-a/0001/0000000000000001-0000000000000004.ltx", "0b6f-a", 1, true},
		{"databases/0b6f-a/0009/0000000000000001-0000000000000004.ltx", "0b6f-a", 9, true},
		{"databases/0b6f-a/lock.json", "", 0, false},
		{"databases/0b6f-a/000g/x.ltx", "", 0, false},
		{"databases/0b6f-a/0000/sub/x.ltx", "", 0, false},
		{".litefleet/hosts/bench/heartbeat.json", "", 0, false},
		{"other/0b6f-a/0000/x.ltx", "", 0, false},
	}
	for _, tt := range tests {
		tenant, level, ok := ltxKey("databases/", tt.key)
		if tenant != tt.tenant || level != tt.level || ok != tt.ok {
			t.Errorf("%s: got %q %d %v, want %q %d %v", tt.key, tenant, level, ok, tt.tenant, tt.level, tt.ok)
		}
	}
}

func TestUploadsLatency(t *testing.T) {
	base := time.Now()
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	u := newUploads("databases")
	var reqLog strings.Builder
	u.logTo(&reqLog)
	put := func(key string, start, end, status int) {
		u.hook(s3proxy.Request{Kind: s3proxy.Put, Key: key, Start: at(start), End: at(end), Status: status})
	}
	l0 := func(tenant string) string {
		return "databases/" + tenant + "/0000/0000000000000002-0000000000000002.ltx"
	}
	put(l0("a"), 100, 300, 200)
	put(l0("a"), 900, 950, 200)
	put(l0("a"), 500, 1200, 200) // ended later, started earlier
	put(l0("b"), 600, 700, 503)  // failed: not an upload
	put("databases/b/0001/0000000000000001-0000000000000002.ltx", 600, 700, 200)
	put(".litefleet/hosts/h/heartbeat.json", 600, 700, 200)
	u.hook(s3proxy.Request{Kind: s3proxy.Get, Key: l0("b"), Start: at(600), End: at(700), Status: 200})

	tests := []struct {
		c    commit
		want time.Duration
	}{
		{commit{"a", at(50)}, 250 * time.Millisecond},   // the upload that started at 100
		{commit{"a", at(100)}, 1100 * time.Millisecond}, // not one that started with it: the next to start, at 500
		{commit{"a", at(600)}, 350 * time.Millisecond},
		{commit{"a", at(1000)}, notUploaded},
		{commit{"b", at(0)}, notUploaded},
	}
	for _, tt := range tests {
		if got := u.latency(tt.c); got != tt.want {
			t.Errorf("commit of %s at +%s: latency %s, want %s", tt.c.tenant, tt.c.at.Sub(base), got, tt.want)
		}
	}
	if n := u.firstCount(); n != 2 {
		t.Errorf("%d tenants with a first upload, want 2 (b's L0 failed, its L1 is in S3)", n)
	}
	if n := u.failedUploads(); n != 1 {
		t.Errorf("%d failed uploads, want b's L0", n)
	}
	if err := u.flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(reqLog.String()), "\n")
	if len(lines) != 8 || !strings.HasSuffix(lines[4], "\t503\tPUT\t\tdatabases/b/0000/0000000000000002-0000000000000002.ltx") {
		t.Errorf("request log: header and 7 requests wanted, got:\n%s", reqLog.String())
	}
	if first := u.firstTimes()["a"]; !first.Equal(at(300)) {
		t.Errorf("a's first upload ended at +%s, want +300ms", first.Sub(base))
	}
	if rest := u.pending([]commit{{"a", at(50)}, {"a", at(1000)}, {"b", at(0)}}); len(rest) != 2 || rest[0].tenant != "a" || rest[1].tenant != "b" {
		t.Errorf("pending: %v", rest)
	}
}

func TestDist(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	d := distOf(lat)
	if d.n != 100 || d.missing != 0 || d.p50 != 50*time.Millisecond || d.p99 != 99*time.Millisecond || d.max != 100*time.Millisecond {
		t.Errorf("1..100 ms: %+v", d)
	}
	lat[0] = notUploaded
	if d := distOf(lat); d.missing != 1 || d.max != notUploaded || d.p99 != 99*time.Millisecond {
		t.Errorf("with one never uploaded: %+v", d)
	}
	if d := distOf(lat[:2]); d.p99 != notUploaded || d.p50 != 99*time.Millisecond {
		t.Errorf("two, one never uploaded: %+v", d)
	}
	if d := distOf(nil); d.n != 0 {
		t.Errorf("none: %+v", d)
	}
}

func TestParseProc(t *testing.T) {
	cpu, err := parseStatCPU("4242 (lite fleet) S 1 4242 4242 0 -1 4194560 5000 0 0 0 150 25 0 0 20 0 12 0 100 0 0")
	if err != nil || cpu != 1750*time.Millisecond {
		t.Errorf("utime 150 + stime 25 ticks: %s %v, want 1.75s", cpu, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("a line without fields parsed")
	}
	if n, err := parseGoroutineHeader("goroutine profile: total 1234\n"); n != 1234 || err != nil {
		t.Errorf("goroutine header: %d %v", n, err)
	}
	if _, err := parseGoroutineHeader("<html>"); err == nil {
		t.Error("a page that is not a goroutine profile parsed")
	}
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.rss <= 0 || s.hwm < s.rss || s.threads < 1 || s.fds < 3 {
		t.Errorf("this process: %+v", s)
	}
}

func TestProcLog(t *testing.T) {
	l := newProcLog(true)
	for _, line := range []string{
		`{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"starting","db":"a"}`,
		`{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"starting","db":"b"}`,
		`{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"new transaction","db":"a","pre":"0000000000000000","post":"0000000000000001"}`,
		`{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"replicating","db":"a"}`,
		`{"time":"2026-01-01T00:01:01Z","level":"INFO","msg":"sleeping","db":"a"}`,
		`{"time":"2026-01-01T00:00:01Z","level":"ERROR","msg":"failed","db":"b","reason":"not a database"}`,
		`{"time":"2026-01-01T00:00:01Z","level":"WARN","msg":"host record not written","error":"timeout"}`,
		`panic: something`,
	} {
		l.line([]byte(line))
	}
	if l.inState("sleeping") != 1 || l.inState("starting") != 0 || l.inState("failed") != 1 || l.stateOf("a") != "sleeping" {
		t.Errorf("states: %v", l.states())
	}
	if l.txns != 1 || l.warns != 1 || l.errs != 1 || l.problems["ERROR failed: not a database"] != 1 || l.problems["WARN host record not written: timeout"] != 1 {
		t.Errorf("counts: %d txns, %d warns, %d errs, %v", l.txns, l.warns, l.errs, l.problems)
	}
	g := newProcLog(true)
	g.line([]byte(`{"level":"ERROR","msg":"failed","db":"0b6f0000-0000-4000-8000-000000000001","reason":"open /d/0b6f0000-0000-4000-8000-000000000001.db: too many open files"}`))
	g.line([]byte(`{"level":"ERROR","msg":"failed","db":"0b6f0000-0000-4000-8000-000000000002","reason":"open /d/0b6f0000-0000-4000-8000-000000000002.db: too many open files"}`))
	if n := g.problems["ERROR failed: open /d/GUID.db: too many open files"]; n != 2 || len(g.problems) != 1 {
		t.Errorf("one message about two tenants: %v", g.problems)
	}
	text := newProcLog(false)
	text.line([]byte(`time=2026-01-01T00:00:00Z level=ERROR msg="sync error" db=/x.db error="too many open files"`))
	text.line([]byte(`time=2026-01-01T00:00:00Z level=INFO msg=replicating db=/x.db`))
	if text.errs != 1 || text.problems["ERROR sync error"] != 1 {
		t.Errorf("text log: %d errors, %v", text.errs, text.problems)
	}
}

func TestSizes(t *testing.T) {
	if got, err := sizes("-n", "1000, 10_000"); err != nil || len(got) != 2 || got[0] != 1000 || got[1] != 10000 {
		t.Errorf("1000, 10_000: %v %v", got, err)
	}
	if got, err := sizes("-compare", ""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"0", "ten", "-5"} {
		if _, err := sizes("-n", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
