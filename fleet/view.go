package fleet

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// Status is a tenant's state in the fleet view.
type Status string

// The statuses, from the most to the least alarming.
const (
	StatusError          Status = "error"                 // something is wrong: see the note
	StatusFailed         Status = "failed"                // its host cannot open, write or lock it: see the note
	StatusDiverged       Status = "diverged"              // its host found the local history and the replica's differ: nothing is uploaded
	StatusHostSilent     Status = "host silent"           // the host replicating it stopped beating: down or cut off from S3
	StatusLeaseLost      Status = "lease lost (retrying)" // its host cannot prove it may write: uploads wait
	StatusSyncFailing    Status = "sync failing"          // its host may write, but its last sync failed: S3 does not hold its latest changes
	StatusInvalid        Status = "invalid"               // invalid name or a collision
	StatusUnknown        Status = "unknown"               // local, and S3 could not be asked: see the note
	StatusMissing        Status = "missing"               // its host's file is gone
	StatusLeased         Status = "leased elsewhere"      // another host writes the replica
	StatusLagging        Status = "lagging"               // local changes not yet in S3 for too long
	StatusStarting       Status = "starting"              // its host is checking and opening it
	StatusNotReplicating Status = "not replicating"       // local only, or local changes nobody replicates
	StatusRemoteOnly     Status = "remote only"           // restorable; nothing local
	StatusInSync         Status = "in sync"
)

// Statuses lists every status in display order.
var Statuses = []Status{StatusError, StatusFailed, StatusDiverged, StatusHostSilent, StatusLeaseLost, StatusSyncFailing, StatusInvalid, StatusUnknown, StatusMissing,
	StatusLeased, StatusLagging, StatusStarting, StatusNotReplicating, StatusRemoteOnly, StatusInSync}

// known reports one of Statuses.
func (s Status) known() bool { return slices.Contains(Statuses, s) }

// rank orders statuses by urgency, for sorting.
func (s Status) rank() int {
	i := slices.Index(Statuses, s)
	if i < 0 {
		return len(Statuses)
	}
	return i
}

// ViewOptions tune how rows are judged.
type ViewOptions struct {
	// LagThreshold is how long a local change may wait before the tenant
	// counts as lagging. Litestream syncs every second; a few seconds of
	// lag is its normal pipeline, not an alarm. Default 10s.
	LagThreshold time.Duration
	// LeaseFresh is how recently lock.json must have been written for the
	// lease to count as held. Litestream's lease lives 30 s. Default 40s.
	LeaseFresh time.Duration
	// Replicating reports tenants replicated by this process.
	Replicating func(path string) bool

	// remoteUnknown, set by Refresh, says why S3's side is not known: a
	// local row then has no status to show but "unknown".
	remoteUnknown string
	// remoteStale, set by Refresh, says S3 could not be reached and an
	// older answer stands in: a local tenant that answer does not list may
	// be in S3 by now, so it is "unknown", not "not replicating".
	remoteStale string
}

func (o ViewOptions) withDefaults() ViewOptions {
	if o.LagThreshold <= 0 {
		o.LagThreshold = 10 * time.Second
	}
	if o.LeaseFresh <= 0 {
		o.LeaseFresh = 40 * time.Second
	}
	return o
}

// Row is one tenant: its local database, its S3 prefix, or both.
type Row struct {
	// Tenant is the name; from S3 it is untrusted: print it with Display.
	Tenant string `json:"tenant"`
	Status Status `json:"status"`
	Note   string `json:"note,omitempty"`
	// Local is nil for a tenant with nothing on this host.
	Local *tenants.Local `json:"local"`
	// Remote is nil for a tenant with nothing in S3.
	Remote *s3browse.TenantSummary `json:"remote"`
	// LagTXIDs is the row's local TXID − its S3 TXID, when the local side
	// is ahead: local.txid (or, with nothing local, host_local_txid) −
	// remote.latest_txid, the same numbers the row shows.
	LagTXIDs uint64 `json:"lag_txids"`
	// Lag is now − the time of the oldest local change not yet replicated.
	Lag time.Duration `json:"lag_ns"`
	// LagUnknown says why the lag cannot be known (a side's TXID is
	// unknown); lag_txids and lag_ns are then null, never 0.
	LagUnknown string `json:"lag_unknown,omitempty"`
	// Staleness is now − the last time the replica received data.
	Staleness time.Duration `json:"staleness_ns"`
	// Replicating says this process replicates the tenant.
	Replicating bool `json:"replicating,omitempty"`
	// Host is the replicator (its -host) whose host record reports the
	// tenant: the one replicating it, or else one for which another host
	// holds it; "" when no host record names it. State is that host's
	// state for the tenant, in replicate's words, and Reason why. HostAge
	// is the age of its heartbeat; HostSilent says it is 40 s or more, and
	// the status is then "host silent".
	Host       string        `json:"host,omitempty"`
	State      string        `json:"state,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	HostAge    time.Duration `json:"host_age_ns,omitempty"`
	HostSilent bool          `json:"host_silent,omitempty"`
	// HostLocalTXID is the local TXID the host's record reports: the row's
	// local TXID when nothing is local here.
	HostLocalTXID uint64 `json:"host_local_txid,omitempty"`
	// RecordAge is how old that record is, by S3's clock: what the row
	// takes from it (its state, the S3 TXID when remote.source is "host
	// record", host_local_txid) is as of then.
	RecordAge time.Duration `json:"record_age_ns,omitempty"`
	// StateAge is how long the host has been in State, as of now: the
	// record's own age of the state plus the record's age.
	StateAge time.Duration `json:"state_age_ns,omitempty"`
	// VerifiedAt and Verdict are that host's last verification of the
	// tenant (replicate -verify-every; its clock), when it made one.
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	Verdict    string    `json:"verdict,omitempty"`
}

// MarshalJSON writes an unknown lag as null: a 0 would say "in sync".
func (r Row) MarshalJSON() ([]byte, error) {
	type plain Row // without this method
	out := struct {
		plain
		LagTXIDs *uint64        `json:"lag_txids"`
		Lag      *time.Duration `json:"lag_ns"`
	}{plain: plain(r)}
	if r.LagUnknown == "" {
		out.LagTXIDs, out.Lag = &r.LagTXIDs, &r.Lag
	}
	return json.Marshal(out)
}

// LocalTXID is the row's local TXID: this host's file's, or else the one
// its replicating host reports; 0 when unknown.
func (r Row) LocalTXID() uint64 {
	if r.Local != nil {
		return r.Local.TXID
	}
	return r.HostLocalTXID
}

// unknownLag marks the row's lag unknown, and why.
func (r *Row) unknownLag(why string) {
	r.LagTXIDs, r.Lag, r.LagUnknown = 0, 0, why
}

// Display is the tenant name safe to print.
func (r Row) Display() string { return untrusted.Printable(r.Tenant) }

// Size is the local database file's bytes (its WAL apart), or the
// replica's bytes in S3 when nothing is local: what the SIZE column of
// `ls` and of the terminal UI shows, and what -sort size orders by.
func (r Row) Size() int64 {
	if r.Local != nil {
		return r.Local.Size
	}
	if r.Remote != nil {
		return r.Remote.Bytes
	}
	return 0
}

// Changed is the local database's last change, or the replica's last upload.
func (r Row) Changed() time.Time {
	if r.Local != nil {
		return r.Local.Changed
	}
	if r.Remote != nil {
		return r.Remote.LatestAt
	}
	return time.Time{}
}

// CaseCollisionNote is the note of an S3 prefix that differs from another
// only in case: two spellings of one tenant.
const CaseCollisionNote = "another prefix differs from this one only in case"

// Join puts local databases and S3 tenant prefixes side by side, one row per
// tenant name, judged at now. Prefixes of GUIDs that differ only in case are
// distinct rows in S3 and both marked invalid.
func Join(locals []tenants.Local, remote []s3browse.TenantSummary, now time.Time, opt ViewOptions) []Row {
	opt = opt.withDefaults()
	rows := make([]Row, 0, max(len(locals), len(remote)))
	byName := make(map[string]int, len(locals))
	for i := range locals {
		l := &locals[i]
		if !l.Verdict.Usable() {
			// Not joinable: its name is not the prefix it would use.
			rows = append(rows, Row{Tenant: l.Name, Local: l, Status: StatusInvalid, Note: l.Note})
			continue
		}
		if j, dup := byName[l.Name]; dup {
			// tenants.MarkCollisions already flags these; keep both visible.
			rows[j].Status, rows[j].Note = StatusInvalid, "prefix shared with "+untrusted.Printable(l.Path)
			rows = append(rows, Row{Tenant: l.Name, Local: l, Status: StatusInvalid, Note: "prefix shared with " + untrusted.Printable(rows[j].Local.Path)})
			continue
		}
		byName[l.Name] = len(rows)
		rows = append(rows, Row{Tenant: l.Name, Local: l})
	}
	lowerRemote := map[string]int{}
	for i := range remote {
		lowerRemote[layout.PrefixKey(remote[i].Name)]++
	}
	for i := range remote {
		r := &remote[i]
		if j, ok := byName[r.Name]; ok && rows[j].Remote == nil {
			rows[j].Remote = r
			continue
		}
		row := Row{Tenant: r.Name, Remote: r}
		nameErr := tenants.ValidateName(r.Name)
		switch {
		case !r.Valid:
			// The listing judged it already, by the same rule tenants.ValidateName
			// applies first: its reason is the one to show.
			row.Status, row.Note = StatusInvalid, r.Problem
		case nameErr != nil:
			row.Status, row.Note = StatusInvalid, "not a tenant name: "+nameErr.Error()
		case lowerRemote[layout.PrefixKey(r.Name)] > 1:
			row.Status, row.Note = StatusInvalid, CaseCollisionNote
		}
		rows = append(rows, row)
	}
	for i := range rows {
		judge(&rows[i], now, opt)
	}
	return rows
}

// judge sets a joined row's status, lag and note.
func judge(r *Row, now time.Time, opt ViewOptions) {
	if r.Remote != nil && !r.Remote.LatestAt.IsZero() {
		r.Staleness = now.Sub(r.Remote.LatestAt)
	}
	if r.Local != nil && opt.Replicating != nil {
		r.Replicating = opt.Replicating(r.Local.Path)
	}
	if r.Status != "" {
		return // invalid, decided by Join
	}
	if opt.remoteUnknown != "" && r.Local != nil && r.Local.StateErr == "" {
		r.Status, r.Note = StatusUnknown, "S3: "+opt.remoteUnknown
		r.unknownLag("S3 side unknown")
		return
	}
	if opt.remoteStale != "" && r.Local != nil && r.Remote == nil && r.Local.StateErr == "" {
		r.Status, r.Note = StatusUnknown, "S3: "+opt.remoteStale
		r.unknownLag("S3 side unknown")
		return
	}
	l, rem := r.Local, r.Remote
	hasRemote := rem != nil && rem.Format != s3browse.FormatEmpty
	// A lock.json written lately holds a live lease; when it was read,
	// JudgeLease decides, and a junk one is said so on the row.
	leaseFresh := rem != nil && rem.HasLease && now.Sub(rem.LeaseModifiedAt) < opt.LeaseFresh
	if rem != nil && rem.Lease != nil {
		state, text := JudgeLease(rem.Lease, now)
		leaseFresh = state == LeaseLive
		if state == LeaseUnreadable {
			defer func() { r.Note = strings.TrimPrefix(r.Note+"; lease "+text, "; ") }()
		}
	}
	switch {
	case l == nil:
		// No local TXID here: a live host's report may give one (hostLag).
		r.unknownLag("nothing local")
		r.Status = StatusRemoteOnly
		if leaseFresh {
			r.Status, r.Note = StatusLeased, "a live replicator writes it, not from this host's folders"
		}
		return
	case l.StateErr != "":
		r.Status, r.Note = StatusError, l.StateErr
		r.unknownLag("local Litestream state unreadable")
		return
	case !hasRemote:
		r.unknownLag("nothing replicated in S3")
		r.Status = StatusNotReplicating
		if rem != nil && rem.Format == s3browse.FormatEmpty && rem.HasLease {
			r.Note = "lease taken, nothing replicated yet"
		} else {
			r.Note = "nothing in S3"
		}
		if r.Replicating {
			r.Status, r.Note = StatusLagging, "replication starting"
		}
		return
	}
	remoteTXID := rem.LatestTXID
	switch {
	case l.TXID == 0:
		r.unknownLag("no local Litestream state")
		r.Status, r.Note = StatusNotReplicating, "no local Litestream state: not replicated from this host"
		if leaseFresh {
			r.Status, r.Note = StatusLeased, "replica written by another host"
		}
	case remoteTXID == 0:
		// A v0.3 replica has generations, not TXIDs: nothing to subtract.
		r.unknownLag(fmt.Sprintf("the %s layout has no TXIDs", rem.Format))
		r.Status, r.Note = StatusUnknown, fmt.Sprintf("the replica (%s layout) has no TXID to compare with local TXID %d", rem.Format, l.TXID)
		if leaseFresh {
			r.Status, r.Note = StatusLeased, "replica written by another host"
		}
	case remoteTXID > l.TXID:
		if leaseFresh {
			r.Status, r.Note = StatusLeased, fmt.Sprintf("replica is ahead (TXID %d > local %d): another host writes it", remoteTXID, l.TXID)
		} else {
			r.Status, r.Note = StatusError, fmt.Sprintf("replica is ahead of the local database (TXID %d > %d): the local file was replaced or another writer ran", remoteTXID, l.TXID)
		}
	case l.TXID > remoteTXID:
		r.LagTXIDs = l.TXID - remoteTXID
		if t, ok := l.OldestUnreplicated(remoteTXID); ok {
			r.Lag = max(now.Sub(t), 0)
		}
		r.Status = StatusInSync
		if r.Lag >= opt.LagThreshold {
			r.Status = StatusLagging
			r.Note = fmt.Sprintf("%d transaction(s) not in S3 for %s", r.LagTXIDs, r.Lag.Round(time.Second))
		}
		if !leaseFresh && !r.Replicating {
			r.Status, r.Note = StatusNotReplicating, "local changes and no live lease: no replicator is running"
		}
	default:
		r.Status = StatusInSync
		// Changes after the last local sync that nobody picks up: frames
		// in the WAL past what Litestream's last sync read. The file's
		// mtime says nothing of it: a checkpoint (a clean stop's own)
		// moves it without a change.
		if !leaseFresh && !r.Replicating && l.WALAhead {
			r.Status, r.Note = StatusNotReplicating, "changed since the last sync (the WAL holds frames Litestream has not read) and no live lease: no replicator is running"
		} else if l.WALAhead && !l.TXIDTime.IsZero() && now.Sub(l.TXIDTime) >= opt.LagThreshold {
			// S3 lacks those frames. A working replicator reads them
			// within a second or two of the write; a replicator that
			// stopped (a paused process, whose heartbeat object still
			// looks live to one look) never does. The frames came after
			// the last sync, so how long they wait is unknown, but never
			// more than since that sync.
			r.unknownLag("the WAL holds frames Litestream has not read")
			r.Status, r.Note = StatusLagging, fmt.Sprintf("changed since the last sync %s ago (the WAL holds frames Litestream has not read)", now.Sub(l.TXIDTime).Round(time.Second))
		}
	}
}

// Counts tallies rows by status.
func Counts(rows []Row) map[Status]int {
	m := make(map[Status]int, len(Statuses))
	for _, r := range rows {
		m[r.Status]++
	}
	return m
}

// SortKey names a row order.
type SortKey string

// The row orders of `ls -sort` and the TUI's `s`.
const (
	SortName    SortKey = "name"
	SortLag     SortKey = "lag"
	SortSize    SortKey = "size"
	SortChanged SortKey = "changed"
	SortStatus  SortKey = "status"
)

// SortKeys lists the orders in the TUI's cycling order.
var SortKeys = []SortKey{SortName, SortLag, SortSize, SortChanged, SortStatus}

// ParseSortKey checks a -sort value.
func ParseSortKey(s string) (SortKey, error) {
	k := SortKey(strings.ToLower(s))
	if slices.Contains(SortKeys, k) {
		return k, nil
	}
	return "", fmt.Errorf("unknown sort %q: use name, lag, size, changed or status", s)
}

// Sort orders rows in place: by name ascending, or by lag, size or last
// change descending (biggest first), ties by name.
func Sort(rows []Row, key SortKey) {
	byName := func(a, b *Row) int { return cmp.Compare(a.Tenant, b.Tenant) }
	var f func(a, b *Row) int
	switch key {
	case SortLag:
		f = func(a, b *Row) int {
			return cmp.Or(cmp.Compare(b.Lag, a.Lag), cmp.Compare(b.LagTXIDs, a.LagTXIDs), byName(a, b))
		}
	case SortSize:
		f = func(a, b *Row) int { return cmp.Or(cmp.Compare(b.Size(), a.Size()), byName(a, b)) }
	case SortChanged:
		f = func(a, b *Row) int { return cmp.Or(b.Changed().Compare(a.Changed()), byName(a, b)) }
	case SortStatus:
		f = func(a, b *Row) int { return cmp.Or(cmp.Compare(a.Status.rank(), b.Status.rank()), byName(a, b)) }
	default:
		f = byName
	}
	// Compare in place: copies of Row whose addresses reach f would be
	// moved to the heap, one allocation per comparison.
	sort.SliceStable(rows, func(i, j int) bool { return f(&rows[i], &rows[j]) < 0 })
}
