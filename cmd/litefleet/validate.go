package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/litefleet/litefleet/conf"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

const validateHelp = `Usage:
  litefleet validate [-recursive] [-json] [-config FILE] [PATH...]
  litefleet validate -config litestream.yml -check-access [-json]

Checks the tenant name each database would replicate under. PATH is a
database file or a folder of them (*.db, *.sqlite, *.sqlite3); -config adds
the databases a litestream.yml lists, named as its replica paths say (as
replicate, ls and the terminal UI name them). Prints each database, its
tenant name and a verdict:
  guid       the GUID in the file name, format kept
  explicit   a name given in a config file
  fallback   neither: replicates as "default" (rename it or pass -db-name)
  invalid    a name or file that cannot be replicated
  collision  two databases would share one S3 prefix
Exits 1 when any name is invalid or any two databases collide. A database in
rollback-journal mode is noted: Litestream switches it to WAL for good when
it starts replicating it (validate reads the header and changes nothing).

-check-access proves each tenant of the -config file is confined to its own
prefix, on the S3 server itself, with the tenant's own credentials: it must
be able to write, list and delete under PREFIX/TENANT/ (a probe object
.litefleet-probe-<random>, deleted again), and be refused writing, listing
and deleting under a neighbour's prefix (another tenant of the file, or
PREFIX/litefleet-probe-neighbour/). Prints TENANT, KEY ID, OWN PREFIX,
NEIGHBOUR and a verdict (confined, NOT CONFINED, error); exits 1 unless
every tenant is confined.

One writer per tenant is litefleet's claim (lock.json) and its hosts'
heartbeats. A plain "litestream replicate" (v0.5.18) never reads lock.json,
so nothing in S3 can stop it from writing a tenant a litefleet host
replicates: never point one at a litefleet tenant. Tools built on
Litestream's leaser refuse litefleet claims (their expires_at is
9999-12-31: held until released).

Examples:
  litefleet validate /data
  litefleet validate -config litestream.yml
  litefleet validate -recursive -json /srv/tenants
  litefleet validate -config litestream.yml -check-access
`

func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", validateHelp, stderr)
	recursive := fs.Bool("recursive", false, "descend into subfolders")
	asJSON := fs.Bool("json", false, "print JSON")
	config := fs.String("config", "", "litestream.yml: check its databases under the names its replica paths give (and, with -check-access, their keys)")
	checkAccess := fs.Bool("check-access", false, "with -config: prove on S3 that each tenant's keys reach its own prefix only")
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *checkAccess {
		if *config == "" || len(paths) > 0 {
			return errUsage("-check-access needs -config and no PATH: litefleet validate -config FILE -check-access")
		}
		return runCheckAccess(ctx, *config, *asJSON, stdout)
	}
	if len(paths) == 0 && *config == "" {
		return errUsage("validate needs a PATH (a database or a folder) or -config FILE")
	}
	opt := tenants.DiscoverOptions{Recursive: *recursive}
	if *config != "" {
		_, targets, err := conf.LoadConfig(*config)
		if err != nil {
			return err
		}
		opt.AddTargets(targets)
	}
	opt.Dirs = append(opt.Dirs, paths...)
	locals, err := tenants.Discover(ctx, opt)
	if err != nil {
		return err
	}
	bad := 0
	entries := make([]tenants.Entry, len(locals))
	for i, l := range locals {
		entries[i] = l.Entry
		if l.Journal == tenants.JournalRollback {
			// Read from the header: validate never switches it itself.
			entries[i].Note = strings.TrimPrefix(entries[i].Note+"; "+tenants.RollbackNote, "; ")
		}
		if tenants.Blocks(tenants.EntryFinding(l.Entry)) {
			bad++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Databases []tenants.Entry `json:"databases"`
			Problems  int             `json:"problems"`
		}{entries, bad}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DATABASE\tTENANT\tVERDICT\tNOTE")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", untrusted.Printable(e.Path), untrusted.Printable(e.Name), e.Verdict, e.Note)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(entries) == 0 {
			fmt.Fprintln(stdout, "no databases found (looked for *.db, *.sqlite, *.sqlite3)")
		}
	}
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d database(s) cannot be replicated as named: see NOTE", bad, len(entries))}
	}
	return nil
}
