package fleettable

import (
	"path/filepath"
	"strconv"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
)

// The column groups: the tenant, its local side, the replication between
// them, and its S3 side.
const (
	groupTenant = iota
	groupLocal
	groupLink
	groupRemote
)

var groupTitles = [...]string{"", "LOCAL", "REPLICATION", "S3"}

// column is one column of the table. The tenant column is as wide as the
// longest name (a GUID, 36) and keeps that width while other columns go;
// the file column takes what is left. drop says in which order columns go
// when the terminal is too narrow (higher goes first, 0 never).
type column struct {
	title    string
	group    int
	width    int // fixed width; for flexible columns, their minimum
	max      int // flexible: at most this wide; 0 for fixed columns
	right    bool
	name     bool // a name: shortened in the middle, never at the end
	drop     int
	status   bool // drawn in the row's status colour
	cell     func(r *fleet.Row, now time.Time) string
	flexWant func(rows []fleet.Row) int
	sort     fleet.SortKey // the order this column shows, "" for none
}

var columns = []column{
	{title: "TENANT", group: groupTenant, width: 7, max: tenantMax, name: true, status: true, cell: tenantCell, flexWant: tenantWant, sort: fleet.SortName},
	{title: "SIZE", group: groupTenant, width: 5, right: true, drop: 5, cell: sizeCell, sort: fleet.SortSize},
	{title: "CHANGED", group: groupTenant, width: 8, right: true, drop: 10, cell: changedCell, sort: fleet.SortChanged},
	{title: "FILE", group: groupLocal, width: 10, max: 28, name: true, drop: 9, cell: fileCell, flexWant: fileWant},
	{title: "TXID", group: groupLocal, width: 6, right: true, drop: 3, cell: localTXIDCell},
	{title: "WAL", group: groupLocal, width: 5, right: true, drop: 7, cell: walCell},
	{title: "LAG", group: groupLink, width: 8, right: true, drop: 1, cell: lagCell, sort: fleet.SortLag},
	{title: "STATUS", group: groupLink, width: 16, status: true, cell: statusCell, sort: fleet.SortStatus},
	{title: "HOST", group: groupLink, width: 4, max: hostMax, name: true, drop: 5, cell: hostCell, flexWant: hostWant},
	{title: "TXID", group: groupRemote, width: 6, right: true, drop: 2, cell: remoteTXIDCell},
	{title: "SYNCED", group: groupRemote, width: 7, right: true, drop: 4, cell: syncedCell},
	{title: "SNAPS", group: groupRemote, width: 6, right: true, drop: 6, cell: snapsCell},
	{title: "BYTES", group: groupRemote, width: 5, right: true, drop: 8, cell: bytesCell},
	{title: "VERIFIED", group: groupRemote, width: 10, drop: 11, cell: verifiedCell},
}

// tenantMax is the tenant column's width: a GUID, whole. Longer names are
// shortened in the middle.
const tenantMax = 36

// Indices of the flexible columns.
const colTenant, colFile, colHost = 0, 3, 8

// hostMax is the HOST column's widest: longer host names are shortened in
// the middle.
const hostMax = 16

// hostCell is the host whose record reports the tenant: the one
// replicating it (its state is the row's status, or the detail page's).
func hostCell(r *fleet.Row, _ time.Time) string {
	if r.Host == "" {
		return ""
	}
	return untrusted.Printable(r.Host)
}

func hostWant(rows []fleet.Row) int {
	w := 0
	for i := range rows {
		w = max(w, len(rows[i].Host))
		if w >= hostMax {
			return hostMax
		}
	}
	return w
}

func tenantCell(r *fleet.Row, _ time.Time) string { return r.Display() }

func tenantWant(rows []fleet.Row) int {
	w := 0
	for i := range rows {
		// Names are almost always ASCII: len is the width then, and a
		// name with anything else is quoted by Printable, longer anyway.
		w = max(w, len(rows[i].Display()))
		if w >= tenantMax {
			return tenantMax
		}
	}
	return w
}

func fileCell(r *fleet.Row, _ time.Time) string {
	if r.Local == nil {
		return ""
	}
	return untrusted.Printable(filepath.Base(r.Local.Path))
}

func fileWant(rows []fleet.Row) int {
	w := 0
	for i := range rows {
		if l := rows[i].Local; l != nil {
			w = max(w, len(filepath.Base(l.Path)))
			if w >= 28 {
				return 28
			}
		}
	}
	return w
}

// sizeCell is what `s` sorts by (fleet.Row.Size): the database file, or
// the replica's bytes when nothing is local; "—" when those bytes are
// unknown (a host record has no sizes), never 0B.
func sizeCell(r *fleet.Row, _ time.Time) string {
	if r.Local == nil && r.Remote == nil {
		return ""
	}
	if r.Local == nil && sizesUnknown(r.Remote) {
		return unknownCell
	}
	return common.Bytes(r.Size())
}

// unknownCell is a value nobody knows: not 0, not absent.
const unknownCell = "—"

// sizesUnknown reports an S3 side read from a host record, which knows the
// replicated TXID and the last upload but not the objects, their bytes or
// the snapshots.
func sizesUnknown(rm *s3browse.TenantSummary) bool {
	return rm != nil && rm.Source == s3browse.SourceHostRecord
}

// changedCell is what sorting by last change orders by (fleet.Row.Changed):
// the database file's last change, or the replica's last upload when
// nothing is local.
func changedCell(r *fleet.Row, now time.Time) string {
	t := r.Changed()
	if t.IsZero() {
		return ""
	}
	return common.Duration(max(now.Sub(t), 0)) + " ago"
}

func walCell(r *fleet.Row, _ time.Time) string {
	if r.Local == nil {
		return ""
	}
	return common.Bytes(r.Local.WALSize)
}

// localTXIDCell is the local TXID: this host's file's, or else the one the
// replicating host reports (what LAG subtracts from).
func localTXIDCell(r *fleet.Row, _ time.Time) string {
	if r.Local == nil {
		if r.HostLocalTXID > 0 && !r.HostSilent {
			return strconv.FormatUint(r.HostLocalTXID, 10)
		}
		return ""
	}
	if r.Local.TXID == 0 {
		return "-" // Litestream never ran on it here
	}
	return strconv.FormatUint(r.Local.TXID, 10)
}

// lagCell is the row's local TXID − its S3 TXID (the local side being
// this host's file, or else the TXID its replicating host reports), with
// how long the oldest local change not in S3 has waited: "0", "+12 3m",
// or "-5" when the replica is ahead of the local file. "?" when a side's
// TXID is unknown; empty when a side is missing.
func lagCell(r *fleet.Row, _ time.Time) string {
	hasLocal := r.Local != nil || (r.Host != "" && !r.HostSilent && r.HostLocalTXID > 0)
	switch {
	case !hasLocal || r.Remote == nil:
		return ""
	case r.LagUnknown != "":
		return "?"
	case r.Remote.LatestTXID > r.LocalTXID():
		return "-" + strconv.FormatUint(r.Remote.LatestTXID-r.LocalTXID(), 10)
	case r.LagTXIDs == 0:
		return "0"
	}
	s := "+" + strconv.FormatUint(r.LagTXIDs, 10)
	if r.Lag > 0 {
		s += " " + common.Duration(r.Lag)
	}
	return s
}

func statusCell(r *fleet.Row, _ time.Time) string { return string(r.Status) }

func remoteTXIDCell(r *fleet.Row, _ time.Time) string {
	rm := r.Remote
	if rm == nil {
		return ""
	}
	if rm.LatestTXID == 0 {
		if rm.Format == s3browse.FormatGenerations {
			return "v0.3"
		}
		return "-"
	}
	return strconv.FormatUint(rm.LatestTXID, 10)
}

func syncedCell(r *fleet.Row, now time.Time) string {
	if r.Remote == nil || r.Remote.LatestAt.IsZero() {
		return ""
	}
	d := now.Sub(r.Remote.LatestAt)
	if d < time.Second {
		return "now"
	}
	return common.Duration(d) + " ago"
}

// verifiedShort are the verdicts in a cell: a failure in capitals.
var verifiedShort = map[string]string{
	"verified": "ok", "unverifiable": "unproved", "mismatch": "MISMATCH", "broken chain": "BROKEN",
	"unrestorable": "UNRESTORE", "outside window": "WINDOW",
}

// verifiedCell is the host's last -verify-every verdict and its age; the
// detail page says it whole.
func verifiedCell(r *fleet.Row, now time.Time) string {
	if r.Verdict == "" {
		return ""
	}
	v, ok := verifiedShort[r.Verdict]
	if !ok {
		v = untrusted.Printable(r.Verdict) // from a host record: any word
	}
	if r.VerifiedAt.IsZero() {
		return v
	}
	return v + " " + common.Duration(max(now.Sub(r.VerifiedAt), 0))
}

// snapsCell counts restore points that start a restore: snapshots, and
// v0.3 generations ("2g").
func snapsCell(r *fleet.Row, _ time.Time) string {
	rm := r.Remote
	if rm == nil {
		return ""
	}
	if sizesUnknown(rm) {
		return unknownCell
	}
	s := strconv.Itoa(rm.Snapshots)
	if rm.Generations > 0 {
		s += " " + strconv.Itoa(rm.Generations) + "g"
	}
	return s
}

func bytesCell(r *fleet.Row, _ time.Time) string {
	if r.Remote == nil {
		return ""
	}
	if sizesUnknown(r.Remote) {
		return unknownCell
	}
	return common.Bytes(r.Remote.Bytes)
}

// layout is the columns shown at one width, with their widths.
type layout struct {
	cols   []int // indices into columns
	widths []int
	total  int // cells a row takes
}

const (
	markerWidth = 2 // selection and replication marks
	groupSep    = " │ "
)

// computeLayout fits the columns into width. The tenant column takes the
// width of the longest name (at most a GUID's 36): a GUID is the tenant's
// identity and its last digits tell tenants apart, so other columns are
// dropped, in their drop order, before it is narrowed; the column the rows
// are sorted by (sorted) is never dropped. The file column then takes what
// is left, or goes.
func computeLayout(width int, rows []fleet.Row, sorted fleet.SortKey) layout {
	shown := make([]bool, len(columns))
	for i := range shown {
		shown[i] = true
	}
	widths := make([]int, len(columns))
	for i, c := range columns {
		widths[i] = c.width
	}
	widths[colTenant] = max(min(columns[colTenant].flexWant(rows), tenantMax), columns[colTenant].width)
	// The HOST column shows only when a host record names a tenant.
	if hw := columns[colHost].flexWant(rows); hw > 0 {
		widths[colHost] = min(max(hw, columns[colHost].width), hostMax)
	} else {
		shown[colHost] = false
	}
	need := func() int { return rowWidth(shown, widths) }
	for need() > width {
		worst := -1
		for i, c := range columns {
			if c.sort != "" && c.sort == sorted {
				continue // the order the rows are in must be seen
			}
			if shown[i] && c.drop > 0 && (worst < 0 || c.drop > columns[worst].drop) {
				worst = i
			}
		}
		if worst < 0 {
			// Only the tenant and its status are left: narrow the tenant.
			widths[colTenant] = max(widths[colTenant]-(need()-width), columns[colTenant].width)
			break
		}
		shown[worst] = false
	}
	if shown[colFile] {
		// The file column is flexible: it takes what the others leave.
		widths[colFile] = 0
		spare := width - need() // what is left beside its separator
		shown[colFile] = false
		raw := columns[colFile].flexWant(rows)
		if raw > 0 && spare >= columns[colFile].width {
			shown[colFile] = true
			widths[colFile] = min(max(raw, columns[colFile].width), columns[colFile].max, spare)
		}
	}
	var l layout
	for i := range columns {
		if shown[i] {
			l.cols = append(l.cols, i)
			l.widths = append(l.widths, widths[i])
		}
	}
	l.total = rowWidth(shown, widths)
	return l
}

// rowWidth is the cells a row of the shown columns takes: the marks, the
// cells, a space between columns of a group and a rule between groups.
func rowWidth(shown []bool, widths []int) int {
	w, prevGroup, first := markerWidth, -1, true
	for i, c := range columns {
		if !shown[i] {
			continue
		}
		switch {
		case first:
		case c.group != prevGroup:
			w += len([]rune(groupSep))
		default:
			w++
		}
		first = false
		prevGroup = c.group
		w += widths[i]
	}
	return w
}
