package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
)

var now = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

func local(name string, txid uint64, txidAge time.Duration, l0 ...tenants.LTXRef) tenants.Local {
	l := tenants.Local{
		Entry:    tenants.Entry{Path: "/data/" + name + ".db", Naming: tenants.NameFor("/data/"+name+".db", "")},
		Size:     4096,
		TXID:     txid,
		Changed:  now.Add(-txidAge),
		TXIDTime: now.Add(-txidAge),
		L0:       l0,
	}
	if txid == 0 {
		l.TXIDTime = time.Time{}
	}
	return l
}

func remote(name string, txid uint64, age time.Duration, lease time.Duration) s3browse.TenantSummary {
	s := s3browse.TenantSummary{Prefix: s3browse.Prefix{Name: name, Valid: s3browse.CheckName(name) == nil}}
	s.Format = s3browse.FormatLTX
	s.LatestTXID = txid
	s.LatestAt = now.Add(-age)
	if lease >= 0 {
		s.HasLease = true
		s.LeaseModifiedAt = now.Add(-lease)
	}
	return s
}

const (
	vg1 = "12345678-1234-5678-9abc-123456789012"
	vg2 = "98765432-4321-8765-cba9-876543210987"
)

func TestJoinStatus(t *testing.T) {
	noLease := time.Duration(-1)
	tests := []struct {
		name     string
		locals   []tenants.Local
		remote   []s3browse.TenantSummary
		opt      ViewOptions
		status   Status
		lagTXIDs uint64
		lag      time.Duration
	}{
		{"in sync", []tenants.Local{local(vg1, 42, time.Second)}, []s3browse.TenantSummary{remote(vg1, 42, time.Second, 5*time.Second)}, ViewOptions{}, StatusInSync, 0, 0},
		{"small lag is still in sync",
			[]tenants.Local{local(vg1, 43, 2*time.Second, tenants.LTXRef{MinTXID: 43, MaxTXID: 43, ModTime: now.Add(-2 * time.Second)})},
			[]s3browse.TenantSummary{remote(vg1, 42, 3*time.Second, time.Second)}, ViewOptions{}, StatusInSync, 1, 2 * time.Second},
		{"lagging",
			[]tenants.Local{local(vg1, 50, time.Second,
				tenants.LTXRef{MinTXID: 41, MaxTXID: 42, ModTime: now.Add(-time.Minute)},
				tenants.LTXRef{MinTXID: 43, MaxTXID: 45, ModTime: now.Add(-30 * time.Second)},
				tenants.LTXRef{MinTXID: 46, MaxTXID: 50, ModTime: now.Add(-time.Second)})},
			[]s3browse.TenantSummary{remote(vg1, 42, time.Minute, time.Second)}, ViewOptions{}, StatusLagging, 8, 30 * time.Second},
		{"local changes and no lease: not replicating",
			[]tenants.Local{local(vg1, 50, time.Minute, tenants.LTXRef{MinTXID: 43, MaxTXID: 50, ModTime: now.Add(-time.Minute)})},
			[]s3browse.TenantSummary{remote(vg1, 42, time.Hour, noLease)}, ViewOptions{}, StatusNotReplicating, 8, time.Minute},
		{"local only", []tenants.Local{local(vg1, 0, time.Second)}, nil, ViewOptions{}, StatusNotReplicating, 0, 0},
		{"remote only", nil, []s3browse.TenantSummary{remote(vg1, 42, time.Hour, noLease)}, ViewOptions{}, StatusRemoteOnly, 0, 0},
		{"remote only with a live lease", nil, []s3browse.TenantSummary{remote(vg1, 42, time.Second, 3*time.Second)}, ViewOptions{}, StatusLeased, 0, 0},
		{"replica ahead with a live lease: another writer", []tenants.Local{local(vg1, 10, time.Hour)}, []s3browse.TenantSummary{remote(vg1, 42, time.Second, time.Second)}, ViewOptions{}, StatusLeased, 0, 0},
		{"replica ahead, no lease: error", []tenants.Local{local(vg1, 10, time.Hour)}, []s3browse.TenantSummary{remote(vg1, 42, time.Hour, noLease)}, ViewOptions{}, StatusError, 0, 0},
		{"stale lease does not count", []tenants.Local{local(vg1, 10, time.Hour)}, []s3browse.TenantSummary{remote(vg1, 42, time.Hour, 5*time.Minute)}, ViewOptions{}, StatusError, 0, 0},
		{"never replicated here, live lease elsewhere", []tenants.Local{local(vg1, 0, time.Hour)}, []s3browse.TenantSummary{remote(vg1, 42, time.Second, time.Second)}, ViewOptions{}, StatusLeased, 0, 0},
		{"state error", []tenants.Local{func() tenants.Local { l := local(vg1, 5, time.Second); l.StateErr = "unreadable"; return l }()}, nil, ViewOptions{}, StatusError, 0, 0},
		{"replicating here without lease info", []tenants.Local{local(vg1, 43, time.Second, tenants.LTXRef{MinTXID: 43, MaxTXID: 43, ModTime: now.Add(-time.Second)})},
			[]s3browse.TenantSummary{remote(vg1, 42, time.Second, noLease)}, ViewOptions{Replicating: func(string) bool { return true }}, StatusInSync, 1, time.Second},
		{"custom lag threshold", []tenants.Local{local(vg1, 43, 3*time.Second, tenants.LTXRef{MinTXID: 43, MaxTXID: 43, ModTime: now.Add(-3 * time.Second)})},
			[]s3browse.TenantSummary{remote(vg1, 42, time.Second, time.Second)}, ViewOptions{LagThreshold: 2 * time.Second}, StatusLagging, 1, 3 * time.Second},
		{"WAL ahead of a stalled replicator's last sync: lagging, not in sync",
			[]tenants.Local{func() tenants.Local {
				l := local(vg1, 42, time.Second)
				l.WALAhead, l.TXIDTime = true, now.Add(-time.Minute)
				return l
			}()},
			[]s3browse.TenantSummary{remote(vg1, 42, time.Minute, time.Second)}, ViewOptions{}, StatusLagging, 0, 0},
		{"WAL ahead just after the last sync: still in sync",
			[]tenants.Local{func() tenants.Local {
				l := local(vg1, 42, time.Second)
				l.WALAhead, l.TXIDTime = true, now.Add(-time.Second)
				return l
			}()},
			[]s3browse.TenantSummary{remote(vg1, 42, time.Second, time.Second)}, ViewOptions{}, StatusInSync, 0, 0},
		{"invalid name in S3", nil, []s3browse.TenantSummary{{Prefix: s3browse.Prefix{Name: "\x1b[31m", Valid: false, Problem: "control characters"}}}, ViewOptions{}, StatusInvalid, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := Join(tt.locals, tt.remote, now, tt.opt)
			if len(rows) != 1 {
				t.Fatalf("got %d rows, want 1: %+v", len(rows), rows)
			}
			r := rows[0]
			if r.Status != tt.status {
				t.Errorf("status %q (note %q), want %q", r.Status, r.Note, tt.status)
			}
			if r.LagTXIDs != tt.lagTXIDs || r.Lag != tt.lag {
				t.Errorf("lag %d tx / %s, want %d tx / %s", r.LagTXIDs, r.Lag, tt.lagTXIDs, tt.lag)
			}
			if r.Status != StatusInSync && r.Status != StatusRemoteOnly && r.Note == "" {
				t.Errorf("status %q without a note", r.Status)
			}
		})
	}
}

func TestJoinOneRowPerTenant(t *testing.T) {
	locals := []tenants.Local{local(vg1, 42, time.Second), local(vg2, 0, time.Second)}
	fallback := tenants.Local{Entry: tenants.Entry{Path: "/data/legacy.db", Naming: tenants.NameFor("/data/legacy.db", "")}}
	locals = append(locals, fallback)
	remote := []s3browse.TenantSummary{remote(vg1, 42, time.Second, time.Second), remote("legacy-client-001", 7, time.Hour, -1)}
	rows := Join(locals, remote, now, ViewOptions{})
	got := map[string]Status{}
	for _, r := range rows {
		if _, dup := got[r.Tenant]; dup {
			t.Fatalf("tenant %s twice", r.Tenant)
		}
		got[r.Tenant] = r.Status
	}
	want := map[string]Status{vg1: StatusInSync, vg2: StatusNotReplicating, "default": StatusNotReplicating, "legacy-client-001": StatusRemoteOnly}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	c := Counts(rows)
	if c[StatusInSync] != 1 || c[StatusNotReplicating] != 2 || c[StatusRemoteOnly] != 1 {
		t.Errorf("counts %v", c)
	}
}

func TestJoinCollisionsAndCase(t *testing.T) {
	a := local(vg1, 1, time.Second)
	b := tenants.Local{Entry: tenants.Entry{Path: "/other/" + vg1 + ".db", Naming: tenants.NameFor("/other/"+vg1+".db", "")}}
	entries := []tenants.Entry{a.Entry, b.Entry}
	tenants.MarkCollisions(entries)
	a.Entry, b.Entry = entries[0], entries[1]
	upper := "ABCDEF01-2345-6789-ABCD-EF0123456789"
	rows := Join([]tenants.Local{a, b}, []s3browse.TenantSummary{remote(upper, 1, time.Hour, -1), remote("abcdef01-2345-6789-abcd-ef0123456789", 1, time.Hour, -1)}, now, ViewOptions{})
	for _, r := range rows {
		if r.Status != StatusInvalid {
			t.Errorf("%s (%v): %q, want invalid", r.Tenant, r.Local != nil, r.Status)
		}
	}
	if len(rows) != 4 {
		t.Errorf("want 4 rows, got %d", len(rows))
	}
}

func TestSort(t *testing.T) {
	rows := []Row{
		{Tenant: "b", Lag: time.Second, Status: StatusInSync, Local: &tenants.Local{Size: 10, Changed: now.Add(-time.Hour)}},
		// a's WAL is bigger than b's file: size sorts by the file, as SIZE shows.
		{Tenant: "a", Lag: time.Minute, Status: StatusLagging, Local: &tenants.Local{Size: 5, WALSize: 100, Changed: now}},
		{Tenant: "c", Status: StatusError, Remote: &s3browse.TenantSummary{Totals: s3browse.Totals{Bytes: 99, LatestAt: now.Add(-time.Minute)}}},
	}
	order := func() string {
		s := ""
		for _, r := range rows {
			s += r.Tenant
		}
		return s
	}
	for key, want := range map[SortKey]string{SortName: "abc", SortLag: "abc", SortSize: "cba", SortChanged: "acb", SortStatus: "cab"} {
		Sort(rows, key)
		if got := order(); got != want {
			t.Errorf("sort %s: %s, want %s", key, got, want)
		}
	}
	if _, err := ParseSortKey("bogus"); err == nil {
		t.Error("ParseSortKey accepted bogus")
	}
}

func TestJudgeLease(t *testing.T) {
	for _, tt := range []struct {
		lease *s3browse.Lease
		state LeaseState
		text  string
	}{
		{nil, LeaseNone, "none: no replicator holds this tenant"},
		{&s3browse.Lease{Error: "decode lock.json: invalid character 'g'"}, LeaseUnreadable, "unreadable: decode lock.json: invalid character 'g'"},
		{&s3browse.Lease{Error: "red\x1b[31m"}, LeaseUnreadable, `unreadable: "red\x1b[31m"`},
		{&s3browse.Lease{Owner: "a:1"}, LeaseUnreadable, "unreadable: lock.json has no expires_at: not a Litestream lease"},
		{&s3browse.Lease{Owner: "a:1", Generation: 3, ExpiresAt: now.Add(-3 * time.Minute)}, LeaseExpired, "expired 3m ago, last held by a:1"},
		{&s3browse.Lease{Owner: "a:1", Generation: 3, ExpiresAt: now.Add(25 * time.Second)}, LeaseLive, "held by a:1 until 2026-11-26T03:00:25Z (25s left, generation 3)"},
		{&s3browse.Lease{Generation: 3, ExpiresAt: now.Add(25 * time.Second)}, LeaseLive, "held by an unnamed replicator until 2026-11-26T03:00:25Z (25s left, generation 3)"},
	} {
		state, text := JudgeLease(tt.lease, now)
		if state != tt.state || text != tt.text {
			t.Errorf("%+v: %s %q, want %s %q", tt.lease, state, text, tt.state, tt.text)
		}
	}
}

// TestJoinJunkLease: a lock.json written seconds ago whose content is junk
// holds no lease: the row is judged as without one, and says why.
func TestJoinJunkLease(t *testing.T) {
	junk := func(name string, txid uint64) s3browse.TenantSummary {
		s := remote(name, txid, time.Second, time.Second)
		s.Lease = &s3browse.Lease{Error: "decode lock.json: invalid character 'g' looking for beginning of value"}
		return s
	}
	for _, tt := range []struct {
		name   string
		locals []tenants.Local
		remote s3browse.TenantSummary
		status Status
	}{
		{"remote only", nil, junk(vg1, 42), StatusRemoteOnly},
		{"replica ahead", []tenants.Local{local(vg1, 10, time.Hour)}, junk(vg1, 42), StatusError},
		{"local changes", []tenants.Local{local(vg1, 50, time.Minute, tenants.LTXRef{MinTXID: 43, MaxTXID: 50, ModTime: now.Add(-time.Minute)})}, junk(vg1, 42), StatusNotReplicating},
	} {
		rows := Join(tt.locals, []s3browse.TenantSummary{tt.remote}, now, ViewOptions{})
		if len(rows) != 1 || rows[0].Status != tt.status || !strings.HasSuffix(rows[0].Note, "lease unreadable: decode lock.json: invalid character 'g' looking for beginning of value") {
			t.Errorf("%s: %+v, want %q noting the unreadable lease", tt.name, rows, tt.status)
		}
	}
	// The same lock.json with a live lease in it.
	live := remote(vg1, 42, time.Second, time.Second)
	live.Lease = &s3browse.Lease{Owner: "b:2", ExpiresAt: now.Add(20 * time.Second)}
	if rows := Join(nil, []s3browse.TenantSummary{live}, now, ViewOptions{}); rows[0].Status != StatusLeased {
		t.Errorf("a live lease read: %+v", rows[0])
	}
}
