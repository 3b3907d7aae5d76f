// Package layout is every key and path litefleet reads or writes, built
// and parsed in one place (issue 18): the tenant prefixes, the claims, the
// LTX files and the v0.3 layout under them, and litefleet's own objects.
//
// The protocol's objects live at the bucket root under .litefleet/, which
// is never a tenant (tenant names cannot start with '.'):
//
//	.litefleet/hosts/<host>/heartbeat.json   written every hosts.BeatEvery
//	.litefleet/hosts/<host>/record.json.gz   the host record, when it changes
//	.litefleet/hosts/<host>/record.delta.json.gz   what changed since it (a large fleet's)
//	.litefleet/archive/<prefix>/<tenant>.at-<time>/...  history kept by -takeover
//	.litefleet/archive/<prefix>/<tenant>.stray-<time>[-2]/...  stray files moved out
//
// This file owns that layout and the tenant paths: every key and key
// pattern (package policy's too) is built here.
package layout

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Root is the key prefix of every object litefleet keeps for itself.
const Root = ".litefleet/"

// HostsPrefix is where heartbeats and host records are listed.
const HostsPrefix = Root + "hosts/"

// HeartbeatKey is the key of a host's heartbeat.
func HeartbeatKey(host string) string { return HostsPrefix + host + "/heartbeat.json" }

// RecordKey is the key of a host's record.
func RecordKey(host string) string { return HostsPrefix + host + "/record.json.gz" }

// ArchiveRoot is the key prefix of every archive: histories kept by
// -takeover and stray files moved out of a tenant's prefix.
const ArchiveRoot = Root + "archive/"

// An archive is a tenant of its own, named after the tenant it archives:
// TENANT + mark + TIME (+ "-2" for strays after a gap). TIME is UTC to the
// second, so that a GUID's archive names stay tenant names (63 bytes).
const (
	takeoverMark  = ".at-"
	strayMark     = ".stray-"
	strayGapMark  = "-2"
	archiveLayout = "20060102-150405"
)

// TenantPath is the key prefix (without slashes at either end) of a
// tenant's replica in the folder prefix ("" for the bucket root). Every
// tenant key litefleet builds, and every policy pattern, starts here.
func TenantPath(prefix, tenant string) string {
	if p := strings.Trim(prefix, "/"); p != "" {
		return p + "/" + tenant
	}
	return tenant
}

// PrefixKey is the value two names must not share: S3 keys are
// case-sensitive, but GUIDs that differ only in case name the same tenant.
func PrefixKey(name string) string { return strings.ToLower(name) }

// ClaimFile is the claim's file name in a tenant's prefix: Litestream's
// lease file (the one its s3.Leaser writes, s3.DefaultLeasePath), so Litestream's tools and older readers still name the owner.
const ClaimFile = "lock.json"

// ClaimKey is the key of a tenant's claim.
func ClaimKey(tenantPath string) string { return strings.TrimSuffix(tenantPath, "/") + "/" + ClaimFile }

// LineageFile is the lineage record's file name in a tenant's prefix.
const LineageFile = "lineage.json"

// DeltaKey is the key of a host's delta record: the entries that changed
// since its record (see Record.Base).
func DeltaKey(host string) string { return HostsPrefix + host + "/record.delta.json.gz" }

// ArchivePrefix is where -takeover keeps a tenant's replaced history, as
// a tenant of its own named TENANT.at-TIME in the prefix
// .litefleet/archive/PREFIX: the same layout as the tenant's own prefix, so
// `litestream restore s3://BUCKET/<ArchivePrefix>` and `litefleet restore
// TENANT.at-TIME -prefix .litefleet/archive/PREFIX` restore it.
func ArchivePrefix(tenantPath string, at time.Time) string {
	return archivePrefix(tenantPath, takeoverMark, at)
}

// StrayArchivePrefix is where a tenant's holder moves stray files, with
// the files they continue, so that they restore on their own: a tenant of
// its own named TENANT.stray-TIME beside -takeover's archives.
func StrayArchivePrefix(tenantPath string, at time.Time) string {
	return archivePrefix(tenantPath, strayMark, at)
}

// StrayGapArchivePrefix is where strays after a gap go (they cannot
// restore): TENANT.stray-TIME-2.
func StrayGapArchivePrefix(tenantPath string, at time.Time) string {
	return StrayArchivePrefix(tenantPath, at) + strayGapMark
}

func archivePrefix(tenantPath, mark string, at time.Time) string {
	return ArchiveRoot + strings.Trim(tenantPath, "/") + mark + at.UTC().Format(archiveLayout)
}

// ArchivePatterns are the key patterns, in IAM's wildcards ('?' one
// character, '*' any run, '/' included), of every object litefleet may
// archive for the tenant at tenantPath, and of nothing of another
// tenant's: the time is one '?' per character, so the pattern of tenant a
// never reaches the archives of a tenant named a.at-….
func ArchivePatterns(tenantPath string) []string {
	base := ArchiveRoot + strings.Trim(tenantPath, "/")
	at := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '?'
		}
		return r
	}, archiveLayout)
	return []string{
		base + takeoverMark + at + "/*",
		base + strayMark + at + "/*",
		base + strayMark + at + strayGapMark + "/*",
	}
}

// ArchiveKind says what put an archive there.
type ArchiveKind int

const (
	ArchiveTakeover ArchiveKind = iota + 1 // -takeover's copy of a replaced history
	ArchiveStray                           // stray files and the files they continue
	ArchiveStrayGap                        // stray files after a gap
)

// Archive is an archive prefix read back from a key.
type Archive struct {
	TenantPath string // the archived tenant's path
	Kind       ArchiveKind
	At         time.Time
}

// Prefix is the archive's key prefix, as the builders make it.
func (a Archive) Prefix() string {
	switch a.Kind {
	case ArchiveStray:
		return StrayArchivePrefix(a.TenantPath, a.At)
	case ArchiveStrayGap:
		return StrayGapArchivePrefix(a.TenantPath, a.At)
	}
	return ArchivePrefix(a.TenantPath, a.At)
}

// ParseArchive reads the archive a key (untrusted: read from S3) lies in:
// the first folder below ArchiveRoot named TENANT.at-TIME,
// TENANT.stray-TIME or TENANT.stray-TIME-2. ok is false for any other key.
func ParseArchive(key string) (a Archive, ok bool) {
	rest, ok := strings.CutPrefix(key, ArchiveRoot)
	if !ok {
		return Archive{}, false
	}
	start := 0
	for {
		end := strings.IndexByte(rest[start:], '/')
		if end < 0 {
			end = len(rest)
		} else {
			end += start
		}
		if a, ok := parseArchiveName(rest[start:end]); ok {
			dir := strings.TrimSuffix(rest[:start], "/")
			a.TenantPath = TenantPath(dir, a.TenantPath)
			// Only what the builders make: no empty folders, no
			// slashes they would trim.
			p := a.Prefix()
			if !strings.HasPrefix(key, p) || (len(key) > len(p) && key[len(p)] != '/') {
				return Archive{}, false
			}
			return a, true
		}
		if end == len(rest) {
			return Archive{}, false
		}
		start = end + 1
	}
}

// parseArchiveName reads one folder name; TenantPath holds the bare name.
func parseArchiveName(name string) (Archive, bool) {
	kind := ArchiveTakeover
	if s, ok := strings.CutSuffix(name, strayGapMark); ok && strings.Contains(s, strayMark) {
		name, kind = s, ArchiveStrayGap
	}
	n := len(archiveLayout)
	if len(name) <= n {
		return Archive{}, false
	}
	at, err := time.Parse(archiveLayout, name[len(name)-n:])
	if err != nil || at.Format(archiveLayout) != name[len(name)-n:] {
		return Archive{}, false
	}
	head := name[:len(name)-n]
	tenant, ok := strings.CutSuffix(head, takeoverMark)
	switch {
	case ok && kind == ArchiveTakeover:
	case kind == ArchiveStrayGap:
		if tenant, ok = strings.CutSuffix(head, strayMark); !ok {
			return Archive{}, false
		}
	default:
		if tenant, ok = strings.CutSuffix(head, strayMark); !ok {
			return Archive{}, false
		}
		kind = ArchiveStray
	}
	if tenant == "" {
		return Archive{}, false
	}
	return Archive{TenantPath: tenant, Kind: kind, At: at}, true
}

var hostShape = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}$`)

// ValidateHost checks a host name given with -host or read from S3.
func ValidateHost(name string) error {
	switch {
	case name == "":
		return errors.New("host name is empty: give -host NAME")
	case !hostShape.MatchString(name):
		return fmt.Errorf("host name %q is not 1-63 letters, digits, '.', '_' or '-' (not starting with '.'): give -host NAME", name)
	}
	return nil
}

// HostFromKey returns the host of a heartbeat key listed under HostsPrefix,
// or "" for any other key. Keys from S3 are untrusted.
func HostFromKey(key string) string {
	rest, ok := strings.CutPrefix(key, HostsPrefix)
	if !ok {
		return ""
	}
	host, file, ok := strings.Cut(rest, "/")
	if !ok || file != "heartbeat.json" || ValidateHost(host) != nil {
		return ""
	}
	return host
}
