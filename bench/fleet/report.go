package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/litefleet/litefleet/internal/s3proxy"
)

// The kinds a tenant's requests are reported by.
var reportKinds = []s3proxy.Kind{s3proxy.List, s3proxy.Get, s3proxy.Head, s3proxy.Put, s3proxy.Delete}

func commaInt(n int) string { return humanize.Comma(int64(n)) }

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func goroutineText(n int) string {
	if n < 0 {
		return "?"
	}
	return commaInt(n)
}

func latText(d time.Duration) string {
	if d == notUploaded {
		return "never"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func missingText(d dist) string {
	if d.missing == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d of %d not uploaded within the -upload-timeout: counted as the slowest)", d.missing, d.n)
}

// num prints a count or rate with thousands separators and as many
// decimals as a small figure needs.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return humanize.Comma(int64(v + 0.5))
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// kinds prints counts by kind, divided by div, with their total.
func kinds(c s3proxy.Counts, div float64) string {
	var parts []string
	for _, k := range reportKinds {
		parts = append(parts, fmt.Sprintf("%s %s", k, num(float64(c[k])/div)))
	}
	if c[s3proxy.Other] > 0 {
		parts = append(parts, fmt.Sprintf("OTHER %s", num(float64(c[s3proxy.Other])/div)))
	}
	return fmt.Sprintf("%s total (%s)", num(float64(c.Total())/div), strings.Join(parts, ", "))
}

func perTenant(c s3proxy.Counts, n int) string { return kinds(c, float64(n)) }

// perDay extrapolates counts over window to a day, per tenant.
func perDay(c s3proxy.Counts, tenants int, window time.Duration) string {
	return kinds(c, float64(tenants)*window.Seconds()/86400)
}

// perDayByName extrapolates the control requests counted between before
// and after over window to a day.
func perDayByName(before, after map[string]int64, window time.Duration) string {
	var names []string
	for k := range after {
		if after[k] > before[k] {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %s", k, num(dayRate(after[k]-before[k], 1, window))))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func dayRate(n int64, tenants int, window time.Duration) float64 {
	if window <= 0 {
		return 0
	}
	return float64(n) / float64(tenants) * 86400 / window.Seconds()
}

// row is one line of the summary table: a figure of each run, and whether
// litefleet/litestream makes sense of it.
type row struct {
	what  string
	value func(r *result) (float64, string)
	ratio bool
}

var rows = []row{
	{"every tenant's first LTX upload to S3, from start", func(r *result) (float64, string) {
		if r.firstGot < r.n {
			return 0, fmt.Sprintf("only %s of %s", commaInt(r.firstGot), commaInt(r.n))
		}
		return r.firstAll.Seconds(), fmt.Sprintf("%.1f s", r.firstAll.Seconds())
	}, true},
	{"every tenant asleep, from start", func(r *result) (float64, string) {
		if r.sys != sysLitefleet {
			return 0, "never sleeps"
		}
		if r.asleep < r.n {
			return 0, fmt.Sprintf("only %s of %s after %.0f s", commaInt(r.asleep), commaInt(r.n), r.asleepAt.Seconds())
		}
		return r.asleepAt.Seconds(), fmt.Sprintf("%.0f s", r.asleepAt.Seconds())
	}, false},
	{"peak RSS since start (VmHWM, at the idle window's end)", func(r *result) (float64, string) {
		return float64(r.idle.hwm), mib(r.idle.hwm)
	}, true},
	{"RSS after the idle window", func(r *result) (float64, string) {
		return float64(r.idle.rss), mib(r.idle.rss)
	}, true},
	{"open descriptors after the idle window", func(r *result) (float64, string) {
		return float64(r.idle.fds), commaInt(r.idle.fds)
	}, true},
	{"OS threads after the idle window", func(r *result) (float64, string) {
		return float64(r.idle.threads), commaInt(r.idle.threads)
	}, true},
	{"goroutines after the idle window", func(r *result) (float64, string) {
		return float64(r.idle.goroutines), goroutineText(r.idle.goroutines)
	}, true},
	{"CPU over the idle window (% of one core)", func(r *result) (float64, string) {
		return r.idleCPU, fmt.Sprintf("%.1f %%", r.idleCPU)
	}, true},
	{"one scrape of /metrics / of /status (-addr), idle", func(r *result) (float64, string) {
		if r.sys != sysLitefleet || (r.metrics == scrape{} && r.status == scrape{}) {
			return 0, "—"
		}
		return r.metrics.took.Seconds(), r.metrics.String() + " / " + r.status.String()
	}, false},
	{"S3 requests per idle tenant per day", func(r *result) (float64, string) {
		v := dayRate(r.idleReq.Data.Total(), r.n, r.window)
		return v, num(v)
	}, true},
	{"… LIST / GET / HEAD / PUT / DELETE", func(r *result) (float64, string) {
		var parts []string
		for _, k := range reportKinds {
			parts = append(parts, num(dayRate(r.idleReq.Data[k], r.n, r.window)))
		}
		return 0, strings.Join(parts, " / ")
	}, false},
	{"heartbeat and host-record requests per process per day", func(r *result) (float64, string) {
		v := dayRate(r.idleReq.Control.Total(), 1, r.window)
		return v, num(v)
	}, false},
	{"peak RSS while the writers write", func(r *result) (float64, string) {
		return float64(r.writePeak.rss), mib(r.writePeak.rss)
	}, true},
	{"peak descriptors while the writers write", func(r *result) (float64, string) {
		return float64(r.writePeak.fds), commaInt(r.writePeak.fds)
	}, true},
	{"peak OS threads while the writers write", func(r *result) (float64, string) {
		return float64(r.writePeak.threads), commaInt(r.writePeak.threads)
	}, true},
	{"commit to S3 while the fleet starts, writing tenants: p50 / p99", func(r *result) (float64, string) {
		if r.startW.n == 0 {
			return 0, "—"
		}
		return r.startW.p99.Seconds(), latText(r.startW.p50) + " / " + latText(r.startW.p99) + missingShort(r.startW)
	}, true},
	{"commit to S3, writing tenants: p50 / p99", func(r *result) (float64, string) {
		return r.active.p99.Seconds(), latText(r.active.p50) + " / " + latText(r.active.p99) + missingShort(r.active)
	}, true},
	{"commit to S3, wakes of sleeping tenants: p50 / p99", func(r *result) (float64, string) {
		if r.wake.n == 0 {
			return 0, "—"
		}
		s := latText(r.wake.p50) + " / " + latText(r.wake.p99) + missingShort(r.wake)
		if r.sys == sysLitestream {
			s += " (never asleep)"
		}
		return r.wake.p99.Seconds(), s
	}, true},
	{"S3 requests per wake (litefleet: until asleep again)", func(r *result) (float64, string) {
		if r.wake.n == 0 {
			return 0, "—"
		}
		v := float64(r.wakeReq.Total()) / float64(r.wake.n)
		return v, num(v)
	}, false},
	{"SIGTERM to exit", func(r *result) (float64, string) {
		s := fmt.Sprintf("%.1f s, exit %d", r.stopTook.Seconds(), r.exitCode)
		if r.killed {
			s = fmt.Sprintf("killed after %.0f s", r.stopTook.Seconds())
		}
		return r.stopTook.Seconds(), s
	}, false},
}

func missingShort(d dist) string {
	if d.missing == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d never)", d.missing)
}

// summary prints the table of every run: litefleet and litestream side by
// side at each N, with their ratio.
func (b *bench) summary(results []*result) {
	type column struct {
		head  string
		value func(row) string
	}
	var cols []column
	for i, r := range results {
		if r.err != nil && r.idle.rss == 0 {
			continue // failed before it measured anything
		}
		head := fmt.Sprintf("`%s` N=%s", map[string]string{sysLitefleet: "litefleet replicate -dir", sysLitestream: "litestream replicate -config"}[r.sys], commaInt(r.n))
		if r.baseline {
			head = fmt.Sprintf("baseline `%s` N=%s", filepath.Base(b.baseline), commaInt(r.n))
		}
		cols = append(cols, column{head, func(rw row) string { _, s := rw.value(r); return s }})
		if (r.sys != sysLitestream && !r.baseline) || i == 0 || results[i-1].sys != sysLitefleet || results[i-1].baseline || results[i-1].n != r.n {
			continue
		}
		lf, ls := results[i-1], r
		ratio := "ratio litefleet / litestream"
		if r.baseline {
			ratio = "ratio this build / baseline"
		}
		cols = append(cols, column{ratio, func(rw row) string {
			if !rw.ratio {
				return "—"
			}
			a, _ := rw.value(lf)
			c, _ := rw.value(ls)
			if c <= 0 || a < 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f", a/c)
		}})
	}
	fmt.Fprintf(b.out, "\n## Summary\n\n")
	fmt.Fprintf(b.out, "%s, versitygw on 127.0.0.1 behind a request-counting proxy; idle window %s after every tenant slept (litefleet -sleep-after %s) or after the first snapshots (litestream); %d writing tenants committing about once a second for %s; %d wakes of sleeping tenants.\n",
		machineLine(), b.idle, b.sleepAfter, b.writers, b.writeFor, b.wakes)
	fmt.Fprintf(b.out, "A tenant's first snapshot is its first LTX upload (any level) answered 2xx at the proxy. ")
	fmt.Fprintf(b.out, "Commit-to-S3 latency is measured from COMMIT returning in the writer to the end (at the proxy) of the tenant's first level-0 LTX upload that started after it.\n\n")
	var sb strings.Builder
	sb.WriteString("| per process / per tenant |")
	for _, c := range cols {
		sb.WriteString(" " + c.head + " |")
	}
	sb.WriteString("\n|---|")
	for range cols {
		sb.WriteString("---|")
	}
	sb.WriteString("\n")
	for _, rw := range rows {
		sb.WriteString("| " + rw.what + " |")
		for _, c := range cols {
			sb.WriteString(" " + c.value(rw) + " |")
		}
		sb.WriteString("\n")
	}
	fmt.Fprint(b.out, sb.String())
	fmt.Fprintf(b.out, "\nCommand: `make build && go run ./bench/fleet %s` (or `make bench-fleet BENCH_FLEET_ARGS=\"%s\"`)\n",
		strings.Join(quoteArgs(os.Args[1:]), " "), strings.Join(quoteArgs(os.Args[1:]), " "))
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(b.out, "%s failed: %v\n", r.label(), r.err)
		}
	}
}

func machineLine() string {
	return fmt.Sprintf("Linux, %d CPUs", runtime.NumCPU())
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}
