package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/smithy-go"
	"github.com/benbjohnson/litestream"
	lss3 "github.com/benbjohnson/litestream/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// Restore sources: which Litestream layout a restore reads.
const (
	SourceAuto        = ""            // the newer of the two, LTX on a tie
	SourceLTX         = "ltx"         // v0.5 LTX files
	SourceGenerations = "generations" // v0.3 snapshots and WAL segments
)

// Options says what to restore, from where and into which file.
type Options struct {
	Conn   s3conn.Conn
	Tenant string
	// Output is the database file to create; "<Tenant>.db" in the current
	// folder when empty, and "<Output>/<Tenant>.db" when it names a folder.
	Output string
	// TXID or Timestamp pick an earlier point; both zero: the latest.
	TXID      uint64
	Timestamp time.Time
	Source    string // SourceAuto, SourceLTX or SourceGenerations
	// Checksum computes Result.DatabaseChecksum from the pages written even
	// when the LTX files carry no checksums (Litestream v0.5.18's), at the
	// cost of hashing every page: `litefleet verify` compares it with the
	// host record's.
	Checksum bool
	// HostTiming is the lease protocol's timing, by which a claim's host
	// is watched before a restore writes over its database; the
	// protocol's defaults when zero (tests shorten it).
	HostTiming hosts.Timing
	// Force replaces an existing Output, keeping it (and its -wal and -shm)
	// as Output.bak-TIME.
	Force bool
	// DryRun makes Restore stop after planning: nothing is written.
	DryRun bool
	// Progress, when set, is told the bytes downloaded so far out of the
	// plan's total. Calls never overlap; keep it quick.
	Progress func(done, total int64)
	// IsReplicating reports whether this process replicates the file at
	// path, and as which tenant (Supervisor.Replicating). Such a file is
	// never restored over.
	IsReplicating func(path string) (tenant string, ok bool)

	// dirLater says the output's folder is made before writing (All makes
	// its -o folder): a dry run does not refuse it for being missing.
	dirLater bool
	// replace installs over Output without keeping it (with Force): a
	// followed file restored again after a gap.
	replace bool
}

// Position is a point of a replica: a TXID and its time for the LTX layout;
// a generation, WAL index and offset for the v0.3 layout.
type Position struct {
	TXID    uint64    `json:"txid,omitempty"`
	TXIDHex string    `json:"txid_hex,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	// Generation, Index and Offset place a v0.3 restore point: the last
	// WAL segment applied, or the snapshot when there is none.
	Generation string `json:"generation,omitempty"`
	Index      int    `json:"index,omitempty"`
	Offset     int64  `json:"offset,omitempty"`
}

// String describes p for messages.
func (p Position) String() string {
	var s string
	switch {
	case p.Generation != "":
		s = fmt.Sprintf("generation %s, WAL %08x/%08x", p.Generation, p.Index, p.Offset)
	case p.TXID != 0:
		s = fmt.Sprintf("TXID %s (%d)", p.TXIDHex, p.TXID)
	default:
		return "nothing"
	}
	if !p.Time.IsZero() {
		s += " at " + p.Time.UTC().Format(time.RFC3339)
	}
	return s
}

// same reports whether p and q are the same restore point.
func (p Position) same(q Position) bool {
	if p.Generation != "" || q.Generation != "" {
		return p.Generation == q.Generation && p.Index == q.Index && p.Offset == q.Offset
	}
	return p.TXID == q.TXID
}

func txidPosition(txid uint64, at time.Time) Position {
	return Position{TXID: txid, TXIDHex: layout.TXIDHex(txid), Time: at.UTC()}
}

// PlanFile is one object a restore downloads.
type PlanFile struct {
	Key     string    `json:"key"`
	Level   int       `json:"level"` // LTX level; 0 for v0.3 objects
	MinTXID uint64    `json:"min_txid,omitempty"`
	MaxTXID uint64    `json:"max_txid,omitempty"`
	Size    int64     `json:"size"`
	Time    time.Time `json:"time"`
}

// Plan is what a restore would do: the objects it reads, the point
// it reaches, and whether it may write Output at all.
type Plan struct {
	Tenant  string `json:"tenant"`
	Replica string `json:"replica"` // s3:// URL, as litestream restore takes it
	Output  string `json:"output"`
	Source  string `json:"source"` // SourceLTX or SourceGenerations
	// Target is what was asked: "latest", "txid …" or "timestamp …".
	Target string     `json:"target"`
	Files  []PlanFile `json:"files"`
	Bytes  int64      `json:"bytes"` // sum of Files' sizes: what is downloaded
	// Position is what the restored file will hold (TXID, time).
	Position
	// Latest is the replica's newest point in the chosen layout.
	Latest       Position        `json:"latest"`
	OutputExists bool            `json:"output_exists"`
	Lease        *s3browse.Lease `json:"lease,omitempty"`
	// Refusal says why Restore would refuse to write Output; empty when it
	// would go ahead.
	Refusal string   `json:"refusal,omitempty"`
	Notes   []string `json:"notes,omitempty"`
	// Strays are files Litestream's plan would have read that lie outside
	// the tenant's lineage: skipped (see hosts.Lineage).
	Strays []s3browse.Stray `json:"strays,omitempty"`
}

// Result is what a restore did, and how the file it wrote compares
// with the replica.
type Result struct {
	Tenant string `json:"tenant"`
	Output string `json:"output"`
	Source string `json:"source"`
	// Position is what the restored file holds.
	Position
	// Checksum is the database checksum, verified against the one the
	// replicator recorded at that TXID (LTX layout only).
	Checksum string `json:"checksum,omitempty"`
	// DatabaseChecksum is the restored database's LTX checksum (ltx's XOR
	// of every page's), computed from the pages written (LTX layout only):
	// what `litefleet verify` compares with the host record's. Empty
	// unless the files carry checksums or Options.Checksum asked for it.
	DatabaseChecksum string `json:"database_checksum,omitempty"`
	// Integrity is the answer of PRAGMA integrity_check: "ok".
	Integrity  string `json:"integrity"`
	Size       int64  `json:"size"`       // bytes of the database file
	Downloaded int64  `json:"downloaded"` // bytes read from S3
	DurationMS int64  `json:"duration_ms"`
	// Backup is where -force kept the file that was replaced.
	Backup string `json:"backup,omitempty"`
	// Latest is the replica's newest point, read again after the restore;
	// Current says the file holds it.
	Latest  Position `json:"latest"`
	Current bool     `json:"current"`
	Note    string   `json:"note,omitempty"`
	DryRun  bool     `json:"dry_run,omitempty"`
	Plan    *Plan    `json:"plan"`
}

// RefusedError is returned when a restore may not write its output: it
// exists, is open, or is being replicated. Nothing was written.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

// ErrNoBackup is wrapped by the error of a tenant with nothing to restore.
var ErrNoBackup = errors.New("no backup")

// normalize validates opt and fills in the defaults.
func (opt Options) normalize() (Options, error) {
	if err := tenants.ValidateName(opt.Tenant); err != nil {
		return opt, err
	}
	if err := opt.Conn.Validate(); err != nil {
		return opt, err
	}
	switch opt.Source {
	case SourceAuto, SourceLTX, SourceGenerations:
	default:
		return opt, fmt.Errorf("source %q: use %q or %q", opt.Source, SourceLTX, SourceGenerations)
	}
	if opt.TXID != 0 && !opt.Timestamp.IsZero() {
		return opt, errors.New("give a TXID or a timestamp, not both")
	}
	if opt.TXID != 0 && opt.Source == SourceGenerations {
		return opt, errors.New("v0.3 generations have no TXIDs: restore them to a -timestamp")
	}
	out := opt.Output
	if out == "" {
		out = opt.Tenant + ".db"
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return opt, fmt.Errorf("output %s: %w", untrusted.Printable(out), err)
	}
	if st, err := os.Stat(abs); err == nil && st.IsDir() {
		abs = filepath.Join(abs, opt.Tenant+".db")
	}
	opt.Output = abs
	return opt, nil
}

// NewPlan works out what Restore would do with opt, without writing
// anything: which objects it would read, the point it would reach, and
// whether it would refuse to write the output (Refusal).
func NewPlan(ctx context.Context, client s3conn.API, opt Options) (*Plan, error) {
	opt, err := opt.normalize()
	if err != nil {
		return nil, err
	}
	return planRestore(ctx, client, opt, true)
}

// planRestore plans opt (already normalized). exactTime reads the header
// of the last LTX file for the time the plan reaches; a restore reads it
// anyway and skips that request.
func planRestore(ctx context.Context, client s3conn.API, opt Options, exactTime bool) (*Plan, error) {
	name := untrusted.Printable(opt.Tenant)
	t, err := s3browse.Inspect(ctx, client, opt.Conn, opt.Tenant)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", name, err)
	}
	p := &Plan{
		Tenant:  opt.Tenant,
		Replica: opt.Conn.URL(opt.Tenant),
		Output:  opt.Output,
		Target:  "latest",
		Lease:   t.Lease,
		Files:   []PlanFile{},
	}
	switch {
	case opt.TXID != 0:
		p.Target = "txid " + layout.TXIDHex(opt.TXID)
	case !opt.Timestamp.IsZero():
		p.Target = "timestamp " + opt.Timestamp.UTC().Format(time.RFC3339Nano)
	}

	hasLTX, hasGen := len(t.Levels) > 0, len(t.Generations) > 0
	if !hasLTX && !hasGen {
		return nil, fmt.Errorf("tenant %s: %w at %s (%s): `litefleet ls` lists the tenants that have one", name, ErrNoBackup, p.Replica, describeFormat(t.Format))
	}
	switch opt.Source {
	case SourceLTX:
		if !hasLTX {
			return nil, fmt.Errorf("tenant %s has no v0.5 LTX files at %s, only v0.3 generations: drop -source or use -source %s", name, p.Replica, SourceGenerations)
		}
	case SourceGenerations:
		if !hasGen {
			return nil, fmt.Errorf("tenant %s has no v0.3 generations at %s, only v0.5 LTX files: drop -source or use -source %s", name, p.Replica, SourceLTX)
		}
	}
	if opt.TXID != 0 && !hasLTX {
		return nil, fmt.Errorf("tenant %s has only v0.3 generations, which have no TXIDs: restore to a -timestamp instead", name)
	}

	// Plan each layout allowed, then keep the one reaching the later point.
	var ltxPlan, genPlan *Plan
	var ltxErr, genErr error
	if hasLTX && opt.Source != SourceGenerations {
		lp := *p
		ltxErr = planLTX(ctx, client, opt, t, &lp, exactTime)
		if ltxErr == nil {
			ltxPlan = &lp
		}
	}
	if hasGen && opt.Source != SourceLTX && opt.TXID == 0 {
		gp := *p
		genErr = planGenerations(opt, t, &gp)
		if genErr == nil {
			genPlan = &gp
		}
	}
	switch {
	case ltxPlan != nil && genPlan != nil:
		if genPlan.Time.After(ltxPlan.Time) {
			p = genPlan
			p.Notes = append(p.Notes, fmt.Sprintf("the v0.3 generations reach a later point (%s) than the LTX files (%s): restoring from the generations; -source %s picks the LTX files", genPlan.Position, ltxPlan.Position, SourceLTX))
		} else {
			p = ltxPlan
			p.Notes = append(p.Notes, fmt.Sprintf("the LTX files reach a later point (%s) than the v0.3 generations (%s); -source %s picks the generations", ltxPlan.Position, genPlan.Position, SourceGenerations))
		}
	case ltxPlan != nil:
		p = ltxPlan
	case genPlan != nil:
		p = genPlan
	default:
		return nil, cmp.Or(ltxErr, genErr)
	}

	if err := checkOutput(ctx, client, opt, p); err != nil {
		return nil, err
	}
	return p, nil
}

func describeFormat(f s3browse.Format) string {
	switch f {
	case s3browse.FormatEmpty:
		return "the prefix is empty"
	case s3browse.FormatUnknown:
		return "the prefix holds no Litestream files"
	}
	return string(f)
}

// planLTX fills p from Litestream's own restore plan (CalcRestorePlan), so
// that litefleet reads exactly the files `litestream restore` would.
func planLTX(ctx context.Context, client s3conn.API, opt Options, t *s3browse.Tenant, p *Plan, exactTime bool) error {
	name := untrusted.Printable(opt.Tenant)
	p.Source = SourceLTX
	p.Latest = latestLTX(t)

	// Litestream's planner lists each level itself. For a timestamp it
	// needs each file's commit time, which only its S3 client reads (from
	// object metadata); otherwise the listing Inspect already made serves it,
	// which saves ten LIST requests and a connection per tenant.
	var rc litestream.ReplicaClient = newListedClient(t, client, opt.Conn)
	if !opt.Timestamp.IsZero() {
		lrc, err := NewReplicaClient(ctx, opt.Conn, opt.Tenant, discardLogger)
		if err != nil {
			return fmt.Errorf("tenant %s: %w", name, err)
		}
		rc = lrc
	}
	infos, err := planLineage(ctx, client, opt, t, p, rc)
	if err != nil {
		if errors.Is(err, litestream.ErrTxNotAvailable) {
			return notAvailable(opt, t)
		}
		return fmt.Errorf("tenant %s: plan the restore: %w", name, explainS3(err, opt.Conn, opt.Tenant))
	}
	if len(infos) == 0 || infos[0].MinTXID != 1 {
		return fmt.Errorf("tenant %s: no snapshot to start from at %s: the LTX files start at TXID %s; `litefleet inspect %s` lists them",
			name, p.Replica, infosMin(infos), name)
	}
	for _, info := range infos {
		p.Files = append(p.Files, PlanFile{
			Key:   ltxKey(opt.Conn.TenantPath(opt.Tenant), info.Level, info.MinTXID, info.MaxTXID),
			Level: info.Level, MinTXID: uint64(info.MinTXID), MaxTXID: uint64(info.MaxTXID),
			Size: info.Size, Time: info.CreatedAt.UTC(),
		})
		p.Bytes += info.Size
	}
	last := infos[len(infos)-1]
	p.Position = txidPosition(uint64(last.MaxTXID), last.CreatedAt)
	if exactTime {
		// The listing's time of a compacted file is when it was uploaded;
		// the header holds when its last transaction was committed.
		if hdr, err := litestream.FetchLTXHeader(ctx, rc, last); err == nil && hdr.Timestamp > 0 {
			p.Time = time.UnixMilli(hdr.Timestamp).UTC()
		}
	}
	return nil
}

func infosMin(infos []*ltx.FileInfo) string {
	if len(infos) == 0 {
		return "(none)"
	}
	return infos[0].MinTXID.String()
}

// notAvailable explains a TXID or time that no restore point matches.
func notAvailable(opt Options, t *s3browse.Tenant) error {
	name := untrusted.Printable(opt.Tenant)
	var first, last uint64
	var firstAt time.Time
	for _, l := range t.Levels {
		for _, f := range l.Files {
			if first == 0 || f.MinTXID < first {
				first = f.MinTXID
			}
			if firstAt.IsZero() || f.ModifiedAt.Before(firstAt) {
				firstAt = f.ModifiedAt
			}
			last = max(last, f.MaxTXID)
		}
	}
	if opt.TXID != 0 {
		return fmt.Errorf("tenant %s: TXID %s is not a restore point: the LTX files hold TXIDs %s to %s, and a -txid must end one of them; `litefleet inspect %s` lists them",
			name, layout.TXIDHex(opt.TXID), layout.TXIDHex(first), layout.TXIDHex(last), name)
	}
	return fmt.Errorf("tenant %s: no LTX restore point before %s: the oldest was uploaded at %s",
		name, opt.Timestamp.UTC().Format(time.RFC3339), firstAt.UTC().Format(time.RFC3339))
}

// latestLTX is the replica's newest TXID, dated by the first upload that
// reached it (a later compaction re-uploads the same TXID).
func latestLTX(t *s3browse.Tenant) Position {
	var at time.Time
	for _, l := range t.Levels {
		for _, f := range l.Files {
			if f.MaxTXID == t.LatestTXID && (at.IsZero() || f.ModifiedAt.Before(at)) {
				at = f.ModifiedAt
			}
		}
	}
	return txidPosition(t.LatestTXID, at)
}

// ltxKey is the object key of an LTX file under a tenant's path (root), as
// Litestream's S3 client names it.
func ltxKey(root string, level int, minTXID, maxTXID ltx.TXID) string {
	return fmt.Sprintf("%s/%04x/%s", root, level, ltx.FormatFilename(minTXID, maxTXID))
}

var discardLogger = slog.New(slog.DiscardHandler)

// explainS3 explains err with s3conn.Explain when it comes from an S3
// request about tenant, and leaves it alone otherwise: Explain would call
// any error an S3 failure.
func explainS3(err error, c s3conn.Conn, tenant string) error {
	var dl *downloadError
	var gone *goneError
	if errors.As(err, &dl) || errors.As(err, &gone) {
		return err // explained already
	}
	var op *smithy.OperationError
	var api smithy.APIError
	if errors.As(err, &op) || errors.As(err, &api) {
		return s3conn.ExplainKey(err, c, c.TenantPath(tenant)+"/")
	}
	return err
}

// NewReplicaClient returns Litestream's S3 client for a tenant, initialised:
// the one client setup for the replicas the Supervisor writes and the
// ones restore reads. A nil logger keeps Litestream's default.
func NewReplicaClient(ctx context.Context, c s3conn.Conn, tenant string, logger *slog.Logger) (*lss3.ReplicaClient, error) {
	rc := lss3.NewReplicaClient()
	rc.Bucket = c.Bucket
	rc.Path = c.TenantPath(tenant)
	rc.Region = c.Region
	rc.Endpoint = c.Endpoint
	rc.ForcePathStyle = c.ForcePathStyle || c.Endpoint != ""
	rc.AccessKeyID = c.AccessKeyID
	rc.SecretAccessKey = c.SecretAccessKey
	if logger != nil {
		rc.SetLogger(logger)
	}
	if err := rc.Init(ctx); err != nil {
		return nil, s3conn.ExplainKey(err, c, c.TenantPath(tenant)+"/")
	}
	return rc, nil
}

// checkOutput records the state of the output file in p and, when a
// restore must not write it, why (p.Refusal). Only an unreadable folder is
// an error.
func checkOutput(ctx context.Context, client s3conn.API, opt Options, p *Plan) error {
	out := opt.Output
	name := untrusted.Printable(opt.Tenant)
	st, err := os.Lstat(out)
	switch {
	case err == nil:
		p.OutputExists = true
		if st.Mode()&os.ModeSymlink != 0 {
			p.Refusal = fmt.Sprintf("%s is a symbolic link: give the path of the file itself", untrusted.Printable(out))
			return nil
		}
		if !st.Mode().IsRegular() {
			p.Refusal = fmt.Sprintf("%s exists and is not a regular file", untrusted.Printable(out))
			return nil
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("output %s: %w", untrusted.Printable(out), err)
	}
	// A restore never makes folders: a mistyped -o would create a tree
	// somewhere unexpected.
	if dir := filepath.Dir(out); !p.OutputExists {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			if !opt.dirLater {
				p.Refusal = fmt.Sprintf("folder %s does not exist: create it first, or give -o a path in an existing folder", untrusted.Printable(dir))
				return nil
			}
			p.Notes = append(p.Notes, fmt.Sprintf("folder %s will be created", untrusted.Printable(dir)))
		}
	}
	var sidecars []string // -wal/-shm beside an existing or missing output
	for _, suf := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(out + suf); err == nil {
			sidecars = append(sidecars, out+suf)
		}
	}
	live := p.Lease.Live(time.Now())

	// A file named after another GUID is that tenant's to a replicator,
	// which would upload this tenant's data into the other's prefix.
	if stem := tenants.FileStem(out); tenants.IsGUID(stem) && !strings.EqualFold(stem, opt.Tenant) {
		p.Refusal = fmt.Sprintf("%s is named after tenant %s, but it would hold tenant %s's data, which a replicator would then upload into %s's prefix: restore to %s.db, or to a name that is not a GUID",
			untrusted.Printable(out), stem, name, stem, name)
		return nil
	}
	if opt.IsReplicating != nil {
		if tenant, ok := opt.IsReplicating(out); ok {
			p.Refusal = fmt.Sprintf("%s is being replicated by this process as tenant %s: stop replicating it before restoring over it, or restore elsewhere with -o", untrusted.Printable(out), untrusted.Printable(tenant))
			return nil
		}
	}
	// The live database is the file the lease holder replicates: one with
	// Litestream's state beside it. A copy of the tenant elsewhere (an
	// earlier restore) is replaced with -force like any other file.
	if p.OutputExists && p.Lease != nil && tenants.HasLitestreamState(out) {
		// One look cannot tell a dead holder from a live one without
		// comparing clocks: apply the engine's rule on the spot (a beat
		// for a live host, DeadAfter otherwise) before writing over its
		// database; what cannot be watched counts as live.
		if err := s3browse.WatchLease(ctx, client, opt.Conn, p.Lease, opt.Tenant, opt.HostTiming); err != nil {
			return err
		}
		live = p.Lease.Live(time.Now())
	}
	if p.OutputExists && live && tenants.HasLitestreamState(out) {
		why := ""
		if p.Lease.Why != "" {
			why = " (" + untrusted.Printable(p.Lease.Why) + ")"
		}
		p.Refusal = fmt.Sprintf("tenant %s is being replicated by %s%s and %s has Litestream's state beside it: stop that replicator before restoring over it, or restore elsewhere with -o",
			name, p.Lease.Holder(), why, untrusted.Printable(out))
		return nil
	}
	if p.OutputExists || len(sidecars) > 0 {
		if pid, ok := openByOther(out); ok {
			p.Refusal = fmt.Sprintf("%s is open in process %d: stop it before restoring over the file", untrusted.Printable(out), pid)
			return nil
		}
	}
	switch {
	case p.OutputExists && !opt.Force:
		p.Refusal = fmt.Sprintf("%s exists: pass -force to replace it (the old file and its -wal/-shm are kept as %s.bak-TIME)", untrusted.Printable(out), untrusted.Printable(filepath.Base(out)))
	case !p.OutputExists && len(sidecars) > 0 && !opt.Force:
		p.Refusal = fmt.Sprintf("%s exists without %s, and SQLite would replay it into the restored database: move it away, or pass -force to keep it as %s.bak-TIME%s",
			untrusted.Printable(sidecars[0]), untrusted.Printable(filepath.Base(out)), untrusted.Printable(filepath.Base(out)), strings.TrimPrefix(sidecars[0], out))
	}
	if live && p.Refusal == "" {
		p.Notes = append(p.Notes, fmt.Sprintf("tenant %s is being replicated by %s: the restored file is a copy as of %s, and the replica moves on",
			name, p.Lease.Holder(), p.Position))
	}
	return nil
}

// Restore restores opt.Tenant into opt.Output: into a temporary file
// beside it, checked with PRAGMA integrity_check, synced, then renamed into
// place, so that the output is either the complete, checked database or
// untouched. On any error or cancellation every temporary file is removed.
// An existing output is replaced only with opt.Force, and is kept as
// Output.bak-TIME (with its -wal and -shm). With opt.DryRun only the plan
// is made: the result has DryRun set and nothing is written.
func Run(ctx context.Context, client s3conn.API, opt Options) (*Result, error) {
	opt, err := opt.normalize()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	p, err := planRestore(ctx, client, opt, opt.DryRun)
	if err != nil {
		return nil, err
	}
	res := &Result{Tenant: p.Tenant, Output: p.Output, Source: p.Source, Plan: p, Latest: p.Latest}
	if opt.DryRun {
		res.DryRun = true
		res.Position = p.Position
		return res, nil
	}
	if p.Refusal != "" {
		return nil, &RefusedError{Reason: p.Refusal}
	}
	name := untrusted.Printable(opt.Tenant)

	tmp, release, err := claimTemp(ctx, p.Output)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", name, err)
	}
	// Whatever happens from here, no temporary file outlives this call.
	defer release()

	var prog *progress
	for attempt := 1; ; attempt++ {
		prog = newProgress(p.Bytes, opt.Progress)
		switch p.Source {
		case SourceLTX:
			var sums applied
			res.Position, sums, err = applyLTX(ctx, client, opt.Conn, p, tmp, prog, opt.Checksum)
			res.Checksum, res.DatabaseChecksum = sums.verified, sums.computed
		case SourceGenerations:
			err = restoreGenerations(ctx, client, opt, p, tmp, prog)
			res.Position = p.Position
		}
		if err == nil {
			break
		}
		removeTemps(tmp)
		var gone *goneError
		if !errors.As(err, &gone) || attempt == 3 || ctx.Err() != nil {
			return nil, restoreFailed(ctx, opt, err)
		}
		// A live replicator's compaction or retention deleted a file of
		// the plan meanwhile: plan again from a new listing, as Litestream's
		// own restore does.
		np, perr := planRestore(ctx, client, opt, false)
		if perr != nil {
			return nil, perr
		}
		if np.Refusal != "" {
			return nil, &RefusedError{Reason: np.Refusal}
		}
		p = np
		res.Plan, res.Source, res.Latest = p, p.Source, p.Latest
	}
	res.Downloaded = prog.total()

	if p.Target == "latest" && !res.Position.same(p.Latest) {
		return nil, fmt.Errorf("tenant %s: the restore reached %s but the replica's latest is %s: files are missing in between; `litefleet inspect %s` lists them; nothing was written at %s",
			name, res.Position, p.Latest, name, untrusted.Printable(p.Output))
	}
	integrity, err := integrityCheck(ctx, tmp)
	if err != nil {
		return nil, restoreFailed(ctx, opt, err)
	}
	res.Integrity = integrity
	size, err := syncFile(tmp)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", name, err)
	}
	res.Size = size

	backup, err := install(tmp, p, opt.Force, opt.replace)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", name, err)
	}
	res.Backup = backup
	res.DurationMS = time.Since(start).Milliseconds()

	// Check the file against the replica as it is now: a live tenant may
	// have moved on while the restore ran.
	if t, err := s3browse.Inspect(ctx, client, opt.Conn, opt.Tenant); err == nil {
		if p.Source == SourceLTX {
			// The strays the plan skipped are not the replica's latest.
			skip := map[ltxID]bool{}
			for _, s := range p.Strays {
				skip[ltxID{s.Level, ltx.TXID(s.MinTXID), ltx.TXID(s.MaxTXID)}] = true
			}
			res.Latest = latestLTXWithout(t, skip)
		} else {
			res.Latest = latestGeneration(t)
		}
	}
	res.Current = res.Position.same(res.Latest)
	switch {
	case res.Current:
	case p.Target != "latest":
		res.Note = fmt.Sprintf("restored to %s as asked; the replica's latest is %s", p.Target, res.Latest)
	default:
		res.Note = fmt.Sprintf("the replica moved on to %s while restoring (tenant %s is live): run the restore again for the newer state", res.Latest, name)
	}
	return res, nil
}

// restoreFailed wraps a failed restore's error with what the operator needs
// to know: which tenant, that nothing was written, and how to go on.
func restoreFailed(ctx context.Context, opt Options, err error) error {
	name := untrusted.Printable(opt.Tenant)
	if ctx.Err() != nil {
		return fmt.Errorf("tenant %s: restore cancelled: nothing was written at %s: %w", name, untrusted.Printable(opt.Output), err)
	}
	return fmt.Errorf("tenant %s: restore failed, nothing was written at %s: %w", name, untrusted.Printable(opt.Output), err)
}

// syncFile flushes the file at path to disk and returns its size.
func syncFile(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("sync restored file: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync restored file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("sync restored file: %w", err)
	}
	return st.Size(), f.Close()
}

// install puts the restored file tmp in place of p.Output. With force, an
// existing output and its -wal/-shm are first renamed to OUTPUT.bak-TIME
// (-wal and -shm first, so that a crash never leaves an old WAL beside the
// new database); without it, install refuses to replace a file that
// appeared since the plan. It returns the backup path, if one was kept.
//
// replace (with force) drops the old output and its -wal/-shm instead.
func install(tmp string, p *Plan, force, replace bool) (string, error) {
	out := p.Output
	dir := filepath.Dir(out)
	var backup string
	_, err := os.Lstat(out)
	exists := err == nil
	var sidecars []string
	for _, suf := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(out + suf); err == nil {
			sidecars = append(sidecars, suf)
		}
	}
	if (exists || len(sidecars) > 0) && !force {
		return "", &RefusedError{Reason: fmt.Sprintf("%s appeared while restoring: pass -force to replace it (it is kept as %s.bak-TIME)", untrusted.Printable(out), untrusted.Printable(filepath.Base(out)))}
	}
	if replace && force {
		// The -wal and -shm go first: an old WAL must never meet the new
		// file.
		for _, suf := range sidecars {
			if err := os.Remove(out + suf); err != nil {
				return "", fmt.Errorf("remove %s: %w", untrusted.Printable(out+suf), err)
			}
		}
		if err := os.Rename(tmp, out); err != nil {
			return "", fmt.Errorf("rename the restored file to %s: %w", untrusted.Printable(out), err)
		}
		return "", syncDir(dir)
	}
	if exists || len(sidecars) > 0 {
		backup = backupName(out)
		for _, suf := range sidecars {
			if err := os.Rename(out+suf, backup+suf); err != nil {
				return "", fmt.Errorf("keep %s as %s: %w", untrusted.Printable(out+suf), untrusted.Printable(backup+suf), err)
			}
		}
		if exists {
			if err := os.Rename(out, backup); err != nil {
				return "", fmt.Errorf("keep %s as %s: %w", untrusted.Printable(out), untrusted.Printable(backup), err)
			}
		} else {
			// Only an orphan -wal/-shm was there: name what was kept.
			kept := make([]string, len(sidecars))
			for i, suf := range sidecars {
				kept[i] = backup + suf
			}
			backup = strings.Join(kept, ", ")
		}
		if err := os.Rename(tmp, out); err != nil {
			return "", fmt.Errorf("rename the restored file to %s: %w", untrusted.Printable(out), err)
		}
	} else {
		// A hard link never replaces a file that appeared since the check;
		// some file systems have none, and then a rename does.
		if err := os.Link(tmp, out); err == nil {
			_ = os.Remove(tmp)
		} else if errors.Is(err, os.ErrExist) {
			return "", &RefusedError{Reason: fmt.Sprintf("%s appeared while restoring: pass -force to replace it", untrusted.Printable(out))}
		} else if err := os.Rename(tmp, out); err != nil {
			return "", fmt.Errorf("rename the restored file to %s: %w", untrusted.Printable(out), err)
		}
	}
	if err := syncDir(dir); err != nil {
		return backup, err
	}
	return backup, nil
}

// backupName is OUT.bak-TIME for a file replaced now, with a counter when
// two restores happen within the same second.
func backupName(out string) string {
	base := out + ".bak-" + time.Now().UTC().Format("20060102T150405Z")
	name := base
	for i := 1; ; i++ {
		free := true
		for _, suf := range []string{"", "-wal", "-shm"} {
			if _, err := os.Lstat(name + suf); err == nil {
				free = false
			}
		}
		if free {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", untrusted.Printable(dir), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", untrusted.Printable(dir), err)
	}
	return nil
}
