package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/litefleet/litefleet/access"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/policy"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

// fleetUser is an account on the IAM server.
type fleetUser struct{ key, secret string }

// permFleet is a bucket on a versitygw that enforces policies, with one
// user per tenant, a host user, real LTX data under each tenant written by
// the real litestream with that tenant's own keys, and a litefleet config
// whose top-level keys are the host's and whose databases carry their own.
type permFleet struct {
	iam     *s3test.IAM
	root    s3conn.Conn // the bucket, as the root account (no policy applies)
	host    fleetUser
	tenants map[string]fleetUser
	paths   map[string]string // tenant -> source database
	config  string
	env     []string // no AWS credentials at all: only what the config gives
}

func (f *permFleet) conn(u fleetUser) s3conn.Conn {
	c := f.root
	c.AccessKeyID, c.SecretAccessKey = u.key, u.secret
	return c
}

func (f *permFleet) client(t *testing.T, u fleetUser) *s3.Client {
	return f.iam.Client(t, f.conn(u))
}

func (f *permFleet) rootClient(t *testing.T) *s3.Client { return f.iam.Client(t, f.root) }

// newPermFleet builds the fleet; the bucket policy is the one
// `litefleet policy -config -bucket-policy` prints for the given role.
func newPermFleet(t *testing.T, role string) *permFleet {
	t.Helper()
	iam := s3test.StartIAM(t)
	f := &permFleet{iam: iam, root: iam.Conn(t), tenants: map[string]fleetUser{}, paths: map[string]string{}}
	f.host = fleetUser{"lf-host", "host-secret-0c7e91"}
	iam.CreateUser(t, f.host.key, f.host.secret)
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "access-key-id: %s\nsecret-access-key: %s\ndbs:\n", f.host.key, f.host.secret)
	for i, tn := range []string{guid1, guid2} {
		u := fleetUser{"lf-" + tn, fmt.Sprintf("tenant-secret-%d-5d1f3a", i)}
		iam.CreateUser(t, u.key, u.secret)
		f.tenants[tn] = u
		f.paths[tn] = filepath.Join(dir, tn+".db")
		testpeer.InsertRows(t, testpeer.OpenDB(t, f.paths[tn]), i*1000, 50+i*10)
		fmt.Fprintf(&cfg, "  - path: %s\n    access-key-id: %s\n    secret-access-key: %s\n    replica:\n      bucket: %s\n      path: databases/%s\n      endpoint: %s\n",
			f.paths[tn], u.key, u.secret, f.root.Bucket, tn, iam.Endpoint)
	}
	f.config = filepath.Join(t.TempDir(), "litestream.yml")
	if err := os.WriteFile(f.config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	f.env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "AWS_ACCESS_KEY_ID=") || strings.HasPrefix(kv, "AWS_SECRET_ACCESS_KEY=") || strings.HasPrefix(kv, "AWS_PROFILE=")
	})
	f.applyPolicy(t, role)
	return f
}

// applyPolicy generates the bucket policy with the litefleet command and
// puts it on the bucket.
func (f *permFleet) applyPolicy(t *testing.T, role string, extra ...policy.Statement) policy.Document {
	t.Helper()
	code, out, errOut := runInProcess("policy", "-config", f.config, "-bucket-policy", "-principal", "lf-{tenant}",
		"-host-principal", f.host.key, "-role", role)
	if code != 0 {
		t.Fatalf("litefleet policy: exit %d: %s", code, errOut)
	}
	var doc policy.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("policy output: %v\n%s", err, out)
	}
	doc.Statement = append(doc.Statement, extra...)
	// Compact: versitygw keeps a policy in an extended attribute of the
	// bucket's folder, and ext4 holds at most one block (4 KiB) of them.
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc.JSON()); err != nil {
		t.Fatal(err)
	}
	f.iam.PutBucketPolicy(t, f.root.Bucket, compact.Bytes())
	return doc
}

// replicateWithOwnKeys runs the real litestream v0.5.18 over every tenant,
// each replica signing with its tenant's keys under the bucket policy, until
// each tenant's LTX files are in S3, then stops it (SIGTERM: a final sync).
func (f *permFleet) replicateWithOwnKeys(t *testing.T) {
	t.Helper()
	bin, err := s3test.FindTool("litestream")
	if err != nil {
		t.Fatalf("%v: run make tools", err)
	}
	var cfg strings.Builder
	cfg.WriteString("dbs:\n")
	for tn, u := range f.tenants {
		fmt.Fprintf(&cfg, "  - path: %s\n    replica:\n      type: s3\n      bucket: %s\n      path: databases/%s\n      endpoint: %s\n      region: us-east-1\n      force-path-style: true\n      access-key-id: %s\n      secret-access-key: %s\n      sync-interval: 100ms\n",
			f.paths[tn], f.root.Bucket, tn, f.iam.Endpoint, u.key, u.secret)
	}
	config := filepath.Join(t.TempDir(), "litestream-peer.yml")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testpeer.Buffer{}
	cmd := exec.Command(bin, "replicate", "-config", config)
	// litestream's S3 client fails with AWS_CA_BUNDLE set (DESIGN.md).
	cmd.Env = testpeer.Without(f.env, "AWS_CA_BUNDLE")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("litestream output:\n%s", logs.String())
		}
	}()
	root := f.rootClient(t)
	for tn := range f.tenants {
		deadline := time.Now().Add(60 * time.Second)
		for {
			tenant, err := s3browse.Inspect(context.Background(), root, f.root, tn)
			if err != nil {
				t.Fatal(err)
			}
			if tenant.LatestTXID > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("litestream wrote no LTX file for %s within 60s", tn)
			}
			select {
			case err := <-done:
				t.Fatalf("litestream exited: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("litestream did not stop within 30s of SIGTERM")
	}
	if strings.Contains(logs.String(), "AccessDenied") {
		t.Fatalf("litestream was refused a request under the replicate policy:\n%s", logs.String())
	}
}

// someKey is one object key under a tenant's prefix, read as root.
func (f *permFleet) someKey(t *testing.T, tenant string) string {
	t.Helper()
	out, err := f.rootClient(t).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: aws.String(f.root.Bucket), Prefix: aws.String("databases/" + tenant + "/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if k := aws.ToString(o.Key); strings.HasSuffix(k, ".ltx") {
			return k
		}
	}
	t.Fatalf("no LTX file under %s", tenant)
	return ""
}

// wantDenied fails unless err is the server's AccessDenied.
func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
		t.Errorf("%s: want AccessDenied, got %v", what, err)
	}
}

func wantAllowed(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: want it allowed, got %v", what, err)
	}
}

// TestPerTenantPermissions: on a server that enforces bucket policies, the
// policy litefleet writes confines each tenant's keys to its own prefix,
// the host's keys to .litefleet/, and restore and inspect -config use each
// tenant's own keys.
func TestPerTenantPermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	f := newPermFleet(t, "replicate")
	f.replicateWithOwnKeys(t)
	ctx := context.Background()
	bucket := aws.String(f.root.Bucket)
	a, b := f.client(t, f.tenants[guid1]), f.client(t, f.tenants[guid2])
	keyB := f.someKey(t, guid2)
	keyA := f.someKey(t, guid1)

	// Tenant A's keys on tenant B's prefix: list, read, write, delete, all refused.
	_, err := a.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("databases/" + guid2 + "/")})
	wantDenied(t, "A lists B's prefix", err)
	_, err = a.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("databases/")})
	wantDenied(t, "A lists every tenant", err)
	_, err = a.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket})
	wantDenied(t, "A lists the bucket", err)
	_, err = a.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(keyB)})
	wantDenied(t, "A reads B's LTX file", err)
	_, err = a.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("databases/" + guid2 + "/0000/ffffffffffffffff-ffffffffffffffff.ltx"), Body: strings.NewReader("x")})
	wantDenied(t, "A writes into B's prefix", err)
	_, err = a.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("databases/" + guid2 + "/lock.json"), Body: strings.NewReader("{}")})
	wantDenied(t, "A takes B's lease", err)
	_, err = a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String(keyB)})
	wantDenied(t, "A deletes B's LTX file", err)
	del, err := a.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String(keyB)}}}})
	if err == nil && (len(del.Errors) != 1 || aws.ToString(del.Errors[0].Code) != "AccessDenied") {
		t.Errorf("A deletes B's LTX file in a batch: deleted %d, errors %+v", len(del.Deleted), del.Errors)
	}
	if _, err := f.rootClient(t).HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String(keyB)}); err != nil {
		t.Fatalf("B's LTX file is gone after A's refused deletes: %v", err)
	}
	// B's keys on A's, the other way round.
	_, err = b.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(keyA)})
	wantDenied(t, "B reads A's LTX file", err)

	// A's keys on A's own prefix: everything a replicator does.
	_, err = a.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("databases/" + guid1 + "/")})
	wantAllowed(t, "A lists its prefix", err)
	out, err := a.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(keyA)})
	wantAllowed(t, "A reads its LTX file", err)
	if err == nil {
		out.Body.Close()
	}
	own := "databases/" + guid1 + "/probe-own"
	_, err = a.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(own), Body: strings.NewReader("x")})
	wantAllowed(t, "A writes its prefix", err)
	_, err = a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String(own)})
	wantAllowed(t, "A deletes in its prefix", err)
	arch := layout.ArchivePrefix("databases/"+guid1, time.Now()) + "/0000/x.ltx"
	_, err = a.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(arch), Body: strings.NewReader("x")})
	wantAllowed(t, "A writes its takeover archive", err)
	_, err = b.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(arch)})
	wantDenied(t, "B reads A's takeover archive", err)
	_, err = a.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(".litefleet/hosts/h1/heartbeat.json"), Body: strings.NewReader("{}")})
	wantDenied(t, "A writes a host heartbeat", err)

	// The replicator's start-up check: a tenant's keys pass the one that
	// lists its own prefix, and are refused the one that lists every tenant.
	if err := s3conn.CheckTenant(ctx, a, f.conn(f.tenants[guid1]), guid1, 10*time.Second); err != nil {
		t.Errorf("CheckTenant with A's keys: %v", err)
	}
	if err := s3conn.Check(ctx, a, f.conn(f.tenants[guid1]), 10*time.Second); !s3conn.IsAccessDenied(err) {
		t.Errorf("Check (lists databases/) with A's keys: %v, want access denied", err)
	}

	// The host's keys: heartbeats and host records, nothing of a tenant's.
	h := f.client(t, f.host)
	hb := ".litefleet/hosts/h1/heartbeat.json"
	_, err = h.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(hb), Body: strings.NewReader("{}")})
	wantAllowed(t, "host writes its heartbeat", err)
	_, err = h.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String(".litefleet/hosts/")})
	wantAllowed(t, "host lists the hosts", err)
	_, err = h.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String(hb)})
	wantAllowed(t, "host deletes its heartbeat", err)
	_, err = h.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(keyA)})
	wantDenied(t, "host reads a tenant's LTX file", err)
	_, err = h.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("databases/")})
	wantDenied(t, "host lists the tenants", err)

	// restore and inspect -config use each tenant's own keys (the
	// top-level ones, the host's, could read nothing of a tenant's).
	for tn := range f.tenants {
		restored := filepath.Join(t.TempDir(), tn+".db")
		code, text := runLitefleet(t, f.env, "restore", tn, "-config", f.config, "-o", restored)
		if code != 0 {
			t.Fatalf("restore %s -config: exit %d:\n%s", tn, code, text)
		}
		testpeer.SameRows(t, testpeer.Restored(t, restored), testpeer.Rows(t, f.paths[tn]))
		code, text = runLitefleet(t, f.env, "inspect", tn, "-config", f.config)
		if code != 0 || !strings.Contains(text, "format    ltx") {
			t.Fatalf("inspect %s -config: exit %d:\n%s", tn, code, text)
		}
	}

	// restore B with A's keys: one line naming A's key id, never a secret,
	// and nothing written.
	ua := f.tenants[guid1]
	restored := filepath.Join(t.TempDir(), guid2+".db")
	env := append(slices.Clone(f.env), "AWS_ACCESS_KEY_ID="+ua.key, "AWS_SECRET_ACCESS_KEY="+ua.secret)
	code, text := runLitefleet(t, env, "restore", guid2, "-bucket", f.root.Bucket, "-endpoint", f.iam.Endpoint, "-o", restored)
	want := fmt.Sprintf("litefleet: access denied to s3://%s/databases/%s (key %s): check that credential's policy\n", f.root.Bucket, guid2, ua.key)
	if code != 1 || text != want {
		t.Fatalf("restore B with A's keys: exit %d:\n%q\nwant\n%q", code, text, want)
	}
	// The same through a config that gives B's database A's keys.
	bad := filepath.Join(t.TempDir(), "wrong-keys.yml")
	cfg, _ := os.ReadFile(f.config)
	cfg = bytes.Replace(cfg, []byte(f.tenants[guid2].secret), []byte(ua.secret), 1)
	cfg = bytes.Replace(cfg, []byte("access-key-id: "+f.tenants[guid2].key), []byte("access-key-id: "+ua.key), 1)
	if err := os.WriteFile(bad, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"restore", guid2, "-config", bad, "-o", restored},
		{"inspect", guid2, "-config", bad},
		{"restore", "s3://" + f.root.Bucket + "/databases/" + guid2, "-config", bad, "-o", restored},
	} {
		code, text = runLitefleet(t, f.env, args...)
		if code != 1 || text != want {
			t.Errorf("%s with A's keys in the config: exit %d:\n%q\nwant\n%q", args[0], code, text, want)
		}
	}
	for _, s := range []string{ua.secret, f.tenants[guid2].secret, f.host.secret} {
		if strings.Contains(text, s) {
			t.Fatalf("a secret is printed:\n%s", text)
		}
	}
	if _, err := os.Stat(restored); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore left %s: %v", restored, err)
	}

	// The narrower roles on the same data. An expired lease, so that a
	// restore is not refused for it, and so that read has a lease to read.
	lease := `{"generation":3,"expires_at":"2000-01-01T00:00:00Z","owner":"host-x:1"}`
	if _, err := f.rootClient(t).PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("databases/" + guid1 + "/lock.json"), Body: strings.NewReader(lease)}); err != nil {
		t.Fatal(err)
	}
	// restore: reads everything of its own, writes nothing.
	f.applyPolicy(t, "restore")
	restored = filepath.Join(t.TempDir(), guid1+".db")
	if code, text := runLitefleet(t, f.env, "restore", guid1, "-config", f.config, "-o", restored); code != 0 {
		t.Fatalf("restore under -role restore: exit %d:\n%s", code, text)
	}
	testpeer.SameRows(t, testpeer.Restored(t, restored), testpeer.Rows(t, f.paths[guid1]))
	_, err = a.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(own), Body: strings.NewReader("x")})
	wantDenied(t, "A writes its prefix under -role restore", err)
	_, err = a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String(keyA)})
	wantDenied(t, "A deletes its LTX file under -role restore", err)
	_, err = a.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(keyB)})
	wantDenied(t, "A reads B's LTX file under -role restore", err)
	// read: the restore points and the lease, not the data.
	f.applyPolicy(t, "read")
	if code, text := runLitefleet(t, f.env, "inspect", guid1, "-config", f.config); code != 0 || !strings.Contains(text, "format    ltx") ||
		!strings.Contains(text, "last held by host-x:1") {
		t.Fatalf("inspect under -role read: exit %d:\n%s", code, text)
	}
	restored = filepath.Join(t.TempDir(), guid1+".db")
	code, text = runLitefleet(t, f.env, "restore", guid1, "-config", f.config, "-o", restored)
	wantA := fmt.Sprintf("litefleet: access denied to s3://%s/databases/%s (key %s): check that credential's policy\n", f.root.Bucket, guid1, ua.key)
	if code != 1 || text != wantA {
		t.Fatalf("restore under -role read: exit %d:\n%q\nwant\n%q", code, text, wantA)
	}
}

// checkAccessJSON runs validate -check-access -json and decodes its answer.
func checkAccessJSON(t *testing.T, env []string, config string) (int, map[string]access.Result) {
	t.Helper()
	code, text := runLitefleet(t, env, "validate", "-config", config, "-check-access", "-json")
	var v struct {
		Tenants  []access.Result `json:"tenants"`
		Problems int             `json:"problems"`
	}
	body := text
	if i := strings.LastIndex(text, "}"); i >= 0 {
		body = text[:i+1] // a failing run adds its one-line summary
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("validate -check-access -json: %v\n%s", err, text)
	}
	out := map[string]access.Result{}
	for _, r := range v.Tenants {
		out[r.Tenant] = r
	}
	return code, out
}

// noProbesLeft fails if any probe object is in the bucket.
func (f *permFleet) noProbesLeft(t *testing.T) {
	t.Helper()
	out, err := f.rootClient(t).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(f.root.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if strings.Contains(aws.ToString(o.Key), access.ProbeName) {
			t.Errorf("probe object left behind: %s", aws.ToString(o.Key))
		}
	}
}

// TestValidateCheckAccess: validate -check-access, on a server that
// enforces policies, finds every tenant confined under the generated
// policy, finds the one given a broad policy NOT CONFINED, and a tenant
// that cannot write its own prefix in error; it leaves no probe behind.
func TestValidateCheckAccess(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	f := newPermFleet(t, "replicate")
	ok := func(o access.Ops) bool {
		return o == access.Ops{Write: access.Allowed, List: access.Allowed, Delete: access.Allowed}
	}
	no := func(o access.Ops) bool {
		return o == access.Ops{Write: access.Denied, List: access.Denied, Delete: access.Denied}
	}

	code, text := runLitefleet(t, f.env, "validate", "-config", f.config, "-check-access")
	if code != 0 {
		t.Fatalf("validate -check-access: exit %d:\n%s", code, text)
	}
	for tn, u := range f.tenants {
		if !lineHas(text, tn, u.key, "write, list, delete allowed", "write, list, delete denied", "confined") {
			t.Errorf("no confined row for %s:\n%s", tn, text)
		}
	}
	code, res := checkAccessJSON(t, f.env, f.config)
	if code != 0 || len(res) != 2 {
		t.Fatalf("-json: exit %d, %+v", code, res)
	}
	for tn, r := range res {
		other := guid1
		if tn == guid1 {
			other = guid2
		}
		if r.Verdict != access.Confined || !ok(r.OwnOps) || !no(r.NeighOps) || r.KeyID != f.tenants[tn].key ||
			!strings.HasSuffix(r.Neighbour, "/databases/"+other) || len(r.Notes) != 0 {
			t.Errorf("%s: %+v", tn, r)
		}
	}
	f.noProbesLeft(t)

	// One tenant alone: the neighbour is a prefix no tenant uses.
	lone := filepath.Join(t.TempDir(), "lone.yml")
	cfg, _ := os.ReadFile(f.config)
	head, _, _ := strings.Cut(string(cfg), "  - path: "+f.paths[guid2])
	if err := os.WriteFile(lone, []byte(head), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, res := checkAccessJSON(t, f.env, lone); code != 0 || len(res) != 1 || res[guid1].Verdict != access.Confined ||
		!strings.HasSuffix(res[guid1].Neighbour, "/databases/"+access.LoneNeighbour) {
		t.Errorf("one tenant: exit %d, %+v", code, res)
	}

	// Tenant B given a broad policy besides its own: B reaches A's prefix.
	ub := f.tenants[guid2]
	arn := "arn:aws:s3:::" + f.root.Bucket
	f.applyPolicy(t, "replicate",
		policy.Statement{Sid: "TooBroadList", Effect: "Allow", Principal: &policy.Principal{AWS: ub.key}, Action: []string{"s3:ListBucket"}, Resource: []string{arn}},
		policy.Statement{Sid: "TooBroadObjects", Effect: "Allow", Principal: &policy.Principal{AWS: ub.key}, Action: []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, Resource: []string{arn + "/*"}})
	code, text = runLitefleet(t, f.env, "validate", "-config", f.config, "-check-access")
	if code != 1 || !lineHas(text, guid2, ub.key, "write, list, delete ALLOWED", "NOT CONFINED") ||
		!lineHas(text, guid1, f.tenants[guid1].key, "confined") || !strings.Contains(text, "1 of 2 tenant(s) not confined") {
		t.Fatalf("broad policy: exit %d:\n%s", code, text)
	}
	code, res = checkAccessJSON(t, f.env, f.config)
	if code != 1 || res[guid2].Verdict != access.NotConfined || res[guid2].NeighOps != (access.Ops{Write: access.Allowed, List: access.Allowed, Delete: access.Allowed}) ||
		res[guid1].Verdict != access.Confined {
		t.Fatalf("broad policy -json: exit %d, %+v", code, res)
	}
	f.noProbesLeft(t)

	// Read-only policies: no tenant can write its own prefix; that is an
	// error, not confinement.
	f.applyPolicy(t, "read")
	code, res = checkAccessJSON(t, f.env, f.config)
	if code != 1 {
		t.Fatalf("read policy: exit %d", code)
	}
	for tn, r := range res {
		if r.Verdict != access.Error || r.OwnOps.Write != access.Denied || r.OwnOps.List != access.Allowed || !no(r.NeighOps) || len(r.Notes) == 0 {
			t.Errorf("read policy, %s: %+v", tn, r)
		}
	}
	f.noProbesLeft(t)

	for _, s := range []string{f.host.secret, f.tenants[guid1].secret, ub.secret} {
		if strings.Contains(text, s) {
			t.Fatalf("a secret is printed:\n%s", text)
		}
	}
}

// lineHas reports whether one line of text holds every part, in order.
func lineHas(text string, parts ...string) bool {
	for line := range strings.SplitSeq(text, "\n") {
		rest, found := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				found = false
				break
			}
			rest = rest[i+len(p):]
		}
		if found {
			return true
		}
	}
	return false
}

// TestReplicateWithPerTenantKeys: `replicate -config` whose top-level keys
// are the host's (confined to .litefleet/) and whose databases carry their
// own tenant's keys (confined to their prefix) replicates every tenant: the
// heartbeat with the host's keys, each tenant's LTX files and claim with its
// own. Nothing is printed of a secret.
func TestReplicateWithPerTenantKeys(t *testing.T) {
	testpeer.Integration(t)
	f := newPermFleet(t, "replicate")
	p := startLitefleet(t, f.env, "replicate", "-config", f.config, "-sleep-after", "0")
	for tn := range f.tenants {
		p.WaitFor(seedTx(tn), 30*time.Second)
	}
	ctx := context.Background()
	root := f.rootClient(t)
	for tn := range f.tenants {
		lock, err := root.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.root.Bucket), Key: aws.String("databases/" + tn + "/lock.json")})
		if err != nil {
			t.Fatalf("%s has no claim: %v", tn, err)
		}
		lock.Body.Close()
	}
	out, err := root.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(f.root.Bucket), Prefix: aws.String(".litefleet/hosts/")})
	if err != nil || len(out.Contents) == 0 {
		t.Fatalf("no heartbeat written with the host's keys: %v", err)
	}
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	text := p.Out.String()
	if strings.Contains(text, "AccessDenied") || strings.Contains(text, "access denied") {
		t.Fatalf("a request was refused:\n%s", text)
	}
	for _, u := range append([]fleetUser{f.host}, f.tenants[guid1], f.tenants[guid2]) {
		if strings.Contains(text, u.secret) {
			t.Fatal("a secret key reached the output")
		}
	}
	for tn, u := range f.tenants {
		restored := filepath.Join(t.TempDir(), tn+".db")
		if code, text := runLitefleet(t, f.env, "restore", tn, "-config", f.config, "-o", restored); code != 0 {
			t.Fatalf("restore %s with its own keys: exit %d:\n%s", tn, code, text)
		}
		testpeer.SameRows(t, testpeer.Restored(t, restored), testpeer.Rows(t, f.paths[tn]))
		_ = u
	}
}

// TestTakeoverWithOwnKeys: under the bucket policy `litefleet policy`
// writes, a tenant's documented way out of diverged works with the
// tenant's own keys: -takeover copies the replica's history into the
// tenant's archive (layout.ArchivePrefix), which restores, and starts a new
// history from the file. The same keys are still refused another tenant's
// archive and any key under the archive root that is not an archive name
// of their own.
func TestTakeoverWithOwnKeys(t *testing.T) {
	testpeer.Integration(t)
	f := newPermFleet(t, "replicate")
	f.replicateWithOwnKeys(t)
	old := testpeer.Rows(t, f.paths[guid1])

	// Another file in guid1's place, without Litestream's state: its
	// history differs from the replica's.
	path := f.paths[guid1]
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"-litestream")); err != nil {
		t.Fatal(err)
	}
	testpeer.InsertRows(t, testpeer.OpenDB(t, path), 7000, 9)
	fresh := testpeer.Rows(t, path)

	p := startLitefleet(t, f.env, "replicate", "-config", f.config, "-sleep-after", "0", "-takeover", guid1)
	m := p.WaitFor(`took over a diverged tenant: .*db=`+guid1+` archive=s3://\S+`, 60*time.Second)
	p.WaitFor(seedTx(guid1), 30*time.Second)
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	text := p.Out.String()
	if strings.Contains(text, "AccessDenied") || strings.Contains(text, "access denied") {
		t.Fatalf("a request was refused under the generated policy:\n%s", text)
	}
	archive := m[0][strings.Index(m[0], "archive=s3://")+len("archive=s3://"):]
	_, key, _ := strings.Cut(archive, "/")
	a, ok := layout.ParseArchive(key)
	if !ok || a.Kind != layout.ArchiveTakeover || a.TenantPath != "databases/"+guid1 {
		t.Fatalf("archive %s is not guid1's takeover archive (%+v)", archive, a)
	}

	// The new history restores with the tenant's keys; the old one from
	// the archive, as a tenant of its own.
	restored := filepath.Join(t.TempDir(), "new.db")
	if code, text := runLitefleet(t, f.env, "restore", guid1, "-config", f.config, "-o", restored); code != 0 {
		t.Fatalf("restore %s after the takeover: exit %d:\n%s", guid1, code, text)
	}
	testpeer.SameRows(t, testpeer.Restored(t, restored), fresh)
	rootEnv := append(slices.Clone(f.env), "AWS_ACCESS_KEY_ID="+f.root.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+f.root.SecretAccessKey)
	restored = filepath.Join(t.TempDir(), "old.db")
	dir, name := key[:strings.LastIndex(key, "/")], key[strings.LastIndex(key, "/")+1:]
	if code, text := runLitefleet(t, rootEnv, "restore", name, "-prefix", dir, "-bucket", f.root.Bucket, "-endpoint", f.iam.Endpoint, "-o", restored); code != 0 {
		t.Fatalf("restore the archive %s: exit %d:\n%s", archive, code, text)
	}
	testpeer.SameRows(t, testpeer.Restored(t, restored), old)

	// Confinement holds around the archive.
	ctx := context.Background()
	c := f.client(t, f.tenants[guid1])
	bucket := aws.String(f.root.Bucket)
	now := time.Now()
	for _, k := range []string{
		layout.ArchivePrefix("databases/"+guid2, now) + "/0000/x.ltx",
		layout.StrayArchivePrefix("databases/"+guid2, now) + "/0000/x.ltx",
		layout.ArchiveRoot + "databases/" + guid1 + "/0000/x.ltx",
		layout.ArchiveRoot + "databases/" + guid1 + ".at-x/0000/x.ltx",
		layout.ArchivePrefix("databases/"+guid1+".at-20260101-000000", now) + "/0000/x.ltx",
	} {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(k), Body: strings.NewReader("x")})
		wantDenied(t, "A writes "+k, err)
	}
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(layout.StrayGapArchivePrefix("databases/"+guid1, now) + "/0000/x.ltx")})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "NoSuchKey" {
		t.Errorf("A reads a missing key of its own stray archive: want NoSuchKey (allowed), got %v", err)
	}
	_, err = f.client(t, f.host).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String(layout.ArchiveRoot)})
	wantDenied(t, "the host lists the archives", err)
}
