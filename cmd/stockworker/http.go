package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"golang.org/x/sync/errgroup"
)

// endpoint is one HTTP listener of the worker: the setting that names its
// address, the address, and what it serves.
type endpoint struct {
	setting, addr string
	handler       http.Handler
}

// serveHTTP listens on every endpoint — all or none: a listen that fails
// closes the ones opened before — and serves each in grp, GET and HEAD only
// (getOnly), until ctx is done; then each server shuts down within 5s.
func serveHTTP(ctx context.Context, grp *errgroup.Group, endpoints []endpoint) error {
	listeners := make([]net.Listener, 0, len(endpoints))
	for _, e := range endpoints {
		ln, err := net.Listen("tcp", e.addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("listen on %s %s: %w", e.setting, e.addr, err)
		}
		listeners = append(listeners, ln)
	}
	for i, e := range endpoints {
		srv := &http.Server{Handler: getOnly(e.handler), ReadHeaderTimeout: 5 * time.Second}
		ln := listeners[i]
		grp.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http on %s: %w", e.setting, err)
			}
			return nil
		})
		grp.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	return nil
}

// getOnly serves GET and HEAD with h; any other method gets 405 Method Not
// Allowed with an Allow header, before h sees it. Nothing the worker serves
// changes state, so nothing else is ever needed.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: GET or HEAD only", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// pprofHandler serves net/http/pprof under /debug/pprof/ on a mux of its own:
// PPROF_ADDR only, never HTTP_ADDR (whose mux has no such route, and
// http.DefaultServeMux, where the pprof package registers itself, is never
// served).
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
