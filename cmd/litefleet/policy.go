package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/litefleet/litefleet/conf"
	"github.com/litefleet/litefleet/policy"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

const policyHelp = `Usage:
  litefleet policy TENANT -bucket NAME [-role replicate|restore|read] [-json]
  litefleet policy -dir DIR... -bucket NAME [-recursive] [flags]
  litefleet policy -config litestream.yml [flags]
  litefleet policy -abac -bucket NAME [flags]
  litefleet policy ... -bucket-policy -principal TEMPLATE [-host-principal NAME]

Prints the S3 access policies that confine each tenant's credentials to its
own prefix, s3://BUCKET/PREFIX/TENANT/: nothing on any other tenant's keys.

By default an identity policy per tenant, to attach to the IAM role or user
whose keys that tenant's databases carry. With -bucket-policy, one bucket
policy with a statement set per tenant, each for the principal TEMPLATE names
({tenant} is replaced by the tenant name: an IAM role ARN, or for versitygw an
access key id). -abac writes one policy for every tenant, confined to the
prefix named by the principal's "tenant" tag (${aws:PrincipalTag/tenant}).

Roles (least privilege):
  replicate  list the prefix; read, write and delete its objects (LTX files,
             lock.json); read and write the tenant's own takeover archive,
             .litefleet/archive/PREFIX/TENANT/
  restore    list the prefix and read its objects
  read       list the prefix and read its lease, lock.json (ls, inspect)

A host also writes heartbeats and host records under .litefleet/hosts/ with
its own (top-level) credentials: -host-principal NAME adds that statement to
a bucket policy. Names are checked as validate checks them: no policy is
written for an invalid, fallback ("default") or colliding name.

Examples:
  litefleet policy 12345678-1234-5678-9abc-123456789012 -bucket saas-backups
  litefleet policy -config litestream.yml -role restore -json
  litefleet policy -dir /data -bucket saas-backups -bucket-policy \
    -principal 'arn:aws:iam::123456789012:role/tenant-{tenant}' \
    -host-principal arn:aws:iam::123456789012:role/litefleet-host
  litefleet policy -abac -bucket saas-backups
`

// policyTenant is a tenant to confine and where it came from.
type policyTenant struct {
	policy.Tenant
	source string // the database file, or "" for a name on the command line
}

// policyOutput is one tenant's identity policy in -json output.
type policyOutput struct {
	Tenant string          `json:"tenant"`
	Path   string          `json:"path,omitempty"`
	Policy policy.Document `json:"policy"`
}

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy", policyHelp, stderr)
	var ff fleetFlags
	ff.connFlags.register(fs)
	fs.Var(&ff.dirs, "dir", "folder of tenant databases: a policy per tenant (repeatable)")
	fs.BoolVar(&ff.recursive, "recursive", false, "also scan subfolders of each -dir")
	role := fs.String("role", string(policy.RoleReplicate), "what the credentials are for: replicate, restore or read")
	abac := fs.Bool("abac", false, "one policy for every tenant, keyed on the principal tag \"tenant\"")
	bucketPolicy := fs.Bool("bucket-policy", false, "write one bucket policy (needs -principal) instead of identity policies")
	principal := fs.String("principal", "", "bucket policy: principal per tenant, with {tenant} (e.g. arn:aws:iam::123456789012:role/tenant-{tenant})")
	hostPrincipal := fs.String("host-principal", "", "bucket policy: also allow this principal the host's heartbeats and records under .litefleet/")
	asJSON := fs.Bool("json", false, "print JSON: the policy, or for many identity policies an array of {tenant, path, policy}")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	r, err := policy.ParseRole(*role)
	if err != nil {
		return errUsage("-role: %v", err)
	}
	opt := policy.Options{Role: r}
	switch {
	case *bucketPolicy:
		if *principal == "" {
			return errUsage("-bucket-policy needs -principal TEMPLATE, e.g. arn:aws:iam::123456789012:role/tenant-{tenant}")
		}
		opt.Principal, opt.HostPrincipal = *principal, *hostPrincipal
	case *principal != "" || *hostPrincipal != "":
		return errUsage("-principal and -host-principal go into a bucket policy: add -bucket-policy")
	}
	sources := 0
	for _, given := range []bool{len(pos) > 0, len(ff.dirs) > 0, ff.config != "", *abac} {
		if given {
			sources++
		}
	}
	if sources != 1 {
		return errUsage("give one of: a TENANT, -dir DIR, -config FILE, or -abac (see -h)")
	}
	if len(pos) > 1 {
		return errUsage("policy takes one TENANT, got %d: use -dir or -config for many", len(pos))
	}

	if *abac {
		if ff.bucket == "" {
			return errUsage("-abac needs -bucket NAME")
		}
		doc, err := policy.ABAC(ff.bucket, policyPrefix(ff.conn()), opt)
		if err != nil {
			return errUsage("%v", err)
		}
		return writePolicy(stdout, stderr, doc, opt, ff.bucket)
	}

	tenants, err := policyTenants(ctx, &ff, pos)
	if err != nil {
		return err
	}
	if *bucketPolicy {
		ts := make([]policy.Tenant, len(tenants))
		for i, t := range tenants {
			ts[i] = t.Tenant
		}
		doc, err := policy.Bucket(ts, opt)
		if err != nil {
			return err
		}
		if n := doc.Size(); n > policy.MaxBucketPolicy {
			fmt.Fprintf(stderr, "litefleet: warning: this bucket policy is %d KiB even without spaces, and AWS S3 refuses bucket policies over %d KiB: for %d tenants use identity policies (drop -bucket-policy) or -abac\n",
				(n+1023)/1024, policy.MaxBucketPolicy/1024, len(ts))
		}
		return writePolicy(stdout, stderr, doc, opt, ts[0].Bucket)
	}

	var outs []policyOutput
	for _, t := range tenants {
		doc, err := policy.Identity(t.Tenant, opt)
		if err != nil {
			if t.source != "" {
				return fmt.Errorf("%s: %v", untrusted.Printable(t.source), err)
			}
			return errUsage("%v", err)
		}
		outs = append(outs, policyOutput{Tenant: t.Name, Path: t.source, Policy: doc})
	}
	if len(outs) == 1 {
		return writePolicy(stdout, stderr, outs[0].Policy, opt, tenants[0].Bucket)
	}
	if *asJSON {
		if err := writeJSON(stdout, outs); err != nil {
			return err
		}
	} else {
		for i, o := range outs {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			fmt.Fprintf(stdout, "# tenant %s (%s): identity policy for its role or user\n", untrusted.Printable(o.Tenant), untrusted.Printable(o.Path))
			if _, err := stdout.Write(o.Policy.JSON()); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(stderr, "litefleet: note:", policy.HostNote(tenants[0].Bucket))
	return nil
}

// writePolicy prints one document, the same with or without -json: it is
// JSON either way. An identity policy's output also says, on stderr, that
// the host needs a statement of its own.
func writePolicy(stdout, stderr io.Writer, doc policy.Document, opt policy.Options, bucket string) error {
	if _, err := stdout.Write(doc.JSON()); err != nil {
		return err
	}
	if opt.Principal == "" {
		fmt.Fprintln(stderr, "litefleet: note:", policy.HostNote(bucket))
	}
	return nil
}

// policyPrefix is the tenants' folder of conn in the form policy takes:
// no slashes at either end, "" for the bucket root.
func policyPrefix(c s3conn.Conn) string {
	return strings.TrimSuffix(c.TenantsPrefix(), "/")
}

// policyTenants resolves the tenants the flags name, refusing any name that
// validate would flag: one line naming the file and the problem.
func policyTenants(ctx context.Context, ff *fleetFlags, pos []string) ([]policyTenant, error) {
	conn := ff.conn()
	switch {
	case len(pos) == 1:
		if conn.Bucket == "" {
			return nil, errUsage("no bucket: pass -bucket NAME")
		}
		if err := tenants.ValidateName(pos[0]); err != nil {
			return nil, errUsage("%v", err)
		}
		return []policyTenant{{Tenant: policy.Tenant{Name: pos[0], Bucket: conn.Bucket, Prefix: policyPrefix(conn)}}}, nil

	case len(ff.dirs) > 0:
		if conn.Bucket == "" {
			return nil, errUsage("-dir needs -bucket NAME: the bucket the tenants replicate to")
		}
		locals, err := tenants.Discover(ctx, tenants.DiscoverOptions{Dirs: ff.dirs, Recursive: ff.recursive})
		if err != nil {
			return nil, err
		}
		entries := make([]tenants.Entry, len(locals))
		for i, l := range locals {
			entries[i] = l.Entry
		}
		if err := refuseUnconfinable(entries, nil, ""); err != nil {
			return nil, err
		}
		var out []policyTenant
		for _, e := range entries {
			out = append(out, policyTenant{Tenant: policy.Tenant{Name: e.Name, Bucket: conn.Bucket, Prefix: policyPrefix(conn)}, source: e.Path})
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no databases found in %s (looked for *.db, *.sqlite, *.sqlite3)", untrusted.Printable(strings.Join(ff.dirs, ", ")))
		}
		return out, nil
	}

	_, targets, err := conf.LoadConfig(ff.config)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%s lists no databases (dbs:): give a TENANT or -dir instead", ff.config)
	}
	entries := make([]tenants.Entry, len(targets))
	lines := make([]int, len(targets))
	for i, t := range targets {
		entries[i] = tenants.Entry{Path: t.Path, Naming: t.Tenant}
		lines[i] = t.Line
	}
	if err := refuseUnconfinable(entries, lines, ff.config); err != nil {
		return nil, err
	}
	var out []policyTenant
	for _, t := range targets {
		c := t.Conn
		if ff.given("bucket") {
			c.Bucket = ff.bucket
		}
		if ff.given("prefix") {
			c.Prefix = ff.prefix
		}
		out = append(out, policyTenant{Tenant: policy.Tenant{Name: t.Tenant.Name, Bucket: c.Bucket, Prefix: policyPrefix(c)}, source: t.Path})
	}
	return out, nil
}

// refuseUnconfinable is policy.Confinable, an exit code 1 when it fails.
func refuseUnconfinable(entries []tenants.Entry, lines []int, file string) error {
	if err := policy.Confinable(entries, lines, file); err != nil {
		return &exitError{code: 1, err: err}
	}
	return nil
}
