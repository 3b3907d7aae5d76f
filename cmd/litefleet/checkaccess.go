package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/access"
	"github.com/litefleet/litefleet/conf"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// checkAccessParallel bounds the tenants probed at once.
const checkAccessParallel = 8

// runCheckAccess is validate -config FILE -check-access: for each tenant of
// the file, with its own credentials, prove that it may write, list and
// delete under its prefix and is refused on a neighbour's. Exit 1 when any
// tenant is not confined or a probe failed.
func runCheckAccess(ctx context.Context, config string, asJSON bool, stdout io.Writer) error {
	cfg, targets, err := conf.LoadConfig(config)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("%s lists no databases (dbs:): nothing to check", config)
	}
	entries := make([]tenants.Entry, len(targets))
	lines := make([]int, len(targets))
	for i, t := range targets {
		entries[i] = tenants.Entry{Path: t.Path, Naming: t.Tenant}
		lines[i] = t.Line
	}
	// A fallback or shared name has no prefix of its own to be confined to.
	if err := refuseUnconfinable(entries, lines, config); err != nil {
		return err
	}

	var clients s3conn.Clients
	results := make([]access.Result, len(targets))
	var g errgroup.Group
	g.SetLimit(checkAccessParallel)
	for i, t := range targets {
		g.Go(func() error {
			results[i] = checkTenant(ctx, &clients, cfg, targets, t)
			return nil
		})
	}
	_ = g.Wait() // checkTenant reports its failures in its result
	if err := ctx.Err(); err != nil {
		return err
	}

	bad := 0
	for _, r := range results {
		if r.Verdict != access.Confined {
			bad++
		}
	}
	if asJSON {
		if err := writeJSON(stdout, struct {
			Tenants  []access.Result `json:"tenants"`
			Problems int             `json:"problems"`
		}{results, bad}); err != nil {
			return err
		}
	} else {
		printAccess(stdout, results)
	}
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d tenant(s) not confined to their own prefix, or not checked: see above", bad, len(results))}
	}
	return nil
}

// checkTenant probes one tenant with its credentials, against a neighbour
// from the same bucket and folder (the next one by name), or a prefix no
// tenant uses when it has none.
func checkTenant(ctx context.Context, clients *s3conn.Clients, cfg *conf.Config, targets []tenants.Target, t tenants.Target) access.Result {
	name := t.Tenant.Name
	var peers []string
	for _, o := range targets {
		if o.Conn.Bucket == t.Conn.Bucket && o.Conn.TenantsPrefix() == t.Conn.TenantsPrefix() && layout.PrefixKey(o.Tenant.Name) != layout.PrefixKey(name) {
			peers = append(peers, o.Tenant.Name)
		}
	}
	neighbour := access.LoneNeighbour
	if len(peers) > 0 {
		slices.Sort(peers)
		neighbour = peers[0]
		for _, p := range peers {
			if p > name {
				neighbour = p
				break
			}
		}
	}
	api, err := clients.For(ctx, t.Conn)
	if err != nil {
		return access.Result{Tenant: name, KeyID: t.Conn.AccessKeyID, Own: t.Conn.URL(name), Neighbour: t.Conn.URL(neighbour),
			Verdict: access.Error, Notes: []string{err.Error()}}
	}
	// The host's client removes a probe the tenant's keys could write but
	// not delete; the same keys are no second chance.
	var cleanup access.API
	host := t.Conn
	host.AccessKeyID, host.SecretAccessKey = cfg.AccessKeyID, cfg.SecretAccessKey
	if host.AccessKeyID != t.Conn.AccessKeyID {
		if c, err := clients.For(ctx, host); err == nil {
			cleanup = c
		}
	}
	return access.Check(ctx, api, cleanup, t.Conn, name, neighbour)
}

func printAccess(w io.Writer, results []access.Result) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tKEY ID\tOWN PREFIX\tNEIGHBOUR\tVERDICT")
	for _, r := range results {
		key := r.KeyID
		if key == "" {
			key = "(AWS chain)"
		}
		neighbour := strings.TrimPrefix(r.Neighbour, r.Own[:strings.LastIndex(r.Own, "/")+1])
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s: %s\t%s\n", untrusted.Printable(r.Tenant), untrusted.Printable(key), opsSummary(r.OwnOps, true),
			untrusted.Printable(neighbour), opsSummary(r.NeighOps, false), r.Verdict)
	}
	tw.Flush()
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%s: %s\n", untrusted.Printable(r.Tenant), n)
		}
	}
}

// opsSummary says "write, list, delete allowed" when all three agree, and
// each one otherwise; an outcome that is not the one expected (a refusal
// on the own prefix, an allowance on the neighbour's) is in capitals.
func opsSummary(o access.Ops, own bool) string {
	show := func(outcome string) string {
		if (own && outcome == access.Denied) || (!own && outcome == access.Allowed) {
			return strings.ToUpper(outcome)
		}
		return outcome
	}
	if o.Write == o.List && o.List == o.Delete {
		return "write, list, delete " + show(o.Write)
	}
	return fmt.Sprintf("write %s, list %s, delete %s", show(o.Write), show(o.List), show(o.Delete))
}
