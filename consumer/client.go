package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/kretry/kretry/retrytopics"
)

// newClient builds the client of one Run: the config's and the user's options
// first, then the ones kretry's guarantees rest on, which override them.
func (s *session) newClient() (*kgo.Client, *clientMetrics, error) {
	c := s.c
	topics := make([]string, 0, len(c.ladders))
	for _, t := range c.cfg.Topics {
		topics = append(topics, t.Name)
	}
	opts := slices.Clone(c.clientOpts)
	opts = append(opts,
		kgo.WithLogger(kgoLogger{c.opts.logger.With("component", "kgo", "client", "consumer")}),
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	cm := &clientMetrics{}
	if reg := c.opts.registerer; reg != nil {
		cm.reg = &ownedRegisterer{reg: reg, log: c.opts.logger, owned: map[prometheus.Collector]struct{}{}}
		opts = append(opts, kgo.WithHooks(kprom.NewMetrics("kretry",
			kprom.Subsystem("client"),
			kprom.Registerer(cm.reg),
			kprom.WithStaticLabel(prometheus.Labels{"component": "consumer", "group": c.cfg.Group}),
		)))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("consumer: building the Kafka client: %w", err)
	}
	return cl, cm, nil
}

// provision creates the missing tier and DLQ topics (WithProvisioning).
func (s *session) provision(ctx context.Context) error {
	provs, err := s.c.cfg.Provisions()
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	applied, err := retrytopics.EnsureTopics(ctx, kadm.NewClient(s.cl), provs)
	if err != nil {
		return fmt.Errorf("consumer: provisioning the retry and DLQ topics: %w", err)
	}
	for _, a := range applied {
		s.log.Info("kretry topic provisioned", "topic", a.Topic, "action", string(a.Action),
			"partitions", a.WantPartitions, "retention", a.WantRetention.String(), "already_existed", a.AlreadyExisted)
	}
	return nil
}

// checkTopics checks that every main, tier and DLQ topic exists and returns
// the partition count of each tier and DLQ topic, which forwards use.
func (s *session) checkTopics(ctx context.Context) (map[string]int32, error) {
	var names []string
	add := func(t string) {
		if !slices.Contains(names, t) {
			names = append(names, t)
		}
	}
	for _, t := range s.c.cfg.Topics {
		l := s.c.ladders[t.Name]
		add(l.Topic())
		for _, step := range l.Steps() {
			add(step.Topic)
		}
		add(l.DLQ())
	}
	details, err := kadm.NewClient(s.cl).ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("consumer: checking topics %s: %w", strings.Join(names, ", "), err)
	}
	var missingMain, missing []string
	partitions := make(map[string]int32, len(names))
	for _, name := range names {
		d, ok := details[name]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			if _, isMain := s.c.ladders[name]; isMain {
				missingMain = append(missingMain, name)
			} else {
				missing = append(missing, name)
			}
		case d.Err != nil:
			return nil, fmt.Errorf("consumer: checking topic %s: %w", name, d.Err)
		case len(d.Partitions) == 0:
			return nil, fmt.Errorf("consumer: topic %s has no partitions", name)
		default:
			partitions[name] = int32(len(d.Partitions))
		}
	}
	var errs []error
	if len(missingMain) > 0 {
		errs = append(errs, fmt.Errorf("%s: create it, then run \"kretry topics apply -c %s\" for its retry and DLQ topics",
			notExist("main topic", missingMain), s.configFile()))
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("%s: run \"kretry topics apply -c %s\" to create the retry and DLQ topics",
			notExist("topic", missing), s.configFile()))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("consumer: %w", errors.Join(errs...))
	}
	return partitions, nil
}

func (s *session) configFile() string {
	if s.c.cfg.Source != "" {
		return s.c.cfg.Source
	}
	return "<config file>"
}

// notExist says that topics do not exist: "topic a does not exist" or
// "topics a, b do not exist".
func notExist(kind string, topics []string) string {
	if len(topics) == 1 {
		return kind + " " + topics[0] + " does not exist"
	}
	return kind + "s " + strings.Join(topics, ", ") + " do not exist"
}

// clientMetrics holds kprom's registrations of one Run's client.
type clientMetrics struct {
	reg *ownedRegisterer // nil: no Registerer
}

// release unregisters whatever kprom registered and the client has not
// unregistered on close.
func (m *clientMetrics) release() {
	if m == nil || m.reg == nil {
		return
	}
	m.reg.unregisterAll()
}

// ownedRegisterer lets kprom share the caller's Registerer with other kretry
// clients: kprom registers with MustRegister, which panics when a collector
// of the same name is already there (two consumers on one registry). Here
// that is logged and the collector is left out, and Unregister only removes
// collectors this registerer added, never another client's.
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
			r.log.Warn("kretry consumer: a franz-go client metric is not exported: the registerer already holds one of that name (another kretry client?)",
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

// kgoLogger passes franz-go's log lines to slog: its warnings and errors as
// such, its info lines (rebalances, connections) at debug level.
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
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	default:
		l = slog.LevelDebug
	}
	k.l.Log(context.Background(), l, msg, keyvals...)
}
