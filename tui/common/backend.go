package common

import (
	"context"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/verify"
)

// Backend is everything the terminal UI asks of the fleet. The UI calls it
// only from tea.Cmds, never from Update, so a slow S3 never freezes the
// screen; tests pass an in-process fake.
type Backend interface {
	// Context describes where the fleet lives, for the header and for the
	// command lines shown in the log pane. It must not do I/O.
	Context() Context
	// Refresh discovers local databases and lists the bucket.
	Refresh(ctx context.Context) (*fleet.View, error)
	// Inspect lists one tenant's restore points.
	Inspect(ctx context.Context, tenant string) (*s3browse.Tenant, error)
	// StartReplication replicates a local database in this process.
	StartReplication(ctx context.Context, l tenants.Local) error
	// StopReplication stops it after a final sync.
	StopReplication(ctx context.Context, l tenants.Local) error
	// Validate checks tenant names on both sides of the fleet.
	Validate(ctx context.Context) ([]Finding, error)
	// PlanRestore and Restore fill in the connection and the replication
	// guard themselves: the UI gives the tenant, point, output and force.
	PlanRestore(ctx context.Context, opt restore.Options) (*restore.Plan, error)
	Restore(ctx context.Context, opt restore.Options) (*restore.Result, error)
	// Verify verifies one tenant's replica as `litefleet verify TENANT`
	// does: a replica found wrong is a report with a failed verdict; an
	// error says the verification could not be made (no bucket, the
	// context ended). Its restored copy is a temporary file it removes.
	Verify(ctx context.Context, tenant string) (*verify.Report, error)
	// SetBucket and SetPrefix point the S3 side elsewhere and forget the
	// last answer of the old one.
	SetBucket(ctx context.Context, bucket string) error
	SetPrefix(ctx context.Context, prefix string) error
	// Close stops every replication started here, with a final sync.
	Close(ctx context.Context) error
}

// Context is where the fleet lives: shown in the header, and turned into
// flags for the equivalent command lines. It never holds credentials.
type Context struct {
	Bucket   string
	Endpoint string
	Prefix   string
	Region   string
	Profile  string   // AWS_PROFILE, when credentials come from one
	Dirs     []string // -dir folders
	Config   string   // -config file
	// Roots are every folder and file discovery looks at: the -dir
	// folders and the config's database paths.
	Roots []string
}

// Finding is one naming problem found by Validate, by the rule the
// validate command applies too (fleet.Findings).
type Finding = tenants.Finding

// Clock returns the time; tests fix it so that goldens do not move.
type Clock func() time.Time
