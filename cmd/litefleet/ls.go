package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
)

const lsHelp = `Usage:
  litefleet ls [-dir DIR]... [-bucket NAME] [-sort name|lag|size|changed|status] [-json] [flags]

Lists every tenant once: its database on this host (from -dir folders or the
-config file's paths) beside its prefix in S3 (s3://BUCKET/PREFIX/<tenant>/),
with a status, the host that replicates it and that host's state for it, the
lag of the replica behind the local database (in TXIDs and in time), and when
the replica last received data.

Every replicator publishes a host record in the bucket: ls reads them (one
listing and a GET per changed record), lists the tenant prefixes, and lists
the objects only of the tenants no live host reports; -scan lists every
object of every tenant instead.

Statuses: in sync, lagging (a local change waited longer than 10s), not
replicating (local only, or local changes and no live lease), remote only
(restorable, nothing local), leased elsewhere (another host writes the
replica), invalid (a bad name or two databases on one prefix), error,
unknown (S3 could not be asked: no bucket, refused or missing credentials),
host silent (the host replicating it has not beaten for 40s), and the
replicating host's own states that need attention: sync failing (its last
sync failed: S3 lacks its latest changes), failed, diverged, lease lost
(retrying), missing, starting.

LAG is the row's LOCAL TXID minus its REMOTE TXID, "?" when either is
unknown. With nothing local, LOCAL TXID is what the replicating host
reports. A REMOTE TXID read from a host record says how old that record
is ("10 as of 12s ago"); SIZE a host record does not know is "—".

When S3 cannot be reached, ls shows the last good answer (kept in the user's
cache folder), says how old it is, and exits 1. When S3 refuses the request,
it shows no earlier answer as S3's, and says what to fix.

Examples:
  litefleet ls -dir /data -bucket saas-backups
  litefleet ls -config litestream.yml -sort lag
  litefleet ls -bucket saas-backups -json | jq '.tenants[] | select(.status=="lagging")'
  litefleet ls -bucket saas-backups -json | jq '.tenants[] | select(.host=="web-1") | .tenant'
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
	out := bufio.NewWriterSize(stdout, 64<<10)
	if *asJSON {
		err = writeViewJSON(out, v)
	} else {
		err = printRows(out, v)
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		return err
	}
	if v.LocalErr != "" {
		return fmt.Errorf("local databases: %s: check -dir and the -config file's paths", v.LocalErr)
	}
	if v.RemoteErr != "" && fl.API != nil {
		return fmt.Errorf("%s", v.RemoteErr)
	}
	return nil
}

// writeViewJSON writes v as json.Encoder with a two-space indent would, byte
// for byte, one row at a time: the whole view of 10,000 tenants would be
// tens of megabytes, twice over (compact, then indented), before the first
// byte is written.
func writeViewJSON(w io.Writer, v *fleet.View) error {
	if v.Rows == nil { // "tenants": null
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	// The view without rows gives everything around them:
	// `{\n  "tenants": [` before, `],\n  "counts": ...}\n` after.
	frame := *v
	frame.Rows = []fleet.Row{}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&frame); err != nil {
		return err
	}
	const open = "{\n  \"tenants\": ["
	head, tail, ok := bytes.Cut(buf.Bytes(), []byte(open+"]"))
	if !ok || len(head) != 0 {
		return fmt.Errorf("encode ls view: unexpected layout %.40q", buf.Bytes())
	}
	tail = bytes.Clone(tail)
	if _, err := io.WriteString(w, open); err != nil {
		return err
	}
	enc.SetIndent("    ", "  ")
	for i := range v.Rows {
		buf.Reset()
		if i == 0 {
			buf.WriteString("\n    ")
		} else {
			buf.WriteString(",\n    ")
		}
		if err := enc.Encode(&v.Rows[i]); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	if len(v.Rows) > 0 {
		if _, err := io.WriteString(w, "\n  "); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "]")
	if err == nil {
		_, err = w.Write(tail)
	}
	return err
}

// maxNameColumn caps the TENANT column: every valid name (63 characters
// at most) fits whole; a longer one, which can only come from S3, is
// shortened in its middle rather than widening every row. -json has it
// whole.
const maxNameColumn = 64

func printRows(w io.Writer, v *fleet.View) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSTATUS\tHOST\tLOCAL TXID\tREMOTE TXID\tLAG\tSIZE\tWAL\tCHANGED\tREPLICATED\tVERIFIED\tNOTE")
	for _, r := range v.Rows {
		local, remote, lag, size, wal, changed, replicated := "-", "-", "-", "-", "-", "-", "-"
		host := hostCell(&r)
		if l := r.Local; l != nil {
			if l.TXID > 0 {
				local = fmt.Sprint(l.TXID)
			}
			size = humanize.IBytes(uint64(l.Size))
			wal = humanize.IBytes(uint64(l.WALSize))
			changed = ago(v.At, l.Changed)
		} else if r.HostLocalTXID > 0 && !r.HostSilent {
			local = fmt.Sprint(r.HostLocalTXID) // as its host reports it
		}
		if rm := r.Remote; rm != nil {
			remote = fmt.Sprint(rm.LatestTXID)
			if rm.Source == s3browse.SourceHostRecord {
				// Not listed: what the host's record said, as of its age.
				remote += " as of " + common.Duration(r.RecordAge) + " ago"
			}
			replicated = ago(v.At, rm.LatestAt)
			if r.Local == nil {
				size = humanize.IBytes(uint64(rm.Bytes))
				if rm.Source == s3browse.SourceHostRecord {
					size = "—" // a host record has no sizes: unknown, not 0
				}
			}
		}
		if r.Remote != nil && (r.Local != nil || local != "-") {
			lag = lagText(&r)
		}
		note := r.Note
		if note != "" {
			note = untrusted.Printable(note)
		}
		verified := "-" // the host's last -verify-every verdict, by its clock
		if r.Verdict != "" {
			verified = r.Verdict + " " + ago(v.At, r.VerifiedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			tenants.Shorten(r.Display(), maxNameColumn), r.Status, host, local, remote, lag, size, wal, changed, replicated, verified, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, summaryLine(v))
	if line := hostsLine(v); line != "" {
		fmt.Fprintln(w, line)
	}
	return nil
}

// lagText is the LAG column: the row's local TXID minus its S3 TXID, as
// shown beside it, with how long the oldest change not in S3 has waited;
// "?" when either TXID is unknown, never 0.
func lagText(r *fleet.Row) string {
	switch {
	case r.LagUnknown != "":
		return "?"
	case r.Remote.LatestTXID > r.LocalTXID():
		return fmt.Sprintf("-%d tx", r.Remote.LatestTXID-r.LocalTXID())
	}
	lag := fmt.Sprintf("%d tx", r.LagTXIDs)
	if r.LagTXIDs > 0 {
		lag += " / " + common.Duration(r.Lag)
	}
	return lag
}

// hostCell is the HOST column: the host and its state for the tenant
// ("web-1 replicating"), or "-" when no host record names it.
func hostCell(r *fleet.Row) string {
	if r.Host == "" {
		return "-"
	}
	if r.HostSilent {
		return untrusted.Printable(r.Host) + " silent " + common.Duration(r.HostAge)
	}
	return untrusted.Printable(r.Host) + " " + untrusted.Printable(r.State)
}

// hostsLine counts tenants per replicating host, and says which are silent.
func hostsLine(v *fleet.View) string {
	if len(v.Hosts) == 0 {
		return ""
	}
	parts := make([]string, 0, len(v.Hosts))
	for _, h := range v.Hosts {
		p := fmt.Sprintf("%s %d", untrusted.Printable(h.Name), h.Tenants)
		switch {
		case h.Silent:
			p += fmt.Sprintf(" (silent %s)", common.Duration(h.Age))
		case h.Error != "":
			p += " (record unreadable: " + untrusted.Printable(h.Error) + ")"
		}
		parts = append(parts, p)
	}
	hostsWord := "hosts"
	if len(v.Hosts) == 1 {
		hostsWord = "host"
	}
	return fmt.Sprintf("%d %s: %s", len(v.Hosts), hostsWord, strings.Join(parts, ", "))
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
		line += fmt.Sprintf(" · S3 side from %s ago", common.Duration(v.RemoteAge()))
		if v.RemoteErr != "" {
			line += " (now: " + v.RemoteErr + ")"
		}
	}
	return line
}

// ago prints how long before now t was, or "-" for the zero time.
func ago(now, t time.Time) string { return cmp.Or(common.Ago(now, t), "-") }
