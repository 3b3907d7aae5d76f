package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/tenants"
)

// seedYAML is the seed document's configuration, verbatim.
const seedYAML = `# litestream.yml
access-key-id: AKIAxxxxxxxxxxxxxxxx
secret-access-key: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/xxxxxxxxx

dbs:
  # Cliente 1 - GUID extraído automaticamente
  - path: /data/12345678-1234-5678-9abc-123456789012.db
    replicas:
      - type: s3
        bucket: saas-backups
        path: databases/12345678-1234-5678-9abc-123456789012
        region: us-east-1

  # Cliente 2 - Outro GUID
  - path: /data/98765432-4321-8765-cba9-876543210987.db  
    replicas:
      - type: s3
        bucket: saas-backups
        path: databases/98765432-4321-8765-cba9-876543210987
        region: us-east-1

  # Cliente 3 - Com retenção customizada
  - path: /data/abcdef01-2345-6789-abcd-ef0123456789.db
    replicas:
      - type: s3
        bucket: saas-backups
        path: databases/abcdef01-2345-6789-abcd-ef0123456789
        region: us-east-1
        retention: 168h  # 7 dias
`

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "litestream.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigSeed(t *testing.T) {
	cfg, targets, err := LoadConfig(writeConfig(t, seedYAML))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AccessKeyID != "AKIAxxxxxxxxxxxxxxxx" {
		t.Errorf("access key = %q", cfg.AccessKeyID)
	}
	want := []struct {
		tenant    string
		retention time.Duration
	}{
		{"12345678-1234-5678-9abc-123456789012", 0},
		{"98765432-4321-8765-cba9-876543210987", 0},
		{"abcdef01-2345-6789-abcd-ef0123456789", 168 * time.Hour},
	}
	if len(targets) != len(want) {
		t.Fatalf("got %d targets, want %d", len(targets), len(want))
	}
	for i, w := range want {
		tg := targets[i]
		if tg.Tenant.Name != w.tenant {
			t.Errorf("target %d tenant = %q, want %q", i, tg.Tenant.Name, w.tenant)
		}
		if got := tg.Conn.URL(tg.Tenant.Name); got != "s3://saas-backups/databases/"+w.tenant {
			t.Errorf("target %d url = %q", i, got)
		}
		if tg.Path != "/data/"+w.tenant+".db" {
			t.Errorf("target %d path = %q", i, tg.Path)
		}
		if tg.Conn.Region != "us-east-1" || tg.Conn.AccessKeyID != cfg.AccessKeyID || tg.Conn.SecretAccessKey != cfg.SecretAccessKey {
			t.Errorf("target %d connection = %+v", i, tg.Conn)
		}
		if tg.Retention != w.retention {
			t.Errorf("target %d retention = %v, want %v", i, tg.Retention, w.retention)
		}
		if tg.Tenant.Verdict != tenants.VerdictGUID {
			t.Errorf("target %d verdict %s, want guid: the path names the file's own GUID", i, tg.Tenant.Verdict)
		}
		if tg.Line == 0 {
			t.Errorf("target %d has no line", i)
		}
	}
}

func TestLoadConfigForms(t *testing.T) {
	t.Setenv("LF_TEST_KEY", "AKIAENV")
	t.Setenv("LF_TEST_SECRET", "s3cr3t")
	t.Setenv("LF_TEST_BUCKET", "env-bucket")
	body := `access-key-id: $LF_TEST_KEY
secret-access-key: ${LF_TEST_SECRET}
dbs:
  - path: /data/legacy-client.db
    replica:
      type: s3
      bucket: $LF_TEST_BUCKET
      path: databases/legacy-client-001
      endpoint: http://127.0.0.1:9000
  - path: /data/12345678-1234-5678-9abc-123456789012.db
    replica:
      url: s3://other/tenants/12345678-1234-5678-9abc-123456789012
  - path: /data/98765432-4321-8765-cba9-876543210987.db
    replica:
      bucket: bkt
`
	_, ts, err := LoadConfig(writeConfig(t, body))
	if err != nil {
		t.Fatal(err)
	}
	if ts[0].Conn.AccessKeyID != "AKIAENV" || ts[0].Conn.SecretAccessKey != "s3cr3t" || ts[0].Conn.Bucket != "env-bucket" {
		t.Errorf("env not expanded: %+v", ts[0].Conn)
	}
	if ts[0].Tenant.Name != "legacy-client-001" || ts[0].Tenant.Verdict != tenants.VerdictExplicit {
		t.Errorf("tenant 0 = %+v", ts[0].Tenant)
	}
	if !ts[0].Conn.ForcePathStyle {
		t.Error("endpoint given: path style expected by default")
	}
	if got := ts[1].Conn.URL(ts[1].Tenant.Name); got != "s3://other/tenants/12345678-1234-5678-9abc-123456789012" {
		t.Errorf("url form = %q", got)
	}
	if got := ts[2].Conn.URL(ts[2].Tenant.Name); got != "s3://bkt/databases/98765432-4321-8765-cba9-876543210987" {
		t.Errorf("no path: want the seed layout, got %q", got)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // substrings of the error
	}{
		{"unknown top-level key", "dbs:\n  - path: /x.db\n    replica: {bucket: bkt}\nbogus: 1\n", []string{"line 4", "bogus"}},
		{"unknown replica key", "dbs:\n  - path: /x.db\n    replica:\n      bucket: bkt\n      buckit: c\n", []string{"line 5", "buckit"}},
		{"bad retention", "dbs:\n  - path: /x.db\n    replica:\n      bucket: bkt\n      retention: sevendays\n", []string{"line 5", "retention", "sevendays"}},
		{"two replicas", "dbs:\n  - path: /x.db\n    replicas:\n      - bucket: akt\n      - bucket: bkt\n", []string{"line 4", "one replica"}},
		{"no bucket", "dbs:\n  - path: /x.db\n    replica:\n      type: s3\n", []string{"line 4", "bucket"}},
		{"not s3", "dbs:\n  - path: /x.db\n    replica:\n      type: gcs\n      bucket: bkt\n", []string{"line 4", "gcs"}},
		{"no path", "dbs:\n  - replica:\n      bucket: bkt\n", []string{"line 2", "path"}},
		{"no replica", "dbs:\n  - path: /x.db\n", []string{"line 2", "replica"}},
		{"bad tenant in path", "dbs:\n  - path: /x.db\n    replica:\n      bucket: bkt\n      path: databases/Bad Name\n", []string{"line 5", "Bad Name"}},
		{"endpoint without scheme", "dbs:\n  - path: /x.db\n    replica:\n      bucket: bkt\n      endpoint: 127.0.0.1:9000\n", []string{"line 5", "scheme"}},
		{"not yaml", "dbs: [\n", []string{"line"}},
		{"path climbing out", "dbs:\n  - path: /x.db\n    replica:\n      bucket: bkt\n      path: databases/../../etc\n", []string{"line 5", "databases/../../etc", `".." part`}},
		{"url climbing out", "dbs:\n  - path: /x.db\n    replica:\n      url: s3://bkt/databases/../etc\n", []string{"line 4", `".." part`}},
		{"bad bucket", "dbs:\n  - path: /x.db\n    replica:\n      bucket: Bad_Bucket!\n", []string{"line 4", "not a valid S3 bucket name"}},
		{"wrong type", "dbs:\n  - path: [1, 2]\n", []string{"line 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := LoadConfig(writeConfig(t, tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestLoadConfigNeverPrintsSecrets(t *testing.T) {
	body := "access-key-id: AKIASECRETKEYID\nsecret-access-key: verysecretvalue\ndbs:\n  - path: /x.db\n    replica:\n      bucket: bkt\n      bogus: 1\n"
	_, _, err := LoadConfig(writeConfig(t, body))
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "verysecretvalue") || strings.Contains(err.Error(), "AKIASECRETKEYID") {
		t.Fatalf("error leaks a credential: %v", err)
	}
}

// TestLoadConfigEnv: $VAR and ${VAR} come from the environment; an unset
// one is an error naming it and its line, not an empty value; $$ is a
// literal $; a variable set to "" is taken as set.
func TestLoadConfigEnv(t *testing.T) {
	t.Setenv("LF_TEST_KEY", "AKIAFROMENV")
	t.Setenv("LF_TEST_EMPTY", "")
	body := "access-key-id: $LF_TEST_KEY\nsecret-access-key: pa$$word${LF_TEST_EMPTY}\n# $LF_TEST_UNSET in a comment is left alone\n"
	cfg, _, err := LoadConfig(writeConfig(t, body))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AccessKeyID != "AKIAFROMENV" || cfg.SecretAccessKey != "pa$word" {
		t.Fatalf("access key %q, secret %q", cfg.AccessKeyID, cfg.SecretAccessKey)
	}

	for _, body := range []string{
		"access-key-id: AKIA\nsecret-access-key: $LF_TEST_UNSET\n",
		"access-key-id: AKIA\nsecret-access-key: ${LF_TEST_UNSET}\n",
	} {
		_, _, err = LoadConfig(writeConfig(t, body))
		if err == nil || !strings.Contains(err.Error(), "line 2: $LF_TEST_UNSET is not set") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v", body, err)
		}
	}
}

// TestParseS3URL: a replica URL means what it means to Litestream (whose
// parser reads it), except that "." and ".." parts are refused rather than
// cleaned away.
func TestParseS3URL(t *testing.T) {
	for raw, want := range map[string]ReplicaURL{
		"s3://bkt/databases/t1":  {Bucket: "bkt", Path: "databases/t1"},
		"s3://bkt/databases/t1/": {Bucket: "bkt", Path: "databases/t1"},
		"s3://bkt/t1?endpoint=http://127.0.0.1:7070&region=eu-west-1": {Bucket: "bkt", Path: "t1", Endpoint: "http://127.0.0.1:7070", Region: "eu-west-1", ForcePathStyle: true},
		"s3://bkt/t1?endpoint=127.0.0.1:7070&forcePathStyle=false":    {Bucket: "bkt", Path: "t1", Endpoint: "http://127.0.0.1:7070"},
		"s3://bkt.s3.us-west-2.amazonaws.com/databases/t1":            {Bucket: "bkt", Path: "databases/t1", Region: "us-west-2"},
	} {
		got, err := ParseS3URL(raw)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for raw, why := range map[string]string{
		"s3://bkt/databases/../../etc": `".." part`,
		"s3://bkt/./t1":                `"." part`,
		"gs://bkt/t1":                  "not an s3:// URL",
		"/data/t1.db":                  "not an s3:// URL",
		"s3:///t1":                     "no bucket",
		"s3://AKIAKEY:secret@bkt/../x": `".." part`,
	} {
		_, err := ParseS3URL(raw)
		if err == nil || !strings.Contains(err.Error(), why) || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "AKIAKEY") {
			t.Errorf("%s: %v, want an error saying %q, without credentials", raw, err, why)
		}
	}
}

// A database's own keys are its tenant's: a replica's keys win over the
// database's, the database's over the top level's (the host's), and the
// top level stays the host's in Config.
func TestLoadConfigPerTenantCredentials(t *testing.T) {
	t.Setenv("LF_TENANT_B_KEY", "key-b")
	t.Setenv("LF_TENANT_B_SECRET", "secret-b")
	body := `access-key-id: host-key
secret-access-key: host-secret
dbs:
  - path: /data/a.db
    access-key-id: key-a
    secret-access-key: secret-a
    replica: {bucket: bkt, path: databases/tenant-a}
  - path: /data/b.db
    access-key-id: $LF_TENANT_B_KEY
    secret-access-key: ${LF_TENANT_B_SECRET}
    replica:
      bucket: bkt
      path: databases/tenant-b
      access-key-id: replica-key-b
      secret-access-key: replica-secret-b
  - path: /data/c.db
    replica: {bucket: bkt, path: databases/tenant-c}
`
	cfg, ts, err := LoadConfig(writeConfig(t, body))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AccessKeyID != "host-key" || cfg.SecretAccessKey != "host-secret" {
		t.Errorf("host keys %q", cfg.AccessKeyID)
	}
	want := [][2]string{{"key-a", "secret-a"}, {"replica-key-b", "replica-secret-b"}, {"host-key", "host-secret"}}
	for i, w := range want {
		if got := [2]string{ts[i].Conn.AccessKeyID, ts[i].Conn.SecretAccessKey}; got != w {
			t.Errorf("%s: keys %q, want %q", ts[i].Tenant.Name, got[0], w[0])
		}
	}
	if cfg.DBs[1].AccessKeyID != "key-b" || cfg.DBs[1].SecretAccessKey != "secret-b" {
		t.Errorf("$VAR not expanded at the database level: %q", cfg.DBs[1].AccessKeyID)
	}
}

// Half a pair, at any level, is an error naming the line and never the value.
func TestLoadConfigHalfCredentials(t *testing.T) {
	t.Setenv("LF_EMPTY", "")
	tests := []struct {
		name, body, want string
	}{
		{"database key without secret", "dbs:\n  - path: /x.db\n    access-key-id: AKIAHALFKEY\n    replica: {bucket: bkt}\n", "line 3: access-key-id is given without secret-access-key"},
		{"replica secret from an empty variable", "dbs:\n  - path: /x.db\n    replica:\n      bucket: b\n      access-key-id: AKIAHALFKEY\n      secret-access-key: $LF_EMPTY\n", "line 5: access-key-id is given without secret-access-key"},
		{"top-level secret alone, once", "secret-access-key: verysecretvalue\ndbs:\n  - path: /x.db\n    replica: {bucket: bkt}\n  - path: /y.db\n    replica: {bucket: bkt}\n", "line 1: secret-access-key is given without access-key-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := LoadConfig(writeConfig(t, tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "AKIAHALFKEY") || strings.Contains(err.Error(), "verysecretvalue") {
				t.Fatalf("error prints a credential: %v", err)
			}
		})
	}
}
