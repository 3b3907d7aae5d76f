// Command litefleet replicates, inspects and restores a fleet of per-tenant
// SQLite databases kept in S3 by Litestream, one prefix per tenant.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/litefleet/litefleet/s3conn"
)

const usage = `litefleet: one screen and one process for a fleet of per-tenant SQLite
databases replicated to S3 by Litestream, under s3://BUCKET/databases/<tenant>/.

Usage:
  litefleet [tui] [-dir DIR]... [-bucket NAME] [-config FILE] [-readonly] [-refresh 5s]
  litefleet replicate -dsn PATH -bucket NAME [-db-name NAME] [flags]
  litefleet replicate -config litestream.yml
  litefleet replicate -dir DIR -bucket NAME [-recursive]
  litefleet validate [-recursive] [-json] PATH...
  litefleet restore TENANT [-o PATH] [-timestamp T | -txid N] [-dry-run] [-force] [-json]
  litefleet restore -all -o DIR [-match GLOB] [-parallel N]
  litefleet ls [-dir DIR]... [-bucket NAME] [-sort name|lag|size|changed|status] [-json] [-scan]
  litefleet inspect TENANT [-bucket NAME] [-json]
  litefleet verify TENANT... | -all | -dir DIR | -config FILE [-txid N] [-window D] [-parallel N] [-json]
  litefleet policy TENANT -bucket NAME | -dir DIR | -config FILE | -abac [-role R] [-bucket-policy -principal T]

Commands:
  tui         the terminal UI over the fleet (the default, with no command)
  replicate   replicate databases to S3 with Litestream: one claim per tenant, idle ones asleep (-addr: metrics, health)
  validate    check the tenant names of database files and folders
  restore     restore a tenant, at any point in time, or the whole fleet
  ls          every tenant: local database beside S3 prefix, status and lag
  inspect     one tenant's restore points, generations and lease in S3
  verify      prove each tenant's replica restores to what its host held: chain, restore, identity, window
  policy      the S3 policies that confine each tenant to its own prefix

Run 'litefleet COMMAND -h' for a command's flags and examples.
`

// exitError carries a process exit code through error returns.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// errUsage marks a command-line mistake: exit code 2.
func errUsage(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if _, err := s3conn.AdoptCABundle(); err != nil {
		fmt.Fprintln(stderr, "litefleet:", err)
		return 1
	}
	if err := pprofFromEnv(); err != nil {
		fmt.Fprintln(stderr, "litefleet:", err)
		return 1
	}
	// SIGHUP (the terminal closed) stops a command as SIGTERM does: with a
	// final sync, not mid-way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	err := dispatch(ctx, args, stdout, stderr)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	// A refusal says everything in one line, whichever request met it:
	// where, with which key, and whose policy to read.
	if denied, ok := errors.AsType[*s3conn.AccessDeniedError](err); ok {
		err = denied
	}
	fmt.Fprintln(stderr, "litefleet:", err)
	return code
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return runTUI(ctx, nil, stdout, stderr)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "tui":
		return runTUI(ctx, rest, stdout, stderr)
	case "replicate":
		return runReplicate(ctx, rest, stdout, stderr)
	case "validate":
		return runValidate(ctx, rest, stdout, stderr)
	case "restore":
		return runRestore(ctx, rest, stdout, stderr)
	case "ls":
		return runLs(ctx, rest, stdout, stderr)
	case "inspect":
		return runInspect(ctx, rest, stdout, stderr)
	case "verify":
		return runVerify(ctx, rest, stdout, stderr)
	case "policy":
		return runPolicy(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	if strings.HasPrefix(cmd, "-") {
		// Flags and no command: the terminal UI.
		return runTUI(ctx, args, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return errUsage("unknown command %q", cmd)
}

// newFlagSet returns a flag set that prints help text and then its flags.
func newFlagSet(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, help)
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args. -h prints the command's help; a mistake (an
// unknown flag, a bad or negative value) is one line that points at -h,
// exit code 2, instead of the whole help.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err == nil {
		err = checkDurations(fs)
	}
	if err != nil {
		return errUsage("%v (see 'litefleet %s -h')", err, fs.Name())
	}
	return nil
}

// checkDurations refuses a negative value for any duration flag given:
// none of litefleet's (-retention, -rescan, -refresh) means anything below
// zero, and a config file refuses the same values.
func checkDurations(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok && err == nil {
			if d, ok := g.Get().(time.Duration); ok && d < 0 {
				err = fmt.Errorf("-%s %s is negative: give a duration such as 30s or 24h", f.Name, d)
			}
		}
	})
	return err
}

// checkedString is a string flag checked as it is parsed, so that a bad
// value fails like any bad flag value.
type checkedString struct {
	p     *string
	check func(string) error
}

func (c checkedString) String() string {
	if c.p == nil {
		return ""
	}
	return *c.p
}

func (c checkedString) Set(v string) error {
	if err := c.check(v); err != nil {
		return err
	}
	*c.p = v
	return nil
}

// parseInterspersed parses flags placed before and after the positional
// arguments (restore TENANT -o PATH), which flag.Parse alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil // everything after -- is positional
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// connFlags are the S3 connection flags every command shares.
type connFlags struct {
	bucket, prefix, region, endpoint, config string
	forcePathStyle                           bool
	fs                                       *flag.FlagSet // to tell a flag given from its default
}

// given reports whether the flag name was on the command line.
func (c *connFlags) given(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func (c *connFlags) register(fs *flag.FlagSet) {
	c.fs = fs
	fs.Var(checkedString{&c.bucket, s3conn.CheckBucketName}, "bucket", "S3 bucket holding the tenants' replicas")
	c.prefix = s3conn.DefaultPrefix
	fs.Var(checkedString{&c.prefix, s3conn.CheckPrefix}, "prefix", "folder in the bucket holding one prefix per tenant")
	fs.StringVar(&c.region, "region", "", "S3 region (default: AWS_REGION, or us-east-1 with -endpoint)")
	fs.StringVar(&c.endpoint, "endpoint", "", "custom S3 endpoint, e.g. http://127.0.0.1:7070 (path-style addressing)")
	fs.StringVar(&c.config, "config", "", "litestream.yml-style file: credentials and dbs")
	fs.BoolVar(&c.forcePathStyle, "force-path-style", false, "path-style addressing without -endpoint")
}

func (c *connFlags) conn() s3conn.Conn {
	return s3conn.Conn{
		Bucket:         c.bucket,
		Prefix:         c.prefix,
		Region:         c.region,
		Endpoint:       c.endpoint,
		ForcePathStyle: c.forcePathStyle || c.endpoint != "",
	}
}

// version is litefleet's version, written into heartbeats; the build can
// set it with -ldflags "-X main.version=...".
var version = "dev"
