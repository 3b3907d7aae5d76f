package tenants

import (
	"time"

	"github.com/litefleet/litefleet/s3conn"
)

// Target is one database to replicate, with everything resolved: its tenant
// name, where its replica lives and how to reach it.
type Target struct {
	Path      string
	Tenant    Naming
	Conn      s3conn.Conn
	Retention time.Duration // 0: Litestream's default
	// Line is the config line that declared it, 0 for flags.
	Line int
}
