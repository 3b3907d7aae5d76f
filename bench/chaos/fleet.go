package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/faultproxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/s3conn"
)

const (
	bucket = "chaos"
	prefix = "databases/"
	// writeKeyPrefix is the tenants' prefix as the proxies log keys
	// (faultproxy.Write.Key): the bucket comes first.
	writeKeyPrefix = bucket + "/" + prefix
)

// harness is one run: the S3 server, the replicators and their proxies,
// the tenants and what was observed.
type harness struct {
	cfg     config
	out     io.Writer
	log     *slog.Logger
	began   time.Time
	work    string
	vgwBin  string
	lsBin   string
	vgw     *exec.Cmd
	s3      s3test.Server
	api     *s3.Client
	conn    s3conn.Conn
	tenants []*tenant

	mu        sync.Mutex
	reps      map[string]*replicator // by identity
	hostIdent map[string]string      // -host name → the identity writers use for it
	writes    []faultproxy.Write
	deaths    map[string][]interval // identity → faults that made it dead to others
	schedule  []string              // the faults as applied
	claims    claimStats
	notes     []string              // things worth reporting that are no invariant
	pending   []func()              // heals queued for the injector
	pids      map[int]string        // every replicator process's pid → its slot
	dupSpans  map[string][]interval // -host name → when a second process ran under it
	writesLog *os.File
}

// replicator is one `litefleet replicate` process slot: a name (identity),
// the -host it runs as, its folder, its /status address and its proxy. A
// slot survives restarts of its process.
type replicator struct {
	ident string
	host  string
	dir   string
	addr  string
	proxy *faultproxy.Proxy
	base  faultproxy.Faults // faults it always has (the big tenant's slow link)

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	stopped bool // SIGSTOP
	killed  bool
	// managed slots are started again when their process exits by
	// itself, as a service manager does; exitSeen is when it was noticed.
	managed   bool
	exitSeen  time.Time
	startedAt time.Time
	// status is the last /status of the current process, by tenant (reset
	// when a process starts: a new process has said nothing yet).
	status map[string]tenantStatus
	// holding says, by tenant, that the current process has said it
	// replicates the tenant and nothing since but that or a lost lease
	// (holding).
	holding map[string]bool
	statAt  time.Time
	active  map[int]faultproxy.Faults // proxy faults in force, by fault id
	// acks are, by tenant, the moments up to which each /status of any of
	// the slot's processes said the replica held every change (ackedPoint),
	// in the order seen; kept across restarts, for the exemptions.
	acks map[string][]ack
}

// ack is one /status's word on a tenant: at At, the replica held every
// change made before Upto.
type ack struct{ At, Upto time.Time }

// ackedPoint reads a status taken at `at`: a tenant replicating or asleep
// with no lag vouches for the changes made before it, and a lag for what
// came before at − lag, each less the moment the engine may take to see a
// commit (its tick looks at the WAL every second). Any other state says
// nothing (ok false): a process starting, or one that lost its lease, has
// not acknowledged anything new.
func ackedPoint(at time.Time, st tenantStatus) (time.Time, bool) {
	const seen = 2 * time.Second
	switch {
	case st.Lag > 0:
		return at.Add(-st.Lag - seen), true
	case st.LagTXIDs == 0 && (st.State == "replicating" || st.State == "sleeping"):
		return at.Add(-seen), true
	}
	return time.Time{}, false
}

// ackedBefore is the latest moment up to which a status of the slot taken
// no later than before said the tenant's replica held every change.
func (r *replicator) ackedBefore(tenant string, before time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	as := r.acks[tenant]
	for i := len(as) - 1; i >= 0; i-- {
		if !as[i].At.After(before) {
			return as[i].Upto, true
		}
	}
	return time.Time{}, false
}

// tenantStatus is what /status says of one tenant.
type tenantStatus struct {
	Tenant         string        `json:"tenant"`
	State          string        `json:"state"`
	Holder         string        `json:"holder"`
	LocalTXID      uint64        `json:"local_txid"`
	ReplicatedTXID uint64        `json:"replicated_txid"`
	LagTXIDs       uint64        `json:"lag_txids"`
	Lag            time.Duration `json:"lag_ns"`
}

func (h *harness) say(format string, args ...any) {
	d := time.Since(h.began).Truncate(time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(h.out, "[%02d:%02d] %s\n", int(d.Minutes()), int(d.Seconds())%60, fmt.Sprintf(format, args...))
}

func (h *harness) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.say("note: %s", msg)
	h.mu.Lock()
	h.notes = append(h.notes, msg)
	h.mu.Unlock()
}

// startS3 starts versitygw on a free loopback port with its data in the
// work folder, and makes the bucket.
func (h *harness) startS3() error {
	data := filepath.Join(h.work, "s3")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	port, err := s3test.FreePort()
	if err != nil {
		return err
	}
	h.s3 = s3test.Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), AccessKey: "chaos", SecretKey: "chaos-secret", Dir: data}
	logFile, err := os.Create(filepath.Join(h.work, "versitygw.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	h.vgw = exec.Command(h.vgwBin, "--access", h.s3.AccessKey, "--secret", h.s3.SecretKey, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet", "posix", data)
	h.vgw.Stdout, h.vgw.Stderr = logFile, logFile
	h.vgw.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.vgw.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	if err := s3test.WaitReady(h.s3.Endpoint, 10*time.Second); err != nil {
		return err
	}
	h.conn = s3conn.Conn{Bucket: bucket, Endpoint: h.s3.Endpoint, AccessKeyID: h.s3.AccessKey, SecretAccessKey: h.s3.SecretKey,
		ForcePathStyle: true, Prefix: s3conn.DefaultPrefix}
	if h.api, err = s3conn.NewClient(context.Background(), h.conn); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	return nil
}

func (h *harness) stopS3() {
	if h.vgw == nil || h.vgw.Process == nil {
		return
	}
	_ = h.vgw.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = h.vgw.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = h.vgw.Process.Kill()
		<-done
	}
}

// env is a child's environment: the server's credentials the standard
// AWS way; without AWS_CA_BUNDLE for the real litestream, which fails
// with it.
func (h *harness) env(litestream bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", appEnv:
			continue
		case "AWS_CA_BUNDLE":
			if litestream {
				continue
			}
		}
		env = append(env, kv)
	}
	return append(env, "AWS_ACCESS_KEY_ID="+h.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+h.s3.SecretKey)
}

// newReplicator makes a slot with its folder, proxy and /status port.
func (h *harness) newReplicator(ident, host string, seed uint64) (*replicator, error) {
	dir := filepath.Join(h.work, ident, "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := s3test.FreePort()
	if err != nil {
		return nil, err
	}
	r := &replicator{ident: ident, host: host, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port), active: map[int]faultproxy.Faults{}}
	r.proxy, err = faultproxy.Start(faultproxy.Options{
		Name: ident, Target: h.s3.Endpoint, AccessKey: h.s3.AccessKey, SecretKey: h.s3.SecretKey, Seed: seed,
		OnWrite: h.recordWrite, Log: h.log,
	})
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.reps[ident] = r
	h.mu.Unlock()
	return r, nil
}

// recordWrite keeps every write a proxy forwarded, and logs it.
func (h *harness) recordWrite(w faultproxy.Write) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes = append(h.writes, w)
	if h.writesLog != nil {
		fmt.Fprintf(h.writesLog, "%s\t%s\t%s\t%s\t%d\t%d\t%.16s\tlate=%t\tstripped=%t\t%s\tquery=%s\n",
			w.End.Format("15:04:05.000"), w.Proxy, w.Method, w.Key, w.Status, w.Size, w.Hash, w.Late, w.Stripped, w.Conditional, w.Query)
	}
}

// start starts the slot's process (again).
func (h *harness) start(r *replicator) error {
	logFile, err := os.OpenFile(filepath.Join(h.work, r.ident+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "=== chaos: started at %s\n", time.Now().Format("15:04:05.000"))
	cmd := exec.Command(h.cfg.Litefleet, "replicate", "-dir", r.dir, "-bucket", bucket, "-endpoint", r.proxy.URL(),
		"-host", r.host, "-addr", r.addr, "-sleep-after", h.cfg.SleepAfter.String())
	cmd.Env = h.env(false)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.ident, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	h.mu.Lock()
	h.pids[cmd.Process.Pid] = r.ident
	h.mu.Unlock()
	r.mu.Lock()
	r.cmd, r.done, r.stopped, r.killed = cmd, done, false, false
	r.startedAt, r.status, r.holding = time.Now(), nil, nil
	r.mu.Unlock()
	return nil
}

// running says whether the slot's process runs (stopped counts).
func (r *replicator) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

func (r *replicator) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(sig)
	switch sig {
	case syscall.SIGSTOP:
		r.stopped = true
	case syscall.SIGCONT:
		r.stopped = false
	}
}

// kill stops the process at once and waits for it.
func (r *replicator) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.killed = true
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// stop sends SIGTERM (after SIGCONT) and waits up to timeout, then kills;
// it reports whether the process exited by itself.
func (r *replicator) stop(timeout time.Duration) bool {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return false
	}
}

// applyFaults sets the proxy to its base faults combined with every fault
// in force: the strongest mode, the longest delays.
func (r *replicator) applyFaults() error {
	r.mu.Lock()
	f := r.base
	for _, a := range r.active {
		if a.Mode > f.Mode {
			f.Mode = a.Mode
		}
		f.Latency = max(f.Latency, a.Latency)
		if a.LateP > f.LateP {
			f.LateP, f.LateBy = a.LateP, a.LateBy
		}
		if a.DateSkew != 0 {
			f.DateSkew = a.DateSkew
		}
		f.StripConditional = f.StripConditional || a.StripConditional
		if a.Bandwidth > 0 && (f.Bandwidth == 0 || a.Bandwidth < f.Bandwidth) {
			f.Bandwidth = a.Bandwidth
		}
	}
	r.mu.Unlock()
	return r.proxy.Set(f)
}

// pollStatus reads /status; it fails for a stopped or dead process.
func (r *replicator) pollStatus(ctx context.Context) (map[string]tenantStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var doc struct {
		Tenants []tenantStatus `json:"tenants"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("/status of %s: %w", r.ident, err)
	}
	out := map[string]tenantStatus{}
	for _, t := range doc.Tenants {
		out[t.Tenant] = t
	}
	at := time.Now()
	r.mu.Lock()
	r.status, r.holding, r.statAt = out, holding(r.holding, out), at
	if r.acks == nil {
		r.acks = map[string][]ack{}
	}
	for name, st := range out {
		if upto, ok := ackedPoint(at, st); ok {
			r.acks[name] = append(r.acks[name], ack{At: at, Upto: upto})
		}
	}
	r.mu.Unlock()
	return out, nil
}

// rep returns the slot named ident.
func (h *harness) rep(ident string) *replicator {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reps[ident]
}

// lockClaim is what the harness reads of a tenant's lock.json: the host
// it names and the process that wrote it.
type lockClaim struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
}

// readLock reads the tenant's claim straight from S3; a zero lockClaim
// when there is none.
func (h *harness) readLock(ctx context.Context, tenant string) (lockClaim, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var c lockClaim
	out, err := h.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + tenant + "/lock.json")})
	if err != nil {
		if hosts.IsNotFound(err) {
			return c, nil
		}
		return c, err
	}
	defer out.Body.Close()
	if err := json.NewDecoder(io.LimitReader(out.Body, 1<<16)).Decode(&c); err != nil {
		return lockClaim{}, fmt.Errorf("decode lock.json of %s: %w", tenant, err)
	}
	if t := h.tenant(tenant); t != nil {
		t.sawClaim(c.Host)
	}
	return c, nil
}

// holderHost is the host the tenant's claim names, "" when there is none.
func (h *harness) holderHost(ctx context.Context, tenant string) (string, error) {
	c, err := h.readLock(ctx, tenant)
	return c.Host, err
}

// holderCand is one process slot under the host a claim names, as the
// harness last saw it.
type holderCand struct {
	Ident   string
	HasCopy bool   // the slot's folder has a copy of the tenant
	State   string // what its process last said of the tenant in /status, "" if nothing
	// Holding: its process said it replicates the tenant, and since then
	// only that or a lost lease (see holding).
	Holding bool
	Exited  bool      // its process exited by itself (refused, or stopped by the harness)
	Started time.Time // when its current process started
}

// pickHolder chooses, among the slots running under the host a claim
// names, the one whose process holds the tenant: the one that says it
// replicates it (replicating, sleeping, or lease lost while its heartbeat
// fails, once it replicated it: Holding) in a /status of its current process, or that said so before a
// fault stopped or killed it. Several processes run under one -host only
// when a second one took the name (claims name the host, and the
// replacement adopts them as they are), and the replacement then holds
// every claim: the newest process wins. A process that says nothing of
// the tenant (still watching the old heartbeat, refused, starting) does
// not hold it, even though the claim names its host: an application would
// not be sent there.
func pickHolder(cands []holderCand) string {
	best := -1
	for i, c := range cands {
		if !c.HasCopy || c.Exited {
			continue
		}
		switch c.State {
		case "replicating", "sleeping":
		case "lease lost (retrying)":
			// A standby that could not take the claim says this too
			// (its heartbeat failing, or S3 unreachable): only a
			// holder that lost its lease still holds the tenant.
			if !c.Holding {
				continue
			}
		default:
			continue
		}
		if best < 0 || c.Started.After(cands[best].Started) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return cands[best].Ident
}

// holder is the slot the writers use for the tenant now (pickHolder over
// the slots under the host its claim names), "" when none or while the
// harness holds the writers off that host. A change of process under one
// host name is recorded as a claim change for the exemptions.
func (h *harness) holder(ctx context.Context, t *tenant) (string, error) {
	c, err := h.readLock(ctx, t.name)
	if err != nil || c.Host == "" {
		return "", err
	}
	h.mu.Lock()
	paused := h.hostIdent[c.Host] == ""
	var reps []*replicator
	for _, r := range h.reps {
		if r.host == c.Host {
			reps = append(reps, r)
		}
	}
	h.mu.Unlock()
	if paused {
		return "", nil
	}
	var cands []holderCand
	for _, r := range reps {
		_, statErr := os.Stat(t.path(r))
		cands = append(cands, r.candidate(t.name, statErr == nil))
	}
	ident := pickHolder(cands)
	if ident != "" {
		t.sawHolder(ident)
	}
	return ident, nil
}

// candidate is the slot as a holder candidate for tenant.
func (r *replicator) candidate(tenant string, hasCopy bool) holderCand {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := holderCand{Ident: r.ident, HasCopy: hasCopy, State: r.status[tenant].State,
		Holding: r.holding[tenant], Started: r.startedAt}
	if r.cmd == nil {
		c.Exited = true
		return c
	}
	select {
	case <-r.done:
		// Killed by a fault: it said what it last said. Exited by
		// itself: it holds nothing.
		c.Exited = !r.killed
	default:
	}
	return c
}

// holding updates, from a process's new /status, the tenants it holds:
// those it says it replicates (replicating, sleeping), and those it said
// so of before and now says it lost the lease of. A lost lease alone is
// not holding: a standby whose claim attempt failed (heartbeat failing,
// S3 unreachable) says "lease lost (retrying)" too, and then, the moment
// S3 answers, writes its claim and may find its copy diverged and
// release it 100 ms later (chaos seed 33: the writers, seeing that claim
// and the standby's last "lease lost", wrote rows to a copy that was
// never replicated).
func holding(prev map[string]bool, st map[string]tenantStatus) map[string]bool {
	out := map[string]bool{}
	for name, s := range st {
		switch s.State {
		case "replicating", "sleeping":
			out[name] = true
		case "lease lost (retrying)":
			if prev[name] {
				out[name] = true
			}
		}
	}
	return out
}

// listTXIDs lists a tenant's LTX files and returns the max TXID of each,
// sorted and distinct.
func (h *harness) listTXIDs(ctx context.Context, tenant string) ([]uint64, error) {
	var out []uint64
	seen := map[uint64]bool{}
	p := s3.NewListObjectsV2Paginator(h.api, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix + tenant + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", tenant, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			base := filepath.Base(key)
			if !strings.HasSuffix(base, ".ltx") {
				continue
			}
			var lo, hi uint64
			if _, err := fmt.Sscanf(base, "%016x-%016x.ltx", &lo, &hi); err == nil && !seen[hi] {
				seen[hi] = true
				out = append(out, hi)
			}
		}
	}
	sortU64(out)
	return out, nil
}

func sortU64(s []uint64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// restoreRows restores a tenant's replica (the latest state, or TXID)
// with litefleet restore, or with the real litestream restore, and reads
// its rows (id → tag). A replica with nothing to restore gives no rows and
// no error.
func (h *harness) restoreRows(ctx context.Context, tenant string, txid uint64, litestream bool) (map[int64]string, error) {
	dir, err := os.MkdirTemp(h.work, "restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "r.db")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if litestream {
		args := []string{"restore", "-o", out}
		if txid > 0 {
			args = append(args, "-txid", fmt.Sprintf("%016x", txid))
		}
		args = append(args, fmt.Sprintf("s3://%s/%s%s?endpoint=%s&region=us-east-1&forcePathStyle=true", bucket, prefix, tenant, h.s3.Endpoint))
		cmd = exec.CommandContext(ctx, h.lsBin, args...)
	} else {
		args := []string{"restore", tenant, "-o", out, "-bucket", bucket, "-endpoint", h.s3.Endpoint}
		if txid > 0 {
			args = append(args, "-txid", fmt.Sprintf("%016x", txid))
		}
		cmd = exec.CommandContext(ctx, h.cfg.Litefleet, args...)
	}
	cmd.Env = h.env(litestream)
	b, err := cmd.CombinedOutput()
	if err != nil {
		text := string(b)
		// A tenant with no LTX file has nothing to restore; any other
		// failure is one.
		if txids, lerr := h.listTXIDs(ctx, tenant); lerr == nil && len(txids) == 0 {
			return map[int64]string{}, nil
		}
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args[:2], " "), err, lastLine(text))
	}
	return readRows(out)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// restoreOnto restores the tenant's latest state over the slot's copy,
// as an operator does when restore refuses to write over a file with
// Litestream's state beside it: into a new file beside it, which then
// replaces the copy (its -wal and -shm removed first).
func (h *harness) restoreOnto(ctx context.Context, t *tenant, r *replicator) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tmp := t.path(r) + ".restoring"
	_ = os.Remove(tmp)
	cmd := exec.CommandContext(ctx, h.cfg.Litefleet, "restore", t.name, "-o", tmp, "-bucket", bucket, "-endpoint", h.s3.Endpoint)
	cmd.Env = h.env(false)
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore %s onto %s: %w: %s", t.name, r.ident, err, lastLine(string(b)))
	}
	for _, suf := range []string{"-wal", "-shm"} {
		_ = os.Remove(t.path(r) + suf)
	}
	if err := os.Rename(tmp, t.path(r)); err != nil {
		return fmt.Errorf("restore %s onto %s: %w", t.name, r.ident, err)
	}
	return nil
}

// seedRand gives each part of the run its own deterministic stream.
func seedRand(seed uint64, part uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, part*0x9e3779b97f4a7c15+1))
}
