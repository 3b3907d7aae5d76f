package tui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/hostview"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
	"github.com/litefleet/litefleet/verify"
)

// testNow is the fixed clock of every test: goldens must not move.
var testNow = time.Date(2026, 11, 26, 21, 20, 0, 0, time.UTC)

// fakeBackend is an in-process Backend over a fixed fleet. It records what
// the UI asked, and can be told to fail.
type fakeBackend struct {
	mu          sync.Mutex
	ctx         common.Context
	now         time.Time
	locals      []tenants.Local
	remotes     []s3browse.TenantSummary
	reports     map[string]*s3browse.Tenant
	replicating map[string]bool // by local path
	calls       []string
	restores    []restore.Options
	refreshErr  error
	gate        chan struct{} // when set, Restore waits on it half way
	startErr    error
	closed      int
	refreshes   int
	// bucketErrs makes a refresh of that bucket fail on the S3 side, as
	// fleet.Refresh reports it: in the view, not as an error.
	bucketErrs map[string]string
	// planNotes are added to every plan.
	planNotes []string
	// noDeadline lists the calls made with a context that never ends.
	noDeadline []string
	// hosts and hostReports are the bucket's host records, as
	// fleet.Refresh reads them.
	hosts       []hostview.HostSummary
	hostReports map[string][]hostview.HostReport
	// verdicts are Verify's answers by tenant ("verified" for the
	// others); verifyErrs its errors; verifyGate, when set, holds every
	// Verify until it is closed or the context ends.
	verdicts   map[string]*verify.Report
	verifyErrs map[string]error
	verifyGate chan struct{}
}

// checkDeadline records a call whose context has no deadline: a hung S3
// would leave the UI waiting forever.
func (f *fakeBackend) checkDeadline(ctx context.Context, call string) {
	if _, ok := ctx.Deadline(); !ok {
		f.noDeadline = append(f.noDeadline, call)
	}
}

func (f *fakeBackend) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) Context() common.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ctx
}

func (f *fakeBackend) Refresh(ctx context.Context) (*fleet.View, error) {
	f.mu.Lock()
	f.refreshes++
	f.record("refresh")
	if f.refreshErr != nil {
		err := f.refreshErr
		f.mu.Unlock()
		return nil, err
	}
	locals := append([]tenants.Local(nil), f.locals...)
	remotes := append([]s3browse.TenantSummary(nil), f.remotes...)
	repl := map[string]bool{}
	for k, v := range f.replicating {
		repl[k] = v
	}
	now := f.now
	remoteErr, bad := f.bucketErrs[f.ctx.Bucket]
	f.mu.Unlock()
	remoteAt := now
	if bad {
		remotes, remoteAt = nil, time.Time{}
	}
	f.mu.Lock()
	hostList, reports := append([]hostview.HostSummary(nil), f.hosts...), f.hostReports
	f.mu.Unlock()
	opt := fleet.ViewOptions{Replicating: func(p string) bool { return repl[p] }}
	rows := fleet.Join(locals, remotes, now, opt)
	fleet.ApplyHostReports(rows, reports, opt)
	return &fleet.View{Rows: rows, Counts: fleet.Counts(rows), At: now, RemoteAt: remoteAt, RemoteErr: remoteErr, Hosts: hostList}, nil
}

func (f *fakeBackend) Inspect(ctx context.Context, tenant string) (*s3browse.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("inspect %s", tenant)
	f.checkDeadline(ctx, "inspect")
	if t, ok := f.reports[tenant]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("tenant %s: nothing listed", untrusted.Printable(tenant))
}

func (f *fakeBackend) StartReplication(ctx context.Context, l tenants.Local) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("start %s", l.Path)
	if f.startErr != nil {
		return f.startErr
	}
	f.replicating[l.Path] = true
	return nil
}

func (f *fakeBackend) StopReplication(ctx context.Context, l tenants.Local) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("stop %s", l.Path)
	if !f.replicating[l.Path] {
		return fmt.Errorf("tenant %s is not replicating in this process", l.Name)
	}
	delete(f.replicating, l.Path)
	return nil
}

func (f *fakeBackend) Validate(ctx context.Context) ([]common.Finding, error) {
	v, err := f.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("validate")
	f.checkDeadline(ctx, "validate")
	return fleet.Findings(v, func(t string) string { return "s3://" + f.ctx.Bucket + "/" + f.ctx.Prefix + "/" + t }), nil
}

func (f *fakeBackend) plan(opt restore.Options) (*restore.Plan, error) {
	// Kept as given, unlike fleet's plan: goldens must not hold the
	// folder the tests run in.
	out := opt.Output
	rep, ok := f.reports[opt.Tenant]
	if !ok {
		return nil, fmt.Errorf("tenant %s: %w", opt.Tenant, restore.ErrNoBackup)
	}
	txid := rep.LatestTXID
	if opt.TXID != 0 {
		txid = opt.TXID
	}
	p := &restore.Plan{
		Tenant: opt.Tenant, Replica: "s3://" + f.ctx.Bucket + "/" + f.ctx.Prefix + "/" + opt.Tenant,
		Output: out, Source: restore.SourceLTX, Target: "latest",
		Files: []restore.PlanFile{{Key: "x/0009/1.ltx", Level: 9, MinTXID: 1, MaxTXID: txid, Size: 3 << 20}, {Key: "x/0000/2.ltx", MaxTXID: txid, Size: 1 << 20}},
		Bytes: 4 << 20, Notes: f.planNotes,
	}
	p.Position = restore.Position{TXID: txid, TXIDHex: layout.TXIDHex(txid), Time: f.now.Add(-2 * time.Minute)}
	p.Latest = restore.Position{TXID: rep.LatestTXID, TXIDHex: layout.TXIDHex(rep.LatestTXID), Time: f.now.Add(-time.Minute)}
	if _, err := os.Stat(out); err == nil {
		p.OutputExists = true
		if !opt.Force {
			p.Refusal = out + " exists: pass -force to replace it"
		}
	}
	for path, on := range f.replicating {
		if on && path == out {
			p.Refusal = out + " is being replicated by this process: stop replicating it before restoring over it"
		}
	}
	return p, nil
}

func (f *fakeBackend) PlanRestore(ctx context.Context, opt restore.Options) (*restore.Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("plan %s -> %s force=%v", opt.Tenant, opt.Output, opt.Force)
	f.checkDeadline(ctx, "plan")
	return f.plan(opt)
}

func (f *fakeBackend) Restore(ctx context.Context, opt restore.Options) (*restore.Result, error) {
	f.mu.Lock()
	f.record("restore %s -> %s force=%v", opt.Tenant, opt.Output, opt.Force)
	f.restores = append(f.restores, opt)
	p, err := f.plan(opt)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if p.Refusal != "" {
		return nil, &restore.RefusedError{Reason: p.Refusal}
	}
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if opt.Progress != nil {
		opt.Progress(p.Bytes/2, p.Bytes)
	}
	if gate != nil {
		<-gate
	}
	if opt.Progress != nil {
		opt.Progress(p.Bytes, p.Bytes)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &restore.Result{
		Tenant: opt.Tenant, Output: p.Output, Source: p.Source, Position: p.Position,
		Integrity: "ok", Size: 5 << 20, Downloaded: p.Bytes, DurationMS: 420, Latest: p.Latest,
		Current: p.Position.TXID == p.Latest.TXID, Plan: p,
	}, nil
}

func (f *fakeBackend) Verify(ctx context.Context, tenant string) (*verify.Report, error) {
	f.mu.Lock()
	f.record("verify %s", tenant)
	f.checkDeadline(ctx, "verify")
	gate, rep, err := f.verifyGate, f.verdicts[tenant], f.verifyErrs[tenant]
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("verify cancelled after 0 of 1 tenants: %w", ctx.Err())
		}
	}
	if err != nil {
		return nil, err
	}
	if rep == nil {
		rep = &verify.Report{Tenant: tenant, Verdict: verify.Verified, TXID: 1841, TXIDHex: layout.TXIDHex(1841), Time: f.now.Add(-2 * time.Second),
			Reason: "restored TXID 1841, integrity_check ok, checksum 0123456789abcdef equals host web-1's record"}
	}
	return rep, nil
}

func (f *fakeBackend) SetBucket(ctx context.Context, bucket string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("bucket %s", bucket)
	if bucket == "missing" {
		return errors.New(`bucket "missing" does not exist: create it or check -bucket`)
	}
	f.ctx.Bucket = bucket
	return nil
}

func (f *fakeBackend) SetPrefix(ctx context.Context, prefix string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("prefix %s", prefix)
	f.ctx.Prefix = prefix
	return nil
}

func (f *fakeBackend) Close(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("close")
	f.closed++
	f.replicating = map[string]bool{}
	return nil
}

// GUIDs of the demo-like fixture fleet.
const (
	guidSync     = "12345678-1234-5678-9abc-123456789012"
	guidSync2    = "98765432-4321-8765-cba9-876543210987"
	guidLagging  = "abcdef01-2345-6789-abcd-ef0123456789"
	guidSync3    = "fedcba98-7654-3210-fedc-ba9876543210"
	guidLocal    = "5eed5eed-1111-4222-8333-444455556666"
	guidRemote   = "0badc0de-0000-4000-8000-000000000001"
	guidLeased   = "c0ffee00-1234-4abc-8def-000000000042"
	legacyTenant = "legacy-client-001"
	evilTenant   = "evil\x1b[31mred\x1b]0;pwned\x07"
)

// newFake returns the fixture fleet: tenants in sync (one replicating in
// this process), one lagging, one local only, one remote only, one leased
// by another host, a legacy explicit name, a fallback to "default", and an
// S3 prefix whose name carries escape sequences.
func newFake() *fakeBackend {
	now := testNow
	f := &fakeBackend{
		ctx:         common.Context{Bucket: "saas-backups", Endpoint: "http://127.0.0.1:7070", Prefix: "databases", Region: "us-east-1", Dirs: []string{"/data"}, Roots: []string{"/data"}},
		now:         now,
		replicating: map[string]bool{"/data/" + guidSync + ".db": true},
		reports:     map[string]*s3browse.Tenant{},
	}
	local := func(file, name string, verdict tenants.Verdict, size, wal int64, txid uint64, changed time.Duration) tenants.Local {
		l := tenants.Local{
			Entry: tenants.Entry{Path: "/data/" + file, Naming: tenants.Naming{Name: name, Verdict: verdict}},
			Size:  size, WALSize: wal, Changed: now.Add(-changed), TXID: txid, TXIDTime: now.Add(-changed),
		}
		if txid > 0 {
			l.L0 = []tenants.LTXRef{{MinTXID: txid, MaxTXID: txid, ModTime: now.Add(-changed)}}
		}
		return l
	}
	remote := func(name string, txid uint64, bytes int64, ago time.Duration, snaps int, lease time.Duration) s3browse.TenantSummary {
		s := s3browse.TenantSummary{
			Prefix: s3browse.Prefix{Name: name, Valid: s3browse.CheckName(name) == nil},
			Totals: s3browse.Totals{Format: s3browse.FormatLTX, Objects: 12 + int(txid%40), Bytes: bytes, LatestTXID: txid,
				LatestTXIDHex: layout.TXIDHex(txid), LatestAt: now.Add(-ago), LatestLTXAt: now.Add(-ago), Snapshots: snaps},
			Levels: []s3browse.LevelStats{{Level: 0, Count: 10, Bytes: bytes / 3, MaxTXID: txid}, {Level: 9, Count: snaps, Bytes: bytes / 2, MaxTXID: txid}},
		}
		if !s.Valid {
			s.Problem = "holds control characters"
		}
		if lease >= 0 {
			s.HasLease, s.LeaseModifiedAt = true, now.Add(-lease)
		}
		return s
	}
	f.locals = []tenants.Local{
		local(guidSync+".db", guidSync, tenants.VerdictGUID, 2<<20, 412<<10, 1841, 2*time.Second),
		local(guidSync2+".db", guidSync2, tenants.VerdictGUID, 1<<20+300<<10, 96<<10, 977, 3*time.Second),
		local(guidLagging+".db", guidLagging, tenants.VerdictGUID, 3<<20, 1<<20, 1502, 17*time.Second),
		local(guidSync3+".db", guidSync3, tenants.VerdictGUID, 640<<10, 64<<10, 611, 4*time.Second),
		local("legacy-client.db", legacyTenant, tenants.VerdictExplicit, 8<<20, 0, 120, 40*time.Second),
		local(guidLocal+".db", guidLocal, tenants.VerdictGUID, 128<<10, 32<<10, 0, 5*time.Minute),
		local("notes.db", "default", tenants.VerdictFallback, 48<<10, 0, 0, 3*time.Hour),
	}
	f.locals[len(f.locals)-1].Note = `file name notes.db is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): using "default"; rename the file or pass -db-name`
	lagRemote := remote(guidLagging, 1460, 2<<20, 18*time.Second, 2, 5*time.Second)
	f.remotes = []s3browse.TenantSummary{
		remote(guidSync, 1841, 3<<20+512<<10, 2*time.Second, 3, 5*time.Second),
		remote(guidSync2, 977, 1<<20+900<<10, 3*time.Second, 2, 6*time.Second),
		lagRemote,
		remote(guidSync3, 611, 900<<10, 4*time.Second, 1, 7*time.Second),
		remote(legacyTenant, 120, 9<<20, 40*time.Second, 1, 8*time.Second),
		remote(guidRemote, 2210, 5<<20, 26*time.Hour, 4, -1),
		remote(guidLeased, 5120, 12<<20, 1*time.Second, 5, 3*time.Second),
		remote(evilTenant, 7, 4<<10, 50*time.Hour, 1, -1),
	}
	// The lagging tenant's oldest unreplicated change is 17s old.
	f.locals[2].L0 = []tenants.LTXRef{{MinTXID: 1461, MaxTXID: 1461, ModTime: now.Add(-17 * time.Second)}, {MinTXID: 1462, MaxTXID: 1502, ModTime: now.Add(-2 * time.Second)}}
	f.locals[2].TXIDTime = now.Add(-2 * time.Second)

	f.reports[guidSync] = ltxReport(guidSync, now)
	f.reports[guidRemote] = ltxReport(guidRemote, now)
	f.reports[legacyTenant] = v3Report(legacyTenant, now)
	return f
}

func ltxReport(name string, now time.Time) *s3browse.Tenant {
	t := &s3browse.Tenant{Name: name, URL: "s3://saas-backups/databases/" + name}
	t.Format, t.Objects, t.Bytes = s3browse.FormatLTX, 19, 3<<20+512<<10
	t.LatestTXID, t.LatestTXIDHex, t.LatestAt, t.Snapshots = 1841, layout.TXIDHex(1841), now.Add(-2*time.Second), 3
	file := func(level int, min, max uint64, size int64, ago time.Duration) s3browse.LTXFile {
		return s3browse.LTXFile{Level: level, MinTXID: min, MaxTXID: max, MinTXIDHex: layout.TXIDHex(min), MaxTXIDHex: layout.TXIDHex(max), Size: size, ModifiedAt: now.Add(-ago)}
	}
	l0 := s3browse.Level{LevelStats: s3browse.LevelStats{Level: 0, Count: 4, Bytes: 20 << 10, MaxTXID: 1841, MaxTXIDHex: layout.TXIDHex(1841)}}
	for i := uint64(0); i < 4; i++ {
		l0.Files = append(l0.Files, file(0, 1838+i, 1838+i, 5<<10, time.Duration(8-2*i)*time.Second))
	}
	l1 := s3browse.Level{LevelStats: s3browse.LevelStats{Level: 1, Count: 2, Bytes: 200 << 10, MaxTXID: 1837, MaxTXIDHex: layout.TXIDHex(1837)},
		Files: []s3browse.LTXFile{file(1, 1700, 1790, 120<<10, 70*time.Second), file(1, 1791, 1837, 80<<10, 40*time.Second)}}
	l9 := s3browse.Level{LevelStats: s3browse.LevelStats{Level: 9, Count: 3, Bytes: 3 << 20, MaxTXID: 1699, MaxTXIDHex: layout.TXIDHex(1699)},
		Files: []s3browse.LTXFile{file(9, 1, 512, 1<<20, 48*time.Hour), file(9, 1, 1104, 1<<20, 24*time.Hour), file(9, 1, 1699, 1<<20, 2*time.Hour)}}
	t.Levels = []s3browse.Level{l0, l1, l9}
	t.Lease = &s3browse.Lease{Owner: "host-a:4242", Generation: 7, ExpiresAt: now.Add(25 * time.Second), ModifiedAt: now.Add(-5 * time.Second), Size: 96}
	return t
}

func v3Report(name string, now time.Time) *s3browse.Tenant {
	t := &s3browse.Tenant{Name: name, URL: "s3://saas-backups/databases/" + name}
	t.Format, t.Objects, t.Bytes, t.Snapshots, t.WALSegments = s3browse.FormatGenerations, 5, 9<<20, 1, 3
	t.LatestAt = now.Add(-40 * time.Second)
	g := s3browse.Generation{ID: "0123456789abcdef", FirstAt: now.Add(-3 * time.Hour), LastAt: now.Add(-40 * time.Second), Bytes: 9 << 20,
		Snapshots: []s3browse.Snapshot{{Index: 0, Size: 8 << 20, ModifiedAt: now.Add(-3 * time.Hour)}},
		WALSegments: []s3browse.WALSegment{
			{Index: 0, Offset: 0, Size: 400 << 10, ModifiedAt: now.Add(-2 * time.Hour)},
			{Index: 0, Offset: 4152, Size: 300 << 10, ModifiedAt: now.Add(-time.Hour)},
			{Index: 1, Offset: 0, Size: 200 << 10, ModifiedAt: now.Add(-40 * time.Second)},
		}}
	t.Generations = []s3browse.Generation{g}
	return t
}

// bigFake is a fleet of n tenants, for the benchmarks.
func bigFake(n int) *fakeBackend {
	f := newFake()
	f.locals, f.remotes = nil, nil
	for i := range n {
		name := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i*2654435761%(1<<32), i%65536, i%4096, (i*7)%4096, i)
		if i%3 != 2 {
			f.locals = append(f.locals, tenants.Local{
				Entry: tenants.Entry{Path: "/data/" + name + ".db", Naming: tenants.Naming{Name: name, Verdict: tenants.VerdictGUID}},
				Size:  int64(i%977) << 12, Changed: testNow.Add(-time.Duration(i%600) * time.Second), TXID: uint64(i%5000 + 1), TXIDTime: testNow.Add(-time.Minute),
			})
		}
		if i%3 != 1 {
			f.remotes = append(f.remotes, s3browse.TenantSummary{
				Prefix: s3browse.Prefix{Name: name, Valid: true},
				Totals: s3browse.Totals{Format: s3browse.FormatLTX, Bytes: int64(i%911) << 12, LatestTXID: uint64(i%5000 + 1), LatestAt: testNow.Add(-time.Duration(i%900) * time.Second), Snapshots: 1 + i%4},
			})
		}
	}
	return f
}
