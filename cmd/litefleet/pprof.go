package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// envPprof names a loopback address where litefleet serves net/http/pprof:
// a debugging aid for measuring a running replicator (goroutines, heap),
// used by bench/fleet. Loopback only, as profiles show file paths and
// tenant names.
const envPprof = "LITEFLEET_PPROF"

// startPprof serves the profiles on addr and returns the address it
// listens on.
func startPprof(addr string) (net.Addr, error) {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return nil, fmt.Errorf("%s=%q: give a loopback address and port, e.g. 127.0.0.1:6060, or unset it", envPprof, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: pick a free port, or unset it", envPprof, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // for the life of the process
	return ln.Addr(), nil
}

// pprofFromEnv starts the profile server when LITEFLEET_PPROF is set.
func pprofFromEnv() error {
	addr := os.Getenv(envPprof)
	if addr == "" {
		return nil
	}
	_, err := startPprof(addr)
	return err
}
