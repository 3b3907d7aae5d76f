package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/litefleet/litefleet/conf"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

const restoreHelp = `Usage:
  litefleet restore TENANT [-o PATH] [-timestamp RFC3339 | -txid N] [-dry-run] [-force] [-if-db-not-exists] [-if-replica-exists] [-json] [connection flags]
  litefleet restore -o PATH s3://BUCKET/databases/TENANT
  litefleet restore -all -o DIR [-match GLOB] [-parallel N] [-timestamp RFC3339] [-dry-run] [-force] [-if-db-not-exists] [-if-replica-exists] [-json]
  litefleet restore TENANT -o PATH -f [-follow-interval D] [-force] [-json]
  litefleet restore -all -o DIR -f [-follow-interval D] [-match GLOB] [-parallel N] [-v] [-force]

Restores a tenant's SQLite database from its Litestream replica: the latest
state, or the state at -txid or -timestamp; from v0.5 LTX files or v0.3
generations (the newer wins; -source picks one).

The database is written beside PATH under a temporary name, checked with
PRAGMA integrity_check, synced, then renamed to PATH: PATH is either the
whole, checked database or untouched, and nothing else is left behind. An
existing PATH is replaced only with -force, which first keeps it, with its
-wal and -shm, as PATH.bak-TIME. A database that a replicator is writing
(the tenant's lease is live and Litestream's state is beside the file) or
that a process has open is never restored over; the refusal names the
owner. A copy of a live tenant is replaced with -force like any file. Afterwards litefleet says which TXID and
time the file holds and compares them with the replica's latest.

-if-db-not-exists and -if-replica-exists are litestream restore's, for a
container's entrypoint that restores on start only when needed: the first
exits 0 without asking S3 when PATH exists (anything there), the second
exits 0 when the tenant has nothing to restore from (a brand-new tenant).
With -all they apply to each tenant: its file is left as it is, or it is
passed over, and neither counts as a failure.

-dry-run prints the plan and writes nothing: the objects, their bytes, and
the TXID and time the file would hold; it exits 1 if the restore would be
refused. -all restores every tenant (or those matching -match) into
DIR/<tenant>.db, -parallel at a time; those restored stay, and the exit code
is 1 if any failed.

-f (or -follow) restores, then follows the replica until interrupted
(SIGINT, SIGTERM: exit 0): every -follow-interval it lists the tenant's new
level-0 LTX files (one LIST) and applies each, in TXID order, in one SQLite
transaction: readers of PATH see each TXID whole, a crash leaves the last
one, and the pages stay the replica's, so that litefleet replicate on
PATH later continues the tenant's history (promotion of a standby). It
prints "followed: db=TENANT txid=TXID lag=D" per file, D being how long
ago the replicator committed it. When the next files are gone (compacted
before they were applied) or the history changed, it restores in full
again and says why. With -all, every tenant restored is followed (-parallel
polls at a time), with a status line per interval in which something
happened; -v adds each tenant's lines. A tenant that a litefleet host's
record names is polled only when the record says it moved, while it keeps
writing, and once an hour; the others every interval.

Credentials come from the -config file (access-key-id, secret-access-key) or
the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE).
With -config, a tenant the file lists is read with its own keys (its
replica's, its database's, else the top level's) from its replica's bucket,
endpoint and region; any other tenant, and -all, with the top-level keys from
the first replica's bucket.

Examples:
  litefleet restore 12345678-1234-5678-9abc-123456789012 -bucket saas-backups
    # -> ./12345678-1234-5678-9abc-123456789012.db
  litefleet restore -o /restore/12345678-1234-5678-9abc-123456789012.db \
    s3://saas-backups/databases/12345678-1234-5678-9abc-123456789012
  litefleet restore legacy-client-001 -bucket saas-backups -timestamp 2026-11-26T09:00:00Z -o /tmp/legacy.db
  litefleet restore -all -bucket saas-backups -o /restore -match '1234*' -parallel 16
`

// restoreFlags are the flags of the restore command.
type restoreFlags struct {
	conn      connFlags
	output    string
	txid      string
	timestamp string
	source    string
	dryRun    bool
	force     bool
	json      bool
	all       bool
	match     string
	parallel  int
	// ifDBNotExists and ifReplicaExists are litestream restore's flags.
	ifDBNotExists   bool
	ifReplicaExists bool
	// follow keeps the output up to date after the restore (-f).
	follow         bool
	followInterval time.Duration
	verbose        bool
	set            map[string]bool // flags given on the command line
}

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", restoreHelp, stderr)
	var rf restoreFlags
	rf.conn.register(fs)
	fs.StringVar(&rf.output, "o", "", "database file to write (default ./TENANT.db); with -all, the folder")
	fs.StringVar(&rf.txid, "txid", "", "restore up to this TXID (16 hex digits as in LTX file names, or decimal)")
	fs.StringVar(&rf.timestamp, "timestamp", "", "restore the state at this time (RFC 3339, e.g. 2026-11-26T09:00:00Z)")
	fs.StringVar(&rf.source, "source", "", "restore from \"ltx\" (v0.5) or \"generations\" (v0.3) only (default: the newer)")
	fs.BoolVar(&rf.dryRun, "dry-run", false, "print the plan and write nothing")
	fs.BoolVar(&rf.force, "force", false, "replace an existing file, keeping it as FILE.bak-TIME")
	fs.BoolVar(&rf.json, "json", false, "print the plan or result as JSON")
	fs.BoolVar(&rf.all, "all", false, "restore every tenant in the bucket into the folder -o")
	fs.StringVar(&rf.match, "match", "", "with -all: only tenants whose name matches this glob")
	fs.IntVar(&rf.parallel, "parallel", restore.DefaultParallel, "with -all: tenants restored at once")
	fs.BoolVar(&rf.ifDBNotExists, "if-db-not-exists", false, "exit 0, restoring nothing, when the output file exists (with -all: per tenant)")
	fs.BoolVar(&rf.ifReplicaExists, "if-replica-exists", false, "exit 0 when the tenant has nothing to restore from (with -all: per tenant)")
	fs.BoolVar(&rf.follow, "f", false, "follow the replica after restoring: apply new LTX files as they arrive, until interrupted")
	fs.BoolVar(&rf.follow, "follow", false, "the same as -f")
	fs.DurationVar(&rf.followInterval, "follow-interval", restore.DefaultFollowInterval, "with -f: how often each tenant's new LTX files are listed")
	fs.BoolVar(&rf.verbose, "v", false, "with -all -f: a line per applied TXID, not only one per interval")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	rf.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { rf.set[f.Name] = true })
	if err := rf.checkFollow(); err != nil {
		return err
	}

	var txid uint64
	if rf.txid != "" {
		if txid, err = layout.ParseTXID(rf.txid); err != nil {
			return errUsage("-txid %q: %v", rf.txid, err)
		}
	}
	var ts time.Time
	if rf.timestamp != "" {
		if ts, err = time.Parse(time.RFC3339Nano, rf.timestamp); err != nil {
			return errUsage("-timestamp %q is not RFC 3339: write e.g. 2026-11-26T09:00:00Z", rf.timestamp)
		}
	}
	if txid != 0 && !ts.IsZero() {
		return errUsage("give -txid or -timestamp, not both")
	}
	switch rf.source {
	case "", restore.SourceLTX, restore.SourceGenerations:
	default:
		return errUsage("-source %q: use %s or %s", rf.source, restore.SourceLTX, restore.SourceGenerations)
	}

	if rf.all {
		if len(pos) > 0 {
			return errUsage("-all restores every tenant: drop %q, or use -match", pos[0])
		}
		if txid != 0 {
			return errUsage("-txid names one tenant's transaction: use -timestamp with -all")
		}
		if rf.output == "" {
			return errUsage("-all needs -o DIR, the folder that receives one TENANT.db per tenant")
		}
		if rf.parallel < 1 {
			return errUsage("-parallel %d: give 1 or more", rf.parallel)
		}
		if _, err := path.Match(rf.match, ""); err != nil {
			return errUsage("-match %q: %v", rf.match, err)
		}
		conn, _, err := restoreConn(rf, "")
		if err != nil {
			return err
		}
		if rf.follow {
			return followAll(ctx, rf, conn, stdout, stderr)
		}
		return restoreAll(ctx, rf, conn, ts, stdout, stderr)
	}

	if rf.set["match"] || rf.set["parallel"] {
		return errUsage("-match and -parallel go with -all")
	}
	switch len(pos) {
	case 0:
		return errUsage("restore needs a tenant: litefleet restore TENANT [-o PATH], or -all -o DIR (see -h)")
	case 1:
	default:
		return errUsage("restore takes one tenant, got %q", pos)
	}
	conn, target, err := restoreConn(rf, pos[0])
	if err != nil {
		return err
	}
	if err := tenants.ValidateName(target.tenant); err != nil {
		return errUsage("%v", err)
	}
	output := rf.output
	if output == "" {
		output = target.output
	}
	if rf.ifDBNotExists {
		// The file restore.Options would write: ./TENANT.db by default,
		// FOLDER/TENANT.db for a folder. Checked before S3 is asked, as
		// litestream does, with its test: anything there but "does not
		// exist" counts.
		check := output
		if check == "" {
			check = target.tenant + ".db"
		} else if st, err := os.Stat(check); err == nil && st.IsDir() {
			check = filepath.Join(check, target.tenant+".db")
		}
		if _, err := os.Lstat(check); !errors.Is(err, os.ErrNotExist) {
			return printNotRestored(stdout, rf.json, target.tenant, check, restore.EventExists,
				fmt.Sprintf("%s exists: nothing restored (-if-db-not-exists)", untrusted.Printable(check)))
		}
	}
	opt := restore.Options{
		Conn: conn, Tenant: target.tenant, Output: output, TXID: txid, Timestamp: ts,
		Source: rf.source, Force: rf.force, DryRun: rf.dryRun,
	}
	client, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}

	noBackup := func(err error) bool {
		return rf.ifReplicaExists && errors.Is(err, restore.ErrNoBackup)
	}
	notRestored := func() error {
		return printNotRestored(stdout, rf.json, target.tenant, output, restore.EventNoBackup,
			fmt.Sprintf("tenant %s has nothing to restore from: nothing restored (-if-replica-exists)", untrusted.Printable(target.tenant)))
	}
	if rf.dryRun {
		p, err := restore.NewPlan(ctx, client, opt)
		if noBackup(err) {
			return notRestored()
		}
		if err != nil {
			return err
		}
		if rf.json {
			if err := writeJSON(stdout, p); err != nil {
				return err
			}
		} else {
			printPlan(stdout, p)
		}
		if p.Refusal != "" {
			return &exitError{code: 1, err: fmt.Errorf("a restore would be refused: %s", p.Refusal)}
		}
		return nil
	}

	var bar *termProgress
	if !rf.json {
		bar = newTermProgress(stderr, "restore "+tenants.Shorten(untrusted.Printable(target.tenant), 40))
	}
	if bar != nil {
		opt.Progress = func(done, total int64) {
			label := fmtBytes(done) + " / " + fmtBytes(total)
			if done >= total {
				label += ", checking integrity"
			}
			bar.Set(float64(done)/float64(max(total, 1)), label)
		}
	}
	if rf.follow {
		return followOne(ctx, client, opt, rf, bar, stdout, stderr)
	}
	res, err := restore.Run(ctx, client, opt)
	bar.Close()
	if noBackup(err) {
		return notRestored()
	}
	if err != nil {
		return err
	}
	if rf.json {
		return writeJSON(stdout, res)
	}
	printResult(stdout, res)
	return nil
}

// restoreTarget is the tenant named on the command line and its default
// output file.
type restoreTarget struct {
	tenant string
	output string
}

// restoreConn resolves the connection and the tenant from the flags and
// the argument: a tenant name, the seed's s3://BUCKET/PREFIX/TENANT URL,
// or the path of a database listed in the -config file (as litestream
// restore takes it).
func restoreConn(rf restoreFlags, arg string) (s3conn.Conn, restoreTarget, error) {
	target := restoreTarget{tenant: arg}
	// A tenant by name uses its own credentials from -config; by URL or
	// by path, below.
	conn, targets, err := rf.conn.resolveTenantConn(arg)
	if err != nil {
		return conn, target, err
	}

	switch {
	case strings.HasPrefix(arg, "s3://"):
		// Litestream's reading of the URL, options included, so that a
		// litestream restore command line works as it is.
		u, err := conf.ParseS3URL(arg)
		if err != nil {
			return conn, target, errUsage("%v", err)
		}
		if rf.set["bucket"] && rf.conn.bucket != u.Bucket {
			return conn, target, errUsage("the URL names bucket %q but -bucket says %q: keep one", u.Bucket, rf.conn.bucket)
		}
		dir, name := path.Split(u.Path)
		if name == "" {
			return conn, target, errUsage("%s names no tenant: write s3://BUCKET/databases/TENANT", untrusted.Printable("s3://"+u.Bucket+"/"+u.Path))
		}
		conn.Bucket, conn.Prefix, target.tenant = u.Bucket, strings.Trim(dir, "/"), name
		if conn.Prefix == "" {
			conn.Prefix = "/" // tenants at the bucket's root
		}
		if u.Endpoint != "" && !rf.set["endpoint"] {
			conn.Endpoint = u.Endpoint
		}
		if u.Region != "" && !rf.set["region"] {
			conn.Region = u.Region
		}
		conn = ownCredentials(conn, targets, target.tenant)
		conn.ForcePathStyle = conn.ForcePathStyle || u.ForcePathStyle
	case arg != "" && (strings.ContainsRune(arg, filepath.Separator) || tenants.HasDBSuffix(arg)) && tenants.ValidateName(arg) != nil:
		abs, err := filepath.Abs(arg)
		if err != nil {
			return conn, target, err
		}
		for _, t := range targets {
			if t.Path == abs {
				conn = t.Conn // its credentials already fall back to the file's top level
				target = restoreTarget{tenant: t.Tenant.Name, output: abs}
				break
			}
		}
		if target.output == "" {
			if rf.conn.config == "" {
				return conn, target, errUsage("%s is a path, not a tenant name: give the tenant (e.g. a GUID), an s3:// URL, or -config with a file listing that database", untrusted.Printable(arg))
			}
			return conn, target, errUsage("%s is not a database listed in %s: give the tenant name or an s3:// URL", untrusted.Printable(arg), rf.conn.config)
		}
	}
	if err := conn.Validate(); err != nil {
		return conn, target, errUsage("%v", err)
	}
	return conn, target, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printPlan prints a dry run.
func printPlan(w io.Writer, p *restore.Plan) {
	fmt.Fprintf(w, "plan: restore tenant %s from %s (%s) into %s\n", untrusted.Printable(p.Tenant), p.Replica, p.Source, untrusted.Printable(p.Output))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if p.Source == restore.SourceLTX {
		fmt.Fprintln(tw, "  LEVEL\tMIN_TXID\tMAX_TXID\tSIZE\tUPLOADED\tKEY")
		for _, f := range p.Files {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", f.Level, layout.TXIDHex(f.MinTXID), layout.TXIDHex(f.MaxTXID),
				fmtBytes(f.Size), f.Time.Format(time.RFC3339), untrusted.Printable(f.Key))
		}
	} else {
		fmt.Fprintln(tw, "  SIZE\tUPLOADED\tKEY")
		for _, f := range p.Files {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", fmtBytes(f.Size), f.Time.Format(time.RFC3339), untrusted.Printable(f.Key))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "  %s, %s to download; the file would hold %s\n", plural(len(p.Files), "file"), fmtBytes(p.Bytes), p.Position)
	fmt.Fprintf(w, "  replica latest: %s\n", p.Latest)
	if p.OutputExists {
		fmt.Fprintf(w, "  %s exists: -force would keep it as %s.bak-TIME\n", untrusted.Printable(p.Output), untrusted.Printable(filepath.Base(p.Output)))
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if p.Refusal != "" {
		fmt.Fprintf(w, "  refused: %s\n", p.Refusal)
	}
	fmt.Fprintln(w, "nothing was written (-dry-run)")
}

// printResult prints a single restore's outcome.
func printResult(w io.Writer, r *restore.Result) {
	fmt.Fprintf(w, "restored tenant %s into %s\n", untrusted.Printable(r.Tenant), untrusted.Printable(r.Output))
	fmt.Fprintf(w, "  from:      %s (%s: %s, %s downloaded, %s)\n", r.Plan.Replica, r.Source, plural(len(r.Plan.Files), "file"),
		fmtBytes(r.Downloaded), (time.Duration(r.DurationMS) * time.Millisecond).String())
	fmt.Fprintf(w, "  holds:     %s\n", r.Position)
	check := "integrity_check " + r.Integrity
	if r.Checksum != "" {
		check += ", checksum " + r.Checksum + " matches the replicator's"
	}
	fmt.Fprintf(w, "  checked:   %s\n", check)
	latest := "the file is current"
	if !r.Current {
		latest = "the file is behind it"
	}
	fmt.Fprintf(w, "  latest:    %s: %s\n", r.Latest, latest)
	if r.Backup != "" {
		fmt.Fprintf(w, "  kept:      the old database as %s\n", untrusted.Printable(r.Backup))
	}
	for _, n := range r.Plan.Notes {
		fmt.Fprintf(w, "  note:      %s\n", n)
	}
	if r.Note != "" {
		fmt.Fprintf(w, "  note:      %s\n", r.Note)
	}
}

// restoreAll runs restore -all.
func restoreAll(ctx context.Context, rf restoreFlags, conn s3conn.Conn, ts time.Time, stdout, stderr io.Writer) error {
	client, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}
	opt := restore.AllOptions{
		Conn: conn, OutputDir: rf.output, Match: rf.match, Parallel: rf.parallel,
		Timestamp: ts, Source: rf.source, Force: rf.force, DryRun: rf.dryRun,
		IfDBNotExists: rf.ifDBNotExists, IfReplicaExists: rf.ifReplicaExists,
	}
	var bar *termProgress
	if !rf.json {
		bar = newTermProgress(stderr, "restore -all")
	}
	// Each tenant's line goes above the bar when both are on the terminal,
	// and to stdout as it is otherwise (a file keeps every line).
	above := bar != nil && isTerminal(stdout)
	var events []restore.Event
	fleetProg := newFleetProgress()
	sum, err := restore.All(ctx, client, opt, func(ev restore.Event) {
		if rf.json {
			if ev.Kind != restore.EventProgress && ev.Kind != restore.EventStarted && ev.Kind != restore.EventListed {
				events = append(events, ev)
			}
			return
		}
		fleetProg.see(ev)
		bar.Set(fleetProg.fraction(), fleetProg.label())
		line := eventLine(ev)
		switch {
		case line == "":
		case above:
			bar.Println(line)
		default:
			fmt.Fprintln(stdout, line)
		}
	})
	bar.Close()
	if rf.json {
		if events == nil {
			events = []restore.Event{}
		}
		if werr := writeJSON(stdout, struct {
			Tenants []restore.Event `json:"tenants"`
			Summary restore.Summary `json:"summary"`
		}{events, sum}); werr != nil {
			return werr
		}
	} else {
		printSummary(stdout, sum, rf.dryRun)
	}
	if err != nil {
		return err
	}
	switch {
	case sum.Failed > 0:
		return &exitError{code: 1, err: errors.New(failedSummary(sum, rf.dryRun))}
	case sum.Refused > 0:
		return &exitError{code: 1, err: fmt.Errorf("the restore would be refused for %d of %d tenants: see above", sum.Refused, sum.Tenants)}
	case sum.Tenants == 0 && rf.match != "" && !rf.ifReplicaExists:
		return &exitError{code: 1, err: fmt.Errorf("no tenant in %s matches %q", conn, rf.match)}
	}
	return nil
}

// printNotRestored says that -if-db-not-exists or -if-replica-exists left
// the tenant alone: a line, or with -json an object in the words of
// restore -all's events (kind "exists" or "no backup"), so that a script
// reading JSON gets JSON.
func printNotRestored(w io.Writer, asJSON bool, tenant, output, kind, line string) error {
	if asJSON {
		return writeJSON(w, struct {
			Kind   string `json:"kind"`
			Tenant string `json:"tenant"`
			Output string `json:"output,omitempty"`
		}{kind, tenant, output})
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// failedSummary is restore -all's error when tenants failed: how many,
// and what became of the others, in words true of every mix (all failed,
// some restored, some left as they were or with nothing to restore).
func failedSummary(s restore.Summary, dryRun bool) string {
	done, verb := s.Restored, "restored"
	if dryRun {
		done, verb = s.Planned, "planned"
	}
	var others []string
	if done > 0 {
		others = append(others, fmt.Sprintf("%d %s", done, verb))
	}
	if s.Existing > 0 {
		others = append(others, fmt.Sprintf("%d left as they were (-if-db-not-exists)", s.Existing))
	}
	if s.NoBackup > 0 {
		others = append(others, fmt.Sprintf("%d with nothing to restore (-if-replica-exists)", s.NoBackup))
	}
	switch {
	case s.Failed == 1 && s.Tenants == 1:
		return "the tenant failed: see above"
	case s.Failed == s.Tenants:
		return fmt.Sprintf("all %d tenants failed, none was %s: see above", s.Tenants, verb)
	case len(others) == 0:
		return fmt.Sprintf("%d of %d tenants failed: see above", s.Failed, s.Tenants)
	}
	return fmt.Sprintf("%d of %d tenants failed (%s): see above", s.Failed, s.Tenants, strings.Join(others, ", "))
}

// eventLine is restore -all's line for a tenant's outcome, or "" for an
// event that has none.
func eventLine(ev restore.Event) string {
	name := untrusted.Printable(ev.Tenant)
	switch ev.Kind {
	case restore.EventRestored:
		r := ev.Result
		state := "current"
		if !r.Current {
			state = "behind the replica's latest " + r.Latest.String()
		}
		backup := ""
		if r.Backup != "" {
			backup = ", old file kept as " + untrusted.Printable(r.Backup)
		}
		return fmt.Sprintf("restored %s -> %s: %s, %s in %s, integrity %s, %s%s", name, untrusted.Printable(r.Output), r.Position,
			fmtBytes(r.Downloaded), time.Duration(r.DurationMS)*time.Millisecond, r.Integrity, state, backup)
	case restore.EventPlanned:
		p := ev.Plan
		line := fmt.Sprintf("planned  %s -> %s: %s, %s, %s", name, untrusted.Printable(p.Output), p.Position, plural(len(p.Files), "file"), fmtBytes(p.Bytes))
		if p.Refusal != "" {
			line += "; would be refused: " + p.Refusal
		}
		return line
	case restore.EventFailed:
		return fmt.Sprintf("FAILED   %s: %s", name, ev.Error)
	case restore.EventSkipped:
		return fmt.Sprintf("skipped  %s: not usable as a tenant: %s", name, ev.Reason)
	case restore.EventExists:
		return fmt.Sprintf("exists   %s: %s left as it is (-if-db-not-exists)", name, untrusted.Printable(ev.Output))
	case restore.EventNoBackup:
		return fmt.Sprintf("no backup %s: nothing to restore from (-if-replica-exists)", name)
	}
	return ""
}

func printSummary(w io.Writer, s restore.Summary, dryRun bool) {
	done := fmt.Sprintf("%d restored", s.Restored)
	if dryRun {
		done = fmt.Sprintf("%d planned", s.Planned)
	}
	if s.Existing > 0 {
		done += fmt.Sprintf(", %d existing left", s.Existing)
	}
	if s.NoBackup > 0 {
		done += fmt.Sprintf(", %d with no backup", s.NoBackup)
	}
	fmt.Fprintf(w, "restore -all: %s, %d failed, %d skipped, of %d tenants; %s downloaded in %s\n",
		done, s.Failed, s.Skipped, s.Tenants, fmtBytes(s.Downloaded), time.Duration(s.DurationMS)*time.Millisecond)
}

// fleetProgress sums the per-tenant events of restore -all for the bar.
type fleetProgress struct {
	tenants  map[string][2]int64 // done, total bytes of running tenants
	total    int                 // tenants to restore
	finished int
	failed   int
	bytes    int64
	started  int
}

func newFleetProgress() *fleetProgress { return &fleetProgress{tenants: map[string][2]int64{}} }

func (f *fleetProgress) see(ev restore.Event) {
	switch ev.Kind {
	case restore.EventListed:
		f.total = int(ev.Total)
	case restore.EventStarted:
		f.started++
		f.tenants[ev.Tenant] = [2]int64{}
	case restore.EventProgress:
		f.tenants[ev.Tenant] = [2]int64{ev.Done, ev.Total}
	case restore.EventRestored, restore.EventPlanned:
		f.finished++
		if ev.Result != nil {
			f.bytes += ev.Result.Downloaded
		}
		delete(f.tenants, ev.Tenant)
	case restore.EventFailed:
		f.finished++
		f.failed++
		delete(f.tenants, ev.Tenant)
	case restore.EventExists, restore.EventNoBackup:
		f.finished++
		delete(f.tenants, ev.Tenant)
	}
}

// fraction counts finished tenants, plus the share done of running ones.
func (f *fleetProgress) fraction() float64 {
	total := max(f.total, f.started, f.finished, 1)
	var running float64
	for _, t := range f.tenants {
		if t[1] > 0 {
			running += float64(t[0]) / float64(t[1])
		}
	}
	return (float64(f.finished) + running) / float64(total)
}

func (f *fleetProgress) label() string {
	var inFlight int64
	for _, t := range f.tenants {
		inFlight += t[0]
	}
	s := fmt.Sprintf("%d/%d tenants, %s", f.finished, max(f.total, f.started, f.finished), fmtBytes(f.bytes+inFlight))
	if f.failed > 0 {
		s += fmt.Sprintf(", %d failed", f.failed)
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// fmtBytes prints a byte count in binary units: go-humanize's, as ls and
// inspect print them.
func fmtBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// checkFollow refuses the flags that do not go with -f, and -f's own
// flags without it.
func (rf restoreFlags) checkFollow() error {
	if !rf.follow {
		for _, name := range []string{"follow-interval", "v"} {
			if rf.set[name] {
				return errUsage("-%s goes with -f", name)
			}
		}
		return nil
	}
	switch {
	case rf.dryRun:
		return errUsage("-f follows the replica into the file: drop -dry-run")
	case rf.txid != "" || rf.timestamp != "":
		return errUsage("-f follows the latest state: drop -txid and -timestamp")
	case rf.source == restore.SourceGenerations:
		return errUsage("-f follows v0.5 LTX files: v0.3 generations cannot be followed")
	case rf.ifDBNotExists || rf.ifReplicaExists:
		return errUsage("-if-db-not-exists and -if-replica-exists go without -f")
	case rf.followInterval <= 0:
		return errUsage("-follow-interval %s: give a positive duration, e.g. 1s", rf.followInterval)
	case rf.verbose && !rf.all:
		return errUsage("-v goes with -all -f: one tenant prints every TXID anyway")
	case rf.json && rf.all:
		return errUsage("-json goes without -all -f")
	}
	return nil
}

// followEventJSON is one line of restore -f -json.
type followEventJSON struct {
	Kind   string          `json:"kind"`
	Tenant string          `json:"tenant"`
	Output string          `json:"output"`
	TXID   string          `json:"txid"`
	LagMS  int64           `json:"lag_ms,omitempty"`
	Reason string          `json:"reason,omitempty"`
	Error  string          `json:"error,omitempty"`
	Result *restore.Result `json:"result,omitempty"`
}

// followOne runs restore TENANT -f.
func followOne(ctx context.Context, client s3conn.API, opt restore.Options, rf restoreFlags, bar *termProgress, stdout, stderr io.Writer) error {
	var barOnce sync.Once
	closeBar := func() { barOnce.Do(bar.Close) }
	defer closeBar()
	name := untrusted.Printable(opt.Tenant)
	first := true
	var txid uint64
	fopt := restore.FollowOptions{Options: opt, Interval: rf.followInterval, OnEvent: func(ev restore.FollowEvent) {
		txid = ev.TXID
		if rf.json {
			line := followEventJSON{Kind: ev.Kind, Tenant: ev.Tenant, Output: ev.Output, TXID: layout.TXIDHex(ev.TXID),
				LagMS: ev.Lag.Milliseconds(), Reason: ev.Reason, Result: ev.Result}
			if ev.Err != nil {
				line.Error = ev.Err.Error()
			}
			b, _ := json.Marshal(line)
			fmt.Fprintf(stdout, "%s\n", b)
			return
		}
		switch ev.Kind {
		case restore.FollowRestored:
			if first {
				first = false
				closeBar()
				printResult(stdout, ev.Result)
				fmt.Fprintf(stdout, "following: db=%s output=%s interval=%s (Ctrl-C stops)\n", name, untrusted.Printable(ev.Output), rf.followInterval)
				return
			}
			fmt.Fprintf(stdout, "restored again: db=%s txid=%s reason=%q\n", name, layout.TXIDHex(ev.TXID), ev.Reason)
		case restore.FollowApplied:
			fmt.Fprintf(stdout, "followed: db=%s txid=%s lag=%s\n", name, layout.TXIDHex(ev.TXID), ev.Lag.Round(time.Millisecond))
		case restore.FollowError:
			fmt.Fprintf(stderr, "ERROR follow: db=%s txid=%s err=%q (tried again next interval)\n", name, layout.TXIDHex(ev.TXID), ev.Err)
		}
	}}
	if err := restore.Follow(ctx, client, fopt); err != nil {
		return err
	}
	if !rf.json && !first {
		fmt.Fprintf(stdout, "stopped following: db=%s txid=%s\n", name, layout.TXIDHex(txid))
	}
	return nil
}

// followAll runs restore -all -f: the fleet's warm standby.
func followAll(ctx context.Context, rf restoreFlags, conn s3conn.Conn, stdout, stderr io.Writer) error {
	client, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}
	opt := restore.FollowAllOptions{
		AllOptions: restore.AllOptions{Conn: conn, OutputDir: rf.output, Match: rf.match, Parallel: rf.parallel, Force: rf.force},
		Interval:   rf.followInterval,
		OnRestore: func(ev restore.Event) {
			if line := eventLine(ev); line != "" {
				fmt.Fprintln(stdout, line)
			}
		},
		OnEvent: func(ev restore.FollowEvent) {
			name := untrusted.Printable(ev.Tenant)
			switch ev.Kind {
			case restore.FollowApplied:
				if rf.verbose {
					fmt.Fprintf(stdout, "followed: db=%s txid=%s lag=%s\n", name, layout.TXIDHex(ev.TXID), ev.Lag.Round(time.Millisecond))
				}
			case restore.FollowRestored:
				fmt.Fprintf(stdout, "restored again: db=%s txid=%s reason=%q\n", name, layout.TXIDHex(ev.TXID), ev.Reason)
			case restore.FollowError:
				fmt.Fprintf(stderr, "ERROR follow: db=%s txid=%s err=%q (tried again next interval)\n", name, layout.TXIDHex(ev.TXID), ev.Err)
			case restore.FollowStopped:
				fmt.Fprintf(stderr, "ERROR follow stopped: db=%s txid=%s err=%q\n", name, layout.TXIDHex(ev.TXID), ev.Err)
			}
		},
	}
	started := false
	opt.OnRound = func(r restore.FollowRound) {
		if !started {
			started = true
			fmt.Fprintf(stdout, "following: %s in %s, interval=%s (Ctrl-C stops)\n", plural(r.Tenants, "tenant"), untrusted.Printable(rf.output), rf.followInterval)
		}
		if r.Applied+r.Restored+r.Errors == 0 {
			return // an idle round says nothing
		}
		fmt.Fprintf(stdout, "follow: tenants=%d polled=%d changed=%d applied=%d restored=%d errors=%d max_lag=%s\n",
			r.Tenants, r.Polled, r.Changed, r.Applied, r.Restored, r.Errors, r.MaxLag.Round(time.Millisecond))
	}
	sum, err := restore.FollowAll(ctx, client, opt)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stopped following: %s (%d failed to restore)\n", plural(sum.Restored, "tenant"), sum.Failed)
	if sum.Failed > 0 {
		return &exitError{code: 1, err: errors.New(failedSummary(sum, false))}
	}
	return nil
}
