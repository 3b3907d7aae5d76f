package main

// The hosts benchmark: a fleet replicated by several `litefleet replicate`
// processes, each with its own -host and its share of the tenants, all
// through a request-counting proxy in front of the S3 server; then
// `litefleet ls -json` over the bucket alone (no -dir), which takes the
// tenants' positions from the hosts' records, against `ls -json -scan`,
// which lists every object; and the requests of a terminal UI refresh.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3conn"
)

// countingProxy forwards every request to the S3 server and counts them.
type countingProxy struct {
	n   atomic.Int64
	srv *http.Server
	url string
}

func startProxy(endpoint string) (*countingProxy, error) {
	target, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{url: "http://" + l.Addr().String()}
	// The Host header stays the proxy's: it is what the client signed.
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.n.Add(1)
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *countingProxy) close() { _ = p.srv.Close() }

// hostProc is one running replicator of the benchmark.
type hostProc struct {
	name, dir, addr, logFile string
	cmd                      *exec.Cmd
	done                     chan error
}

type statusDoc struct {
	Tenants []struct {
		Tenant         string `json:"tenant"`
		State          string `json:"state"`
		LocalTXID      uint64 `json:"local_txid"`
		ReplicatedTXID uint64 `json:"replicated_txid"`
	} `json:"tenants"`
}

func (h *hostProc) status() (*statusDoc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.addr+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var doc statusDoc
	return &doc, json.NewDecoder(resp.Body).Decode(&doc)
}

// expected is what ls must say of a tenant: its host and replicated TXID.
type expected struct {
	host string
	txid uint64
}

func runHosts(bin, endpoint, accessKey, secretKey, root string, n, nHosts, runs int) error {
	ctx := context.Background()
	fmt.Printf("hosts benchmark: %d tenants over %d replicating hosts; load before: %s\n", n, nHosts, loadavg())
	conn := s3conn.Conn{Bucket: "lsbench-hosts", Prefix: "databases", Endpoint: endpoint, AccessKeyID: accessKey, SecretAccessKey: secretKey}
	client, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(conn.Bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	replProxy, err := startProxy(endpoint)
	if err != nil {
		return err
	}
	defer replProxy.close()
	lsProxy, err := startProxy(endpoint)
	if err != nil {
		return err
	}
	defer lsProxy.close()

	start := time.Now()
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	template, err := templateDB(root)
	if err != nil {
		return err
	}
	per := n / nHosts
	var procs []*hostProc
	for h := range nHosts {
		dir := filepath.Join(root, fmt.Sprintf("h%d", h))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for i := h * per; i < (h+1)*per; i++ {
			if err := os.WriteFile(filepath.Join(dir, guid(i)+".db"), template, 0o644); err != nil {
				return err
			}
		}
		procs = append(procs, &hostProc{name: fmt.Sprintf("h%d", h), dir: dir, logFile: filepath.Join(root, fmt.Sprintf("h%d.log", h))})
	}
	fmt.Printf("seeded %d SQLite databases in %d folders in %s\n", per*nHosts, nHosts, time.Since(start).Round(time.Millisecond))

	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey)
	defer func() {
		for _, p := range procs {
			if p.cmd != nil && p.cmd.Process != nil {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, p := range procs {
			if p.done != nil {
				select {
				case <-p.done:
				case <-time.After(3 * time.Minute):
					_ = p.cmd.Process.Kill()
				}
			}
		}
	}()
	start = time.Now()
	for i, p := range procs {
		if i == 1 {
			// The first host creates .litefleet/hosts/ alone: versitygw's
			// posix backend answers 409 ExistingObjectIsDirectory to PUTs
			// racing to create one new folder, and a replicator whose
			// first heartbeat fails stops.
			if err := waitLog(procs[0], "heartbeat started", time.Minute); err != nil {
				return err
			}
		}
		port, err := freePort()
		if err != nil {
			return err
		}
		p.addr = fmt.Sprintf("127.0.0.1:%d", port)
		lf, err := os.Create(p.logFile)
		if err != nil {
			return err
		}
		p.cmd = exec.Command(bin, "replicate", "-dir", p.dir, "-bucket", conn.Bucket, "-endpoint", replProxy.url,
			"-host", p.name, "-addr", p.addr, "-sleep-after", "5s")
		p.cmd.Env = env
		p.cmd.Stdout, p.cmd.Stderr = lf, lf
		if err := p.cmd.Start(); err != nil {
			return err
		}
		p.done = make(chan error, 1)
		go func() { p.done <- p.cmd.Wait(); lf.Close() }()
	}

	// Every tenant replicated, as each host's /status says.
	want := map[string]expected{}
	for {
		ready, states := 0, map[string]int{}
		clear(want)
		for _, p := range procs {
			select {
			case err := <-p.done:
				return fmt.Errorf("replicator %s exited: %v (see %s)", p.name, err, p.logFile)
			default:
			}
			doc, err := p.status()
			if err != nil {
				continue // still starting
			}
			for _, t := range doc.Tenants {
				states[t.State]++
				if (t.State == "replicating" || t.State == "sleeping") && t.ReplicatedTXID > 0 && t.LocalTXID == t.ReplicatedTXID {
					ready++
					want[t.Tenant] = expected{host: p.name, txid: t.ReplicatedTXID}
				}
			}
		}
		if ready == per*nHosts {
			break
		}
		if time.Since(start) > 30*time.Minute {
			return fmt.Errorf("after %s only %d of %d tenants replicated: %v", time.Since(start).Round(time.Second), ready, per*nHosts, states)
		}
		fmt.Fprintf(os.Stderr, "  %s: %d of %d tenants replicated %v, load %s\n", time.Since(start).Round(time.Second), ready, per*nHosts, states, loadavg())
		time.Sleep(5 * time.Second)
	}
	fmt.Printf("%d hosts replicated %d tenants in %s (%d S3 requests through the proxy); load %s\n",
		nHosts, len(want), time.Since(start).Round(time.Second), replProxy.n.Load(), loadavg())

	// An operator's fleet is mostly idle: time ls once every tenant sleeps
	// (-sleep-after 5s), as long as that takes up to 2 minutes.
	for settle := time.Now(); time.Since(settle) < 2*time.Minute; time.Sleep(5 * time.Second) {
		states := map[string]int{}
		for _, p := range procs {
			if doc, err := p.status(); err == nil {
				for _, t := range doc.Tenants {
					states[t.State]++
				}
			}
		}
		if states["sleeping"] == len(want) {
			fmt.Printf("every tenant asleep after %s more; load %s\n", time.Since(settle).Round(time.Second), loadavg())
			break
		}
		fmt.Fprintf(os.Stderr, "  settling: %v, load %s\n", states, loadavg())
	}

	lsEnv := env
	args := []string{"-bucket", conn.Bucket, "-endpoint", lsProxy.url, "-json", "-no-cache"}
	// The host records are published at most once per 10 s: wait until ls
	// sees every tenant as the hosts do.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cmd := exec.Command(bin, append([]string{"ls"}, args...)...)
		cmd.Env = lsEnv
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, errb.String())
		} else if err = checkHosts(out, want); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ls never agreed with the hosts: %w", err)
		}
		time.Sleep(2 * time.Second)
	}

	for _, c := range []struct {
		what string
		args []string
	}{
		{"host records", args},
		{"-scan, every object listed", append(args[:len(args):len(args)], "-scan")},
	} {
		if err := timeLs(bin, lsEnv, c.what, c.args, runs, lsProxy, want); err != nil {
			return err
		}
	}

	// A terminal UI refresh is a fleet refresh: the first reads every
	// record, the next ones only the records that changed.
	lsConn := conn
	lsConn.Endpoint = lsProxy.url
	lsClient, err := s3conn.NewClient(ctx, lsConn)
	if err != nil {
		return err
	}
	for _, full := range []bool{false, true} {
		fl := &fleet.Fleet{Conn: lsConn, API: lsClient, FullScan: full}
		var counts []int64
		for range 3 {
			lsProxy.n.Store(0)
			v, err := fl.Refresh(ctx)
			if err != nil {
				return err
			}
			if v.RemoteErr != "" {
				return errors.New(v.RemoteErr)
			}
			counts = append(counts, lsProxy.n.Load())
		}
		what := "host records"
		if full {
			what = "-scan"
		}
		fmt.Printf("terminal UI refresh (%s), %d tenants: %d S3 requests the first time, then %d and %d\n", what, len(want), counts[0], counts[1], counts[2])
	}
	// What the replicators cost when nothing changes, over a minute.
	rate0, at0 := replProxy.n.Load(), time.Now()
	time.Sleep(time.Minute)
	idle := time.Since(at0)
	fmt.Printf("the %d replicators, idle: %d S3 requests in %s (%.0f a minute, %.1f per tenant a day); load %s\n",
		nHosts, replProxy.n.Load()-rate0, idle.Round(time.Second), float64(replProxy.n.Load()-rate0)/idle.Minutes(),
		float64(replProxy.n.Load()-rate0)/idle.Minutes()*60*24/float64(len(want)), loadavg())

	// ls itself on a quiet machine: the replicators are killed, which
	// leaves their heartbeats and records in place, so for 40 s their
	// hosts still count as alive. Their own load no longer weighs on the
	// server and the cores.
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	for _, p := range procs {
		<-p.done
		p.done = nil
	}
	killed := time.Now()
	time.Sleep(2 * time.Second)
	if err := timeLs(bin, lsEnv, "host records, the replicators just killed: a quiet server", args, runs, lsProxy, want); err != nil {
		return fmt.Errorf("%w (%s after the kill: the hosts may have turned silent)", err, time.Since(killed).Round(time.Second))
	}
	if d := time.Since(killed); d >= 40*time.Second {
		return fmt.Errorf("the quiet runs took %s: the hosts turned silent before the end", d.Round(time.Second))
	}
	return nil
}

// waitLog waits until the replicator's log holds text.
func waitLog(p *hostProc, text string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.logFile)
		if bytes.Contains(b, []byte(text)) {
			return nil
		}
		select {
		case err := <-p.done:
			return fmt.Errorf("replicator %s exited: %v (see %s)", p.name, err, p.logFile)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replicator %s did not log %q within %s (see %s)", p.name, text, timeout, p.logFile)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// timeLs times runs of `ls` (after one untimed run) and counts the S3
// requests each makes; every answer is checked.
func timeLs(bin string, env []string, what string, args []string, runs int, proxy *countingProxy, want map[string]expected) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var walls, cpus []time.Duration
	var rss, reqs []int64
	for i := -1; i < runs; i++ {
		cmd := exec.Command(self, append([]string{bin, "ls"}, args...)...)
		cmd.Env = append(env, measureEnv+"=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		proxy.n.Store(0)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("litefleet ls %s: %w: %s", strings.Join(args, " "), err, errb.String())
		}
		n := proxy.n.Load()
		text := strings.TrimRight(errb.String(), "\n")
		var wall, cpu time.Duration
		var maxRSS int64
		if _, err := fmt.Sscanf(text[strings.LastIndexByte(text, '\n')+1:], measureFormat, &wall, &maxRSS, &cpu); err != nil {
			return fmt.Errorf("no measurement in %q: %w", text, err)
		}
		if err := checkHosts(out.Bytes(), want); err != nil {
			return fmt.Errorf("ls (%s), run %d: %w", what, i+1, err)
		}
		if i >= 0 {
			walls, rss, reqs, cpus = append(walls, wall), append(rss, maxRSS), append(reqs, n), append(cpus, cpu)
		}
	}
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	sort.Slice(reqs, func(i, j int) bool { return reqs[i] < reqs[j] })
	sort.Slice(cpus, func(i, j int) bool { return cpus[i] < cpus[j] })
	fmt.Printf("litefleet ls -json, no -dir, %d tenants (%s), %d runs: wall median %s (min %s, max %s); its CPU median %s; S3 requests median %d (max %d); peak RSS median %.1f MiB; load %s\n",
		len(want), what, runs, walls[len(walls)/2].Round(time.Millisecond), walls[0].Round(time.Millisecond), walls[len(walls)-1].Round(time.Millisecond),
		cpus[len(cpus)/2].Round(time.Millisecond), reqs[len(reqs)/2], reqs[len(reqs)-1], float64(rss[len(rss)/2])/1024, loadavg())
	return nil
}

// checkHosts checks that ls -json lists every tenant once, in sync, on
// the host that replicates it, at the TXID that host says it replicated.
func checkHosts(out []byte, want map[string]expected) error {
	var v struct {
		Tenants []struct {
			Tenant   string `json:"tenant"`
			Status   string `json:"status"`
			Host     string `json:"host"`
			State    string `json:"state"`
			LagTXIDs uint64 `json:"lag_txids"`
			LagNS    int64  `json:"lag_ns"`
			Remote   *struct {
				LatestTXID uint64 `json:"latest_txid"`
			} `json:"remote"`
		} `json:"tenants"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return fmt.Errorf("decode ls -json: %w", err)
	}
	if len(v.Tenants) != len(want) {
		return fmt.Errorf("%d tenants listed, want %d", len(v.Tenants), len(want))
	}
	seen := map[string]bool{}
	for _, t := range v.Tenants {
		w, ok := want[t.Tenant]
		switch {
		case !ok || seen[t.Tenant]:
			return fmt.Errorf("tenant %s unexpected or listed twice", t.Tenant)
		case t.Host != w.host || t.Status != "in sync" || t.LagTXIDs != 0 || t.LagNS != 0 || t.Remote == nil || t.Remote.LatestTXID != w.txid:
			return fmt.Errorf("tenant %s: host %q status %q state %q lag %d tx %d ns, want host %s in sync at TXID %d", t.Tenant, t.Host, t.Status, t.State, t.LagTXIDs, t.LagNS, w.host, w.txid)
		}
		seen[t.Tenant] = true
	}
	return nil
}

// templateDB is a small SQLite database in WAL mode with one row, copied
// into every tenant's file.
func templateDB(root string) ([]byte, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(root, "template.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		return nil, err
	}
	for _, q := range []string{
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount_cents INTEGER)`,
		`INSERT INTO orders (customer, amount_cents) VALUES ('acme', 4200)`,
		`PRAGMA wal_checkpoint(TRUNCATE)`,
	} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			return nil, fmt.Errorf("template database: %w", err)
		}
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(path + suffix)
	}
	return b, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
