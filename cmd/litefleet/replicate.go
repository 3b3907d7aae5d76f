package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/replication"
)

const replicateHelp = `Usage:
  litefleet replicate -dsn PATH -bucket NAME [-db-name NAME] [flags]
  litefleet replicate -config litestream.yml [flags]
  litefleet replicate -dir DIR -bucket NAME [-recursive] [-rescan 30s] [flags]

Replicates SQLite databases to S3 with Litestream, in this one process, each
into its tenant's prefix s3://BUCKET/PREFIX/TENANT/. The tenant is the GUID in
the file name, or -db-name; any other name falls back to "default" with a
warning. Before writing, litefleet takes the tenant's lease (PREFIX/TENANT/lock.json),
so a second replicator of the same tenant stops at once, naming the owner.
Every synced change is logged as
  new transaction: db=TENANT pre=TXID post=TXID elapsed=DURATION
SIGINT or SIGTERM makes a final sync, releases the leases and exits 0.

Credentials come from the -config file (access-key-id, secret-access-key) or
the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE).

Examples:
  litefleet replicate -dsn /data/12345678-1234-5678-9abc-123456789012.db -bucket saas-backups
    # -> s3://saas-backups/databases/12345678-1234-5678-9abc-123456789012/
  litefleet replicate -dsn /data/legacy-client.db -bucket saas-backups -db-name legacy-client-001
    # -> s3://saas-backups/databases/legacy-client-001/
  litefleet replicate -config litestream.yml
  litefleet replicate -dir /data -bucket saas-backups
    # every tenant database in /data, each into its own prefix; new ones join within -rescan
`

func runReplicate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replicate", replicateHelp, stderr)
	var cf connFlags
	cf.register(fs)
	dsn := fs.String("dsn", "", "path of the SQLite database to replicate")
	dbName := fs.String("db-name", "", "tenant name when the file name is not a GUID (1-63 of a-z 0-9 . _ -)")
	var dirs dirList
	fs.Var(&dirs, "dir", "replicate every database in this folder (repeatable); new ones are picked up")
	recursive := fs.Bool("recursive", false, "with -dir: also scan subfolders")
	rescan := fs.Duration("rescan", 30*time.Second, "with -dir: how often to look for new databases (0: only at start)")
	retention := fs.Duration("retention", 0, "how long snapshots are kept in S3 (default 24h, Litestream's)")
	lf := logFlags{}
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage("replicate takes flags only, got %q: did you mean -dsn %s?", fs.Arg(0), fs.Arg(0))
	}
	logger, libLogger, err := lf.loggers(stderr)
	if err != nil {
		return err
	}
	sup := replication.NewSupervisor(logger, libLogger)

	var scan func() []fleet.Target
	if len(dirs) > 0 {
		if *dsn != "" || *dbName != "" {
			return errUsage("-dir replicates a folder: give -dir or -dsn, not both")
		}
		conn, _, err := cf.resolveConn()
		if err != nil {
			return err
		}
		if err := conn.Validate(); err != nil {
			return errUsage("%v", err)
		}
		opt := fleet.DiscoverOptions{Dirs: dirs, Recursive: *recursive, InUse: func(p string) bool {
			_, ok := sup.Replicating(p)
			return ok
		}}
		scan = func() []fleet.Target {
			locals, err := fleet.Discover(ctx, opt)
			if err != nil {
				logger.Error("scan folders", "error", err)
				return nil
			}
			ts := make([]fleet.Target, 0, len(locals))
			for _, l := range locals {
				ts = append(ts, fleet.Target{Path: l.Path, Tenant: l.Naming, Conn: conn, Retention: *retention})
			}
			return ts
		}
	} else {
		targets, err := replicateTargets(cf, *dsn, *dbName, *retention)
		if err != nil {
			return err
		}
		scan = func() []fleet.Target { return targets }
	}

	started, failures := startTargets(ctx, sup, logger, scan(), nil)
	if started == 0 {
		_ = sup.Close(context.Background())
		if len(failures) == 1 {
			return failures[0]
		}
		if len(failures) == 0 {
			return fmt.Errorf("no database found in %s: looked for *.db, *.sqlite, *.sqlite3", strings.Join(dirs, ", "))
		}
		return fmt.Errorf("no database is replicating (%d refused): see the errors above", len(failures))
	}
	logger.Info("ready", "tenants", started, "refused", len(failures))

	if len(dirs) > 0 && *rescan > 0 {
		// Pick up new tenants; a refusal is logged once, not every scan.
		refusedOnce := map[string]bool{}
		for _, t := range failuresPaths(failures) {
			refusedOnce[t] = true
		}
		ticker := time.NewTicker(*rescan)
		defer ticker.Stop()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-ticker.C:
				n, _ := startTargets(ctx, sup, logger, scan(), refusedOnce)
				if n > 0 {
					logger.Info("new tenants replicating", "tenants", n, "total", len(sup.Running()))
				}
			}
		}
	}

	<-ctx.Done()
	logger.Info("shutting down: final sync", "tenants", len(sup.Running()))
	// A second signal stops waiting for the final sync.
	hard := make(chan os.Signal, 1)
	signal.Notify(hard, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(hard)
	closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		select {
		case <-hard:
			logger.Error("second signal: stopping without waiting for the final sync")
			cancel()
		case <-closeCtx.Done():
		}
	}()
	if err := sup.Close(closeCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped cleanly")
	if len(failures) > 0 {
		// The others ran; still say that not everything did.
		return &exitError{code: 1, err: fmt.Errorf("%d database(s) were refused at start: see the errors above", len(failures))}
	}
	return nil
}

// refusal is a database that could not start, with its path.
type refusal struct {
	path string
	err  error
}

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

func failuresPaths(errs []error) []string {
	var out []string
	for _, e := range errs {
		if r, ok := e.(refusal); ok {
			out = append(out, r.path)
		}
	}
	return out
}

// startTargets starts every target not already replicating, refusing those
// that would share a prefix. With quiet non-nil, a path refused before is
// not logged again (rescans), and new refusals are added to it.
func startTargets(ctx context.Context, sup *replication.Supervisor, logger *slog.Logger, targets []fleet.Target, quiet map[string]bool) (int, []error) {
	refused := markTargetCollisions(targets)
	var started int
	var failures []error
	for _, t := range targets {
		if _, running := sup.Replicating(t.Path); running {
			continue
		}
		fail := func(err error) {
			failures = append(failures, refusal{path: t.Path, err: err})
			if quiet != nil {
				if quiet[t.Path] {
					return
				}
				quiet[t.Path] = true
			}
			logger.Error("cannot replicate", "db", t.Tenant.Name, "path", t.Path, "error", err)
		}
		if msg, ok := refused[t.Path]; ok {
			fail(fmt.Errorf("%s: %s", fleet.Printable(t.Path), msg))
			continue
		}
		if !t.Tenant.Verdict.Usable() {
			fail(fmt.Errorf("%s: %s", fleet.Printable(t.Path), t.Tenant.Note))
			continue
		}
		if t.Tenant.Verdict == fleet.VerdictFallback {
			logger.Warn("fallback tenant name", "db", t.Tenant.Name, "path", t.Path, "note", t.Tenant.Note)
		}
		if err := sup.Start(ctx, t); err != nil {
			fail(err)
			continue
		}
		if quiet != nil {
			delete(quiet, t.Path)
		}
		started++
	}
	return started, failures
}

// replicateTargets turns the flags into the databases to replicate.
func replicateTargets(cf connFlags, dsn, dbName string, retention time.Duration) ([]fleet.Target, error) {
	var cfg *fleet.Config
	var fromConfig []fleet.Target
	if cf.config != "" {
		c, ts, err := fleet.LoadConfig(cf.config)
		if err != nil {
			return nil, err
		}
		cfg, fromConfig = c, ts
	}
	if dsn == "" {
		if dbName != "" {
			return nil, errUsage("-db-name needs -dsn")
		}
		if cf.config == "" {
			return nil, errUsage("nothing to replicate: give -dsn PATH -bucket NAME, or -config FILE (see -h)")
		}
		if len(fromConfig) == 0 {
			return nil, fmt.Errorf("%s lists no databases: add dbs: entries, or give -dsn", cf.config)
		}
		if cf.bucket != "" || cf.endpoint != "" || cf.region != "" {
			return nil, errUsage("-bucket, -endpoint and -region apply to -dsn; with -config alone, each replica in the file names its own")
		}
		for i := range fromConfig {
			if retention > 0 && fromConfig[i].Retention == 0 {
				fromConfig[i].Retention = retention
			}
		}
		return fromConfig, nil
	}
	if len(fromConfig) > 0 {
		return nil, errUsage("%s lists databases and -dsn names another: give one or the other (the file's credentials apply to -dsn when it lists no dbs)", cf.config)
	}
	abs, err := filepath.Abs(dsn)
	if err != nil {
		return nil, err
	}
	naming := fleet.NameFor(abs, dbName)
	if naming.Verdict == fleet.VerdictInvalid {
		return nil, errUsage("-db-name: %s", naming.Note)
	}
	conn := cf.conn()
	if cfg != nil {
		conn.AccessKeyID, conn.SecretAccessKey = cfg.AccessKeyID, cfg.SecretAccessKey
	}
	if err := conn.Validate(); err != nil {
		return nil, errUsage("%v", err)
	}
	return []fleet.Target{{Path: abs, Tenant: naming, Conn: conn, Retention: retention}}, nil
}

// markTargetCollisions finds databases that would share a prefix in the
// same bucket, and returns a note for each refused path.
func markTargetCollisions(ts []fleet.Target) map[string]string {
	byBucket := map[string][]int{}
	for i, t := range ts {
		k := t.Conn.Endpoint + "\x00" + t.Conn.Bucket + "\x00" + strings.Trim(t.Conn.Prefix, "/")
		byBucket[k] = append(byBucket[k], i)
	}
	refused := map[string]string{}
	for _, idx := range byBucket {
		entries := make([]fleet.Entry, len(idx))
		for j, i := range idx {
			entries[j] = fleet.Entry{Path: ts[i].Path, Naming: ts[i].Tenant}
		}
		fleet.MarkCollisions(entries)
		for _, e := range entries {
			if e.Verdict == fleet.VerdictCollision {
				refused[e.Path] = e.Note
			}
		}
	}
	return refused
}

// logFlags choose the log format and level.
type logFlags struct {
	format  string
	level   string
	verbose bool
}

func (l *logFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&l.format, "log-format", "text", "log format: text (the seed's lines) or json")
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&l.verbose, "v", false, "also show Litestream's own info messages (compactions, snapshots)")
}

// loggers returns litefleet's logger and the one given to Litestream.
func (l *logFlags) loggers(w io.Writer) (*slog.Logger, *slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, nil, errUsage("-log-level %q: use debug, info, warn or error", l.level)
	}
	var h slog.Handler
	switch l.format {
	case "text":
		h = fleet.NewLineHandler(w, level)
	case "json":
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	default:
		return nil, nil, errUsage("-log-format %q: use text or json", l.format)
	}
	lib := h
	if !l.verbose {
		lib = fleet.QuietInfo(h)
	}
	return slog.New(h), slog.New(lib), nil
}
