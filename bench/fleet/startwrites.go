package main

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"time"
)

// startWrites are the writers that write while the fleet starts: the
// tenants a first-come start order reaches last (by path), each
// committing about once a second for -write-for, from -start-delay after
// the replicator started. Their commits must reach S3 as soon as an
// awake tenant's, however many idle tenants wait for a first snapshot.
type startWrites struct {
	tenants []string
	log     commitLog
	done    chan struct{}
}

// lastByName returns the k tenants of pool that sort last.
func lastByName(pool []string, k int) []string {
	s := slices.Clone(pool)
	slices.Sort(s)
	return s[len(s)-min(k, len(s)):]
}

// startWriting starts the writers in the background; done closes when
// they stopped.
func (b *bench) startWriting(ctx context.Context, dbs string, tenants []string) *startWrites {
	sw := &startWrites{tenants: tenants, done: make(chan struct{})}
	go func() {
		defer close(sw.done)
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.startDelay):
		}
		conns := make([]*sql.DB, len(tenants))
		defer func() {
			for _, db := range conns {
				if db != nil {
					db.Close()
				}
			}
		}()
		for i, t := range tenants {
			db, err := openDB(dbPath(dbs, t))
			if err != nil {
				sw.log.fail(err)
				return
			}
			conns[i] = db
		}
		wctx, cancel := context.WithTimeout(ctx, b.writeFor)
		defer cancel()
		var wg sync.WaitGroup
		for i, t := range tenants {
			wg.Go(func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					write(wctx, conns[i], t, &sw.log)
					select {
					case <-wctx.Done():
						return
					case <-tick.C:
					}
				}
			})
		}
		wg.Wait()
	}()
	return sw
}
