package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/litefleet/litefleet/fleet"
)

const lsHelp = `Usage:
  litefleet ls [-dir DIR]... [-bucket NAME] [-sort name|lag|size|changed|status] [-json] [flags]

Lists every tenant once: its database on this host (from -dir folders or the
-config file's paths) beside its prefix in S3 (s3://BUCKET/PREFIX/<tenant>/),
with a status, the lag of the replica behind the local database (in TXIDs and
in time), and when the replica last received data.

Statuses: in sync, lagging (a local change waited longer than 10s), not
replicating (local only, or local changes and no live lease), remote only
(restorable, nothing local), leased elsewhere (another host writes the
replica), invalid (a bad name or two databases on one prefix), error.

When S3 cannot be reached, ls shows the last good answer (kept in the user's
cache folder), says how old it is, and exits 1.

Examples:
  litefleet ls -dir /data -bucket saas-backups
  litefleet ls -config litestream.yml -sort lag
  litefleet ls -bucket saas-backups -json | jq '.tenants[] | select(.status=="lagging")'
`

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ls", lsHelp, stderr)
	var ff fleetFlags
	ff.register(fs)
	asJSON := fs.Bool("json", false, "print JSON (documented in the README)")
	sortBy := fs.String("sort", "name", "order: name, lag, size, changed or status")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage("ls takes flags only, got %q: did you mean -dir %s?", fs.Arg(0), fs.Arg(0))
	}
	key, err := fleet.ParseSortKey(*sortBy)
	if err != nil {
		return errUsage("-sort: %v", err)
	}
	fl, err := ff.newFleet(ctx)
	if err != nil {
		return err
	}
	v, err := fl.Refresh(ctx)
	if err != nil {
		return err
	}
	fleet.Sort(v.Rows, key)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else if err := printRows(stdout, v); err != nil {
		return err
	}
	if v.LocalErr != "" {
		return fmt.Errorf("local databases: %s", v.LocalErr)
	}
	if v.RemoteErr != "" && fl.API != nil {
		return fmt.Errorf("%s", v.RemoteErr)
	}
	return nil
}

func printRows(w io.Writer, v *fleet.View) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSTATUS\tLOCAL TXID\tREMOTE TXID\tLAG\tSIZE\tWAL\tCHANGED\tREPLICATED\tNOTE")
	for _, r := range v.Rows {
		local, remote, lag, size, wal, changed, replicated := "-", "-", "-", "-", "-", "-", "-"
		if l := r.Local; l != nil {
			local = fmt.Sprint(l.TXID)
			size = humanize.IBytes(uint64(l.Size))
			wal = humanize.IBytes(uint64(l.WALSize))
			changed = ago(v.At, l.Changed)
		}
		if rm := r.Remote; rm != nil {
			remote = fmt.Sprint(rm.LatestTXID)
			replicated = ago(v.At, rm.LatestAt)
			if r.Local == nil {
				size = humanize.IBytes(uint64(rm.Bytes))
			}
		}
		if r.Local != nil && r.Remote != nil {
			lag = fmt.Sprintf("%d tx", r.LagTXIDs)
			if r.LagTXIDs > 0 {
				lag += " / " + shortDuration(r.Lag)
			}
		}
		note := r.Note
		if note != "" {
			note = fleet.Printable(note)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Display(), r.Status, local, remote, lag, size, wal, changed, replicated, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, summaryLine(v))
	return nil
}

// summaryLine counts tenants by status and says how fresh the S3 side is.
func summaryLine(v *fleet.View) string {
	var parts []string
	for _, s := range fleet.Statuses {
		if n := v.Counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	line := fmt.Sprintf("%d tenants", len(v.Rows))
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, ", ")
	}
	switch {
	case v.RemoteErr != "" && v.RemoteAt.IsZero():
		line += " · S3 side unknown: " + v.RemoteErr
	case v.Stale():
		line += fmt.Sprintf(" · S3 side from %s ago", shortDuration(v.RemoteAge()))
		if v.RemoteErr != "" {
			line += " (now: " + v.RemoteErr + ")"
		}
	}
	return line
}

// ago prints how long before now t was, or "-" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return shortDuration(now.Sub(t)) + " ago"
}

// shortDuration prints d in its largest unit: 850ms, 42s, 5m, 3h, 2d.
func shortDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
