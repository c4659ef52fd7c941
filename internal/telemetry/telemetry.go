// Package telemetry connects franz-go clients to kretry's logging and metrics:
// franz-go's log lines go to a *slog.Logger, and its client metrics (the kprom
// plugin) go to the caller's prometheus.Registerer, shared safely by several
// kretry clients.
package telemetry

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// Logger passes franz-go's log lines to l: its warnings and errors as such, its
// info lines (rebalances, connections) at debug level.
func Logger(l *slog.Logger) kgo.Logger { return kgoLogger{l} }

type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	switch ctx := context.Background(); {
	case k.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelInfo
	case k.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case k.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	}
	k.l.Log(context.Background(), l, msg, keyvals...)
}

// ClientMetrics holds the kprom registrations of one franz-go client.
type ClientMetrics struct {
	reg *ownedRegisterer
}

// NewClientMetrics returns the kgo option that exports a client's metrics as
// kretry_client_* with the given constant labels (e.g. component=relay) on
// reg, and the ClientMetrics whose Release removes them again. A nil reg gives
// no option (nil) and a no-op Release.
//
// kprom registers with MustRegister, which panics when a collector of the same
// name and labels is already there (two consumers of one group on one
// registry). Here that is logged and that collector left out, and Release only
// removes what this client added, never another client's.
func NewClientMetrics(reg prometheus.Registerer, log *slog.Logger, labels prometheus.Labels) (kgo.Opt, *ClientMetrics) {
	if reg == nil {
		return nil, &ClientMetrics{}
	}
	or := &ownedRegisterer{reg: reg, log: log, owned: map[prometheus.Collector]struct{}{}}
	opt := kgo.WithHooks(kprom.NewMetrics("kretry",
		kprom.Subsystem("client"),
		kprom.Registerer(or),
		kprom.WithStaticLabel(labels),
	))
	return opt, &ClientMetrics{reg: or}
}

// Release unregisters whatever kprom registered and the client has not
// unregistered on close. Safe on a nil or disabled ClientMetrics.
func (m *ClientMetrics) Release() {
	if m == nil || m.reg == nil {
		return
	}
	m.reg.unregisterAll()
}

type ownedRegisterer struct {
	reg prometheus.Registerer
	log *slog.Logger

	mu    sync.Mutex
	owned map[prometheus.Collector]struct{}
}

func (r *ownedRegisterer) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.owned[c] = struct{}{}
	r.mu.Unlock()
	return nil
}

func (r *ownedRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			r.log.Warn("kretry: a franz-go client metric is not exported: the registerer already holds one of that name and labels (another kretry client?)",
				"error", err)
		}
	}
}

func (r *ownedRegisterer) Unregister(c prometheus.Collector) bool {
	r.mu.Lock()
	_, ok := r.owned[c]
	delete(r.owned, c)
	r.mu.Unlock()
	return ok && r.reg.Unregister(c)
}

func (r *ownedRegisterer) unregisterAll() {
	r.mu.Lock()
	owned := r.owned
	r.owned = map[prometheus.Collector]struct{}{}
	r.mu.Unlock()
	for c := range owned {
		r.reg.Unregister(c)
	}
}
