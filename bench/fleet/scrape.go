package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// scrape is one GET of a replicator's -addr endpoint: how long until the
// whole body was read, and its size.
type scrape struct {
	took  time.Duration
	bytes int64
	err   error
}

func (s scrape) String() string {
	if s.err != nil {
		return "failed: " + s.err.Error()
	}
	return fmt.Sprintf("%.2f s (%.1f MB)", s.took.Seconds(), float64(s.bytes)/1e6)
}

// scrapeOnce times a GET of http://addr/path, body included.
func scrapeOnce(ctx context.Context, addr, path string) scrape {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return scrape{err: err}
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return scrape{err: err}
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	s := scrape{took: time.Since(start), bytes: n, err: err}
	if err == nil && resp.StatusCode != http.StatusOK {
		s.err = fmt.Errorf("%s answered %s", path, resp.Status)
	}
	return s
}
