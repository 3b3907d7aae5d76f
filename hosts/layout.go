// Package hosts is litefleet's lease protocol in S3: each replicator proves
// it is alive with one heartbeat object per bucket, and each tenant's claim
// (its lock.json, in Litestream's lease format) names the host that holds
// it. A claim is held for as long as its host's heartbeat keeps changing,
// judged on each observer's own clock (see Observer), never by comparing
// clocks; a tenant of a dead host is taken over with a conditional write,
// so two takers never both win. Nothing is renewed per tenant.
//
// The protocol's objects live at the bucket root under .litefleet/, which
// is never a tenant (tenant names cannot start with '.'):
//
//	.litefleet/hosts/<host>/heartbeat.json   written every BeatEvery
//	.litefleet/hosts/<host>/record.json.gz   the host record, when it changes
//	.litefleet/hosts/<host>/record.delta.json.gz   what changed since it (a large fleet's)
//	.litefleet/archive/<prefix>/<tenant>.at-<time>/...  history kept by -takeover
package hosts

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

// The protocol's timings. A host beats every BeatEvery. It stops writing
// tenant data (it is fenced) once its last successful beat began FenceAfter
// ago, and other hosts take its tenants once they have seen its heartbeat
// unchanged for DeadAfter. Every write a host sends must finish before
// WriteMargin ahead of that takeover time, so a slow request cannot land
// after a new holder started writing.
const (
	BeatEvery   = 10 * time.Second
	FenceAfter  = 25 * time.Second
	DeadAfter   = 40 * time.Second
	WriteMargin = 3 * time.Second // slack for the rate of two machines' clocks and a request's flight
)

// HeartbeatKey is the key of a host's heartbeat.
func HeartbeatKey(host string) string { return HostsPrefix + host + "/heartbeat.json" }

// RecordKey is the key of a host's record.
func RecordKey(host string) string { return HostsPrefix + host + "/record.json.gz" }

// DeltaKey is the key of a host's delta record: the entries that changed
// since its record (see Record.Base).
func DeltaKey(host string) string { return HostsPrefix + host + "/record.delta.json.gz" }

// ArchivePrefix is where -takeover keeps a tenant's replaced history, as
// a tenant of its own named TENANT.at-TIME in the prefix
// .litefleet/archive/PREFIX: the same layout as the tenant's own prefix, so
// `litestream restore s3://BUCKET/<ArchivePrefix>` and `litefleet restore
// TENANT.at-TIME -prefix .litefleet/archive/PREFIX` restore it.
func ArchivePrefix(tenantPath string, at time.Time) string {
	return Root + "archive/" + strings.Trim(tenantPath, "/") + ".at-" + at.UTC().Format("20060102-150405")
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

// hostFromKey returns the host of a heartbeat key listed under HostsPrefix,
// or "" for any other key. Keys from S3 are untrusted.
func hostFromKey(key string) string {
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
