// Package conf reads a litestream.yml-style config file (the seed's keys
// and the subset of Litestream's a per-tenant S3 fleet uses) into resolved
// tenants.Targets, within size limits checked while reading.
package conf

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/benbjohnson/litestream"
	lss3 "github.com/benbjohnson/litestream/s3"
	"github.com/dustin/go-humanize"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// Config is a litestream.yml as litefleet reads it: the seed's keys and the
// subset of Litestream's that a per-tenant S3 fleet uses. Litestream's own
// parser lives in its package main and cannot be imported.
type Config struct {
	// The top-level keys are the host's: its heartbeats and host records,
	// fleet-wide listings, and any database that carries no keys of its
	// own. Empty: the standard AWS chain.
	AccessKeyID     string     `yaml:"access-key-id"`
	SecretAccessKey string     `yaml:"secret-access-key"`
	DBs             []DBConfig `yaml:"dbs"`
	// Addr is where `replicate` serves /metrics, /healthz and /status
	// (HOST:PORT), as Litestream names the key; -addr wins.
	Addr string `yaml:"addr"`
	// VerifyEvery is replicate's -verify-every (a Go duration, e.g. 24h);
	// the flag wins.
	VerifyEvery string `yaml:"verify-every"`
	// VerifyBandwidth caps what -verify-every downloads, in bytes a
	// second (e.g. 5MB); replicate's -verify-bandwidth wins.
	VerifyBandwidth string `yaml:"verify-bandwidth"`
}

// DBConfig is one entry of dbs:.
type DBConfig struct {
	Path string `yaml:"path"`
	// The tenant's own keys, for everything under its prefix; a replica's
	// keys win over these, and these over the top-level ones.
	AccessKeyID     string `yaml:"access-key-id"`
	SecretAccessKey string `yaml:"secret-access-key"`
	// Replica is the single-replica form of Litestream v0.5; Replicas the
	// older list form the seed uses. At most one replica per database.
	Replica  *ReplicaConfig  `yaml:"replica"`
	Replicas []ReplicaConfig `yaml:"replicas"`
}

// ReplicaConfig is one S3 replica of a database.
type ReplicaConfig struct {
	Type            string `yaml:"type"`
	URL             string `yaml:"url"`
	Bucket          string `yaml:"bucket"`
	Path            string `yaml:"path"`
	Region          string `yaml:"region"`
	Endpoint        string `yaml:"endpoint"`
	ForcePathStyle  *bool  `yaml:"force-path-style"`
	AccessKeyID     string `yaml:"access-key-id"`
	SecretAccessKey string `yaml:"secret-access-key"`
	// Retention is a Go duration ("168h"), parsed after decoding so that
	// a bad value is reported with its line.
	Retention string `yaml:"retention"`
}

// Limits on a config file, checked before it is parsed: YAML parsing
// costs about 50 times the file in memory (goccy/go-yaml's tokens and
// tree), so a file is refused by its size first, read through a limit
// (a FIFO or a file that grows has no size to trust), and its entries
// counted in the tree before any is decoded. A database entry is 100 to
// 300 bytes; 4 MiB holds the largest list one process is meant for
// (20,000 databases, twice the 10,000 it is measured at) in any of the
// documented forms. A larger fleet is replicated by folder (-dir) or
// split over processes.
const (
	MaxConfigBytes = 4 << 20
	MaxConfigDBs   = 20_000
)

// LoadConfig reads a litestream.yml-style file, expanding $VAR and ${VAR}
// from the environment ($$ is a literal $), and resolves each database into
// a tenants.Target. Unknown keys, bad values and unset variables are errors naming
// the key or variable and the line. A file over MaxConfigBytes or with
// more than MaxConfigDBs databases is refused before it is decoded.
func LoadConfig(file string) (*Config, []tenants.Target, error) {
	raw, err := readConfig(file)
	if err != nil {
		return nil, nil, err
	}
	expanded, err := expandEnv(string(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	raw = nil // the parse below is what costs: let this copy go
	data := []byte(expanded)
	// Parsed once: the tree gives the values and the lines of errors.
	astFile, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s", file, oneLineYAMLError(err))
	}
	var body ast.Node
	for _, doc := range astFile.Docs {
		if doc.Body != nil {
			body = doc.Body
			break
		}
	}
	if n := lineOf(astFile, fmt.Sprintf("$.dbs[%d]", MaxConfigDBs)); n > 0 {
		return nil, nil, fmt.Errorf("%s: line %d: more than %s databases in dbs: replicate a folder with -dir, or split the list over several configs and processes", file, n, humanize.Comma(MaxConfigDBs))
	}
	var cfg Config
	if body != nil {
		if err := nodeToValue(body, &cfg); err != nil {
			return nil, nil, fmt.Errorf("%s: %s", file, oneLineYAMLError(err))
		}
	}
	targets, err := cfg.targets(func(p string) int { return lineOf(astFile, p) })
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	return &cfg, targets, nil
}

// nodeToValue decodes the tree into cfg. The YAML library panics on some
// malformed trees (a bare "!" tag inside a list: found by FuzzLoadConfig);
// a config is operator input, so that is an error naming the file, not a
// crash.
func nodeToValue(body ast.Node, cfg *Config) (err error) {
	defer func() {
		// The panic's text may quote the config, secrets included: not shown.
		if recover() != nil {
			err = errors.New("the YAML could not be read: check its syntax (tags, indentation)")
		}
	}()
	return yaml.NodeToValue(body, cfg, yaml.DisallowUnknownField())
}

// readConfig reads file whole, refusing one over MaxConfigBytes by its
// size before reading, and by what it gives while reading.
func readConfig(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	tooLarge := func(size string) error {
		return fmt.Errorf("%s is %s, over the %d MiB a config may be (about %s databases): replicate a folder with -dir, or split the list over several configs and processes",
			file, size, MaxConfigBytes>>20, humanize.Comma(MaxConfigDBs))
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxConfigBytes {
		return nil, tooLarge(humanize.IBytes(uint64(st.Size())))
	}
	raw, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(raw) > MaxConfigBytes {
		return nil, tooLarge("more than that")
	}
	return raw, nil
}

// expandEnv replaces $VAR and ${VAR} with their values from the
// environment, as Litestream does, except that a variable that is not set
// is an error naming it and its line: Litestream would put "" in its place,
// and an empty secret-access-key fails far from its cause. $$ stands for a
// literal $; a $ followed by no name stays as it is. Comment lines are left
// alone.
func expandEnv(data string) (string, error) {
	lines := strings.SplitAfter(data, "\n")
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		var unset string
		lines[i] = os.Expand(line, func(name string) string {
			if name == "$" {
				return "$"
			}
			if v, ok := os.LookupEnv(name); ok {
				return v
			}
			if !envName.MatchString(name) {
				return "$" + name // $1, $@: a shell's, not a variable
			}
			if unset == "" {
				unset = name
			}
			return ""
		})
		if unset != "" {
			return "", fmt.Errorf("line %d: $%s is not set: export it, or write $$ for a literal $", i+1, unset)
		}
	}
	return strings.Join(lines, ""), nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// oneLineYAMLError keeps the "[line:col] message" head of a go-yaml error,
// dropping the source excerpt it appends.
func oneLineYAMLError(err error) string {
	msg := yaml.FormatError(err, false, false)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "[") {
		if i := strings.Index(msg, "]"); i > 0 {
			pos := strings.SplitN(msg[1:i], ":", 2)
			msg = "line " + pos[0] + ": " + strings.TrimSpace(msg[i+1:])
		}
	}
	return msg
}

// lineOf finds the line of a YAML path such as $.dbs[0].path, or 0.
func lineOf(f *ast.File, p string) int {
	yp, err := yaml.PathString(p)
	if err != nil {
		return 0
	}
	n, err := yp.FilterFile(f)
	if err != nil || n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

func (cfg *Config) targets(line func(string) int) ([]tenants.Target, error) {
	// A file without dbs is valid: it can carry credentials for -dsn,
	// ls or restore. Commands that need databases say so.
	if err := (keyPair{"$", cfg.AccessKeyID, cfg.SecretAccessKey}).check(line); err != nil {
		return nil, err
	}
	var out []tenants.Target
	var errs []error
	for i, db := range cfg.DBs {
		at := fmt.Sprintf("$.dbs[%d]", i)
		t, err := cfg.target(db, at, line)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

func (cfg *Config) target(db DBConfig, at string, line func(string) int) (tenants.Target, error) {
	fail := func(key, format string, args ...any) error {
		n := line(at + key)
		if n == 0 {
			n = line(at)
		}
		return fmt.Errorf("line %d: %s", n, fmt.Sprintf(format, args...))
	}
	if db.Path == "" {
		return tenants.Target{}, fail("", "database has no path: add path: /data/<guid>.db")
	}
	rc, key, err := db.replica()
	if err != nil {
		return tenants.Target{}, fail(".replicas", "%v", err)
	}
	dbAt := at
	at += key
	if rc.Type != "" && rc.Type != "s3" {
		return tenants.Target{}, fail(".type", "replica type %q is not supported: litefleet replicates to S3 (type: s3)", rc.Type)
	}
	conn := s3conn.Conn{
		Bucket:         rc.Bucket,
		Region:         rc.Region,
		Endpoint:       rc.Endpoint,
		ForcePathStyle: rc.Endpoint != "",
	}
	// Keys come as a pair from one level, the nearest that gives any:
	// a replica's key id with the host's secret would sign as nobody.
	// The top level was checked once, in targets.
	for _, l := range []keyPair{{at, rc.AccessKeyID, rc.SecretAccessKey}, {dbAt, db.AccessKeyID, db.SecretAccessKey}, {"$", cfg.AccessKeyID, cfg.SecretAccessKey}} {
		if l.id == "" && l.secret == "" {
			continue
		}
		if err := l.check(line); err != nil {
			return tenants.Target{}, err
		}
		conn.AccessKeyID, conn.SecretAccessKey = l.id, l.secret
		break
	}
	if rc.ForcePathStyle != nil {
		conn.ForcePathStyle = *rc.ForcePathStyle
	}
	replicaPath, pathKey := rc.Path, ".path"
	if rc.URL != "" {
		u, err := ParseS3URL(rc.URL)
		if err != nil {
			return tenants.Target{}, fail(".url", "%v", err)
		}
		if conn.Bucket != "" && conn.Bucket != u.Bucket {
			return tenants.Target{}, fail(".url", "url names bucket %q but bucket: says %q: keep one", u.Bucket, conn.Bucket)
		}
		conn.Bucket, replicaPath, pathKey = u.Bucket, u.Path, ".url"
		conn.Region = cmp.Or(conn.Region, u.Region)
		if conn.Endpoint == "" && u.Endpoint != "" {
			conn.Endpoint = u.Endpoint
		}
		if rc.ForcePathStyle == nil {
			conn.ForcePathStyle = conn.ForcePathStyle || u.ForcePathStyle
		}
	}
	if conn.Bucket == "" {
		return tenants.Target{}, fail("", "replica has no bucket: add bucket: NAME")
	}
	if err := s3conn.CheckBucketName(conn.Bucket); err != nil {
		key := ".bucket"
		if rc.Bucket == "" {
			key = ".url"
		}
		return tenants.Target{}, fail(key, "%v", err)
	}
	if err := conn.Validate(); err != nil {
		return tenants.Target{}, fail(".endpoint", "%v", err)
	}
	var retention time.Duration
	if rc.Retention != "" {
		v, err := time.ParseDuration(rc.Retention)
		if err != nil || v <= 0 {
			return tenants.Target{}, fail(".retention", "retention %q is not a positive duration: write e.g. 24h or 168h", rc.Retention)
		}
		retention = v
	}
	abs, err := filepath.Abs(db.Path)
	if err != nil {
		return tenants.Target{}, fail(".path", "%v", err)
	}
	t := tenants.Target{Path: abs, Conn: conn, Retention: retention, Line: line(at)}
	replicaPath = strings.Trim(replicaPath, "/")
	if replicaPath == "" {
		// No path: the seed's layout, tenant named from the file.
		t.Conn.Prefix = s3conn.DefaultPrefix
		t.Tenant = tenants.NameFor(abs, "")
		return t, nil
	}
	dir, name := path.Split(replicaPath)
	t.Conn.Prefix = strings.Trim(dir, "/")
	if t.Conn.Prefix == "" {
		t.Conn.Prefix = "/" // tenant prefixes at the bucket root
	}
	// databases/../../etc must not quietly become tenant "etc" at the root.
	if err := s3conn.CheckPrefix(t.Conn.Prefix); err != nil {
		return tenants.Target{}, fail(pathKey, "replica path %s: %v", untrusted.Printable(replicaPath), err)
	}
	t.Tenant = tenants.NameFor(abs, name)
	if fromFile := tenants.NameFor(abs, ""); fromFile.Verdict == tenants.VerdictGUID && fromFile.Name == name {
		// The seed's layout written out: the file's own GUID.
		t.Tenant = fromFile
	}
	if t.Tenant.Verdict == tenants.VerdictInvalid {
		return tenants.Target{}, fail(pathKey, "replica path %q: %s", replicaPath, t.Tenant.Note)
	}
	return t, nil
}

func (db DBConfig) replica() (ReplicaConfig, string, error) {
	switch {
	case db.Replica != nil && len(db.Replicas) > 0:
		return ReplicaConfig{}, "", errors.New("both replica: and replicas: given: keep one")
	case db.Replica != nil:
		return *db.Replica, ".replica", nil
	case len(db.Replicas) == 1:
		return db.Replicas[0], ".replicas[0]", nil
	case len(db.Replicas) > 1:
		return ReplicaConfig{}, "", fmt.Errorf("%d replicas given: Litestream v0.5 replicates a database to one replica: keep one", len(db.Replicas))
	}
	return ReplicaConfig{}, "", errors.New("database has no replica: add a replica with type s3 and a bucket")
}

// ReplicaURL is where an s3:// replica URL points, as Litestream reads it.
type ReplicaURL struct {
	Bucket, Path     string
	Region, Endpoint string
	ForcePathStyle   bool
}

// ParseS3URL reads s3://BUCKET/PATH, with Litestream's query options
// (?endpoint=…&region=…&forcePathStyle=true) and bucket host forms
// (BUCKET.s3.REGION.amazonaws.com), with Litestream's own parser, so that a
// URL means to litefleet what it means to `litestream restore`. Its parser
// cleans the path; litefleet refuses a "." or ".." part instead, which
// would otherwise name a tenant outside the prefix written
// (databases/../../etc would become etc).
func ParseS3URL(raw string) (ReplicaURL, error) {
	// Named without the query or any user:password@ part.
	shown := raw
	if u, err := url.Parse(raw); err == nil {
		shown = u.Scheme + "://" + u.Host + u.EscapedPath()
	}
	bad := func(why string) (ReplicaURL, error) {
		return ReplicaURL{}, fmt.Errorf("url %s %s: write s3://BUCKET/databases/TENANT", untrusted.Printable(shown), why)
	}
	scheme, host, urlPath, query, userinfo, err := litestream.ParseReplicaURLWithQuery(raw)
	switch {
	case err != nil && scheme == "":
		return bad("is not an s3:// URL")
	case err != nil:
		return bad("cannot be read (" + err.Error() + ")")
	case scheme != "s3":
		return bad("is not an s3:// URL")
	case host == "":
		return bad("has no bucket")
	}
	rest, _, _ := strings.Cut(strings.TrimPrefix(raw, "s3://"), "?")
	if _, p, ok := strings.Cut(rest, "/"); ok {
		for _, part := range strings.Split(p, "/") {
			if part == "." || part == ".." {
				return bad(fmt.Sprintf("has a %q part", part))
			}
		}
	}
	rc, err := lss3.NewReplicaClientFromURL(scheme, host, urlPath, query, userinfo)
	if err != nil {
		return bad("cannot be read (" + err.Error() + ")")
	}
	c := rc.(*lss3.ReplicaClient)
	return ReplicaURL{Bucket: c.Bucket, Path: strings.Trim(c.Path, "/"), Region: c.Region, Endpoint: c.Endpoint, ForcePathStyle: c.ForcePathStyle}, nil
}

// keyPair is the credentials given at one level of the file (at is its
// YAML path).
type keyPair struct {
	at, id, secret string
}

// check refuses half a pair: a key id signed with another level's secret
// would be refused by S3 with a message that points nowhere near the file.
func (k keyPair) check(line func(string) int) error {
	if (k.id == "") == (k.secret == "") {
		return nil
	}
	given, missing := "access-key-id", "secret-access-key"
	if k.id == "" {
		given, missing = missing, given
	}
	return fmt.Errorf("line %d: %s is given without %s (empty after $VAR expansion?): give both, or neither", line(k.at+"."+given), given, missing)
}
