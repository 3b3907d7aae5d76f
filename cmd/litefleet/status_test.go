package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

// lsRow is a row of `ls -json` with the fields these tests read.
type lsRow struct {
	Tenant     string `json:"tenant"`
	Status     string `json:"status"`
	Note       string `json:"note"`
	Host       string `json:"host"`
	State      string `json:"state"`
	HostAge    int64  `json:"host_age_ns"`
	HostSilent bool   `json:"host_silent"`
	LagTXIDs   uint64 `json:"lag_txids"`
	LagNS      int64  `json:"lag_ns"`
	Remote     *struct {
		LatestTXID uint64 `json:"latest_txid"`
		Source     string `json:"source"`
	} `json:"remote"`
}

type lsDoc struct {
	Tenants []lsRow `json:"tenants"`
	Hosts   []struct {
		Host    string `json:"host"`
		Silent  bool   `json:"silent"`
		Tenants int    `json:"tenants"`
	} `json:"hosts"`
	RemoteErr string `json:"remote_error"`
}

// lsHostsJSON runs `litefleet ls -json` over the bucket alone (no -dir).
func lsHostsJSON(t *testing.T, srv *s3test.Server, conn s3conn.Conn, extra ...string) (lsDoc, map[string]lsRow) {
	t.Helper()
	args := append([]string{"ls", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-json", "-no-cache"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = testpeer.CredEnv(srv)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("litefleet %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var doc lsDoc
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("decode ls -json: %v\n%s", err, out)
	}
	rows := map[string]lsRow{}
	for _, r := range doc.Tenants {
		rows[r.Tenant] = r
	}
	return doc, rows
}

// eventually retries check until it returns "" or timeout passes, then
// fails with its last answer.
func eventually(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, why)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// lastPost is the TXID of the tenant's last "new transaction" line.
func lastPost(t *testing.T, p *testpeer.Process, tenant string) uint64 {
	t.Helper()
	p.WaitFor(seedTx(tenant), 30*time.Second)
	var post uint64
	for _, line := range strings.Split(p.Out.String(), "\n") {
		if !strings.Contains(line, "new transaction: db="+tenant+" ") {
			continue
		}
		_, after, _ := strings.Cut(line, " post=")
		hex, _, _ := strings.Cut(after, " ")
		n, err := strconv.ParseUint(hex, 16, 64)
		if err == nil && n > post {
			post = n
		}
	}
	return post
}

// Two replicators with different -host names on two folders: ls over the
// bucket alone shows each tenant's host, state and lag from their host
// records; once one host is killed, its tenants are "host silent".
func TestLsShowsEveryHostAndSilentOnes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	dbA := testpeer.OpenDB(t, filepath.Join(dirA, guid1+".db"))
	dbB := testpeer.OpenDB(t, filepath.Join(dirB, guid2+".db"))
	testpeer.InsertRows(t, dbA, 0, 10)
	testpeer.InsertRows(t, dbB, 0, 10)

	a := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dirA, "-host", "host-a")...)
	b := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dirB, "-host", "host-b")...)
	a.WaitFor(`replicating: db=`+guid1, 30*time.Second)
	b.WaitFor(`replicating: db=`+guid2, 30*time.Second)
	testpeer.InsertRows(t, dbA, 10, 20)
	testpeer.InsertRows(t, dbB, 10, 5)
	a.WaitFor(seedTx(guid1), 30*time.Second)
	b.WaitFor(seedTx(guid2), 30*time.Second)

	// Records are published at most once per 10 s: wait for them to say
	// the last synced position.
	var rows map[string]lsRow
	var doc lsDoc
	eventually(t, 45*time.Second, func() string {
		wantA, wantB := lastPost(t, a, guid1), lastPost(t, b, guid2)
		doc, rows = lsHostsJSON(t, srv, conn)
		for _, w := range []struct {
			tenant, host string
			txid         uint64
		}{{guid1, "host-a", wantA}, {guid2, "host-b", wantB}} {
			r := rows[w.tenant]
			if r.Host != w.host || (r.State != "replicating" && r.State != "sleeping") || r.Status != "in sync" ||
				r.LagTXIDs != 0 || r.LagNS != 0 || r.Remote == nil || r.Remote.LatestTXID != w.txid || r.HostSilent {
				return fmt.Sprintf("%s: %+v (remote %+v), want host %s replicating or sleeping, in sync at TXID %d", w.tenant, r, r.Remote, w.host, w.txid)
			}
		}
		return ""
	})
	if len(doc.Hosts) != 2 || doc.Hosts[0].Host != "host-a" || doc.Hosts[0].Tenants != 1 || doc.Hosts[1].Tenants != 1 {
		t.Fatalf("hosts %+v, want host-a and host-b with one tenant each", doc.Hosts)
	}
	if rows[guid1].Remote.Source != s3browse.SourceHostRecord {
		t.Errorf("%s's position did not come from its host record (source %q): ls listed its objects", guid1, rows[guid1].Remote.Source)
	}
	// -scan lists the objects and agrees.
	_, scanned := lsHostsJSON(t, srv, conn, "-scan")
	if r := scanned[guid1]; r.Remote == nil || r.Remote.Source != "" || r.Host != "host-a" || r.Remote.LatestTXID != rows[guid1].Remote.LatestTXID {
		t.Errorf("ls -scan: %+v, want the listing's TXID %d and host-a", r, rows[guid1].Remote.LatestTXID)
	}

	// host-b dies without a word: within 60 s its tenant is "host silent".
	if err := b.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	eventually(t, 60*time.Second, func() string {
		_, rows = lsHostsJSON(t, srv, conn)
		r := rows[guid2]
		if r.Status != "host silent" || !r.HostSilent || r.Host != "host-b" {
			return fmt.Sprintf("%s %s after the kill: %+v, want host silent on host-b", guid2, time.Since(killed).Round(time.Second), r)
		}
		return ""
	})
	if r := rows[guid1]; r.Status != "in sync" || r.Host != "host-a" {
		t.Errorf("%s: %+v, want still in sync on host-a", guid1, r)
	}
	if age := time.Duration(rows[guid2].HostAge); age < 40*time.Second {
		t.Errorf("host-b's heartbeat age %s, want at least 40s", age)
	}
	// The text form says it too.
	cmd := exec.Command(binary, "ls", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-no-cache")
	cmd.Env = testpeer.CredEnv(srv)
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "host-b silent") || !strings.Contains(string(out), "host-a replicating") && !strings.Contains(string(out), "host-a sleeping") {
		t.Errorf("ls text does not show the hosts:\n%s", out)
	}
}

// runAs is how the replicator of the monitor test runs: as an unprivileged
// user when the test is root, for whom chmod 000 hides nothing.
type runAs struct {
	attr *syscall.SysProcAttr
	env  []string
}

const nobody = 65534

func unprivileged(t *testing.T, env []string, dirs ...string) runAs {
	t.Helper()
	if os.Geteuid() != 0 {
		return runAs{env: env}
	}
	home := t.TempDir()
	for _, d := range append(dirs, home) {
		// t.TempDir's parent is the test's own, 0700: let the user through.
		if err := os.Chmod(filepath.Dir(d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, nobody, nobody)
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The binary's folder must let that user in.
	if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
		t.Fatal(err)
	}
	return runAs{
		attr: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}},
		env:  append(env, "HOME="+home),
	}
}

func startAs(t *testing.T, as runAs, args ...string) *testpeer.Process {
	t.Helper()
	return testpeer.StartAs(t, as.attr.Credential, as.env, binary, args...)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func gauge(mf map[string]*dto.MetricFamily, name, tenant string) (float64, bool) {
	f := mf[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "tenant" && l.GetValue() == tenant {
				if m.Gauge != nil {
					return m.Gauge.GetValue(), true
				}
				return m.Counter.GetValue(), true
			}
		}
	}
	return 0, false
}

// replicate -addr: /metrics parses with Prometheus's own parser and holds
// each tenant's series with the TXIDs it synced; /healthz turns 503 when a
// tenant's file is made unreadable, and 200 again when it is fixed.
func TestMonitorEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	pathA, pathB := filepath.Join(dir, guid1+".db"), filepath.Join(dir, guid2+".db")
	dbA, dbB := testpeer.OpenDB(t, pathA), testpeer.OpenDB(t, pathB)
	testpeer.InsertRows(t, dbA, 0, 10)
	testpeer.InsertRows(t, dbB, 0, 10)
	as := unprivileged(t, testpeer.CredEnv(srv), dir)

	p := startAs(t, as, replicateArgs(srv, conn, "-dir", dir, "-host", "mon-1", "-addr", "127.0.0.1:0", "-sleep-after", "2s")...)
	addr := p.WaitFor(`monitor listening: addr=(\S+)`, 20*time.Second)[1]
	base := "http://" + addr
	p.WaitFor(`replicating: db=`+guid1, 30*time.Second)
	p.WaitFor(`replicating: db=`+guid2, 30*time.Second)
	testpeer.InsertRows(t, dbA, 10, 30)
	testpeer.InsertRows(t, dbB, 10, 3)

	var mf map[string]*dto.MetricFamily
	eventually(t, 30*time.Second, func() string {
		wantA, wantB := lastPost(t, p, guid1), lastPost(t, p, guid2)
		code, text := httpGet(t, base+"/metrics")
		if code != http.StatusOK {
			return fmt.Sprintf("/metrics: %d", code)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		var err error
		if mf, err = parser.TextToMetricFamilies(strings.NewReader(text)); err != nil {
			t.Fatalf("/metrics does not parse: %v\n%s", err, text)
		}
		for tenant, want := range map[string]uint64{guid1: wantA, guid2: wantB} {
			local, _ := gauge(mf, "litefleet_tenant_local_txid", tenant)
			repl, _ := gauge(mf, "litefleet_tenant_replicated_txid", tenant)
			if uint64(repl) != want || uint64(local) != want {
				return fmt.Sprintf("%s: local %v replicated %v, want both %d (the last new transaction's post)", tenant, local, repl, want)
			}
		}
		return ""
	})
	for _, name := range []string{"litefleet_tenant_state", "litefleet_tenant_lag_seconds", "litefleet_tenant_last_sync_timestamp_seconds",
		"litefleet_tenant_sync_errors_total", "litefleet_tenant_uploaded_bytes_total", "litefleet_s3_requests_total", "litefleet_tenants", "litefleet_heartbeat_age_seconds"} {
		if _, ok := mf[name]; !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
	checkPromConventions(t, mf)
	if up, _ := gauge(mf, "litefleet_tenant_uploaded_bytes_total", guid1); up <= 0 {
		t.Errorf("tenant %s uploaded %v bytes, want more than 0", guid1, up)
	}
	puts := 0.0
	for _, m := range mf["litefleet_s3_requests_total"].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "op" && l.GetValue() == "PutObject" {
				puts = m.Counter.GetValue()
			}
		}
	}
	if puts < 2 {
		t.Errorf("litefleet_s3_requests_total{op=PutObject} = %v, want the uploads counted", puts)
	}
	if code, body := httpGet(t, base+"/healthz?tenants"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %q, want 200 with every tenant replicating", code, body)
	}
	code, body := httpGet(t, base+"/status")
	if code != http.StatusOK || !strings.Contains(body, `"tenant": "`+guid1+`"`) || !strings.Contains(body, `"host": "mon-1"`) ||
		strings.Contains(body, srv.SecretKey) {
		t.Fatalf("/status: %d\n%s", code, body)
	}

	// The file becomes unreadable while its tenant sleeps, and a write
	// wakes it: 503 naming the tenant and its state. (An open tenant's
	// file made unreadable is not seen by the engine: see the report.)
	eventually(t, 30*time.Second, func() string {
		_, body := httpGet(t, base+"/status")
		var doc struct {
			Tenants []struct{ Tenant, State string } `json:"tenants"`
		}
		_ = json.Unmarshal([]byte(body), &doc)
		for _, x := range doc.Tenants {
			if x.Tenant == guid2 && x.State == "sleeping" {
				return ""
			}
		}
		return fmt.Sprintf("%s is not sleeping: %s", guid2, body)
	})
	if err := os.Chmod(pathB, 0); err != nil {
		t.Fatal(err)
	}
	testpeer.InsertRows(t, dbB, 100, 1) // a change that wakes it
	eventually(t, 60*time.Second, func() string {
		code, body := httpGet(t, base+"/healthz?tenants")
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, guid2+": ") || strings.Contains(body, guid1) {
			return fmt.Sprintf("/healthz?tenants: %d %q, want 503 naming %s alone", code, body, guid2)
		}
		return ""
	})
	// As a liveness probe /healthz stays 200: one tenant failing is no
	// reason to restart the process.
	if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK || !strings.Contains(body, "1 unhealthy") {
		t.Fatalf("/healthz with one tenant failing: %d %q, want 200 naming one unhealthy", code, body)
	}
	// Fixed: 200 again.
	if err := os.Chmod(pathB, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, func() string {
		code, body := httpGet(t, base+"/healthz?tenants")
		if code != http.StatusOK {
			return fmt.Sprintf("/healthz after the fix: %d %q, want 200", code, body)
		}
		return ""
	})
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// checkPromConventions checks a clean start's scrape against issue 20's
// Prometheus items: build info with the linked Litestream's version; no
// S3 error counted (the protocol's 404s and 412s are expected answers,
// counted apart); state labels in snake_case; a WAL size per tenant; the
// histograms fed by the syncs.
func checkPromConventions(t *testing.T, mf map[string]*dto.MetricFamily) {
	t.Helper()
	bi := mf["litefleet_build_info"]
	if bi == nil || len(bi.Metric) != 1 || bi.Metric[0].GetGauge().GetValue() != 1 {
		t.Errorf("litefleet_build_info: %v, want one series of value 1", bi)
	} else {
		l := map[string]string{}
		for _, x := range bi.Metric[0].Label {
			l[x.GetName()] = x.GetValue()
		}
		if l["version"] == "" || !strings.HasPrefix(l["goversion"], "go") || !regexp.MustCompile(`^v0\.5\.\d+`).MatchString(l["litestream"]) {
			t.Errorf("litefleet_build_info labels %v, want a version, goversion and Litestream's module version (v0.5.x)", l)
		}
	}
	for _, m := range mf["litefleet_s3_request_errors_total"].GetMetric() {
		t.Errorf("an S3 error counted on a clean start: %v = %v", m.Label, m.GetCounter().GetValue())
	}
	expected := 0.0
	for _, m := range mf["litefleet_s3_expected_answers_total"].GetMetric() {
		expected += m.GetCounter().GetValue()
	}
	if expected == 0 {
		t.Errorf("no expected answer counted on a clean start (NoSuchKey, PreconditionFailed): the families are mixed up or not served")
	}
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	for _, name := range []string{"litefleet_tenant_state", "litefleet_tenants"} {
		for _, m := range mf[name].GetMetric() {
			for _, l := range m.Label {
				if l.GetName() == "state" && !snake.MatchString(l.GetValue()) {
					t.Errorf("%s{state=%q}: not snake_case", name, l.GetValue())
				}
			}
		}
	}
	if n := len(mf["litefleet_tenant_wal_bytes"].GetMetric()); n != 2 {
		t.Errorf("%d litefleet_tenant_wal_bytes series, want one per tenant (2)", n)
	}
	for _, name := range []string{"litefleet_sync_duration_seconds", "litefleet_commit_to_s3_latency_seconds"} {
		f := mf[name]
		if f == nil || len(f.Metric) != 1 || f.Metric[0].GetHistogram().GetSampleCount() == 0 {
			t.Errorf("%s: %v, want one histogram with the syncs observed", name, f)
		}
	}
}

// A port in use fails at once, in one line that says what to do.
func TestMonitorAddrInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	path := filepath.Join(t.TempDir(), guid1+".db")
	testpeer.OpenDB(t, path)
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", path, "-addr", l.Addr().String())...)
	if code := p.Wait(30 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(p.Out.String(), "-addr "+l.Addr().String()+": cannot listen") || !strings.Contains(p.Out.String(), "choose a free port") {
		t.Fatalf("output:\n%s", p.Out.String())
	}
}
