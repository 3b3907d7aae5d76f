package replication

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/litefleet/litefleet/conf"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
)

// Spec is what a front end asks to replicate, in the terms of
// `litefleet replicate`'s flags. The command line and the terminal UI
// build their Source from it with Build, the one way targets are
// resolved, so `r` in the UI replicates exactly what replicate would.
type Spec struct {
	Config    string // -config: a litestream.yml, "" for none
	DSN       string // -dsn: one database
	DBName    string // -db-name: its tenant name, when the file name is no GUID
	Dirs      []string
	Recursive bool
	Retention time.Duration // 0: Litestream's default
	// Conn is the connection the flags give (-bucket, -endpoint,
	// -region, -prefix), for -dsn; ConnGiven says any of -bucket,
	// -endpoint, -region was given.
	Conn      s3conn.Conn
	ConnGiven bool
	// DirConn is the connection of -dir folders: Conn completed from the
	// config's first replica and keys (the front end's flag rules). Only
	// read with Dirs.
	DirConn s3conn.Conn
	// OnRequest: replicate only what is asked for later (the terminal UI);
	// nothing to replicate now is then no error.
	OnRequest bool
}

// UsageError is a Spec that asks for something that cannot be done: the
// front end's usage error (exit code 2 for the command line).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usage(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// IsUsage reports whether err is a *UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// FileSettings are the config file's settings of the process rather than
// of a tenant, for the front end: flags win over them.
type FileSettings struct {
	Addr        string // addr: the monitor's address
	VerifyEvery string // verify-every:, as written (the front end parses it)
	// VerifyBandwidth is verify-bandwidth:, as written.
	VerifyBandwidth string
}

// Build resolves a Spec into the engine's Source, and returns the
// config file's process settings.
func Build(s Spec) (src Source, set FileSettings, err error) {
	src = Source{OnRequest: s.OnRequest, Retention: s.Retention, Recursive: s.Recursive}
	var cfg *conf.Config
	var fromConfig []tenants.Target
	if s.Config != "" {
		c, ts, err := conf.LoadConfig(s.Config)
		if err != nil {
			return src, set, err
		}
		cfg, fromConfig, set = c, ts, FileSettings{Addr: c.Addr, VerifyEvery: c.VerifyEvery, VerifyBandwidth: c.VerifyBandwidth}
		src.HostKeys.AccessKeyID, src.HostKeys.SecretAccessKey = cfg.AccessKeyID, cfg.SecretAccessKey
	}
	if len(s.Dirs) > 0 {
		if s.DSN != "" || s.DBName != "" {
			return src, set, usage("-dir replicates a folder: give -dir or -dsn, not both")
		}
		if err := s.DirConn.Validate(); err != nil {
			return src, set, usage("%v", err)
		}
		src.Dirs, src.DirConn = s.Dirs, s.DirConn
		if s.OnRequest {
			src.Targets = fromConfig
		}
		return src, set, nil
	}
	if s.DSN == "" {
		if s.DBName != "" {
			return src, set, usage("-db-name needs -dsn")
		}
		if s.Config == "" {
			if s.OnRequest {
				return src, set, nil
			}
			return src, set, usage("nothing to replicate: give -dsn PATH -bucket NAME, -dir DIR -bucket NAME, or -config FILE (see -h)")
		}
		if len(fromConfig) == 0 && !s.OnRequest {
			return src, set, fmt.Errorf("%s lists no databases: add dbs: entries, or give -dsn or -dir", s.Config)
		}
		if !s.OnRequest && s.ConnGiven {
			return src, set, usage("-bucket, -endpoint and -region apply to -dsn and -dir; with -config alone, each replica in the file names its own")
		}
		for i := range fromConfig {
			if s.Retention > 0 && fromConfig[i].Retention == 0 {
				fromConfig[i].Retention = s.Retention
			}
		}
		src.Targets = fromConfig
		return src, set, nil
	}
	if len(fromConfig) > 0 {
		return src, set, usage("%s lists databases and -dsn names another: give one or the other (the file's credentials apply to -dsn when it lists no dbs)", s.Config)
	}
	abs, err := filepath.Abs(s.DSN)
	if err != nil {
		return src, set, err
	}
	naming := tenants.NameFor(abs, s.DBName)
	if naming.Verdict == tenants.VerdictInvalid {
		return src, set, usage("-db-name: %s", naming.Note)
	}
	conn := s.Conn
	if cfg != nil {
		conn.AccessKeyID, conn.SecretAccessKey = cfg.AccessKeyID, cfg.SecretAccessKey
	}
	if err := conn.Validate(); err != nil {
		return src, set, usage("%v", err)
	}
	src.Targets = []tenants.Target{{Path: abs, Tenant: naming, Conn: conn, Retention: s.Retention}}
	return src, set, nil
}
