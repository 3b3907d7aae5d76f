// Package hosts is litefleet's lease protocol in S3: each replicator proves
// it is alive with one heartbeat object per bucket, and each tenant's claim
// (its lock.json, in Litestream's lease format) names the host that holds
// it. A claim is held for as long as its host's heartbeat keeps changing,
// judged on each observer's own clock (see Observer), never by comparing
// clocks; a tenant of a dead host is taken over with a conditional write,
// so two takers never both win. Nothing is renewed per tenant. The keys
// of its objects are package layout's.
package hosts

import "time"

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
