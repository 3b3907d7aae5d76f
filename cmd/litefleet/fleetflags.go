package main

import (
	"context"
	"flag"
	"strings"

	"github.com/litefleet/litefleet/conf"
	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
)

// dirList is a repeatable -dir flag.
type dirList []string

func (d *dirList) String() string     { return strings.Join(*d, ",") }
func (d *dirList) Set(v string) error { *d = append(*d, v); return nil }

// fleetFlags are the flags of the commands that look at the whole fleet:
// ls, inspect, tui. The S3 side needs a bucket; the local side, folders.
type fleetFlags struct {
	connFlags
	dirs      dirList
	recursive bool
	noCache   bool
	fullScan  bool
}

func (f *fleetFlags) register(fs *flag.FlagSet) {
	f.connFlags.register(fs)
	fs.Var(&f.dirs, "dir", "folder of tenant databases on this host (repeatable)")
	fs.BoolVar(&f.recursive, "recursive", false, "also scan subfolders of each -dir")
	fs.BoolVar(&f.noCache, "no-cache", false, "do not keep or use the last good S3 answer in the user cache folder")
	fs.BoolVar(&f.fullScan, "scan", false, "list every object of every tenant, even those a live host's record reports")
}

// resolveConn is the S3 connection for the whole fleet from flags and,
// with -config, the file: bucket, endpoint, region, prefix and path style
// from its first replica unless flags give them, and the host's
// credentials: the file's top-level keys, or for a file without them its
// first replica's. It also returns the file's databases, for discovery and
// for restoring by path.
func (f *connFlags) resolveConn() (s3conn.Conn, []tenants.Target, error) {
	return f.resolveTenantConn("")
}

// resolveTenantConn is resolveConn for one tenant: when the -config file
// lists a database of that tenant, its replica gives the place (unless
// flags do) and its own credentials (the replica's, the database's, then
// the top level's) are used for everything under the tenant's prefix.
func (f *connFlags) resolveTenantConn(tenant string) (s3conn.Conn, []tenants.Target, error) {
	conn := f.conn()
	if f.config == "" {
		return conn, nil, nil
	}
	cfg, targets, err := conf.LoadConfig(f.config)
	if err != nil {
		return conn, nil, err
	}
	conn.AccessKeyID, conn.SecretAccessKey = cfg.AccessKeyID, cfg.SecretAccessKey
	if len(targets) == 0 {
		return conn, nil, nil
	}
	place := targets[0].Conn
	own := false
	if tenant != "" {
		for _, t := range targets {
			if t.Tenant.Name == tenant {
				place, own = t.Conn, true
				break
			}
		}
	}
	if own || (conn.AccessKeyID == "" && place.AccessKeyID != "") {
		conn.AccessKeyID, conn.SecretAccessKey = place.AccessKeyID, place.SecretAccessKey
	}
	if !f.given("bucket") {
		conn.Bucket = place.Bucket
	}
	if !f.given("endpoint") {
		conn.Endpoint = place.Endpoint
	}
	if !f.given("region") {
		conn.Region = place.Region
	}
	if !f.given("prefix") {
		conn.Prefix = place.Prefix
	}
	if !f.given("force-path-style") {
		// The config's own setting (path style by default with its
		// endpoint), or path style for an endpoint given as a flag.
		conn.ForcePathStyle = place.ForcePathStyle || f.given("endpoint")
	}
	return conn, targets, nil
}

// ownCredentials gives conn the credentials of tenant's database in
// targets when that database replicates to conn's bucket and prefix: a
// tenant named by URL uses its own keys as it would by name.
func ownCredentials(conn s3conn.Conn, targets []tenants.Target, tenant string) s3conn.Conn {
	for _, t := range targets {
		if t.Tenant.Name == tenant && t.Conn.Bucket == conn.Bucket && t.Conn.TenantPath(tenant) == conn.TenantPath(tenant) {
			conn.AccessKeyID, conn.SecretAccessKey = t.Conn.AccessKeyID, t.Conn.SecretAccessKey
			break
		}
	}
	return conn
}

// newFleet builds the fleet the flags describe. Without -bucket the view has
// only the local side; without -dir or -config, only the S3 side.
func (f *fleetFlags) newFleet(ctx context.Context) (*fleet.Fleet, error) {
	conn, targets, err := f.resolveConn()
	if err != nil {
		return nil, err
	}
	fl := &fleet.Fleet{Conn: conn, Discover: tenants.DiscoverOptions{Recursive: f.recursive}}
	fl.Discover.AddTargets(targets)
	fl.Discover.Dirs = append(fl.Discover.Dirs, f.dirs...)
	fl.FullScan = f.fullScan
	if conn.Bucket == "" && len(fl.Discover.Dirs) == 0 {
		return nil, errUsage("nothing to show: give -bucket NAME (the S3 side), -dir DIR (this host's databases), or -config FILE")
	}
	if conn.Bucket != "" {
		if err := conn.Validate(); err != nil {
			return nil, errUsage("%v", err)
		}
		client, err := s3conn.NewClient(ctx, conn)
		if err != nil {
			return nil, err
		}
		fl.API = client
		if !f.noCache {
			fl.CacheFile = fleet.DefaultCacheFile(conn)
		}
	}
	return fl, nil
}
