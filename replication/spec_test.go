package replication_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/s3conn"
)

// TestBuildSource: the one resolution of what to replicate, for the
// command line and the terminal UI, without S3: what each combination
// gives, and which are usage errors.
func TestBuildSource(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "litestream.yml")
	body := "addr: 127.0.0.1:9999\naccess-key-id: HOSTKEY\nsecret-access-key: hostsecret\ndbs:\n" +
		"  - path: " + filepath.Join(dir, guid1+".db") + "\n    replica: {bucket: bkt, path: databases/" + guid1 + "}\n" +
		"  - path: " + filepath.Join(dir, "x.db") + "\n    replica: {bucket: bkt, path: databases/legacy-1, retention: 1h}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.yml")
	if err := os.WriteFile(empty, []byte("access-key-id: K\nsecret-access-key: S\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := s3conn.Conn{Bucket: "bkt", Endpoint: "http://127.0.0.1:1"}

	src, set, err := replication.Build(replication.Spec{Config: cfg, Retention: 2 * time.Hour})
	addr := set.Addr
	if err != nil {
		t.Fatal(err)
	}
	if addr != "127.0.0.1:9999" || src.HostKeys.AccessKeyID != "HOSTKEY" || len(src.Targets) != 2 {
		t.Fatalf("config: addr %q, host key %q, %d targets", addr, src.HostKeys.AccessKeyID, len(src.Targets))
	}
	if src.Targets[0].Retention != 2*time.Hour || src.Targets[1].Retention != time.Hour {
		t.Errorf("retention: -retention fills in where the file gives none: %s, %s", src.Targets[0].Retention, src.Targets[1].Retention)
	}

	dsn := filepath.Join(dir, guid2+".db")
	src, _, err = replication.Build(replication.Spec{Config: empty, DSN: dsn, Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Targets) != 1 || src.Targets[0].Tenant.Name != guid2 || src.Targets[0].Conn.AccessKeyID != "K" || src.Targets[0].Path != dsn {
		t.Fatalf("-dsn with a config of keys alone: %+v", src.Targets)
	}

	src, _, err = replication.Build(replication.Spec{Dirs: []string{dir}, DirConn: conn, Recursive: true})
	if err != nil || len(src.Dirs) != 1 || src.DirConn.Bucket != "bkt" || !src.Recursive || len(src.Targets) != 0 {
		t.Fatalf("-dir: %+v, %v", src, err)
	}
	// The UI with a config: the config's databases may be asked for.
	src, _, err = replication.Build(replication.Spec{Config: cfg, Dirs: []string{dir}, DirConn: conn, OnRequest: true})
	if err != nil || len(src.Targets) != 2 || !src.OnRequest {
		t.Fatalf("-dir on request: %+v, %v", src, err)
	}
	if _, _, err := replication.Build(replication.Spec{OnRequest: true}); err != nil {
		t.Fatalf("the UI with nothing to replicate yet: %v", err)
	}

	for _, c := range []struct {
		name string
		spec replication.Spec
		want string
	}{
		{"dir and dsn", replication.Spec{Dirs: []string{dir}, DSN: dsn, DirConn: conn}, "give -dir or -dsn, not both"},
		{"db-name alone", replication.Spec{DBName: "x"}, "-db-name needs -dsn"},
		{"nothing", replication.Spec{}, "nothing to replicate"},
		{"config and bucket", replication.Spec{Config: cfg, ConnGiven: true}, "apply to -dsn and -dir"},
		{"config dbs and dsn", replication.Spec{Config: cfg, DSN: dsn, Conn: conn}, "lists databases and -dsn names another"},
		{"bad db-name", replication.Spec{DSN: dsn, DBName: "Bad Name", Conn: conn}, "-db-name: "},
		{"dsn without bucket", replication.Spec{DSN: dsn}, "bucket"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := replication.Build(c.spec)
			if !replication.IsUsage(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want a usage error saying %q", err, c.want)
			}
		})
	}
	if _, _, err := replication.Build(replication.Spec{Config: empty}); err == nil || replication.IsUsage(err) || !strings.Contains(err.Error(), "lists no databases") {
		t.Fatalf("a config without dbs: %v", err)
	}
}
