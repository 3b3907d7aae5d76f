package main

import (
	"context"
	"flag"
	"strings"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3browse"
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
}

func (f *fleetFlags) register(fs *flag.FlagSet) {
	f.connFlags.register(fs)
	fs.Var(&f.dirs, "dir", "folder of tenant databases on this host (repeatable)")
	fs.BoolVar(&f.recursive, "recursive", false, "also scan subfolders of each -dir")
	fs.BoolVar(&f.noCache, "no-cache", false, "do not keep or use the last good S3 answer in the user cache folder")
}

// resolveConn is the S3 connection from flags and, with -config, the file:
// credentials from its top level, and bucket, endpoint, region and prefix
// from its first replica unless flags give them. It also returns the
// config's database paths and explicit names, for local discovery.
func (f *connFlags) resolveConn() (s3browse.Conn, []string, map[string]string, error) {
	conn := f.conn()
	if f.config == "" {
		return conn, nil, nil, nil
	}
	cfg, targets, err := fleet.LoadConfig(f.config)
	if err != nil {
		return conn, nil, nil, err
	}
	conn.AccessKeyID, conn.SecretAccessKey = cfg.AccessKeyID, cfg.SecretAccessKey
	var paths []string
	names := map[string]string{}
	for i, t := range targets {
		paths = append(paths, t.Path)
		if t.Tenant.Verdict == fleet.VerdictExplicit {
			names[t.Path] = t.Tenant.Name
		}
		if i > 0 {
			continue
		}
		if conn.Bucket == "" {
			conn.Bucket = t.Conn.Bucket
		}
		if conn.Endpoint == "" {
			conn.Endpoint = t.Conn.Endpoint
			conn.ForcePathStyle = conn.ForcePathStyle || t.Conn.ForcePathStyle
		}
		if conn.Region == "" {
			conn.Region = t.Conn.Region
		}
		if f.prefix == s3browse.DefaultPrefix && t.Conn.Prefix != "" {
			conn.Prefix = t.Conn.Prefix
		}
		if t.Conn.AccessKeyID != "" {
			conn.AccessKeyID, conn.SecretAccessKey = t.Conn.AccessKeyID, t.Conn.SecretAccessKey
		}
	}
	return conn, paths, names, nil
}

// newFleet builds the fleet the flags describe. Without -bucket the view has
// only the local side; without -dir or -config, only the S3 side.
func (f *fleetFlags) newFleet(ctx context.Context) (*fleet.Fleet, error) {
	conn, paths, names, err := f.resolveConn()
	if err != nil {
		return nil, err
	}
	fl := &fleet.Fleet{
		Conn:     conn,
		Discover: fleet.DiscoverOptions{Dirs: append(paths, f.dirs...), Recursive: f.recursive, Names: names},
	}
	if conn.Bucket == "" && len(fl.Discover.Dirs) == 0 {
		return nil, errUsage("nothing to show: give -bucket NAME (the S3 side), -dir DIR (this host's databases), or -config FILE")
	}
	if conn.Bucket != "" {
		if err := conn.Validate(); err != nil {
			return nil, errUsage("%v", err)
		}
		client, err := s3browse.NewClient(ctx, conn)
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
