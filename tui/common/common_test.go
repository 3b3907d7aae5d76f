package common

import (
	"errors"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 812: "812B", 4096: "4.0K", 38 << 10: "38K", 1<<20 + 200<<10: "1.2M", 3 << 30: "3.0G", 900 << 20: "900M"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{-time.Second: "0s", 850 * time.Millisecond: "850ms", 42 * time.Second: "42s", 5 * time.Minute: "5m", 3 * time.Hour: "3h", 72 * time.Hour: "3d"} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestCommandLineQuotes(t *testing.T) {
	got := CommandLine("litefleet", "restore", "-o", "/tmp/a b.db", "it's", "")
	want := `litefleet restore -o '/tmp/a b.db' 'it'\''s' ''`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestContextFlags(t *testing.T) {
	c := Context{Bucket: "b", Prefix: "databases", Endpoint: "http://e", Dirs: []string{"/d1", "/d2"}, Config: "/c.yml"}
	if got := CommandLine(c.Flags(true)...); got != "-config /c.yml -bucket b -endpoint http://e -dir /d1 -dir /d2" {
		t.Fatalf("Flags: %s", got)
	}
	c.Prefix = "tenants"
	if got := CommandLine(c.ConnFlags()...); got != "-bucket b -prefix tenants -endpoint http://e" {
		t.Fatalf("ConnFlags: %s", got)
	}
}

func TestFitAndPad(t *testing.T) {
	if got := Fit("abcdef", 4, false); got != "abc…" {
		t.Errorf("Fit cut: %q", got)
	}
	if got := Fit("ab", 4, true); got != "  ab" {
		t.Errorf("Fit right: %q", got)
	}
	out := PadLines("a\nbbbbbb", 3, 3)
	for i, l := range []string{"a  ", "bbb", "   "} {
		if got := ansi.Strip(splitLines(out)[i]); got != l {
			t.Errorf("PadLines line %d = %q, want %q", i, got, l)
		}
	}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func TestTasksAndLog(t *testing.T) {
	var ts Tasks
	now := time.Unix(0, 0)
	ts.Start("a", "one", now)
	ts.Start("b", "two", now)
	ts.Start("a", "one again", now) // replaces, moves last
	if ts.Len() != 2 || ts.List()[1].Text != "one again" || !ts.Running("b") {
		t.Fatalf("tasks: %+v", ts.List())
	}
	ts.Progress("a", 0.5)
	ts.Done("a")
	if ts.Running("a") || ts.Len() != 1 {
		t.Fatal("Done did not remove the task")
	}

	var lb LogBook
	for i := range MaxLogLines + 10 {
		lb.Add(now, LogProcess, "line\x1b[2J")
		_ = i
	}
	if n := len(lb.Lines()); n > MaxLogLines || lb.Added != MaxLogLines+10 {
		t.Fatalf("log book kept %d lines, added %d", n, lb.Added)
	}
	if lb.Lines()[0].Text != `"line\x1b[2J"` {
		t.Fatalf("log line not made printable: %q", lb.Lines()[0].Text)
	}

	c := &Common{Now: func() time.Time { return now }, Status: &Status{}, Log: &LogBook{}}
	c.Error(errors.New("boom"))
	if !c.Status.Err || c.Status.Text != "boom" || c.Log.Lines()[0].Kind != LogError {
		t.Fatal("Error does not set the status and the log")
	}
}

func TestMiddleKeepsBothEnds(t *testing.T) {
	guid := "12345678-1234-5678-9abc-123456789012"
	for _, c := range []struct {
		in   string
		w    int
		want string
	}{
		{guid, 36, guid},
		{guid, 23, "12345678-12…23456789012"},
		{"abcdefghij", 5, "ab…ij"},
		{"abcdefghij", 1, "…"},
		{"漢字漢字漢字", 6, "漢…字"},
	} {
		got := Middle(c.in, c.w)
		if got != c.want {
			t.Errorf("Middle(%q, %d) = %q, want %q", c.in, c.w, got, c.want)
		}
		if ansi.StringWidth(got) > c.w {
			t.Errorf("Middle(%q, %d) is %d cells wide", c.in, c.w, ansi.StringWidth(got))
		}
	}
	if got := FitMiddle("abcdefghij", 7, true); got != "abc…hij" {
		t.Errorf("FitMiddle: %q", got)
	}
	if got := FitMiddle("ab", 4, true); got != "  ab" {
		t.Errorf("FitMiddle pads: %q", got)
	}
}

func TestTXIDAndStampNano(t *testing.T) {
	if got := TXID(1841); got != "1841 (0000000000000731)" {
		t.Errorf("TXID: %q", got)
	}
	if got := TXID(0); got != "-" {
		t.Errorf("TXID(0): %q", got)
	}
	at := time.Date(2026, 11, 30, 0, 7, 35, 996081282, time.UTC)
	if got := StampNano(at); got != "2026-11-30T00:07:35.996081282Z" {
		t.Errorf("StampNano: %q", got)
	}
}
