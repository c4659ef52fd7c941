package consumer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/dlhook"
)

// An Opt configures a Consumer. Options are applied in order; a later one
// overrides an earlier one of the same kind.
type Opt interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger     *slog.Logger
	registerer prometheus.Registerer
	clientOpts []kgo.Opt
	classifier Classifier
	relay      bool
	grace      time.Duration
	provision  bool

	tracer trace.Tracer // WithTracerProvider; nil: no tracing

	deadLetterHook DeadLetterHook
	hookQueue      int // calls of deadLetterHook that may wait; tests lower it

	// A partition's fetching is paused once pauseAt of its records, or
	// pauseBytes of their keys, values and headers, wait for its worker, and
	// resumed when the worker is down to resumeAt records and pauseBytes/4,
	// so a slow partition holds a bounded amount in memory and does not hold
	// up the others. Pausing drops what franz-go buffered for the partition,
	// to be fetched again, so the thresholds sit well above one fetch (1 MiB
	// per partition by default); the gap keeps the worker busy while the
	// resumed partition waits for its next fetch (up to the client's
	// FetchMaxWait). Tests lower them (export_test.go).
	pauseAt, resumeAt int
	pauseBytes        int

	// jitterSeed seeds the workers' jitter sources (with the partition)
	// instead of a random seed; tests set it (export_test.go).
	jitterSeed *uint64

	inPlace map[string]config.RetryInPlace // WithRetryInPlace, by main topic
}

func defaultOptions() options {
	return options{
		logger:     slog.New(slog.DiscardHandler),
		classifier: DefaultClassifier,
		relay:      true,
		grace:      10 * time.Second,
		pauseAt:    20000,
		resumeAt:   5000,
		pauseBytes: 32 << 20,
		hookQueue:  dlhook.DefaultQueue,
	}
}

func (o *options) validate() error {
	if o.grace < 0 {
		return fmt.Errorf("consumer: WithGracePeriod(%v): the grace period must not be negative", o.grace)
	}
	for i, opt := range o.clientOpts {
		if opt == nil {
			return fmt.Errorf("consumer: WithClientOpts: option %d is nil", i)
		}
	}
	return nil
}

// WithLogger sets the logger. The consumer logs one info line per record
// forwarded to a retry tier or the DLQ, errors at error level, and nothing per
// successful record. Default: a logger that discards everything. A nil logger
// means the default.
func WithLogger(l *slog.Logger) Opt {
	return optionFunc(func(o *options) {
		if l == nil {
			l = defaultOptions().logger
		}
		o.logger = l
	})
}

// WithRegisterer registers every kretry_* collector on reg when New builds
// the consumer (they stay registered), and while Run runs the franz-go client
// metrics of kprom (kretry_client_*, with the labels component="consumer",
// or "relay-consumer" and "relay-producer" for the in-process relay, and
// group), which are unregistered when Run returns. Default: nil, metrics are
// counted but exported nowhere.
func WithRegisterer(reg prometheus.Registerer) Opt {
	return optionFunc(func(o *options) { o.registerer = reg })
}

// WithClientOpts adds franz-go client options (TLS, SASL, a dialer, client
// tuning) after those built from the config, to the consumer's client and to
// the relay's. Options that would change kretry's guarantees are overridden:
// the consumer group, the consumed topics, offset commits, the rebalance
// callbacks and the partitioner. Default: none.
func WithClientOpts(opts ...kgo.Opt) Opt {
	return optionFunc(func(o *options) { o.clientOpts = append(o.clientOpts, opts...) })
}

// WithClassifier sets the function that decides whether a failed record is
// retried, dead-lettered or discarded. It replaces the default entirely.
// Default: DefaultClassifier (ErrPermanent → DeadLetter, anything else →
// Retry). A nil classifier means the default.
func WithClassifier(c Classifier) Opt {
	return optionFunc(func(o *options) {
		if c == nil {
			c = DefaultClassifier
		}
		o.classifier = c
	})
}

// WithRelay sets whether Run also runs the relay (relay.Relay) for the
// same ladders, in group cfg.Relay.Group. Without it the retry tiers are
// re-fed only by a relay running elsewhere (`kretry relay`). Default: true.
func WithRelay(run bool) Opt {
	return optionFunc(func(o *options) { o.relay = run })
}

// WithGracePeriod sets how long in-flight handlers may run after Run's context
// is cancelled or their partition is revoked; after it their context is
// cancelled. Zero cancels them at once. Default: 10s.
func WithGracePeriod(d time.Duration) Opt {
	return optionFunc(func(o *options) { o.grace = d })
}

// WithProvisioning sets whether Run creates the missing tier and DLQ topics
// of every ladder before it joins the group, like `kretry topics apply`: with
// the main topic's partition count and replication factor, raising a
// retention or partition count that falls short, never deleting or
// shrinking anything. The main topics must exist. Default: false, Run only
// checks that every topic exists and fails, naming the missing ones, if not.
func WithProvisioning(create bool) Opt {
	return optionFunc(func(o *options) { o.provision = create })
}

// WithRetryInPlace retries a failed record of topic in its partition's
// goroutine before its ladder, as the topic's retry_in_place in a file does,
// and replaces it: up to r.Attempts more calls while the classifier says
// Retry, waiting r.Wait(k) before call k (r.Backoff doubling, at most
// r.MaxBackoff). Permanent (DeadLetter) and Discard errors, panics and a
// RetryAfter longer than the next wait skip them. A revoke or shutdown ends
// a wait at once and leaves the record unmarked, to be delivered again. New
// fails when topic is not a main topic of the config or r breaks the rules of
// retry_in_place (its waits together at most config.MaxInPlaceWait). Default:
// the config's retry_in_place, none without it.
func WithRetryInPlace(topic string, r config.RetryInPlace) Opt {
	return optionFunc(func(o *options) {
		if o.inPlace == nil {
			o.inPlace = map[string]config.RetryInPlace{}
		}
		o.inPlace[topic] = r
	})
}
