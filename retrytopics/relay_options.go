package retrytopics

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RelayOpt configures NewRelay.
type RelayOpt interface{ apply(*relayCfg) }

type relayOpt func(*relayCfg)

func (o relayOpt) apply(c *relayCfg) { o(c) }

type relayCfg struct {
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
}

// Defaults of the relay options.
const (
	DefaultRelayFetchMaxWait    = 100 * time.Millisecond
	DefaultRelayDeliveryTimeout = 30 * time.Second

	// DefaultRelayCommitInterval is how often the relay commits the tier
	// offsets it marked: see WithRelayCommitInterval.
	DefaultRelayCommitInterval = time.Second
	// DefaultRelaySessionTimeout is the relay's group session timeout, with
	// a heartbeat every DefaultRelayHeartbeatInterval: how long a relay that
	// died without leaving (kill -9) holds its partitions. franz-go's default
	// is 45s.
	DefaultRelaySessionTimeout    = 10 * time.Second
	DefaultRelayHeartbeatInterval = time.Second

	// DefaultRelayHoldBytes is how much of the records due soon the relay
	// holds in memory by default: see WithRelayHoldBytes.
	DefaultRelayHoldBytes = 64 << 20
)

// relayMaxPollRecords bounds one poll, and so how long the relay holds off a
// rebalance: the poll's re-feeds are acknowledged before the next poll.
const relayMaxPollRecords = 5000

// The relay's fetch sizes, unless WithRelayClientOpts sets them.
const (
	relayFetchMaxBytes          = 8 << 20
	relayFetchMaxPartitionBytes = 512 << 10
)

func defaultRelayCfg() relayCfg {
	return relayCfg{
		logger:          slog.New(slog.DiscardHandler),
		fetchMaxWait:    DefaultRelayFetchMaxWait,
		deliveryTimeout: DefaultRelayDeliveryTimeout,
		maxPollRecords:  relayMaxPollRecords,
		holdBytes:       DefaultRelayHoldBytes,
		retryBackoff:    time.Second,
		maxRetryBackoff: 30 * time.Second,
		commitInterval:  DefaultRelayCommitInterval,
	}
}

// WithRelayGroup sets the relay's consumer group. Default: the ladders'
// group followed by "-relay" ("orders-service-relay"); required when the
// ladders belong to different groups.
func WithRelayGroup(group string) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.group = group })
}

// WithRelayLogger sets the logger: one line per re-feed at debug, problems
// at warn and error. Default: discard everything.
func WithRelayLogger(l *slog.Logger) RelayOpt {
	return relayOpt(func(c *relayCfg) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithRelayClientOpts adds kgo options to the relay's clients: seed brokers,
// TLS, SASL, a dialer. They override the relay's fetch sizes (8 MiB per
// fetch, 512 KiB per partition); the options the relay's guarantees rest on
// (group, topics, commit mode, partitioner, acks, fetch max wait) are set
// after these and win. Default: none (kgo's default seed, localhost:9092).
func WithRelayClientOpts(opts ...kgo.Opt) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithRelayRegisterer sets where the relay's metrics (kretry_refed_total,
// kretry_refeed_lateness_seconds, kretry_paused_partitions, and the
// forwarded and dead-lettered counts of invalid records) are registered.
// Default: nil, counted but exported nowhere.
func WithRelayRegisterer(reg prometheus.Registerer) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.reg = reg })
}

// WithRelayFetchMaxWait sets how long a broker may hold a fetch of the tier
// topics open when it has nothing new. A resumed partition is fetched after
// the fetch in flight returns, so this bounds the lateness the relay adds on
// top of its produce round trip. Default DefaultRelayFetchMaxWait, 100ms.
func WithRelayFetchMaxWait(d time.Duration) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.fetchMaxWait = d })
}

// WithRelayDeliveryTimeout bounds how long one re-feed (or DLQ forward) may
// wait for the broker's acknowledgement before it counts as failed; a failed
// re-feed is not committed, its partition is rewound and retried after a
// backoff. Default DefaultRelayDeliveryTimeout, 30s.
func WithRelayDeliveryTimeout(d time.Duration) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.deliveryTimeout = d })
}

// WithRelayCommitInterval sets how often the relay commits the tier offsets
// of the records it re-fed (and the broker acknowledged): a relay that dies
// re-feeds again at most about this much of its work. It also commits on
// every revoke and at shutdown. Default DefaultRelayCommitInterval, 1s.
func WithRelayCommitInterval(d time.Duration) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.commitInterval = d })
}

// WithRelayGroupOpts adds kgo group options to the relay's consuming client
// only: config.Config.GroupOpts gives them (session timeout, heartbeat,
// static membership with kgo.InstanceID, KIP-848 with
// kgo.ServerSideBalancer...). They are applied after the relay's defaults
// (DefaultRelaySessionTimeout, DefaultRelayHeartbeatInterval, an auto-commit
// of marks every WithRelayCommitInterval) and after WithRelayClientOpts, and
// override them.
func WithRelayGroupOpts(opts ...kgo.Opt) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.groupOpts = append(c.groupOpts, opts...) })
}

// WithRelayProducerOpts adds kgo options to the relay's producing client
// only (config.Config.ProducerOpts gives them), after WithRelayClientOpts
// and the delivery timeout; the acks, partitioner and batch limits the
// relay's guarantees rest on are set after them. Give the delivery timeout
// with WithRelayDeliveryTimeout too: the relay's own waits follow it.
func WithRelayProducerOpts(opts ...kgo.Opt) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.producerOpts = append(c.producerOpts, opts...) })
}

// WithRelayExactlyOnce turns on the exactly-once mode: the relay's re-feeds
// (and dead letters) and the tier offsets of the records they came from
// commit together in Kafka transactions of about WithRelayCommitInterval
// each (KIP-447: a relay that lost its partitions cannot commit), and it
// reads the tiers read_committed. A crash or a rebalance aborts the open
// transaction: its re-feeds never become visible to read_committed readers,
// and the records are re-fed again by the next owner, once. Its
// transactional id is kretry/<relay group>/relay/<instance> (see
// WithRelayInstanceID). Default: off (at least once).
func WithRelayExactlyOnce(on bool) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.exactlyOnce = on })
}

// WithRelayInstanceID names this relay instance in its transactional id in
// the exactly-once mode: give each instance its own, stable across restarts
// (the pod name of a StatefulSet), so that a restarted instance fences the
// transaction its previous run left open at once. Default: a random id per
// Relay, whose open transaction the broker aborts after its timeout.
func WithRelayInstanceID(id string) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.instanceID = id })
}

// WithRelayHoldBytes bounds the records the relay holds in memory ahead of
// their due time (see the package doc): n bytes of keys, values and headers,
// and one record per 640 bytes of n. The process needs about two to three
// times n on top of its other memory while the relay holds that much (Go's
// heap with its default GOGC). 0 holds nothing: every partition whose first
// record is not due is paused and rewound. Default DefaultRelayHoldBytes,
// 64 MiB; kretry_held_bytes shows what is held.
func WithRelayHoldBytes(n int) RelayOpt {
	return relayOpt(func(c *relayCfg) { c.holdBytes = n })
}
