package relay

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Opt configures New. Options are applied in order; a later one overrides
// an earlier one of the same kind.
type Opt interface{ apply(*cfg) }

type opt func(*cfg)

func (o opt) apply(c *cfg) { o(c) }

type cfg struct {
	group           string
	logger          *slog.Logger
	clientOpts      []kgo.Opt
	reg             prometheus.Registerer
	fetchMaxWait    time.Duration
	deliveryTimeout time.Duration
	maxPollRecords  int
	retryBackoff    time.Duration
	maxRetryBackoff time.Duration
	holdBytes       int
	commitInterval  time.Duration
	groupOpts       []kgo.Opt
	producerOpts    []kgo.Opt
	exactlyOnce     bool
	instanceID      string
	deadLetterHook  DeadLetterHook
}

// Defaults of the relay options.
const (
	DefaultFetchMaxWait    = 100 * time.Millisecond
	DefaultDeliveryTimeout = 30 * time.Second

	// DefaultCommitInterval is how often the relay commits the tier
	// offsets it marked: see WithCommitInterval.
	DefaultCommitInterval = time.Second
	// DefaultSessionTimeout is the relay's group session timeout, with
	// a heartbeat every DefaultHeartbeatInterval: how long a relay that
	// died without leaving (kill -9) holds its partitions. franz-go's default
	// is 45s.
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = time.Second

	// DefaultHoldBytes is how much of the records due soon the relay
	// holds in memory by default: see WithHoldBytes.
	DefaultHoldBytes = 64 << 20
)

// minCommitInterval is the shortest commit interval: kgo refuses an
// AutoCommitInterval under 100ms (in both modes: its check is the client's).
const minCommitInterval = 100 * time.Millisecond

// maxPollRecords bounds one poll, and so how long the relay holds off a
// rebalance: the poll's re-feeds are acknowledged before the next poll.
const maxPollRecords = 5000

// The relay's fetch sizes, unless WithClientOpts sets them. A partition's
// limit takes a full batch (max.message.bytes, 1,000,012 by default): a
// broker returns a larger one only for a response's first partition.
const (
	fetchMaxBytes          = 4 << 20
	fetchMaxPartitionBytes = 1 << 20
)

func defaultCfg() cfg {
	return cfg{
		logger:          slog.New(slog.DiscardHandler),
		fetchMaxWait:    DefaultFetchMaxWait,
		deliveryTimeout: DefaultDeliveryTimeout,
		maxPollRecords:  maxPollRecords,
		holdBytes:       DefaultHoldBytes,
		retryBackoff:    time.Second,
		maxRetryBackoff: 30 * time.Second,
		commitInterval:  DefaultCommitInterval,
	}
}

// WithGroup sets the relay's consumer group. Default: the ladders'
// group followed by "-relay" ("orders-service-relay"); required when the
// ladders belong to different groups.
func WithGroup(group string) Opt {
	return opt(func(c *cfg) { c.group = group })
}

// WithLogger sets the logger: one line per re-feed at debug, problems
// at warn and error. Default: discard everything; nil means the default.
func WithLogger(l *slog.Logger) Opt {
	return opt(func(c *cfg) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	})
}

// WithClientOpts adds kgo options to the relay's clients: seed brokers,
// TLS, SASL, a dialer. They override the relay's fetch sizes (4 MiB per
// fetch, 1 MiB per partition); while nothing it fetched is due within a
// second (as when it joins), the relay fetches at most 256 KiB, or the
// size given here if smaller. The options the relay's guarantees rest on
// (group, topics, commit mode, partitioner, acks, fetch max wait) are set
// after these and win. Default: none (kgo's default seed, localhost:9092).
func WithClientOpts(opts ...kgo.Opt) Opt {
	return opt(func(c *cfg) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithRegisterer registers every kretry_* collector on reg when New builds
// the relay (they stay registered), and while Run runs the franz-go client
// metrics (kretry_client_*, component "relay-consumer" and
// "relay-producer"), which are unregistered when Run returns. Default: nil,
// counted but exported nowhere.
func WithRegisterer(reg prometheus.Registerer) Opt {
	return opt(func(c *cfg) { c.reg = reg })
}

// WithFetchMaxWait sets how long a broker may hold a fetch of the tier
// topics open when it has nothing new. A resumed partition is fetched after
// the fetch in flight returns, so this bounds the lateness the relay adds on
// top of its produce round trip. Default DefaultFetchMaxWait, 100ms.
func WithFetchMaxWait(d time.Duration) Opt {
	return opt(func(c *cfg) { c.fetchMaxWait = d })
}

// WithDeliveryTimeout bounds how long one re-feed (or DLQ forward) may
// wait for the broker's acknowledgement before it counts as failed; a failed
// re-feed is not committed, its partition is rewound and retried after a
// backoff. Default DefaultDeliveryTimeout, 30s.
func WithDeliveryTimeout(d time.Duration) Opt {
	return opt(func(c *cfg) { c.deliveryTimeout = d })
}

// WithCommitInterval sets how often the relay commits the tier offsets
// of the records it re-fed (and the broker acknowledged): a relay that dies
// re-feeds again at most about this much of its work. It also commits on
// every revoke and at shutdown. At least 100ms, franz-go's shortest
// auto-commit interval: New refuses less. Default DefaultCommitInterval, 1s.
func WithCommitInterval(d time.Duration) Opt {
	return opt(func(c *cfg) { c.commitInterval = d })
}

// WithGroupOpts adds kgo group options to the relay's consuming client
// only: config.Config.GroupOpts gives them (session timeout, heartbeat,
// static membership with kgo.InstanceID, KIP-848 with
// kgo.ServerSideBalancer...). They are applied after the relay's defaults
// (DefaultSessionTimeout, DefaultHeartbeatInterval, an auto-commit
// of marks every WithCommitInterval) and after WithClientOpts, and
// override them. Default: none.
func WithGroupOpts(opts ...kgo.Opt) Opt {
	return opt(func(c *cfg) { c.groupOpts = append(c.groupOpts, opts...) })
}

// WithProducerOpts adds kgo options to the relay's producing client
// only (config.Config.ProducerOpts gives them), after WithClientOpts,
// the delivery timeout and the relay's default transaction timeout, which
// they override; the acks, partitioner and batch limits the
// relay's guarantees rest on are set after them. Give the delivery timeout
// with WithDeliveryTimeout too: the relay's own waits follow it. Default:
// none.
func WithProducerOpts(opts ...kgo.Opt) Opt {
	return opt(func(c *cfg) { c.producerOpts = append(c.producerOpts, opts...) })
}

// WithExactlyOnce turns on the exactly-once mode: the relay's re-feeds
// (and dead letters) and the tier offsets of the records they came from
// commit together in Kafka transactions of about WithCommitInterval
// each (KIP-447: a relay that lost its partitions cannot commit), and it
// reads the tiers read_committed. A crash or a rebalance aborts the open
// transaction: its re-feeds never become visible to read_committed readers,
// and the records are re-fed again by the next owner, once. Its
// transactional id is kretry/<relay group>/relay/<instance> (see
// WithInstanceID). Default: off (at least once).
func WithExactlyOnce(on bool) Opt {
	return opt(func(c *cfg) { c.exactlyOnce = on })
}

// WithInstanceID names this relay instance in its transactional id in
// the exactly-once mode: give each instance its own, stable across restarts
// (the pod name of a StatefulSet), so that a restarted instance fences the
// transaction its previous run left open at once. Default: a random id per
// Relay, whose open transaction the broker aborts after its timeout.
func WithInstanceID(id string) Opt {
	return opt(func(c *cfg) { c.instanceID = id })
}

// WithHoldBytes bounds the records the relay holds in memory ahead of
// their due time (see the package doc): n bytes of keys, values and headers,
// and one record per 640 bytes of n. The process needs about two to three
// times n on top of its other memory while the relay holds that much (Go's
// heap with its default GOGC). 0 holds nothing: every partition whose first
// record is not due is paused and rewound. Default DefaultHoldBytes,
// 64 MiB; kretry_held_bytes shows what is held.
func WithHoldBytes(n int) Opt {
	return opt(func(c *cfg) { c.holdBytes = n })
}
