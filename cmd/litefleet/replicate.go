package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/litefleet/litefleet/logline"
	"github.com/litefleet/litefleet/monitor"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/tenants"
)

const replicateHelp = `Usage:
  litefleet replicate -dsn PATH -bucket NAME [-db-name NAME] [flags]
  litefleet replicate -config litestream.yml [flags]
  litefleet replicate -dir DIR -bucket NAME [-recursive] [flags]

Replicates SQLite databases to S3 with Litestream, in this one process, each
into its tenant's prefix s3://BUCKET/PREFIX/TENANT/. The tenant is the GUID in
the file name, or -db-name; any other name falls back to "default" with a
warning. Every synced change is logged as
  new transaction: db=TENANT pre=TXID post=TXID elapsed=DURATION
and every change of a tenant's state as one line naming it (db=TENANT).

It runs until stopped and never gives up: a tenant whose S3 is unreachable,
whose claim is held by another live host, or whose file is missing or
unusable is retried, and its state says why.

Tenant states: starting, replicating, sleeping (idle for -sleep-after: closed
and watched, a write wakes it within a second or two), leased elsewhere
(another live host holds it), lease lost (retrying) (this host's heartbeat to
S3 is failing: uploads wait), sync failing (this host may write, but its last
sync failed: S3 lacks its latest changes; the reason and since when are in
/status, /healthz and ls), diverged, missing, failed, stopped.

Leases: each host writes a heartbeat to .litefleet/hosts/HOST/ in the bucket
every 10s; a tenant's claim (PREFIX/TENANT/lock.json) names its host and
lasts while that heartbeat is fresh. A host whose heartbeat is 40s old is
dead, and another host may take its tenants. A host that cannot write its
heartbeat for 25s stops uploading until it can.

Never overwriting history: before a tenant replicates, its local history is
compared with the replica's. If the replica is ahead, or the files differ,
the tenant is "diverged" and nothing is uploaded, unless the file is a
restored copy of the replica. Restore the replica over the file, or pass
-takeover TENANT to keep the replica's history under .litefleet/archive/ and
start a new history from the local file.

SIGINT or SIGTERM makes a final sync of every tenant, releases the claims
and exits 0, or 1 naming the tenants whose final sync failed. A second
signal stops without waiting.

-exec CMD runs the application as a child once replication has started
(CMD split into words as Litestream does, no shell; in a process group of
its own). SIGINT, SIGTERM or SIGHUP is forwarded to it, once; when it
exits, by itself or so, every tenant gets its final sync and replicate
exits with the application's code (128 + the signal that killed it); a
failed final sync makes a 0 a 1. A second signal kills the application.

-addr HOST:PORT (or addr: at the top of the -config file) serves, for
machines: /metrics (Prometheus text format: per tenant, labelled
tenant="NAME", its state, local and replicated TXIDs, lag, last sync,
upload errors and bytes; per process, S3 requests by operation and errors
by code), /healthz (200 when every tenant is replicating, sleeping or
leased elsewhere, else 503 naming each other tenant and its state) and
/status (JSON, one object per tenant). Bind it to loopback, or to a
network only your monitoring reaches: it needs no credentials and shows
none.

-verify-every D (or verify-every: in the -config file) verifies each
tenant this host replicates once per D, one at a time, spread evenly over
it, in the background (what litefleet verify proves, against this host's
own record of the tenant): the verdict and its time go into the host
record (ls -json, inspect), /metrics and /status, and a failed one is an
ERROR line naming the tenant. -verify-bandwidth RATE (or
verify-bandwidth: in the file) caps what those verifications download,
e.g. 5MB (bytes a second; KB, MB, KiB, MiB); default: no cap.

Credentials come from the -config file (access-key-id, secret-access-key) or
the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE).

Examples:
  litefleet replicate -dsn /data/12345678-1234-5678-9abc-123456789012.db -bucket saas-backups
    # -> s3://saas-backups/databases/12345678-1234-5678-9abc-123456789012/
  litefleet replicate -dsn /data/legacy-client.db -bucket saas-backups -db-name legacy-client-001
    # -> s3://saas-backups/databases/legacy-client-001/
  litefleet replicate -config litestream.yml
  litefleet replicate -dir /data -bucket saas-backups -host web-1
    # every tenant database in /data, each into its own prefix; new ones join at once
  litefleet replicate -dir /data -bucket saas-backups -addr 127.0.0.1:9090
    # and: curl -s 127.0.0.1:9090/healthz; curl -s 127.0.0.1:9090/metrics
  litefleet replicate -dir /data -bucket saas-backups -exec "/usr/local/bin/app -port 8080"
    # the container's entrypoint: the app runs, replicated, and its exit code is replicate's
`

// nameList is a repeatable flag of names.
type nameList []string

func (n *nameList) String() string     { return strings.Join(*n, ",") }
func (n *nameList) Set(v string) error { *n = append(*n, v); return nil }

// replicateFlags are replicate's flags, also used to build the terminal
// UI's replication source.
type replicateFlags struct {
	cf         connFlags
	dsn        string
	dbName     string
	dirs       dirList
	recursive  bool
	rescan     time.Duration
	retention  time.Duration
	host       string
	sleepAfter time.Duration
	takeover   nameList
	addr       string
	exec       string // replicate only: the application to run as a child
	// configAddr is the -config file's addr:, set by source.
	configAddr string
	// verifyEvery is -verify-every; configVerify the file's verify-every:.
	verifyEvery  time.Duration
	configVerify string
	// verifyBandwidth is -verify-bandwidth; configBandwidth the file's
	// verify-bandwidth:.
	verifyBandwidth rateFlag
	configBandwidth string
}

func (f *replicateFlags) register(fs *flag.FlagSet) {
	f.cf.register(fs)
	fs.StringVar(&f.dsn, "dsn", "", "path of the SQLite database to replicate")
	fs.StringVar(&f.dbName, "db-name", "", "tenant name when the file name is not a GUID (1-63 of a-z 0-9 . _ -)")
	fs.Var(&f.dirs, "dir", "replicate every database in this folder (repeatable); new ones join at once")
	fs.BoolVar(&f.recursive, "recursive", false, "with -dir: also scan subfolders")
	fs.DurationVar(&f.rescan, "rescan", 30*time.Second, "with -dir: how often to list the folders again, behind the folder watcher")
	fs.DurationVar(&f.retention, "retention", 0, "how long snapshots are kept in S3 (default 24h, Litestream's)")
	fs.StringVar(&f.host, "host", "", "this replicator's name in heartbeats and claims (default: the machine's host name)")
	fs.DurationVar(&f.sleepAfter, "sleep-after", time.Minute, "close a tenant after this long without a change; a write wakes it (0: never)")
	fs.Var(&f.takeover, "takeover", "replace TENANT's diverged replica with the local file, keeping the old history under .litefleet/archive/ (repeatable)")
	fs.StringVar(&f.addr, "addr", "", "serve /metrics, /healthz and /status on HOST:PORT, e.g. 127.0.0.1:9090 (default: the config's addr:, else none)")
}

func runReplicate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replicate", replicateHelp, stderr)
	var rf replicateFlags
	rf.register(fs)
	fs.DurationVar(&rf.verifyEvery, "verify-every", 0, "verify every tenant this host replicates once per period, one at a time, spread over it (see litefleet verify -h); default: the config's verify-every:, else never")
	fs.Var(&rf.verifyBandwidth, "verify-bandwidth", "cap what -verify-every downloads, in bytes a second (e.g. 5MB, 500KB); default: the config's verify-bandwidth:, else no cap")
	fs.StringVar(&rf.exec, "exec", "", "run this command (the application) as a child, as litestream replicate -exec does: its exit, or a signal forwarded to it, ends replication with a final sync, and replicate exits with its code")
	lf := logFlags{}
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage("replicate takes flags only, got %q: did you mean -dsn %s?", fs.Arg(0), fs.Arg(0))
	}
	if rf.rescan <= 0 {
		return errUsage("-rescan %s: give a positive duration", rf.rescan)
	}
	if rf.retention < 0 {
		return errUsage("-retention %s: give a positive duration, e.g. 24h or 168h", rf.retention)
	}
	for _, name := range rf.takeover {
		if err := tenants.ValidateName(name); err != nil {
			return errUsage("-takeover: %v", err)
		}
	}
	logger, libLogger, err := lf.loggers(stderr)
	if err != nil {
		return err
	}
	src, err := rf.source(false)
	if err != nil {
		return err
	}
	verifyEvery := rf.verifyEvery
	if rf.configVerify != "" && !rf.cf.given("verify-every") {
		if verifyEvery, err = time.ParseDuration(rf.configVerify); err != nil || verifyEvery < 0 {
			return errUsage("%s: verify-every: %q is not a period: write e.g. 24h", rf.cf.config, rf.configVerify)
		}
	}
	verifyBandwidth := int64(rf.verifyBandwidth)
	if rf.configBandwidth != "" && !rf.cf.given("verify-bandwidth") {
		if verifyBandwidth, err = parseRate(rf.configBandwidth); err != nil {
			return errUsage("%s: verify-bandwidth: %v", rf.cf.config, err)
		}
	}
	sleepAfter := rf.sleepAfter
	if sleepAfter == 0 {
		sleepAfter = -1 // never
	}
	// The histograms are fed whether or not -addr serves them: an
	// observation is a few atomic adds.
	rec := monitor.NewRecorder()
	eng, err := replication.New(replication.Options{
		Logger: logger, LibLogger: libLogger, Host: rf.host, Version: version,
		SleepAfter: sleepAfter, Rescan: rf.rescan, Takeover: rf.takeover, Observer: rec,
		VerifyEvery: verifyEvery, VerifyBandwidth: verifyBandwidth,
	}, src)
	if err != nil {
		return errUsage("%v", err)
	}
	// The monitor listens before the tenants start: a probe sees them
	// starting, and a port in use fails at once.
	var mon *monitor.Server
	if addr := cmp.Or(rf.addr, rf.configAddr); addr != "" {
		mon, err = monitor.Listen(addr, monitor.NewHandler(eng, monitor.Options{Logger: logger, Version: version, Recorder: rec, VerifyEvery: verifyEvery}))
		if err != nil {
			closeQuietly(eng)
			return err
		}
		logger.Info("monitor listening", "addr", mon.Addr(), "paths", "/metrics /healthz /status")
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = mon.Close(ctx)
		}()
	}
	if err := eng.Start(ctx); err != nil {
		closeQuietly(eng)
		var se *replication.StartError
		if errors.As(err, &se) {
			return &exitError{code: 1, err: err} // each tenant's reason is logged above, once
		}
		return err
	}
	st := eng.Status()
	logger.Info("ready", "tenants", len(st), "host", hostName(rf.host))

	// -exec: the application runs while its databases replicate; its
	// exit, or a signal forwarded to it and its exit, ends replication
	// with a final sync, and its exit code becomes replicate's.
	var child *app
	var childErr error
	if rf.exec != "" {
		signals := make(chan os.Signal, 2)
		signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		if child, err = startApp(rf.exec, stdout, stderr); err != nil {
			signal.Stop(signals)
			closeQuietly(eng)
			return err
		}
		childErr = child.wait(signals, logger)
		signal.Stop(signals)
	} else {
		<-ctx.Done()
	}
	logger.Info("shutting down: final sync", "tenants", len(st))
	// A second signal stops waiting for the final sync.
	hard := make(chan os.Signal, 1)
	signal.Notify(hard, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
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
	closeErr := eng.Close(closeCtx)
	if child != nil {
		code := exitCode(childErr)
		if closeErr != nil {
			// The application's own failure, if any, says more.
			return &exitError{code: max(code, 1), err: closeErr}
		}
		logger.Info("stopped cleanly", "code", code)
		if code != 0 {
			return &exitError{code: code} // the application said why
		}
		return nil
	}
	if closeErr != nil {
		return &exitError{code: 1, err: closeErr}
	}
	logger.Info("stopped cleanly")
	return nil
}

func closeQuietly(eng *replication.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = eng.Close(ctx)
}

func hostName(h string) string {
	if h != "" {
		return h
	}
	n, _ := os.Hostname()
	return n
}

// source turns the flags into the engine's source through
// replication.Build, the one way targets are resolved, for replicate and
// for the terminal UI (onRequest).
func (f *replicateFlags) source(onRequest bool) (replication.Source, error) {
	spec := replication.Spec{
		Config: f.cf.config, DSN: f.dsn, DBName: f.dbName, Dirs: f.dirs, Recursive: f.recursive,
		Retention: f.retention, Conn: f.cf.conn(), OnRequest: onRequest,
		ConnGiven: f.cf.bucket != "" || f.cf.endpoint != "" || f.cf.region != "",
	}
	if len(f.dirs) > 0 && f.dsn == "" && f.dbName == "" {
		conn, _, err := f.cf.resolveConn()
		if err != nil {
			return replication.Source{}, err
		}
		spec.DirConn = conn
	}
	src, set, err := replication.Build(spec)
	f.configAddr, f.configVerify, f.configBandwidth = set.Addr, set.VerifyEvery, set.VerifyBandwidth
	if replication.IsUsage(err) {
		return src, errUsage("%v", err)
	}
	return src, err
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
		h = logline.NewLineHandler(w, level)
	case "json":
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	default:
		return nil, nil, errUsage("-log-format %q: use text or json", l.format)
	}
	lib := h
	if !l.verbose {
		lib = logline.QuietInfo(h)
	}
	return slog.New(h), slog.New(lib), nil
}
