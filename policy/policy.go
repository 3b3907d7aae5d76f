// Package policy writes the S3 access policies that confine a tenant's
// credentials to the tenant's own prefix, PREFIX/TENANT/, in the layout
// litefleet replicates to: identity policies (one per tenant, for its IAM
// role or user), bucket policies (one statement set per tenant, each naming
// the tenant's principal) and the attribute-based form (one policy for every
// tenant, keyed on a principal tag). It only builds documents; nothing here
// talks to S3. Every key pattern is built by package hosts, which owns the
// layout the engine writes, so a policy cannot disagree with it.
package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// Version is the policy language version every document declares; the older
// 2008-10-17 has no policy variables, which the ABAC form needs.
const Version = "2012-10-17"

// TenantPlaceholder is replaced by the tenant name in a principal template.
const TenantPlaceholder = "{tenant}"

// TagVariable is the policy variable the ABAC form confines with: the value
// of the principal's "tenant" tag.
const TagVariable = "${aws:PrincipalTag/tenant}"

// Role is what a tenant's credentials are for.
type Role string

const (
	// RoleReplicate writes the tenant's replica: LTX files, lock.json
	// (Litestream's lease) and the tenant's own takeover archive.
	RoleReplicate Role = "replicate"
	// RoleRestore reads every object of the tenant's replica.
	RoleRestore Role = "restore"
	// RoleRead is a read-only inspection (ls, inspect): list the tenant's
	// prefix and read its lease, not its data.
	RoleRead Role = "read"
)

// Roles lists the roles, in the order help text names them.
var Roles = []Role{RoleReplicate, RoleRestore, RoleRead}

// ParseRole reads a -role value.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("role %q: use replicate, restore or read", s)
}

// Document is a policy document. Field order is the JSON key order, and
// Condition maps are encoded with sorted keys, so the same input always
// gives the same bytes.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a Document.
type Statement struct {
	Sid       string     `json:"Sid"`
	Effect    string     `json:"Effect"`
	Principal *Principal `json:"Principal,omitempty"` // bucket policies only
	Action    []string   `json:"Action"`
	Resource  []string   `json:"Resource"`
	Condition Condition  `json:"Condition,omitempty"`
}

// Principal names who a bucket-policy statement is for.
type Principal struct {
	AWS string `json:"AWS"`
}

// Condition is a statement's condition block: operator → key → values.
type Condition map[string]map[string][]string

// JSON is the document as indented JSON with a final newline, ready to
// paste into a console or pass to aws s3api put-bucket-policy.
func (d Document) JSON() []byte {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(err) // strings, slices and maps of strings always encode
	}
	return append(b, '\n')
}

// MaxBucketPolicy is the largest bucket policy AWS S3 accepts, in bytes.
const MaxBucketPolicy = 20 * 1024

// Size is the document's size without insignificant whitespace: what a
// size limit on policies counts.
func (d Document) Size() int {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err)
	}
	return len(b)
}

// Tenant is one tenant to confine, with where its replica lives.
type Tenant struct {
	Name   string
	Bucket string
	// Prefix is the folder holding the tenant prefixes, without slashes
	// at either end ("databases"); "" puts tenants at the bucket root.
	Prefix string
}

// Path is the tenant's key prefix, with its trailing slash.
func (t Tenant) Path() string { return layout.TenantPath(t.Prefix, t.Name) + "/" }

// Options shape a document.
type Options struct {
	Role Role
	// Principal is a bucket policy's principal template: it must hold
	// {tenant} (one principal per tenant), except in the ABAC form, where
	// it names the principals the tag decides for and must not. Empty for
	// an identity policy.
	Principal string
	// HostPrincipal, in a bucket policy, adds the statements a host needs
	// for its heartbeats and host records under .litefleet/.
	HostPrincipal string
}

// Identity is the identity policy for one tenant: attach it to the role or
// user whose keys the tenant's databases carry.
func Identity(t Tenant, o Options) (Document, error) {
	if err := checkTenant(t); err != nil {
		return Document{}, err
	}
	if o.Principal != "" || o.HostPrincipal != "" {
		return Document{}, errors.New("an identity policy names no principal: drop -principal and -host-principal, or add -bucket-policy")
	}
	sts, err := tenantStatements(t, o.Role, sidBase(t.Name), nil)
	if err != nil {
		return Document{}, err
	}
	return Document{Version: Version, Statement: sts}, nil
}

// Bucket is one bucket policy for every tenant given (all in one bucket),
// each statement naming that tenant's principal, plus the host's
// statements when o.HostPrincipal is set. Tenants come out sorted by name.
func Bucket(tenants []Tenant, o Options) (Document, error) {
	if len(tenants) == 0 {
		return Document{}, errors.New("no tenants to write a bucket policy for")
	}
	if err := checkTemplate(o.Principal, true); err != nil {
		return Document{}, err
	}
	tenants = slices.Clone(tenants)
	slices.SortFunc(tenants, func(a, b Tenant) int { return strings.Compare(a.Name, b.Name) })
	bucket := tenants[0].Bucket
	seen := map[string]bool{}
	sids := map[string]int{}
	var sts []Statement
	for _, t := range tenants {
		if err := checkTenant(t); err != nil {
			return Document{}, err
		}
		if t.Bucket != bucket {
			return Document{}, fmt.Errorf("tenants %s and %s are in buckets %q and %q: a bucket policy belongs to one bucket: pass -bucket, or write one policy per bucket",
				untrusted.Printable(tenants[0].Name), untrusted.Printable(t.Name), bucket, t.Bucket)
		}
		if k := layout.PrefixKey(t.Name); seen[k] {
			return Document{}, fmt.Errorf("tenant %s is given twice: each tenant has one prefix", untrusted.Printable(t.Name))
		} else {
			seen[k] = true
		}
		// Names that differ only in punctuation share their letters and
		// digits: number the later ones so that every Sid is unique.
		base := sidBase(t.Name)
		sids[base]++
		if n := sids[base]; n > 1 {
			base = fmt.Sprintf("%sN%d", base, n)
		}
		p := &Principal{AWS: strings.ReplaceAll(o.Principal, TenantPlaceholder, t.Name)}
		ts, err := tenantStatements(t, o.Role, base, p)
		if err != nil {
			return Document{}, err
		}
		sts = append(sts, ts...)
	}
	return withHost(bucket, o.HostPrincipal, sts)
}

// ABAC is one policy for every tenant: each principal is confined to the
// prefix named by its "tenant" tag, and a principal without the tag gets
// nothing. With o.Principal it is a bucket policy for those principals;
// without, an identity policy to attach to every tenant's role.
func ABAC(bucket, prefix string, o Options) (Document, error) {
	t := Tenant{Name: TagVariable, Bucket: bucket, Prefix: prefix}
	if err := checkPlace(t); err != nil {
		return Document{}, err
	}
	var p *Principal
	if o.Principal != "" {
		if err := checkTemplate(o.Principal, false); err != nil {
			return Document{}, err
		}
		p = &Principal{AWS: o.Principal}
	} else if o.HostPrincipal != "" {
		return Document{}, errors.New("-host-principal goes into a bucket policy: add -bucket-policy -principal NAME")
	}
	// Without the tag the variable matches nothing in a resource, but it
	// would be an empty string in s3:prefix: say outright that untagged
	// principals are out.
	tagged := map[string][]string{"aws:PrincipalTag/tenant": {"false"}}
	sts, err := tenantStatements(t, o.Role, "TenantByTag", p)
	if err != nil {
		return Document{}, err
	}
	for i := range sts {
		if sts[i].Condition == nil {
			sts[i].Condition = Condition{}
		}
		sts[i].Condition["Null"] = tagged
	}
	return withHost(bucket, o.HostPrincipal, sts)
}

// withHost is the document of sts, with the host principal's statements
// when there is one.
func withHost(bucket, hostPrincipal string, sts []Statement) (Document, error) {
	if hostPrincipal != "" {
		hs, err := hostStatements(bucket, hostPrincipal)
		if err != nil {
			return Document{}, err
		}
		sts = append(sts, hs...)
	}
	return Document{Version: Version, Statement: sts}, nil
}

// HostNote is the one line an identity policy's output adds: the host's own
// credentials need a statement too, which only a bucket policy (or the
// operator) gives them.
func HostNote(bucket string) string {
	return fmt.Sprintf("the host's own credentials (the top-level keys of litestream.yml) need their own statement too: s3:GetObject, s3:PutObject and s3:DeleteObject on %s, and s3:ListBucket on %s with s3:prefix %s (litefleet policy -bucket-policy -host-principal NAME writes it)",
		objectARN(bucket, layout.HostsPrefix+"*"), bucketARN(bucket), layout.HostsPrefix+"*")
}

func tenantStatements(t Tenant, role Role, sid string, p *Principal) ([]Statement, error) {
	own := objectARN(t.Bucket, t.Path()+"*")
	// One pattern covers both the prefix itself and everything below it:
	// '*' matches the empty string, and every listing litefleet and
	// Litestream make of a tenant ends in '/'.
	list := Statement{Sid: sid + "List", Effect: "Allow", Principal: p,
		Action: []string{"s3:ListBucket"}, Resource: []string{bucketARN(t.Bucket)},
		Condition: Condition{"StringLike": {"s3:prefix": {t.Path() + "*"}}}}
	// Litestream asks for the bucket's region when none is configured and
	// no endpoint is given (AWS itself).
	region := Statement{Sid: sid + "Region", Effect: "Allow", Principal: p,
		Action: []string{"s3:GetBucketLocation"}, Resource: []string{bucketARN(t.Bucket)}}
	switch role {
	case RoleReplicate:
		return []Statement{
			list,
			{Sid: sid + "ReadWrite", Effect: "Allow", Principal: p,
				Action:   []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
				Resource: []string{own}},
			// -takeover and the move of stray files copy the tenant's
			// files into archives of its own (a copy reads its source
			// through the ReadWrite statement).
			{Sid: sid + "Archive", Effect: "Allow", Principal: p,
				Action:   []string{"s3:GetObject", "s3:PutObject"},
				Resource: archiveARNs(t)},
			region,
		}, nil
	case RoleRestore:
		return []Statement{
			list,
			{Sid: sid + "Read", Effect: "Allow", Principal: p,
				Action: []string{"s3:GetObject"}, Resource: []string{own}},
			region,
		}, nil
	case RoleRead:
		return []Statement{
			list,
			{Sid: sid + "ReadLease", Effect: "Allow", Principal: p,
				Action: []string{"s3:GetObject"}, Resource: []string{objectARN(t.Bucket, layout.ClaimKey(t.Path()))}},
			region,
		}, nil
	}
	return nil, fmt.Errorf("role %q: use replicate, restore or read", role)
}

func hostStatements(bucket, host string) ([]Statement, error) {
	if err := checkTemplate(host, false); err != nil {
		return nil, fmt.Errorf("-host-principal: %w", err)
	}
	p := &Principal{AWS: host}
	return []Statement{
		{Sid: "HostRecords", Effect: "Allow", Principal: p,
			Action:   []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
			Resource: []string{objectARN(bucket, layout.HostsPrefix+"*")}},
		// The hosts' folder alone: .litefleet/* would list every
		// tenant's archive names.
		{Sid: "HostList", Effect: "Allow", Principal: p,
			Action: []string{"s3:ListBucket"}, Resource: []string{bucketARN(bucket)},
			Condition: Condition{"StringLike": {"s3:prefix": {layout.HostsPrefix + "*"}}}},
	}, nil
}

// archiveARNs are the tenant's own archives, as hosts builds them.
func archiveARNs(t Tenant) []string {
	var out []string
	for _, p := range layout.ArchivePatterns(layout.TenantPath(t.Prefix, t.Name)) {
		out = append(out, objectARN(t.Bucket, p))
	}
	return out
}

func bucketARN(bucket string) string      { return "arn:aws:s3:::" + bucket }
func objectARN(bucket, key string) string { return "arn:aws:s3:::" + bucket + "/" + key }

// sidBase is the start of a tenant's Sids: IAM allows only letters and
// digits in a Sid, so the name keeps those.
func sidBase(name string) string {
	return "Tenant" + strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, name)
}

// bucketShape is what may stand in an ARN as a bucket name: no wildcard,
// no policy variable, no path.
var bucketShape = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,254}$`)

func checkTenant(t Tenant) error {
	if err := tenants.ValidateName(t.Name); err != nil {
		return err
	}
	if t.Name == tenants.FallbackName {
		return fmt.Errorf("tenant name %q is the fallback for files without a GUID: name the database (-db-name or a replica path) before confining it", tenants.FallbackName)
	}
	return checkPlace(t)
}

func checkPlace(t Tenant) error {
	if !bucketShape.MatchString(t.Bucket) {
		if t.Bucket == "" {
			return errors.New("no bucket: pass -bucket NAME")
		}
		return fmt.Errorf("bucket %s is not a bucket name: give the name alone, without s3://, a path or wildcards", untrusted.Printable(t.Bucket))
	}
	if t.Prefix == "" {
		return nil
	}
	for _, part := range strings.Split(t.Prefix, "/") {
		if part == "" || strings.ContainsAny(part, "*?$") || strings.HasPrefix(part, ".") {
			return fmt.Errorf("prefix %s: give folder names without wildcards, '$', empty parts or a leading '.' (e.g. databases)", untrusted.Printable(t.Prefix))
		}
	}
	return nil
}

// checkTemplate checks a principal (template): perTenant says it must name
// each tenant through {tenant}.
func checkTemplate(p string, perTenant bool) error {
	switch {
	case p == "":
		return errors.New("a bucket policy needs -principal: e.g. arn:aws:iam::123456789012:role/tenant-{tenant}")
	case strings.Contains(p, "*"):
		return fmt.Errorf("principal %s holds '*': that would let anyone in; name the principal", untrusted.Printable(p))
	case perTenant && !strings.Contains(p, TenantPlaceholder):
		return fmt.Errorf("principal %s has no {tenant}: every tenant would get one principal, which could reach every prefix; write e.g. arn:aws:iam::123456789012:role/tenant-{tenant}", untrusted.Printable(p))
	case !perTenant && strings.Contains(p, TenantPlaceholder):
		return fmt.Errorf("principal %s holds {tenant}, but this statement is not per tenant: name one principal", untrusted.Printable(p))
	}
	return nil
}
