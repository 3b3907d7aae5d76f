package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/tenants"
)

func TestValidate(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	newDB := func(path string) {
		t.Helper()
		testpeer.NewDB(t, path, 1)
	}
	newDB(filepath.Join(a, guid1+".db"))
	newDB(filepath.Join(a, guid2+".sqlite"))
	newDB(filepath.Join(a, "legacy-client.db"))

	// A clean folder: exit 0, every database named, the fallback noted.
	code, out := runLitefleet(t, os.Environ(), "validate", a)
	if code != 0 {
		t.Fatalf("validate clean folder: exit %d:\n%s", code, out)
	}
	for _, want := range []string{guid1 + "  guid", guid2 + "  guid", "default", "fallback", "pass -db-name"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The same GUID in another folder, and a second fallback: collisions.
	newDB(filepath.Join(b, guid1+".db"))
	newDB(filepath.Join(b, "system.db"))
	code, out = runLitefleet(t, os.Environ(), "validate", "-recursive", "-json", root)
	if code != 1 {
		t.Fatalf("validate with collisions: exit %d, want 1:\n%s", code, out)
	}
	var v struct {
		Databases []struct {
			Path    string `json:"path"`
			Name    string `json:"name"`
			Verdict string `json:"verdict"`
			Note    string `json:"note"`
		} `json:"databases"`
		Problems int `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &v); err != nil {
		t.Fatalf("validate -json: %v\n%s", err, out)
	}
	verdicts := map[string]string{}
	for _, d := range v.Databases {
		verdicts[filepath.Base(filepath.Dir(d.Path))+"/"+filepath.Base(d.Path)] = d.Verdict
	}
	want := map[string]string{
		"a/" + guid1 + ".db":     "collision",
		"b/" + guid1 + ".db":     "collision",
		"a/" + guid2 + ".sqlite": "guid",
		"a/legacy-client.db":     "collision",
		"b/system.db":            "collision",
	}
	for k, w := range want {
		if verdicts[k] != w {
			t.Errorf("%s: %q, want %q (all %v)", k, verdicts[k], w, verdicts)
		}
	}
	if v.Problems != 4 || !strings.Contains(out, "litefleet: 4 of 5 database(s)") {
		t.Errorf("problems %d:\n%s", v.Problems, out)
	}

	// Bad input: no path, a missing folder.
	if code, out := runLitefleet(t, os.Environ(), "validate"); code != 2 {
		t.Errorf("validate without PATH: exit %d, want 2:\n%s", code, out)
	}
	if code, out := runLitefleet(t, os.Environ(), "validate", filepath.Join(root, "nope")); code != 1 || !strings.Contains(out, "nope") || strings.Contains(out, "-dir") {
		t.Errorf("validate of a missing folder: exit %d, want 1 naming the path and no flag validate lacks:\n%s", code, out)
	}
}

// TestValidateConfig: with -config, the databases a config lists are judged
// under the names its replica paths give, as replicate, ls and the terminal
// UI judge them; without it the same file falls back to "default".
func TestValidateConfig(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "legacy-client.db")
	testpeer.NewDB(t, legacy, 1)
	cfg := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(cfg, []byte("dbs:\n  - path: "+legacy+"\n    replica:\n      bucket: saas-backups\n      path: databases/legacy-client-001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runLitefleet(t, os.Environ(), "validate", "-config", cfg)
	if code != 0 || !strings.Contains(out, "legacy-client-001  explicit") || strings.Contains(out, "fallback") {
		t.Errorf("validate -config: exit %d, want the config's name, explicit:\n%s", code, out)
	}
	code, out = runLitefleet(t, os.Environ(), "validate", dir)
	if code != 0 || !strings.Contains(out, "default") || !strings.Contains(out, "fallback") {
		t.Errorf("validate without -config: exit %d, want the fallback:\n%s", code, out)
	}
}

// TestInspectRefusesInvalidNameLocally: inspect refuses a name that is no
// tenant name as restore does, before any request (the endpoint here
// answers nothing, which would be exit 1 and "cannot reach S3").
func TestInspectRefusesInvalidNameLocally(t *testing.T) {
	for _, cmd := range []string{"inspect", "restore"} {
		var stdout, stderr bytes.Buffer
		code := run([]string{cmd, "Bad Name", "-bucket", "bkt", "-endpoint", "http://127.0.0.1:1"}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "tenant name Bad Name has characters outside") {
			t.Errorf("%s 'Bad Name': exit %d, want 2 and the naming rule:\n%s", cmd, code, stderr.String())
		}
	}
}

// TestFlagMistakesAreOneLine: a bad flag or value is one line that names
// it and points at -h, exit 2, for every command, and the values a config
// file refuses (a negative duration, a prefix climbing out of the bucket,
// a bucket name S3 would refuse) are refused as flags too.
func TestFlagMistakesAreOneLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"ls", "-bucket", "Bad_Bucket!"}, `bucket "Bad_Bucket!" is not a valid S3 bucket name`},
		{[]string{"inspect", "-bucket", "ab", guid1}, "3 to 63"},
		{[]string{"restore", guid1, "-bucket", "192.168.1.1"}, "IP address"},
		{[]string{"ls", "-bucket", "bkt", "-prefix", "../x"}, `prefix "../x" has a ".." part`},
		{[]string{"ls", "-bucket", "bkt", "-prefix", "/etc"}, "starts with '/'"},
		{[]string{"ls", "-bucket", "bkt", "-prefix", "a/\x1b[31m"}, "not printable"},
		{[]string{"replicate", "-dsn", "x.db", "-bucket", "bkt", "-retention", "-5h"}, "-retention -5h0m0s is negative"},
		{[]string{"replicate", "-dir", ".", "-bucket", "bkt", "-rescan", "-1s"}, "-rescan -1s is negative"},
		{[]string{"-dir", ".", "-refresh", "-1s"}, "-refresh -1s is negative"},
		{[]string{"restore", "-all", "-o", "d", "-parallel", "x"}, `invalid value "x" for flag -parallel`},
		{[]string{"ls", "-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"validate", "-recursive=maybe", "."}, "-recursive"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		out := stderr.String()
		if code != 2 || !strings.Contains(out, tt.want) || strings.Count(out, "\n") != 1 || !strings.Contains(out, "-h')") || strings.Contains(out, "\x1b") {
			t.Errorf("%q: exit %d, want 2 and one line saying %q and pointing at -h:\n%s", tt.args, code, tt.want, out)
		}
	}
	// -h still prints the whole help, and exits 0.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ls", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "Usage:") || !strings.Contains(stderr.String(), "-bucket") {
		t.Errorf("ls -h: exit %d:\n%s", code, stderr.String())
	}
}

// TestValidateRollbackJournal: validate says once that a database in
// rollback-journal mode will be switched to WAL, and leaves it as it is.
func TestValidateRollbackJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(delete)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	testpeer.NewDB(t, filepath.Join(dir, guid2+".db"), 1) // WAL
	if mode, err := tenants.JournalMode(path); err != nil || mode != tenants.JournalRollback {
		t.Fatalf("journal mode of %s: %q, %v", path, mode, err)
	}
	code, out := runLitefleet(t, os.Environ(), "validate", dir)
	if code != 0 || strings.Count(out, "rollback-journal mode") != 1 || !strings.Contains(out, "switches it to WAL") {
		t.Fatalf("validate: exit %d, want one note on the rollback-journal database:\n%s", code, out)
	}
	if line := out[strings.Index(out, guid1):]; !strings.Contains(line[:strings.Index(line, "\n")], "rollback-journal mode") {
		t.Errorf("the note is not on %s's line:\n%s", guid1, out)
	}
	if mode, err := tenants.JournalMode(path); err != nil || mode != tenants.JournalRollback {
		t.Fatalf("validate switched the database: %q, %v", mode, err)
	}
	if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("validate left a -wal beside the database: %v", err)
	}
}
