package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/hostview"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
)

const inspectHelp = `Usage:
  litefleet inspect TENANT [-bucket NAME] [-files N] [-json] [flags]

Shows a tenant's replica in S3: its layout (Litestream v0.5 LTX files, v0.3
generations, or both), the restore points per level (TXID ranges, sizes,
upload times), snapshots, the latest TXID and time, the bytes it holds, the
lease (which host replicates it, and whether that host is alive), and what
each replicating host's record says of it (its state, TXIDs, lag, and
whether the host is silent). For a v0.3 replica, each generation with its
snapshots and WAL segments.

With -config, a tenant the file lists is read with its own credentials.

Examples:
  litefleet inspect -bucket saas-backups 12345678-1234-5678-9abc-123456789012
  litefleet inspect -config litestream.yml -json legacy-client-001
`

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", inspectHelp, stderr)
	var cf connFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON (documented in the README)")
	files := fs.Int("files", 5, "newest files shown per level (all with -json); 0 for all")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage("inspect takes one TENANT (a GUID or a name), got %d arguments", len(pos))
	}
	tenant := pos[0]
	// Refused here, as restore refuses it, before any request.
	if err := tenants.ValidateName(tenant); err != nil {
		return errUsage("%v", err)
	}
	conn, _, err := cf.resolveTenantConn(tenant)
	if err != nil {
		return err
	}
	if conn.Bucket == "" {
		return errUsage("no bucket: pass -bucket NAME or -config FILE")
	}
	fl := &fleet.Fleet{Conn: conn}
	client, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}
	fl.API = client
	t, err := fl.Inspect(ctx, tenant)
	if err != nil {
		return err
	}
	// Which files are outside the tenant's lineage: a request per file
	// the record could make stray, the newest first, at most 64.
	if err := t.CheckLineage(ctx, client, conn, inspectLineageChecks); err != nil {
		return err
	}
	// The hosts' records: a key that may not list .litefleet/ (a tenant's
	// own) sees none, and the report says so.
	reports, herr := hostview.HostReports(ctx, client, conn, tenant)
	hostErr := ""
	if herr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		hostErr = s3conn.Explain(herr, conn).Error()
	}
	if reports == nil {
		reports = []hostview.HostReport{}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*s3browse.Tenant
			Hosts     []hostview.HostReport `json:"hosts"`
			HostError string                `json:"hosts_error,omitempty"`
		}{t, reports, hostErr})
	}
	printTenant(stdout, t, time.Now(), *files)
	printHosts(stdout, reports, hostErr, time.Now())
	if t.Format == s3browse.FormatEmpty {
		return fmt.Errorf("nothing in %s: check the tenant name, -bucket and -prefix", conn.URL(tenant))
	}
	return nil
}

func printTenant(w io.Writer, t *s3browse.Tenant, now time.Time, files int) {
	fmt.Fprintf(w, "tenant    %s\n", untrusted.Printable(t.Name))
	fmt.Fprintf(w, "replica   %s\n", untrusted.Printable(t.URL))
	fmt.Fprintf(w, "format    %s, %d objects, %s\n", t.Format, t.Objects, humanize.IBytes(uint64(t.Bytes)))
	if t.LatestTXID > 0 || !t.LatestAt.IsZero() {
		fmt.Fprintf(w, "latest    TXID %s, last upload %s (%s)\n", common.TXID(t.LatestTXID), t.LatestAt.Format(time.RFC3339), ago(now, t.LatestAt))
	}
	fmt.Fprintf(w, "snapshots %d\n", t.Snapshots)
	_, lease := fleet.JudgeLease(t.Lease, now)
	fmt.Fprintf(w, "lease     %s\n", lease)
	if t.UnknownObjects > 0 {
		fmt.Fprintf(w, "unknown   %d objects litestream would not restore from\n", t.UnknownObjects)
	}
	printLineage(w, t.Lineage)
	if len(t.Levels) > 0 {
		fmt.Fprintln(w, "\nLTX levels (v0.5):")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  LEVEL\tFILES\tBYTES\tMAX TXID\tNEWEST UPLOAD")
		for _, lv := range t.Levels {
			newest := "-"
			if n := len(lv.Files); n > 0 {
				newest = lv.Files[n-1].ModifiedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "  %d%s\t%d\t%s\t%s\t%s\n", lv.Level, levelName(lv.Level), lv.Count, humanize.IBytes(uint64(lv.Bytes)), common.TXID(lv.MaxTXID), newest)
		}
		tw.Flush()
		for _, lv := range t.Levels {
			shown := lv.Files
			if files > 0 && len(shown) > files {
				shown = shown[len(shown)-files:]
			}
			fmt.Fprintf(w, "\nlevel %d%s, %d of %d files:\n", lv.Level, levelName(lv.Level), len(shown), len(lv.Files))
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  MIN TXID\tMAX TXID\tSIZE\tUPLOADED")
			for _, f := range shown {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", common.TXID(f.MinTXID), common.TXID(f.MaxTXID), humanize.IBytes(uint64(f.Size)), f.ModifiedAt.Format(time.RFC3339))
			}
			tw.Flush()
		}
	}
	if len(t.Generations) > 0 {
		fmt.Fprintln(w, "\ngenerations (v0.3):")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  GENERATION\tFIRST\tLAST\tSNAPSHOTS\tWAL SEGMENTS\tBYTES")
		for _, g := range t.Generations {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\n", untrusted.Printable(g.ID), g.FirstAt.Format(time.RFC3339), g.LastAt.Format(time.RFC3339), len(g.Snapshots), len(g.WALSegments), humanize.IBytes(uint64(g.Bytes)))
		}
		tw.Flush()
		for _, g := range t.Generations {
			fmt.Fprintf(w, "\ngeneration %s:\n", untrusted.Printable(g.ID))
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  KIND\tINDEX\tOFFSET\tSIZE\tUPLOADED")
			for _, s := range g.Snapshots {
				fmt.Fprintf(tw, "  snapshot\t%d\t-\t%s\t%s\n", s.Index, humanize.IBytes(uint64(s.Size)), s.ModifiedAt.Format(time.RFC3339))
			}
			segs := g.WALSegments
			if files > 0 && len(segs) > files {
				fmt.Fprintf(tw, "  …\t%d older WAL segments\t\t\t\n", len(segs)-files)
				segs = segs[len(segs)-files:]
			}
			for _, s := range segs {
				fmt.Fprintf(tw, "  wal\t%d\t%d\t%s\t%s\n", s.Index, s.Offset, humanize.IBytes(uint64(s.Size)), s.ModifiedAt.Format(time.RFC3339))
			}
			tw.Flush()
		}
	}
}

// printHosts says what each host's record says of the tenant, the host
// replicating it first.
func printHosts(w io.Writer, reports []hostview.HostReport, hostErr string, now time.Time) {
	switch {
	case hostErr != "":
		fmt.Fprintf(w, "hosts     unknown: %s\n", untrusted.Printable(hostErr))
		return
	case len(reports) == 0:
		fmt.Fprintln(w, "hosts     no host record names it")
		return
	}
	fmt.Fprintln(w, "\nhosts (their records):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOST\tSTATE\tLOCAL TXID\tREPLICATED TXID\tLAG\tLAST SYNC\tHEARTBEAT\tRECORD\tVERIFIED")
	for _, r := range reports {
		beat := common.Duration(r.HostAge) + " ago"
		if r.Silent {
			beat += " (silent)"
		}
		lag := "0"
		if r.LocalTXID > r.Replicated {
			lag = fmt.Sprintf("%d tx / %s", r.LocalTXID-r.Replicated, common.Duration(r.Lag))
		}
		state := untrusted.Printable(r.State)
		if r.StateAge > 0 {
			state += " for " + common.Duration(r.StateAge)
		}
		if r.Reason != "" {
			state += ": " + untrusted.Printable(r.Reason)
		}
		// The record's values are as of its age, by S3's clock.
		record := common.Duration(r.RecordAge) + " old"
		verified := "-" // the host's last -verify-every verdict, by its clock
		if r.Verdict != "" {
			verified = r.Verdict + " " + ago(now, r.VerifiedAt)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", untrusted.Printable(r.Host), state, common.TXID(r.LocalTXID), common.TXID(r.Replicated), lag, ago(now, r.LastSync), beat, record, verified)
	}
	tw.Flush()
}

func levelName(level int) string {
	switch level {
	case 0:
		return " (one file per sync)"
	case layout.SnapshotLevel:
		return " (snapshots)"
	}
	return " (compactions)"
}

// inspectLineageChecks bounds the files whose lineage inspect reads.
const inspectLineageChecks = 64

// printLineage says which lineage the tenant's files follow, and the stray
// files outside it.
func printLineage(w io.Writer, l *s3browse.LineageReport) {
	switch {
	case l == nil || (l.Record == nil && l.Error == ""):
		return
	case l.Error != "":
		fmt.Fprintf(w, "lineage   unknown: %s\n", untrusted.Printable(l.Error))
		return
	}
	cur := l.Record.Current()
	fmt.Fprintf(w, "lineage   generation %d (host %s, from TXID %s), %d segments", cur.Generation, untrusted.Printable(cur.Host), common.TXID(cur.Since), len(l.Record.Segments))
	switch {
	case len(l.Strays) > 0:
		fmt.Fprintf(w, ", %d stray files (restores skip them; the holder moves them to the archive):\n", len(l.Strays))
		for _, s := range l.Strays {
			fmt.Fprintf(w, "  stray   %s: %s\n", untrusted.Printable(s.Key), s.Why)
		}
	case l.Unchecked > 0:
		fmt.Fprintf(w, ", no stray file among the %d newest looked at (%d more not looked at)\n", l.Checked, l.Unchecked)
	default:
		fmt.Fprintln(w, ", no stray file")
	}
}
