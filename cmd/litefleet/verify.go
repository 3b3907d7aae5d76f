package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
	"github.com/litefleet/litefleet/verify"
)

const verifyHelp = `Usage:
  litefleet verify TENANT... [-txid N] [-window D] [-json] [connection flags]
  litefleet verify -all [-match GLOB] [-parallel N] [-window D] [-json]
  litefleet verify -dir DIR... | -config FILE [-parallel N] [-window D] [-json]

Proves that each tenant's replica restores, and to what its primary held:

  the chain     every LTX file is read whole and its checksum checked; TXIDs
                run without a gap from a snapshot to the latest; one lineage
                (no file of a deposed host); each compaction equals the
                level-0 files it replaces while they are still there; nothing
                else under the prefix, and no abandoned multipart upload
  the window    the newest restore point is not behind the TXID the tenant's
                host recorded as acknowledged by S3; with -window D, the
                oldest restore point is at least D old
  the restore   the host's recorded TXID (or -txid, or the latest) is
                restored into a new folder under the system's temporary
                folder, never beside a database, checked with PRAGMA
                integrity_check, and removed
  the identity  the restored database's LTX checksum equals the one the
                host recorded at that TXID

Each tenant gets one verdict, with the TXID and time it is about:
  verified, mismatch, broken chain, unrestorable, outside window, or
  unverifiable: REASON (nothing found wrong, but the identity could not be
  proved: no live host's record names the tenant, or it holds no checksum).
The exit code is 1 when any tenant's verdict is a failure (all but verified
and unverifiable). -json prints one object (see the README).
-bandwidth RATE caps what the whole run downloads (e.g. 20MB: bytes a
second; KB, MB, KiB, MiB), so that verifying a fleet leaves the link to
the applications.

Examples:
  litefleet verify 12345678-1234-5678-9abc-123456789012 -bucket saas-backups
  litefleet verify -all -bucket saas-backups -parallel 16 -json > verify.json
  litefleet verify -config /etc/litestream.yml -window 24h
`

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", verifyHelp, stderr)
	// The fleet commands' target flags, without ls's cache and scan.
	var ff fleetFlags
	ff.connFlags.register(fs)
	fs.Var(&ff.dirs, "dir", "verify the tenants of the databases in this folder (repeatable)")
	fs.BoolVar(&ff.recursive, "recursive", false, "with -dir: also scan subfolders")
	all := fs.Bool("all", false, "verify every tenant in the bucket")
	match := fs.String("match", "", "with -all: only tenants whose name matches this glob")
	txidFlag := fs.String("txid", "", "verify this restore point (16 hex digits or decimal) instead of the latest")
	window := fs.Duration("window", 0, "how far back each tenant must be restorable (e.g. 24h); 0: not checked")
	parallel := fs.Int("parallel", verify.DefaultParallel, "tenants verified at once")
	asJSON := fs.Bool("json", false, "print the reports as JSON (documented in the README)")
	var bandwidth rateFlag
	fs.Var(&bandwidth, "bandwidth", "cap what the run downloads, in bytes a second (e.g. 20MB, 500KB); default: no cap")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var txid uint64
	if *txidFlag != "" {
		if txid, err = layout.ParseTXID(*txidFlag); err != nil {
			return errUsage("-txid %q: %v", *txidFlag, err)
		}
	}
	if *parallel < 1 {
		return errUsage("-parallel %d: give 1 or more", *parallel)
	}
	if _, err := path.Match(*match, ""); err != nil {
		return errUsage("-match %q: %v", *match, err)
	}
	local := len(ff.dirs) > 0 || ff.config != ""
	switch {
	case *all && (len(pos) > 0 || local):
		return errUsage("-all verifies every tenant of the bucket: drop the tenants, -dir and -config's databases, or drop -all")
	case !*all && len(pos) == 0 && !local:
		return errUsage("verify needs tenants: litefleet verify TENANT..., -all, -dir DIR or -config FILE (see -h)")
	case *match != "" && !*all:
		return errUsage("-match goes with -all")
	case txid != 0 && (*all || len(pos)+len(ff.dirs) > 1 || local && len(pos) == 0):
		return errUsage("-txid names one tenant's transaction: give one tenant")
	}
	conn, targets, err := ff.resolveConn()
	if err != nil {
		return err
	}
	if conn.Bucket == "" {
		return errUsage("verify reads the replicas: give -bucket NAME, or -config FILE with a replica")
	}
	if err := conn.Validate(); err != nil {
		return errUsage("%v", err)
	}
	names := slices.Clone(pos)
	for _, n := range pos {
		if err := tenants.ValidateName(n); err != nil {
			return errUsage("%v", err)
		}
	}
	if local {
		found, err := localTenants(ctx, ff, targets)
		if err != nil {
			return err
		}
		names = append(names, found...)
		if len(names) == 0 {
			return errUsage("no tenant database found in %s", ff.dirs.String()+ff.config)
		}
	}
	// A tenant the -config file lists is read with its own replica's place
	// and keys, as restore reads it; the others, and -all, with the
	// top-level ones. One run per connection.
	type group struct {
		conn  s3conn.Conn
		names []string
	}
	groups := []*group{{conn: conn}}
	byConn := map[s3conn.Conn]*group{conn: groups[0]}
	for _, n := range names {
		c := conn
		for _, t := range targets {
			if t.Tenant.Name == n && t.Conn.Validate() == nil {
				c = t.Conn
				break
			}
		}
		g := byConn[c]
		if g == nil {
			g = &group{conn: c}
			byConn[c] = g
			groups = append(groups, g)
		}
		g.names = append(g.names, n)
	}

	var capped *rate.Limiter
	if bandwidth > 0 {
		capped = verify.NewBandwidth(int64(bandwidth))
	}
	bar := newTermProgress(stderr, "verify")
	var mu sync.Mutex
	lastLine := time.Now()
	before := 0 // tenants of the runs before this one
	var reports []*verify.Report
	sum := verify.Summary{Verdicts: map[string]int{}}
	start := time.Now()
	for _, g := range groups {
		if len(g.names) == 0 && !*all {
			continue
		}
		client, err := s3conn.NewClient(ctx, g.conn)
		if err != nil {
			bar.Close()
			return err
		}
		opt := verify.RunOptions{
			Options: verify.Options{Conn: g.conn, TXID: txid, Window: *window, Bandwidth: capped},
			Tenants: g.names, All: *all, Match: *match, Parallel: *parallel,
			Progress: func(done, total int) {
				n := max(len(names), total)
				bar.Set(float64(before+done)/float64(max(n, 1)), fmt.Sprintf("%d/%d tenants", before+done, n))
				mu.Lock()
				defer mu.Unlock()
				// Off a terminal, a line now and then for a long run.
				if bar == nil && n > 1 && time.Since(lastLine) >= 10*time.Second {
					lastLine = time.Now()
					fmt.Fprintf(stderr, "verify: %d/%d tenants\n", before+done, n)
				}
			},
		}
		s, err := verify.Run(ctx, client, opt, func(r *verify.Report) {
			if *asJSON {
				reports = append(reports, r)
				return
			}
			line := reportLine(r)
			if bar != nil && isTerminal(stdout) {
				bar.Println(line)
			} else {
				fmt.Fprintln(stdout, line)
			}
		})
		if err != nil {
			bar.Close()
			return err
		}
		before += s.Tenants
		sum.Tenants += s.Tenants
		sum.Failed += s.Failed
		sum.Bytes += s.Bytes
		for v, n := range s.Verdicts {
			sum.Verdicts[v] += n
		}
	}
	sum.DurationMS = time.Since(start).Milliseconds()
	bar.Close()
	if *asJSON {
		if reports == nil {
			reports = []*verify.Report{}
		}
		if err := writeJSON(stdout, struct {
			Tenants []*verify.Report `json:"tenants"`
			Summary verify.Summary   `json:"summary"`
		}{reports, sum}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "verify: %d tenants, %d verified, %d failed, %d unverifiable; %s read in %s\n",
			sum.Tenants, sum.Verdicts[verify.Verified], sum.Failed, sum.Verdicts[verify.Unverifiable],
			fmtBytes(sum.Bytes), (time.Duration(sum.DurationMS) * time.Millisecond).String())
	}
	switch {
	case sum.Failed > 0:
		return &exitError{code: 1, err: fmt.Errorf("%d of %d tenants failed verification: see above", sum.Failed, sum.Tenants)}
	case sum.Tenants == 0 && *all:
		return &exitError{code: 1, err: errors.New("no tenant to verify in " + conn.String())}
	}
	return nil
}

// reportLine is a tenant's verdict as one line.
func reportLine(r *verify.Report) string {
	at := ""
	if r.TXID != 0 {
		at = " at TXID " + r.TXIDHex
		if !r.Time.IsZero() {
			at += " (" + r.Time.UTC().Format(time.RFC3339) + ")"
		}
	}
	if r.Verdict == verify.Unverifiable {
		return fmt.Sprintf("%-14s %s%s", "unverifiable", untrusted.Printable(r.Tenant), at+": "+r.Reason)
	}
	return fmt.Sprintf("%-14s %s%s: %s", r.Verdict, untrusted.Printable(r.Tenant), at, r.Reason)
}

// localTenants are the tenants of the databases -dir and -config name.
func localTenants(ctx context.Context, ff fleetFlags, targets []tenants.Target) ([]string, error) {
	opt := tenants.DiscoverOptions{Recursive: ff.recursive}
	opt.AddTargets(targets)
	opt.Dirs = append(opt.Dirs, ff.dirs...)
	locals, err := tenants.Discover(ctx, opt)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range locals {
		if tenants.ValidateName(l.Name) == nil && !slices.Contains(names, l.Name) {
			names = append(names, l.Name)
		}
	}
	return names, nil
}
