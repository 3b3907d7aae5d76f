package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/litefleet/litefleet/layout"
)

const (
	guidA = "12345678-1234-5678-9abc-123456789012"
	guidB = "abcdef01-2345-6789-abcd-ef0123456789"
)

var fleetOfTwo = []Tenant{
	{Name: guidB, Bucket: "saas-backups", Prefix: "databases"},
	{Name: "legacy-client-001", Bucket: "saas-backups", Prefix: "databases"},
}

// TestGolden compares every role in every form with its golden file
// (testdata/TestGolden/ROLE_FORM.golden); `go test ./policy -update`
// rewrites them.
func TestGolden(t *testing.T) {
	forms := []struct {
		name string
		make func(Role) (Document, error)
	}{
		{"identity", func(r Role) (Document, error) {
			return Identity(Tenant{Name: guidA, Bucket: "saas-backups", Prefix: "databases"}, Options{Role: r})
		}},
		{"bucket", func(r Role) (Document, error) {
			return Bucket(fleetOfTwo, Options{Role: r, Principal: "arn:aws:iam::123456789012:role/tenant-{tenant}"})
		}},
		{"bucket_host", func(r Role) (Document, error) {
			return Bucket(fleetOfTwo, Options{Role: r, Principal: "lf-{tenant}", HostPrincipal: "lf-host"})
		}},
		{"abac", func(r Role) (Document, error) {
			return ABAC("saas-backups", "databases", Options{Role: r})
		}},
		{"abac_bucket", func(r Role) (Document, error) {
			return ABAC("saas-backups", "databases", Options{Role: r, Principal: "arn:aws:iam::123456789012:root", HostPrincipal: "arn:aws:iam::123456789012:role/litefleet-host"})
		}},
		{"identity_root_prefix", func(r Role) (Document, error) {
			return Identity(Tenant{Name: "legacy-client-001", Bucket: "b", Prefix: ""}, Options{Role: r})
		}},
	}
	for _, role := range Roles {
		for _, f := range forms {
			t.Run(string(role)+"_"+f.name, func(t *testing.T) {
				doc, err := f.make(role)
				if err != nil {
					t.Fatal(err)
				}
				out := doc.JSON()
				var back Document
				dec := json.NewDecoder(strings.NewReader(string(out)))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&back); err != nil {
					t.Fatalf("not valid JSON: %v\n%s", err, out)
				}
				golden.RequireEqual(t, out)
			})
		}
	}
}

// TestConfinedToOwnPrefix checks every generated statement: an object
// statement names only keys under the tenant's own prefix, its archive or
// the host records; a bucket statement either lists with an s3:prefix
// condition on the tenant's own prefix or is the region lookup. Nothing
// is a wildcard action, and nothing is Deny-free by accident of a '*'
// principal.
func TestConfinedToOwnPrefix(t *testing.T) {
	for _, role := range Roles {
		doc, err := Bucket(fleetOfTwo, Options{Role: role, Principal: "p-{tenant}", HostPrincipal: "host"})
		if err != nil {
			t.Fatal(err)
		}
		if doc.Version != "2012-10-17" {
			t.Errorf("version %q", doc.Version)
		}
		sids := map[string]bool{}
		for _, st := range doc.Statement {
			if sids[st.Sid] {
				t.Errorf("%s: Sid %s twice", role, st.Sid)
			}
			sids[st.Sid] = true
			if st.Effect != "Allow" || st.Principal == nil || st.Principal.AWS == "" || strings.Contains(st.Principal.AWS, "*") {
				t.Errorf("%s: statement %s: effect %q principal %+v", role, st.Sid, st.Effect, st.Principal)
			}
			for _, a := range st.Action {
				if strings.ContainsAny(a, "*?") {
					t.Errorf("%s: %s: wildcard action %q", role, st.Sid, a)
				}
			}
			owner := ""
			switch p := st.Principal.AWS; {
			case p == "host":
			case strings.HasPrefix(p, "p-"):
				owner = strings.TrimPrefix(p, "p-")
				if !strings.Contains(st.Sid, strings.ReplaceAll(owner, "-", "")) {
					t.Errorf("%s: Sid %s does not name tenant %s", role, st.Sid, owner)
				}
			default:
				t.Fatalf("%s: principal %q", role, p)
			}
			for _, r := range st.Resource {
				switch {
				case r == "arn:aws:s3:::saas-backups":
					prefixes := st.Condition["StringLike"]["s3:prefix"]
					if st.Action[0] == "s3:GetBucketLocation" && len(st.Action) == 1 {
						continue
					}
					want := "databases/" + owner + "/*"
					if owner == "" {
						want = layout.HostsPrefix + "*"
					}
					if len(st.Action) != 1 || st.Action[0] != "s3:ListBucket" || len(prefixes) != 1 || prefixes[0] != want {
						t.Errorf("%s: %s: bucket statement %v with prefixes %q, want ListBucket on %q", role, st.Sid, st.Action, prefixes, want)
					}
				case owner == "":
					if r != "arn:aws:s3:::saas-backups/.litefleet/hosts/*" {
						t.Errorf("%s: host statement on %q", role, r)
					}
				default:
					own := "arn:aws:s3:::saas-backups/databases/" + owner + "/"
					archive := slices.Contains(layout.ArchivePatterns("databases/"+owner), strings.TrimPrefix(r, "arn:aws:s3:::saas-backups/"))
					if !strings.HasPrefix(r, own) && !(role == RoleReplicate && archive) {
						t.Errorf("%s: %s: resource %q outside %s", role, st.Sid, r, own)
					}
				}
			}
		}
	}
}

// iamMatch is IAM's resource wildcard match: '?' is one character, '*'
// any run of characters, '/' included.
func iamMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if iamMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && iamMatch(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && iamMatch(pattern[1:], s[1:])
}

// TestArchiveStatementCoversTheEngine: the replicate role may write every
// archive key the engine builds for its tenant (-takeover's, and the
// strays'), read from the builders in package hosts, and none of the
// other tenant's; the host lists its folder alone.
func TestArchiveStatementCoversTheEngine(t *testing.T) {
	for _, form := range []string{"bucket", "abac"} {
		var doc Document
		var err error
		if form == "bucket" {
			doc, err = Bucket(fleetOfTwo, Options{Role: RoleReplicate, Principal: "p-{tenant}", HostPrincipal: "host"})
		} else {
			doc, err = ABAC("saas-backups", "databases", Options{Role: RoleReplicate})
		}
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 12, 7, 11, 29, 16, 0, time.UTC)
		for _, tn := range fleetOfTwo {
			tp := layout.TenantPath(tn.Prefix, tn.Name)
			other := fleetOfTwo[0].Name
			if other == tn.Name {
				other = fleetOfTwo[1].Name
			}
			writable := func(key string) bool {
				for _, st := range doc.Statement {
					if form == "bucket" && st.Principal != nil && st.Principal.AWS != "p-"+tn.Name {
						continue
					}
					if !slices.Contains(st.Action, "s3:PutObject") {
						continue
					}
					for _, r := range st.Resource {
						r = strings.ReplaceAll(r, TagVariable, tn.Name) // the tag's value
						if iamMatch(r, "arn:aws:s3:::saas-backups/"+key) {
							return true
						}
					}
				}
				return false
			}
			for _, key := range []string{
				layout.ArchivePrefix(tp, at) + "/0000/0000000000000001-0000000000000004.ltx",
				layout.StrayArchivePrefix(tp, at) + "/0001/0000000000000001-0000000000000004.ltx",
				layout.StrayGapArchivePrefix(tp, at) + "/0000/0000000000000009-0000000000000009.ltx",
				layout.ClaimKey(tp),
			} {
				if !writable(key) {
					t.Errorf("%s: tenant %s may not write %s, which the engine writes", form, tn.Name, key)
				}
			}
			otp := layout.TenantPath("databases", other)
			for _, key := range []string{
				layout.ArchivePrefix(otp, at) + "/0000/x.ltx",
				layout.StrayArchivePrefix(otp, at) + "/0000/x.ltx",
				layout.ClaimKey(otp),
				layout.ArchiveRoot + tp + "/0000/x.ltx",                   // not an archive name
				layout.ArchivePrefix(tp+".at-20260101-000000", at) + "/x", // another tenant's name
				layout.HeartbeatKey("h1"),
			} {
				if writable(key) {
					t.Errorf("%s: tenant %s may write %s", form, tn.Name, key)
				}
			}
		}
	}
}

func TestRoleActions(t *testing.T) {
	actions := func(role Role) map[string]bool {
		doc, err := Identity(Tenant{Name: guidA, Bucket: "b", Prefix: "databases"}, Options{Role: role})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, st := range doc.Statement {
			for _, a := range st.Action {
				out[a] = true
			}
		}
		return out
	}
	rep, res, read := actions(RoleReplicate), actions(RoleRestore), actions(RoleRead)
	for _, a := range []string{"s3:PutObject", "s3:DeleteObject", "s3:GetObject", "s3:ListBucket"} {
		if !rep[a] {
			t.Errorf("replicate lacks %s", a)
		}
	}
	for _, a := range []string{"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"} {
		if res[a] || read[a] {
			t.Errorf("restore or read may %s", a)
		}
	}
	if !res["s3:GetObject"] || !res["s3:ListBucket"] || !read["s3:ListBucket"] {
		t.Errorf("restore %v, read %v", res, read)
	}
	// Litestream and restore ask for the bucket's region on AWS itself.
	if !rep["s3:GetBucketLocation"] || !res["s3:GetBucketLocation"] || !read["s3:GetBucketLocation"] {
		t.Errorf("restore %v, read %v", res, read)
	}
}

func TestRefusals(t *testing.T) {
	good := Tenant{Name: guidA, Bucket: "b", Prefix: "databases"}
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"invalid name", func() error {
			_, err := Identity(Tenant{Name: "Bad Name", Bucket: "b", Prefix: "databases"}, Options{Role: RoleRead})
			return err
		}, "Bad Name"},
		{"wildcard name", func() error {
			_, err := Identity(Tenant{Name: "a*", Bucket: "b", Prefix: "databases"}, Options{Role: RoleRead})
			return err
		}, "characters outside"},
		{"fallback name", func() error {
			_, err := Identity(Tenant{Name: "default", Bucket: "b", Prefix: "databases"}, Options{Role: RoleRead})
			return err
		}, "fallback"},
		{"no bucket", func() error {
			_, err := Identity(Tenant{Name: guidA, Prefix: "databases"}, Options{Role: RoleRead})
			return err
		}, "-bucket"},
		{"bucket with a path", func() error {
			_, err := Identity(Tenant{Name: guidA, Bucket: "b/x", Prefix: "databases"}, Options{Role: RoleRead})
			return err
		}, "not a bucket name"},
		{"wildcard prefix", func() error {
			_, err := Identity(Tenant{Name: guidA, Bucket: "b", Prefix: "data*"}, Options{Role: RoleRead})
			return err
		}, "wildcards"},
		{"unknown role", func() error { _, err := Identity(good, Options{Role: "admin"}); return err }, "admin"},
		{"principal in identity", func() error {
			_, err := Identity(good, Options{Role: RoleRead, Principal: "p-{tenant}"})
			return err
		}, "-bucket-policy"},
		{"template without placeholder", func() error {
			_, err := Bucket([]Tenant{good}, Options{Role: RoleRead, Principal: "arn:aws:iam::1:role/all"})
			return err
		}, "{tenant}"},
		{"star principal", func() error {
			_, err := Bucket([]Tenant{good}, Options{Role: RoleRead, Principal: "*{tenant}"})
			return err
		}, "anyone"},
		{"two buckets", func() error {
			_, err := Bucket([]Tenant{good, {Name: guidB, Bucket: "c", Prefix: "databases"}}, Options{Role: RoleRead, Principal: "p-{tenant}"})
			return err
		}, "one bucket"},
		{"same tenant twice", func() error {
			_, err := Bucket([]Tenant{good, {Name: strings.ToUpper(guidA), Bucket: "b", Prefix: "databases"}}, Options{Role: RoleRead, Principal: "p-{tenant}"})
			return err
		}, "twice"},
		{"host principal with placeholder", func() error {
			_, err := Bucket([]Tenant{good}, Options{Role: RoleRead, Principal: "p-{tenant}", HostPrincipal: "h-{tenant}"})
			return err
		}, "-host-principal"},
		{"abac principal per tenant", func() error {
			_, err := ABAC("b", "databases", Options{Role: RoleRead, Principal: "p-{tenant}"})
			return err
		}, "not per tenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line mentioning %q", err, tt.want)
			}
		})
	}
}

// Names that differ only in punctuation still get distinct Sids.
func TestSidsUnique(t *testing.T) {
	doc, err := Bucket([]Tenant{
		{Name: "a-b", Bucket: "b", Prefix: "databases"},
		{Name: "a.b", Bucket: "b", Prefix: "databases"},
		{Name: "ab", Bucket: "b", Prefix: "databases"},
	}, Options{Role: RoleRestore, Principal: "p-{tenant}"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, st := range doc.Statement {
		if other, ok := seen[st.Sid]; ok {
			t.Fatalf("Sid %s for %s and %s", st.Sid, other, st.Principal.AWS)
		}
		seen[st.Sid] = st.Principal.AWS
	}
}

func TestHostNoteIsOneLine(t *testing.T) {
	n := HostNote("saas-backups")
	if strings.Contains(n, "\n") || !strings.Contains(n, "arn:aws:s3:::saas-backups/.litefleet/hosts/*") || !strings.Contains(n, "-host-principal") {
		t.Fatalf("note: %s", n)
	}
}
