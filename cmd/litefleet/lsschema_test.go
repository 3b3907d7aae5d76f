package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// readmeLsSchema is the README's `ls -json` example (its jsonc block after
// "`ls -json` prints one object"), comments stripped, parsed.
func readmeLsSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "`ls -json` prints one object:\n\n```jsonc\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README: no jsonc block after \"`ls -json` prints one object\"")
	}
	// Comments run from "//" outside a string to the end of the line.
	comment := regexp.MustCompile(`(?m)^((?:[^"/]|"(?:[^"\\]|\\.)*")*)//.*$`)
	var doc map[string]any
	if err := json.Unmarshal([]byte(comment.ReplaceAllString(block, "$1")), &doc); err != nil {
		t.Fatalf("README's ls -json block does not parse: %v\n%s", err, block)
	}
	return doc
}

// keys is the set of an object's keys.
func keys(v any) []string {
	m, _ := v.(map[string]any)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// first is the first element of a JSON array, or nil.
func first(v any) any {
	if a, ok := v.([]any); ok && len(a) > 0 {
		return a[0]
	}
	return nil
}

// `ls -json` and the README's schema agree (issue 20 item 19): the top
// level has exactly the README's keys, empty errors included, and every
// key of a tenant, its local and remote sides, its lease and a host is
// one the README lists.
func TestLsJSONMatchesReadme(t *testing.T) {
	schema := readmeLsSchema(t)
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	env := testpeer.CredEnv(srv)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	testpeer.NewDB(t, path, 5)
	rep := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", path)...)
	rep.WaitFor(seedTx(guid1), 20*time.Second)
	testpeer.NewDB(t, filepath.Join(dir, guid2+".db"), 2) // local only

	var out map[string]any
	testpeer.Eventually(t, 30*time.Second, "ls reports "+guid1+" on both sides", func() bool {
		code, text := runLitefleet(t, env, "ls", "-dir", dir, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-json", "-no-cache")
		if code != 0 {
			t.Fatalf("ls exit %d:\n%s", code, text)
		}
		out = nil
		if err := json.Unmarshal([]byte(text), &out); err != nil {
			t.Fatalf("ls -json: %v\n%s", err, text)
		}
		for _, r := range out["tenants"].([]any) {
			r := r.(map[string]any)
			if r["tenant"] == guid1 && r["remote"] != nil && r["local"] != nil {
				return true
			}
		}
		return false
	})
	if got, want := keys(out), keys(schema); !slices.Equal(got, want) {
		t.Errorf("top-level keys %q, README lists %q", got, want)
	}
	subset := func(what string, got, doc any) {
		t.Helper()
		have := keys(doc)
		for _, k := range keys(got) {
			if !slices.Contains(have, k) {
				t.Errorf("%s: key %q is not in the README's schema (%q)", what, k, have)
			}
		}
	}
	tenant := first(schema["tenants"]).(map[string]any)
	for _, r := range out["tenants"].([]any) {
		r := r.(map[string]any)
		subset("tenant", r, tenant)
		if r["local"] != nil {
			subset("local", r["local"], tenant["local"])
			subset("local.l0", first(r["local"].(map[string]any)["l0"]), first(tenant["local"].(map[string]any)["l0"]))
		}
		if rm, ok := r["remote"].(map[string]any); ok {
			doc := tenant["remote"].(map[string]any)
			subset("remote", rm, doc)
			subset("remote.levels", first(rm["levels"]), first(doc["levels"]))
			if rm["lease"] != nil {
				subset("remote.lease", rm["lease"], doc["lease"])
			}
		}
	}
	subset("host", first(out["hosts"]), first(schema["hosts"]))
	if first(out["hosts"]) == nil {
		t.Error("ls -json lists no host: the replicator's heartbeat is missing")
	}
	for _, k := range []string{"remote_error", "local_error"} {
		if v, ok := out[k]; !ok || v != "" {
			t.Errorf("%s: %v (present %v), want \"\"", k, v, ok)
		}
	}
}
