package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/policy"
)

// runInProcess runs litefleet's main logic without a binary: for commands
// that need no S3 server and no signals.
func runInProcess(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func decodeStrict(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("not the expected JSON: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value:\n%s", s)
	}
}

func TestPolicyOneTenant(t *testing.T) {
	code, out, errOut := runInProcess("policy", guid1, "-bucket", "saas-backups", "-role", "restore")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc policy.Document
	decodeStrict(t, out, &doc)
	want, err := policy.Identity(policy.Tenant{Name: guid1, Bucket: "saas-backups", Prefix: "databases"}, policy.Options{Role: policy.RoleRestore})
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want.JSON()) {
		t.Fatalf("printed:\n%s\nwant:\n%s", out, want.JSON())
	}
	// The host's statement is mentioned, once, on stderr.
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, ".litefleet/hosts/*") {
		t.Fatalf("stderr: %q", errOut)
	}
	// -json is the same single object.
	code, outJSON, _ := runInProcess("policy", guid1, "-bucket", "saas-backups", "-role", "restore", "-json")
	if code != 0 || outJSON != out {
		t.Fatalf("-json exit %d:\n%s", code, outJSON)
	}
	// -prefix moves the tenant's folder.
	_, out, _ = runInProcess("policy", guid1, "-bucket", "bkt", "-prefix", "tenants/eu")
	if !strings.Contains(out, "arn:aws:s3:::bkt/tenants/eu/"+guid1+"/*") || strings.Contains(out, "databases/") {
		t.Fatalf("-prefix ignored:\n%s", out)
	}
}

func TestPolicyFolderAndConfig(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{guid1 + ".db", guid2 + ".sqlite"} {
		testpeer.InsertRows(t, testpeer.OpenDB(t, filepath.Join(dir, n)), 0, 1)
	}

	// A folder: an array of identity policies, one per tenant, in -json.
	code, out, errOut := runInProcess("policy", "-dir", dir, "-bucket", "saas-backups", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var outs []struct {
		Tenant string          `json:"tenant"`
		Path   string          `json:"path"`
		Policy policy.Document `json:"policy"`
	}
	decodeStrict(t, out, &outs)
	if len(outs) != 2 || outs[0].Tenant != guid1 || outs[1].Tenant != guid2 || filepath.Base(outs[1].Path) != guid2+".sqlite" {
		t.Fatalf("policies for %+v", outs)
	}
	for _, o := range outs {
		for _, st := range o.Policy.Statement {
			for _, r := range st.Resource {
				own := strings.Contains(r, "/databases/"+o.Tenant+"/") ||
					strings.HasPrefix(r, "arn:aws:s3:::saas-backups/"+layout.ArchiveRoot+"databases/"+o.Tenant+".")
				if r != "arn:aws:s3:::saas-backups" && !own {
					t.Errorf("%s's policy reaches %s", o.Tenant, r)
				}
			}
		}
	}

	// A config: one bucket policy, a statement set per tenant, its bucket
	// and prefix from the file, and the host's statements.
	cfg := filepath.Join(t.TempDir(), "litestream.yml")
	body := "dbs:\n" +
		"  - path: " + filepath.Join(dir, guid1+".db") + "\n    replica: {bucket: fleet-a, path: eu/" + guid1 + "}\n" +
		"  - path: /srv/legacy.db\n    replica: {bucket: fleet-a, path: eu/legacy-client-001}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runInProcess("policy", "-config", cfg, "-bucket-policy", "-principal", "lf-{tenant}", "-host-principal", "lf-host", "-role", "read")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if errOut != "" {
		t.Errorf("a bucket policy with its host statement needs no note: %q", errOut)
	}
	var doc policy.Document
	decodeStrict(t, out, &doc)
	principals := map[string]int{}
	for _, st := range doc.Statement {
		principals[st.Principal.AWS]++
	}
	if len(doc.Statement) != 8 || principals["lf-"+guid1] != 3 || principals["lf-legacy-client-001"] != 3 || principals["lf-host"] != 2 ||
		!strings.Contains(out, `"eu/legacy-client-001/*"`) || !strings.Contains(out, "arn:aws:s3:::fleet-a/eu/"+guid1+"/lock.json") {
		t.Fatalf("bucket policy:\n%s", out)
	}
}

// No policy is ever written for a name validate would flag; the error is
// one line naming the file and the problem.
func TestPolicyRefusesUnconfinableNames(t *testing.T) {
	dir := t.TempDir()
	testpeer.InsertRows(t, testpeer.OpenDB(t, filepath.Join(dir, guid1+".db")), 0, 1)
	testpeer.InsertRows(t, testpeer.OpenDB(t, filepath.Join(dir, "legacy.db")), 0, 1)
	code, out, errOut := runInProcess("policy", "-dir", dir, "-bucket", "bkt")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, filepath.Join(dir, "legacy.db")) || !strings.Contains(errOut, "not a GUID") {
		t.Fatalf("fallback: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	cfg := filepath.Join(t.TempDir(), "litestream.yml")
	body := "dbs:\n" +
		"  - path: /a/x.db\n    replica: {bucket: bkt, path: databases/shared}\n" +
		"  - path: /b/y.db\n    replica: {bucket: bkt, path: databases/shared}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runInProcess("policy", "-config", cfg, "-bucket-policy", "-principal", "p-{tenant}")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, cfg+": line ") ||
		!strings.Contains(errOut, "also claimed") || !strings.Contains(errOut, "and 1 more") {
		t.Fatalf("collision: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "Bad*Name", "-bucket", "bkt"}, "characters outside"},
		{[]string{"policy", "default", "-bucket", "bkt"}, "fallback"},
		{[]string{"policy", guid1}, "-bucket"},
		{[]string{"policy", "-bucket", "bkt"}, "give one of"},
		{[]string{"policy", guid1, "-abac", "-bucket", "bkt"}, "give one of"},
		{[]string{"policy", guid1, "-bucket", "bkt", "-principal", "p-{tenant}"}, "-bucket-policy"},
		{[]string{"policy", guid1, "-bucket", "bkt", "-bucket-policy"}, "-principal"},
		{[]string{"policy", guid1, "-bucket", "bkt", "-bucket-policy", "-principal", "everyone"}, "{tenant}"},
		{[]string{"policy", guid1, "-bucket", "bkt", "-role", "admin"}, "-role"},
	} {
		code, out, errOut := runInProcess(tc.args...)
		if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want one line about %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestPolicyABAC(t *testing.T) {
	code, out, errOut := runInProcess("policy", "-abac", "-bucket", "saas-backups", "-role", "replicate")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc policy.Document
	decodeStrict(t, out, &doc)
	for _, st := range doc.Statement {
		if st.Condition["Null"]["aws:PrincipalTag/tenant"][0] != "false" {
			t.Errorf("statement %s does not require the tag", st.Sid)
		}
	}
	if !strings.Contains(out, "arn:aws:s3:::saas-backups/databases/${aws:PrincipalTag/tenant}/*") {
		t.Fatalf("no tag in the resource:\n%s", out)
	}
}

// A bucket policy for more tenants than AWS's 20 KiB allows still prints,
// with a one-line warning that says what to use instead.
func TestPolicyBucketTooLarge(t *testing.T) {
	var body strings.Builder
	body.WriteString("dbs:\n")
	for i := range 40 {
		fmt.Fprintf(&body, "  - path: /data/t%d.db\n    replica: {bucket: bkt, path: databases/tenant-%03d}\n", i, i)
	}
	cfg := filepath.Join(t.TempDir(), "litestream.yml")
	if err := os.WriteFile(cfg, []byte(body.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runInProcess("policy", "-config", cfg, "-bucket-policy", "-principal", "p-{tenant}")
	var doc policy.Document
	decodeStrict(t, out, &doc)
	if code != 0 || len(doc.Statement) != 160 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "over 20 KiB") || !strings.Contains(errOut, "-abac") {
		t.Fatalf("exit %d, %d statements, stderr %q", code, len(doc.Statement), errOut)
	}
	// A read policy (list, lease and region) is smaller: 30 tenants fit.
	body.Reset()
	body.WriteString("dbs:\n")
	for i := range 30 {
		fmt.Fprintf(&body, "  - path: /data/t%d.db\n    replica: {bucket: bkt, path: databases/tenant-%03d}\n", i, i)
	}
	if err := os.WriteFile(cfg, []byte(body.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, errOut = runInProcess("policy", "-config", cfg, "-bucket-policy", "-principal", "p-{tenant}", "-role", "read")
	if errOut != "" {
		t.Errorf("a read policy for 30 tenants fits: %q", errOut)
	}
}
