package replication

import (
	"log/slog"
	"sync"
)

// tenantLogs maps Litestream's db=FILE attribute to db=TENANT, per store:
// Litestream names a database by its file's base name, which only the
// supervisor can turn into the tenant an operator searches for.
type tenantLogs struct {
	next  slog.Handler
	mu    sync.Mutex
	names map[*storeGroup]map[string]string
}

func newTenantLogs(next slog.Handler) *tenantLogs {
	return &tenantLogs{next: next, names: map[*storeGroup]map[string]string{}}
}

func (t *tenantLogs) name(g *storeGroup, base, tenant string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.names[g] == nil {
		t.names[g] = map[string]string{}
	}
	t.names[g][base] = tenant
}

func (t *tenantLogs) forget(g *storeGroup, base string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.names[g], base)
}

func (t *tenantLogs) lookup(g *storeGroup, base string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.names[g][base]
	return n, ok
}

func (t *tenantLogs) handlerFor(g *storeGroup) slog.Handler {
	return &tenantHandler{Handler: t.next, logs: t, group: g}
}

type tenantHandler struct {
	slog.Handler
	logs  *tenantLogs
	group *storeGroup
}

func (h *tenantHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		if a.Key == "db" && a.Value.Kind() == slog.KindString {
			if name, ok := h.logs.lookup(h.group, a.Value.String()); ok {
				a = slog.String("db", name)
			}
		}
		out[i] = a
	}
	return &tenantHandler{Handler: h.Handler.WithAttrs(out), logs: h.logs, group: h.group}
}

func (h *tenantHandler) WithGroup(name string) slog.Handler {
	return &tenantHandler{Handler: h.Handler.WithGroup(name), logs: h.logs, group: h.group}
}
