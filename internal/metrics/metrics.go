// Package metrics holds kretry's Prometheus collectors (docs/design.md §10), shared by
// the consumer and the relay. Collectors go on the caller's Registerer, never the
// global one; a second New on the same Registerer reuses what is there, so
// several consumers and relays can share one registry.
package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace prefixes every kretry metric.
const Namespace = "kretry"

// Outcome values of the outcome label of kretry_records_total.
const (
	OutcomeOK           = "ok"
	OutcomeRetried      = "retried"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeDiscarded    = "discarded"
	OutcomeSkipped      = "skipped"
)

// Result values of the result label of kretry_dead_letter_hook_calls_total.
const (
	HookOK      = "ok"
	HookError   = "error"
	HookPanic   = "panic"
	HookDropped = "dropped"
)

// TierDLQ is the tier label of kretry_forwarded_total for a forward to the DLQ.
const TierDLQ = "dlq"

// Metrics is the set of kretry collectors. Its zero value is not usable; a
// Metrics from New with a nil Registerer works but is exported nowhere.
type Metrics struct {
	Records          *prometheus.CounterVec   // topic, outcome
	HandlerDuration  *HandlerDurationVec      // topic
	Forwarded        *prometheus.CounterVec   // topic, tier
	Refed            *prometheus.CounterVec   // topic, tier
	RefeedLateness   *prometheus.HistogramVec // tier
	PausedPartitions *prometheus.GaugeVec     // tier
	HeldBytes        *prometheus.GaugeVec     // tier
	DeadLettered     *prometheus.CounterVec   // topic, reason, dlq
	UntrustedDueAt   *prometheus.CounterVec   // topic, tier
	Reparked         *prometheus.CounterVec   // topic, tier
	TooLarge         *prometheus.CounterVec   // topic

	DuplicateCopiesSkipped *prometheus.CounterVec // topic, tier
	DeadLetterHook         *prometheus.CounterVec // topic, result
	CircuitState           *prometheus.GaugeVec   // topic
	CircuitOpened          *prometheus.CounterVec // topic
	FencedTransactions     *prometheus.CounterVec // component, group
	TransactionsFailed     *prometheus.CounterVec // component, group

	Ladder *LadderVec // kretry_tier_delay_seconds and kretry_tier_attempts: group, topic, tier
	Health *HealthVec // kretry_live and kretry_ready: component, group
}

// New builds the collectors and registers them on reg. A nil reg disables
// export. When reg already holds a kretry collector of the same shape, the
// existing one is reused, so counts from several users add up.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "records_total",
			Help: "Records the main consumer finished, by outcome.",
		}, []string{"topic", "outcome"}),
		HandlerDuration: newHandlerDurationVec(),
		Forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "forwarded_total",
			Help: "Records forwarded to a retry tier or the DLQ (tier=dlq), acknowledged by the broker.",
		}, []string{"topic", "tier"}),
		Refed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "refed_total",
			Help: "Records the relay re-fed from a retry tier to their main topic.",
		}, []string{"topic", "tier"}),
		RefeedLateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "refeed_lateness_seconds",
			Help:    "Re-feed time minus due time.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"tier"}),
		PausedPartitions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "paused_partitions",
			Help: "Retry-tier partitions the relay keeps paused: until their records are due, or while it holds many of them.",
		}, []string{"tier"}),
		HeldBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "held_bytes",
			Help: "Keys, values and headers of the retry-tier records the relay holds in memory until they are due; bounded by relay.hold_bytes.",
		}, []string{"tier"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "dead_lettered_total",
			Help: "Records written to a DLQ, by reason and DLQ: dlq, or the name of the DLQ route (dlq_routes) they went to.",
		}, []string{"topic", "reason", "dlq"}),
		UntrustedDueAt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "untrusted_due_at_total",
			Help: "Tier records the relay re-fed at their last failure plus their tier's delay, because their kretry-due-at was later than that.",
		}, []string{"topic", "tier"}),
		Reparked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "reparked_total",
			Help: "Tier records the relay wrote again to their own tier: held their tier's delay and not yet due (a RetryAfter longer than the delay).",
		}, []string{"topic", "tier"}),
		TooLarge: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "too_large_total",
			Help: "Records too large to forward with kretry's headers, written to the DLQ without their value (reason too-large).",
		}, []string{"topic"}),
		DuplicateCopiesSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "duplicate_copies_skipped_total",
			Help: "Tier records the relay committed past without a re-feed: copies of an attempt it re-fed from an earlier offset of the partition.",
		}, []string{"topic", "tier"}),
		DeadLetterHook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "dead_letter_hook_calls_total",
			Help: "Calls of the dead-letter hook of the consumer and of the relay, by result: ok, error, panic, or dropped (not called: its queue was full or the consumer or relay stopped).",
		}, []string{"topic", "result"}),
		CircuitState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "circuit_state",
			Help: "The circuit breaker of a main topic (circuit_breaker): 0 closed, 1 open (not fetched nor handled), 2 half-open (a few records let through).",
		}, []string{"topic"}),
		CircuitOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "circuit_opened_total",
			Help: "Times the circuit breaker of a main topic opened.",
		}, []string{"topic"}),
		FencedTransactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "fenced_transactions_total",
			Help: "Open transactions of dead kretry instances of the group (exactly_once) that this instance fenced and so aborted at once, instead of their holding the partitions they wrote to until the transaction timeout.",
		}, []string{"component", "group"}),
		TransactionsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "transactions_failed_total",
			Help: "Transactions (exactly_once) whose end failed with an error, e.g. while a coordinator was unreachable or moving; their records are handled again.",
		}, []string{"component", "group"}),
		Ladder: newLadderVec(),
		Health: newHealthVec(),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.Records = register(reg, m.Records, &err)
	m.HandlerDuration = register(reg, m.HandlerDuration, &err)
	m.Forwarded = register(reg, m.Forwarded, &err)
	m.Refed = register(reg, m.Refed, &err)
	m.RefeedLateness = register(reg, m.RefeedLateness, &err)
	m.PausedPartitions = register(reg, m.PausedPartitions, &err)
	m.HeldBytes = register(reg, m.HeldBytes, &err)
	m.DeadLettered = register(reg, m.DeadLettered, &err)
	m.TooLarge = register(reg, m.TooLarge, &err)
	m.UntrustedDueAt = register(reg, m.UntrustedDueAt, &err)
	m.Reparked = register(reg, m.Reparked, &err)
	m.DuplicateCopiesSkipped = register(reg, m.DuplicateCopiesSkipped, &err)
	m.DeadLetterHook = register(reg, m.DeadLetterHook, &err)
	m.CircuitState = register(reg, m.CircuitState, &err)
	m.CircuitOpened = register(reg, m.CircuitOpened, &err)
	m.FencedTransactions = register(reg, m.FencedTransactions, &err)
	m.TransactionsFailed = register(reg, m.TransactionsFailed, &err)
	m.Ladder = register(reg, m.Ladder, &err)
	m.Health = register(reg, m.Health, &err)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered in its
// place; the first other error is kept in *errp.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	if *errp == nil {
		*errp = fmt.Errorf("registering kretry metrics: %w", err)
	}
	return c
}
