package fleettable

import (
	"path/filepath"
	"strconv"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tui/common"
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

// column is one column of the table. Flexible columns (tenant, file) take
// the width the fixed ones leave; drop says in which order columns go when
// the terminal is too narrow (higher goes first, 0 never).
type column struct {
	title    string
	group    int
	width    int // fixed width; for flexible columns, their minimum
	max      int // flexible: at most this wide; 0 for fixed columns
	right    bool
	drop     int
	status   bool // drawn in the row's status colour
	cell     func(r *fleet.Row, now time.Time) string
	flexWant func(rows []fleet.Row) int
}

var columns = []column{
	{title: "TENANT", group: groupTenant, width: 24, max: 36, status: true, cell: tenantCell, flexWant: tenantWant},
	{title: "FILE", group: groupLocal, width: 10, max: 28, drop: 9, cell: fileCell, flexWant: fileWant},
	{title: "SIZE", group: groupLocal, width: 5, right: true, drop: 4, cell: sizeCell},
	{title: "TXID", group: groupLocal, width: 6, right: true, drop: 1, cell: localTXIDCell},
	{title: "WAL", group: groupLocal, width: 5, right: true, drop: 6, cell: walCell},
	{title: "LAG", group: groupLink, width: 8, right: true, drop: 2, cell: lagCell},
	{title: "STATUS", group: groupLink, width: 16, status: true, cell: statusCell},
	{title: "TXID", group: groupRemote, width: 6, right: true, drop: 1, cell: remoteTXIDCell},
	{title: "SYNCED", group: groupRemote, width: 7, right: true, drop: 3, cell: syncedCell},
	{title: "SNAPS", group: groupRemote, width: 6, right: true, drop: 5, cell: snapsCell},
	{title: "BYTES", group: groupRemote, width: 5, right: true, drop: 7, cell: bytesCell},
}

func tenantCell(r *fleet.Row, _ time.Time) string { return r.Display() }

func tenantWant(rows []fleet.Row) int {
	w := 0
	for i := range rows {
		// Names are almost always ASCII: len is the width then, and a
		// name with anything else is quoted by Printable, longer anyway.
		w = max(w, len(rows[i].Display()))
		if w >= 36 {
			return 36
		}
	}
	return w
}

func fileCell(r *fleet.Row, _ time.Time) string {
	if r.Local == nil {
		return ""
	}
	return fleet.Printable(filepath.Base(r.Local.Path))
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

func sizeCell(r *fleet.Row, _ time.Time) string {
	if r.Local == nil {
		return ""
	}
	return common.Bytes(r.Local.Size)
}

func walCell(r *fleet.Row, _ time.Time) string {
	if r.Local == nil {
		return ""
	}
	return common.Bytes(r.Local.WALSize)
}

func localTXIDCell(r *fleet.Row, _ time.Time) string {
	if r.Local == nil {
		return ""
	}
	if r.Local.TXID == 0 {
		return "-" // Litestream never ran on it here
	}
	return strconv.FormatUint(r.Local.TXID, 10)
}

// lagCell is "0" when the replica holds every local transaction, else the
// transactions behind and how long the oldest has waited: "+12 3m".
func lagCell(r *fleet.Row, _ time.Time) string {
	if r.Local == nil || r.Remote == nil || r.Local.TXID == 0 || r.Remote.LatestTXID == 0 {
		return ""
	}
	if r.LagTXIDs == 0 {
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

// snapsCell counts restore points that start a restore: snapshots, and
// v0.3 generations ("2g").
func snapsCell(r *fleet.Row, _ time.Time) string {
	rm := r.Remote
	if rm == nil {
		return ""
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

// computeLayout fits the columns into width: columns are dropped in their
// drop order until the rest fits at minimum widths, then the tenant column
// grows to its want, then the file column takes what is left, or goes.
func computeLayout(width int, rows []fleet.Row) layout {
	shown := make([]bool, len(columns))
	for i := range shown {
		shown[i] = true
	}
	need := func() int {
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
			w += c.width
		}
		return w
	}
	for need() > width {
		worst := -1
		for i, c := range columns {
			if shown[i] && c.drop > 0 && (worst < 0 || c.drop > columns[worst].drop) {
				worst = i
			}
		}
		if worst < 0 {
			break
		}
		shown[worst] = false
	}
	spare := width - need()
	widths := make([]int, len(columns))
	for i, c := range columns {
		widths[i] = c.width
	}
	const tenant, file = 0, 1
	if shown[file] {
		// Take the file column out; it comes back only if the tenant
		// column, at full width, leaves room for it.
		shown[file] = false
		spare += widths[file] + 1
	}
	// The tenant first: a GUID is only useful whole.
	if want := min(columns[tenant].flexWant(rows), columns[tenant].max); want > widths[tenant] && spare > 0 {
		add := min(want-widths[tenant], spare)
		widths[tenant] += add
		spare -= add
	}
	if raw := columns[file].flexWant(rows); raw > 0 && spare >= 1+columns[file].width {
		shown[file] = true
		spare -= 1 + widths[file]
		want := min(max(raw, columns[file].width), columns[file].max)
		widths[file] += min(max(want-widths[file], 0), spare)
	}
	var l layout
	for i := range columns {
		if shown[i] {
			l.cols = append(l.cols, i)
			l.widths = append(l.widths, widths[i])
		}
	}
	l.total = markerWidth
	for i, w := range l.widths {
		l.total += w
		switch {
		case i == 0:
		case columns[l.cols[i]].group != columns[l.cols[i-1]].group:
			l.total += len([]rune(groupSep))
		default:
			l.total++
		}
	}
	return l
}
