package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// DefaultParallel is how many tenants All restores at once
// when not told: restores wait on S3 more than on the CPU.
const DefaultParallel = 8

// AllOptions says which tenants to restore and where.
type AllOptions struct {
	Conn s3conn.Conn
	// OutputDir receives one <tenant>.db per tenant; it is created if
	// missing, in a parent folder that exists.
	OutputDir string
	// Match is a glob (path.Match) on tenant names; empty matches all.
	Match string
	// Parallel bounds how many tenants are restored at once;
	// DefaultParallel when < 1.
	Parallel int
	// Timestamp restores every tenant to its state at that time; zero: latest.
	Timestamp time.Time
	Source    string
	Force     bool
	DryRun    bool
	// IsReplicating: see Options.
	IsReplicating func(path string) (tenant string, ok bool)
	// IfDBNotExists leaves a tenant whose file exists in OutputDir as it
	// is (EventExists), and IfReplicaExists a tenant with nothing to
	// restore from (EventNoBackup), instead of failing either: litestream
	// restore's flags of the same names, per tenant.
	IfDBNotExists, IfReplicaExists bool
}

// Event kinds.
const (
	EventListed   = "listed"    // the tenants to restore are known (Total)
	EventSkipped  = "skipped"   // a prefix whose name cannot be a tenant
	EventStarted  = "started"   // a tenant's restore began
	EventProgress = "progress"  // bytes downloaded for a tenant
	EventRestored = "restored"  // a tenant was restored (Result)
	EventPlanned  = "planned"   // dry run: a tenant's plan (Plan)
	EventFailed   = "failed"    // a tenant could not be restored (Err)
	EventExists   = "exists"    // IfDBNotExists: the tenant's file exists, left as it is
	EventNoBackup = "no backup" // IfReplicaExists: nothing to restore the tenant from
)

// Event reports one step of All.
type Event struct {
	Kind string `json:"kind"`
	// Tenant is the name as listed: print it with Printable.
	Tenant string  `json:"tenant"`
	Output string  `json:"output,omitempty"`
	Done   int64   `json:"done,omitempty"`  // EventProgress: bytes
	Total  int64   `json:"total,omitempty"` // EventProgress: bytes; EventListed: tenants
	Result *Result `json:"result,omitempty"`
	Plan   *Plan   `json:"plan,omitempty"`
	Err    error   `json:"-"`
	Error  string  `json:"error,omitempty"`
	// Reason says why a prefix was skipped.
	Reason string `json:"reason,omitempty"`
}

// Failure is one tenant that was not restored.
type Failure struct {
	Tenant string `json:"tenant"`
	Error  string `json:"error"`
}

// Summary is the outcome of All.
type Summary struct {
	Tenants    int       `json:"tenants"` // matched and valid
	Restored   int       `json:"restored"`
	Planned    int       `json:"planned,omitempty"` // dry run
	Refused    int       `json:"refused,omitempty"` // dry run: plans with a Refusal
	Failed     int       `json:"failed"`
	Skipped    int       `json:"skipped"`             // invalid names
	Existing   int       `json:"existing,omitempty"`  // IfDBNotExists: files left as they were
	NoBackup   int       `json:"no_backup,omitempty"` // IfReplicaExists: tenants with nothing to restore
	Downloaded int64     `json:"downloaded"`
	DurationMS int64     `json:"duration_ms"`
	Failures   []Failure `json:"failures,omitempty"`
}

// All restores every tenant under opt.Conn (or those matching
// opt.Match) into opt.OutputDir, at most opt.Parallel at a time. Each
// tenant is restored as Restore does; a failure leaves the others going,
// and the tenants that succeeded stay restored. onEvent (which may be nil)
// hears of every step; its calls never overlap. The error is for what
// stops the whole run (the listing failed, ctx was cancelled); per-tenant
// failures are counted in the summary.
func All(ctx context.Context, client s3conn.API, opt AllOptions, onEvent func(Event)) (Summary, error) {
	start := time.Now()
	var sum Summary
	if opt.Match != "" {
		if _, err := path.Match(opt.Match, ""); err != nil {
			return sum, fmt.Errorf("-match %q: %w", opt.Match, err)
		}
	}
	if opt.OutputDir == "" {
		return sum, errors.New("no output folder: give -o DIR")
	}
	dir, err := filepath.Abs(opt.OutputDir)
	if err != nil {
		return sum, err
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return sum, fmt.Errorf("%s is a file: -o with -all names a folder", untrusted.Printable(dir))
	}
	prefixes, err := s3browse.ListTenants(ctx, client, opt.Conn)
	if err != nil {
		return sum, err
	}

	var mu sync.Mutex
	emit := func(ev Event) {
		if ev.Err != nil {
			ev.Error = ev.Err.Error()
		}
		mu.Lock()
		defer mu.Unlock()
		switch ev.Kind {
		case EventSkipped:
			sum.Skipped++
		case EventRestored:
			sum.Restored++
			sum.Downloaded += ev.Result.Downloaded
		case EventPlanned:
			sum.Planned++
			if ev.Plan.Refusal != "" {
				sum.Refused++
			}
		case EventFailed:
			sum.Failed++
			sum.Failures = append(sum.Failures, Failure{Tenant: ev.Tenant, Error: ev.Error})
		case EventExists:
			sum.Existing++
		case EventNoBackup:
			sum.NoBackup++
		}
		if onEvent != nil {
			onEvent(ev)
		}
	}

	// Names from the bucket are untrusted: only those that are tenant
	// names by litefleet's rules become file names.
	var names []string
	byKey := map[string][]string{}
	for _, p := range prefixes {
		if opt.Match != "" {
			if ok, _ := path.Match(opt.Match, p.Name); !ok {
				continue
			}
		}
		if err := tenants.ValidateName(p.Name); err != nil {
			emit(Event{Kind: EventSkipped, Tenant: p.Name, Reason: err.Error()})
			continue
		}
		names = append(names, p.Name)
		byKey[layout.PrefixKey(p.Name)] = append(byKey[layout.PrefixKey(p.Name)], p.Name)
	}
	sum.Tenants = len(names)
	emit(Event{Kind: EventListed, Total: int64(len(names))})
	if !opt.DryRun && len(names) > 0 {
		// The folder itself, not a tree: a mistyped parent is an error.
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return sum, fmt.Errorf("create %s: %w: -o names the folder to fill, in a folder that exists", untrusted.Printable(dir), err)
		}
	}

	parallel := opt.Parallel
	if parallel < 1 {
		parallel = DefaultParallel
	}
	var g errgroup.Group
	g.SetLimit(parallel)
	for _, name := range names {
		out := filepath.Join(dir, name+".db")
		if others := byKey[layout.PrefixKey(name)]; len(others) > 1 {
			// Two prefixes that differ only in case are one tenant to
			// litefleet; restoring both would pick one at random.
			emit(Event{Kind: EventFailed, Tenant: name, Output: out,
				Err: fmt.Errorf("tenant %s: prefixes %q differ only in case: restore each one alone with -o", untrusted.Printable(name), others)})
			continue
		}
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if opt.IfDBNotExists {
				// As litestream checks it: anything at the path but
				// "does not exist" counts as a file there.
				if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
					emit(Event{Kind: EventExists, Tenant: name, Output: out})
					return nil
				}
			}
			noBackup := func(err error) bool {
				if opt.IfReplicaExists && errors.Is(err, ErrNoBackup) {
					emit(Event{Kind: EventNoBackup, Tenant: name, Output: out, Err: err})
					return true
				}
				return false
			}
			ropt := Options{
				Conn: opt.Conn, Tenant: name, Output: out, Timestamp: opt.Timestamp,
				Source: opt.Source, Force: opt.Force, DryRun: opt.DryRun, IsReplicating: opt.IsReplicating,
				dirLater: true,
			}
			if opt.DryRun {
				p, err := NewPlan(ctx, client, ropt)
				if noBackup(err) {
					return nil
				}
				if err != nil {
					emit(Event{Kind: EventFailed, Tenant: name, Output: out, Err: err})
				} else {
					emit(Event{Kind: EventPlanned, Tenant: name, Output: out, Plan: p})
				}
				return nil
			}
			emit(Event{Kind: EventStarted, Tenant: name, Output: out})
			ropt.Progress = func(done, total int64) {
				emit(Event{Kind: EventProgress, Tenant: name, Output: out, Done: done, Total: total})
			}
			res, err := Run(ctx, client, ropt)
			if noBackup(err) {
				return nil
			}
			if err != nil {
				emit(Event{Kind: EventFailed, Tenant: name, Output: out, Err: err})
				return nil
			}
			emit(Event{Kind: EventRestored, Tenant: name, Output: out, Result: res})
			return nil
		})
	}
	_ = g.Wait() // workers report through emit and never fail the group
	sum.DurationMS = time.Since(start).Milliseconds()
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("restore of the fleet cancelled after %d of %d tenants: %w", sum.Restored+sum.Failed, sum.Tenants, err)
	}
	return sum, nil
}
