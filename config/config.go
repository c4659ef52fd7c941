package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
	"github.com/kretry/kretry/topics"
)

// Defaults applied by Load and Parse. They are also described in the package
// doc and in the README.
const (
	// DefaultClientID is the Kafka client id when client_id is not given.
	DefaultClientID = "kretry"
	// DefaultRelaySuffix makes the relay's group when relay.group is not
	// given: group "orders-service" relays as "orders-service-relay".
	DefaultRelaySuffix = "-relay"
	// DefaultFetchMaxWait is relay.fetch_max_wait when not given: how long a
	// relay fetch waits on the broker for data, which bounds how late a
	// resumed partition is fetched.
	DefaultFetchMaxWait = 100 * time.Millisecond
	// MinFetchMaxWait is the shortest relay.fetch_max_wait: the relay
	// refuses less (brokers wait in whole milliseconds).
	MinFetchMaxWait = time.Millisecond
	// DefaultHoldBytes is relay.hold_bytes when not given: the bytes of
	// records not yet due that the relay may hold in memory, 64 MiB.
	DefaultHoldBytes = relay.DefaultHoldBytes
	// MinTierRetention is the floor of a tier topic's default retention,
	// which is max(2 × the tier's delay, MinTierRetention): 24h.
	MinTierRetention = topics.MinTierRetention
	// DefaultDLQRetention is the retention of a DLQ topic when
	// retention.dlq is not given: 14 days.
	DefaultDLQRetention = topics.DefaultDLQRetention

	// DefaultCommitInterval is commit_interval when not given: how often
	// the marked offsets of a group member are committed, which bounds the
	// work a crash repeats.
	DefaultCommitInterval = time.Second
	// MinCommitInterval and MaxCommitInterval bound commit_interval: a
	// shorter one franz-go refuses (its shortest auto-commit interval, which
	// relay.New enforces too), a longer one lets a crash repeat that much
	// work.
	MinCommitInterval = 100 * time.Millisecond
	MaxCommitInterval = 10 * time.Minute
	// DefaultSessionTimeout is session_timeout when not given: how long a
	// member that stopped heartbeating (a killed process) keeps its
	// partitions before the group reassigns them.
	DefaultSessionTimeout = 10 * time.Second
	// MinSessionTimeout and MaxSessionTimeout are the defaults of Kafka's
	// group.min.session.timeout.ms and group.max.session.timeout.ms: a
	// broker with its default settings refuses a member whose session
	// timeout is outside them.
	MinSessionTimeout = 6 * time.Second
	MaxSessionTimeout = 30 * time.Minute
	// MaxHeartbeatInterval caps the heartbeat interval, which is otherwise
	// a tenth of the session timeout (see Config.HeartbeatInterval).
	MaxHeartbeatInterval = 3 * time.Second
	// DefaultDeliveryTimeout is delivery_timeout when not given: how long
	// a produced record (a forward, a re-feed, a replay) may wait for its
	// acknowledgement before it fails, which bounds every producer kretry
	// owns, and so shutdown, when the brokers are unreachable.
	DefaultDeliveryTimeout = 30 * time.Second
	// MaxDeliveryTimeout bounds delivery_timeout.
	MaxDeliveryTimeout = time.Hour
	// DefaultInPlaceBackoff and DefaultInPlaceMaxBackoff are the waits of
	// retry_in_place when backoff and max_backoff are not given.
	DefaultInPlaceBackoff    = 100 * time.Millisecond
	DefaultInPlaceMaxBackoff = time.Second
	// MaxInPlaceAttempts bounds retry_in_place.attempts.
	MaxInPlaceAttempts = 100
	// MaxInPlaceWait bounds the worst case of retry_in_place's waits
	// together (RetryInPlace.WorstCase): half of the group rebalance timeout
	// (franz-go's default 60s, which kretry keeps), so that one record's
	// in-place retries hold its partition well below the time a member may
	// take to rejoin. A revoke or shutdown cuts the wait short anyway; the
	// handler's own calls are bounded by the grace period.
	MaxInPlaceWait = 30 * time.Second
	// MaxInstanceIDLength is the longest instance_id Kafka accepts.
	MaxInstanceIDLength = 249
)

// Group protocols accepted in group_protocol.
const (
	// GroupProtocolClassic is the classic protocol, where the clients
	// assign partitions among themselves (JoinGroup/SyncGroup). The default.
	GroupProtocolClassic = "classic"
	// GroupProtocolConsumer is KIP-848's consumer protocol, where the
	// broker assigns partitions (Kafka 4.0+, franz-go recommends 4.3+).
	GroupProtocolConsumer = "consumer"
)

// Environment variables that override the file in Load and Parse. An empty
// value counts as unset.
const (
	// EnvBrokers replaces brokers: a comma-separated list of host:port.
	EnvBrokers = "KRETRY_BROKERS"
	// EnvGroup replaces group.
	EnvGroup = "KRETRY_GROUP"
	// EnvInstanceID replaces instance_id, so that each pod of one
	// deployment sets its own static member id.
	EnvInstanceID = "KRETRY_INSTANCE_ID"
)

// Config is a kretry configuration. Load and Parse return it validated with
// every default resolved. A Config built in Go, for a service with a config
// system of its own, is held to the same rules by Validate (consumer.New
// calls it); its zero fields mean their defaults, which SetDefaults fills in.
type Config struct {
	Source   string   // file name used in error messages; "" from Parse
	Brokers  []string // seed brokers, host:port
	ClientID string   // default "kretry"
	Group    string   // the main consumer's group; required
	TLS      *TLS     // nil: plaintext
	SASL     *SASL    // nil: no authentication
	Topics   []Topic
	Relay    Relay

	// ExactlyOnce turns on the exactly-once mode (exactly_once): forwards,
	// re-feeds and their offsets commit together in Kafka transactions.
	ExactlyOnce bool
	// CommitInterval is how often marked offsets are committed
	// (commit_interval); 0 in a Config built by hand means
	// DefaultCommitInterval, 1s.
	CommitInterval time.Duration
	// SessionTimeout is the group session timeout of the consumer and the
	// relay (session_timeout); 0 means DefaultSessionTimeout, 10s.
	SessionTimeout time.Duration
	// InstanceID makes the consumer and the relay static group members
	// (instance_id, KRETRY_INSTANCE_ID); "" is dynamic membership.
	InstanceID string
	// GroupProtocol is GroupProtocolClassic or GroupProtocolConsumer
	// (group_protocol), in any case; "" means classic.
	GroupProtocol string
	// DeliveryTimeout bounds how long a produced record waits for its
	// acknowledgement (delivery_timeout); 0 means DefaultDeliveryTimeout, 30s.
	DeliveryTimeout time.Duration

	lines map[string]int // field path → line, for errors from ClientOpts
}

// TLS turns on TLS to the brokers. Empty file names mean the system's CA pool
// and no client certificate. Relative paths are relative to the directory of
// the file given to Load (to the working directory for Parse).
type TLS struct {
	CAFile             string // PEM CA bundle that replaces the system pool
	CertFile           string // PEM client certificate; set with KeyFile or not at all
	KeyFile            string // PEM private key of CertFile
	InsecureSkipVerify bool   // do not verify the brokers' certificates (testing only)
}

// SASL turns on SASL authentication. The password is never in the file: it is
// read by ClientOpts from the environment variable named PasswordEnv.
type SASL struct {
	Mechanism   string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Username    string
	PasswordEnv string // name of the environment variable that holds the password
}

// SASL mechanisms accepted in sasl.mechanism.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Topic is one main topic and its retry ladder.
type Topic struct {
	Name  string
	Tiers []ladder.Tier // Attempts resolved to ≥ 1; empty when Backoff generates them
	// Backoff generates the tiers (backoff) instead of Tiers; set one of
	// the two. Its Jitter shortens each record's wait (ladder.WithJitter).
	Backoff *ladder.Backoff
	// RetryInPlace retries a failed record in the handler's goroutine
	// before it goes to the first tier (retry_in_place); nil: none.
	RetryInPlace  *RetryInPlace
	DLQ           string        // resolved name; default "{topic}.dlq" expanded, e.g. "orders.dlq"
	Naming        string        // tier topic template; default ladder.DefaultNaming
	MaxAge        time.Duration // 0: no limit
	TierRetention time.Duration // 0: per tier max(2 × delay, 24h); see RetentionForTier
	DLQRetention  time.Duration // 0: 14 days; see RetentionForDLQ

	// RetryAfterMax is the longest wait a consumer.RetryAfter may ask for
	// (retry_after_max): a longer one is cut to it, and the relay trusts a
	// kretry-due-at up to the last failure plus it. From the last tier's
	// delay to MaxRetryAfterMax; 0: ladder.DefaultRetryAfterMax (24h), or
	// the last tier's delay when that is longer.
	RetryAfterMax time.Duration

	// Partitions, when > 0, declares the main topic: kretry topics apply (and
	// a consumer at start) create it when it is missing, kretry topics apply
	// --raise-partitions raises an existing one's partitions to it; more
	// partitions than this is an error (Kafka cannot remove partitions).
	// 0: the main topic is the service's, never created nor changed.
	Partitions int32
	// ReplicationFactor is the replication factor of a main topic kretry
	// creates (needs Partitions); 0: the brokers' default.replication.factor.
	// An existing topic's is never changed: a different one is a warning.
	ReplicationFactor int16
	// TopicConfigs are other topic configs (min.insync.replicas,
	// compression.type, …) of the tier and DLQ topics; TierConfigs and
	// DLQConfigs those of one kind, over TopicConfigs. Set at creation and
	// set again where a topic differs; never on the main topic. Names pass
	// topics.CheckConfigName (retention.ms, max.message.bytes and
	// cleanup.policy are kretry's).
	TopicConfigs, TierConfigs, DLQConfigs map[string]string
	// DLQRoutes are dead-letter topics of their own by route name
	// (dlq_routes: {invalid: orders.invalid}), for consumer.DeadLetterTo;
	// provisioned like the DLQ, with its retention and DLQConfigs. nil: none.
	DLQRoutes map[string]string
	// CircuitBreaker stops fetching the topic while too many of its records
	// fail (circuit_breaker); nil: none.
	CircuitBreaker *CircuitBreaker
}

// CircuitBreaker is a topic's circuit_breaker: when, over the last Window,
// at least MinRecords records were handled and the share that failed with
// an error the classifier retries is at least FailureRatio, the consumer
// stops fetching and handling the topic for OpenFor, then lets a few
// records through and closes again when they succeed.
type CircuitBreaker struct {
	FailureRatio float64       // 0 < ratio ≤ 1
	MinRecords   int           // ≥ 1
	Window       time.Duration // > 0
	OpenFor      time.Duration // > 0
	// HalfOpenRecords is how many records the half-open breaker lets
	// through, all of which must succeed for it to close
	// (half_open_records); 0: DefaultHalfOpenRecords.
	HalfOpenRecords int
}

// DefaultHalfOpenRecords is a circuit breaker's half_open_records when not
// given.
const DefaultHalfOpenRecords = 5

// MaxHalfOpenRecords bounds half_open_records: the probes are handled
// while the topic is otherwise held, a few of them are enough.
const MaxHalfOpenRecords = 10000

// Probes is b's half_open_records, its default for 0.
func (b CircuitBreaker) Probes() int {
	if b.HalfOpenRecords == 0 {
		return DefaultHalfOpenRecords
	}
	return b.HalfOpenRecords
}

// breakerProblem checks b; field is the key at fault.
func breakerProblem(b *CircuitBreaker) (field, problem string) {
	switch {
	case !(b.FailureRatio > 0 && b.FailureRatio <= 1):
		return "failure_ratio", fmt.Sprintf("must be a share of failed records above 0 and at most 1, e.g. 0.5, got %v", b.FailureRatio)
	case b.MinRecords < 1:
		return "min_records", fmt.Sprintf("must be a whole number ≥ 1: the fewest records in the window that may open the breaker, e.g. 100, got %d", b.MinRecords)
	case b.Window <= 0:
		return "window", fmt.Sprintf("must be a duration > 0 over which failures are counted, e.g. 30s, got %v", b.Window)
	case b.OpenFor <= 0:
		return "open_for", fmt.Sprintf("must be a duration > 0 for which the topic is not fetched once the breaker opens, e.g. 1m, got %v", b.OpenFor)
	case b.HalfOpenRecords < 0 || b.HalfOpenRecords > MaxHalfOpenRecords:
		return "half_open_records", fmt.Sprintf("must be a whole number from 1 to %d: the records let through half-open, all of which must succeed to close the breaker (omit it for %d), got %d",
			MaxHalfOpenRecords, DefaultHalfOpenRecords, b.HalfOpenRecords)
	}
	return "", ""
}

// ConfigsOf returns the extra configs of t's tier topics (kind
// topics.KindTier) or DLQ (topics.KindDLQ): TopicConfigs with TierConfigs
// or DLQConfigs over it; nil when there are none.
func (t Topic) ConfigsOf(kind topics.TopicKind) map[string]string {
	own := t.TierConfigs
	if kind == topics.KindDLQ {
		own = t.DLQConfigs
	}
	if len(t.TopicConfigs)+len(own) == 0 {
		return nil
	}
	out := maps.Clone(t.TopicConfigs)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, own)
	return out
}

// MaxRetryAfterMax bounds a topic's retry_after_max: a record asked to wait
// that long is re-parked in its last tier every tier delay, so a longer
// bound would only let a forged or mistaken due time cost more re-parks.
const MaxRetryAfterMax = 7 * 24 * time.Hour

// retryAfterMaxProblem checks a topic's retry_after_max against the longest
// delay of its tiers; "" when it is fine.
func retryAfterMaxProblem(v, longest time.Duration) string {
	switch {
	case v <= 0:
		return "must be a duration > 0 (omit it, or 0 in Go, for the default 24h or the last tier's delay when longer)"
	case v < longest:
		return fmt.Sprintf("must be at least the last tier's delay, %s: a RetryAfter up to that tier's delay is always kept", ladder.FormatDelay(longest))
	case v > max(MaxRetryAfterMax, longest):
		return fmt.Sprintf("must be at most %s: a longer wait belongs in a scheduler, not a retry ladder", ladder.FormatDelay(MaxRetryAfterMax))
	}
	return ""
}

// RetryInPlace is a topic's retry_in_place: a record whose handler fails
// with an error the classifier retries is handled again in place, in its
// partition's goroutine, Attempts times, waiting Backoff, doubling, at most
// MaxBackoff, before it is forwarded to the first tier. A revoke or shutdown
// ends the wait at once and leaves the record unmarked, to be delivered again.
type RetryInPlace struct {
	Attempts   int           // in-place retries, 1 to MaxInPlaceAttempts
	Backoff    time.Duration // the first wait; 0 means DefaultInPlaceBackoff
	MaxBackoff time.Duration // the cap on a wait, ≥ Backoff; 0 means max(DefaultInPlaceMaxBackoff, Backoff)
}

// Wait returns the wait before in-place retry k (from 1): Backoff ×
// 2^(k−1), at most MaxBackoff. Zero fields are their defaults.
func (r RetryInPlace) Wait(k int) time.Duration {
	b, m := r.resolved()
	for i := 1; i < k && b < m; i++ {
		b *= 2
	}
	return min(b, m)
}

// WorstCase returns the longest all waits of r take together: the sum of
// Wait(1) … Wait(Attempts). Validate holds it to MaxInPlaceWait.
func (r RetryInPlace) WorstCase() time.Duration {
	total := time.Duration(0)
	for k := 1; k <= min(r.Attempts, MaxInPlaceAttempts); k++ {
		total += r.Wait(k)
	}
	return total
}

func (r RetryInPlace) resolved() (backoff, maxBackoff time.Duration) {
	backoff = cmpOr(r.Backoff, DefaultInPlaceBackoff)
	maxBackoff = r.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = max(DefaultInPlaceMaxBackoff, backoff)
	}
	return backoff, maxBackoff
}

// Relay configures the relay that re-feeds due records, in process or
// standalone (kretry relay).
type Relay struct {
	Group        string        // default Config.Group + "-relay"
	FetchMaxWait time.Duration // default 100ms

	// HoldBytes bounds the records the relay holds in memory ahead of their
	// due time (relay.WithHoldBytes); new(0) holds nothing. nil,
	// as in a Config built by hand, is the default DefaultHoldBytes (64 MiB);
	// Load and Parse always set it. A pointer because 0 is a setting of its
	// own.
	HoldBytes *int
}

// Load reads and validates the YAML file at path, applies KRETRY_BROKERS and
// KRETRY_GROUP (and WithBrokers over both), and resolves the defaults. Errors
// name path as given, the line and the field; all of a file's errors are
// returned at once, joined, one per line in file order (each is a
// *FieldError).
func Load(path string, opts ...Opt) (*Config, error) {
	data, err := readBounded(path, MaxFileSize)
	var be *boundError
	if errors.As(err, &be) {
		return nil, &FieldError{Source: path, Problem: "the config file " + be.msg + ": give the kretry.yaml file"}
	}
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	c, err := parse(path, data, lookup(opts))
	if err != nil {
		return nil, err
	}
	if c.TLS != nil {
		dir := filepath.Dir(path)
		for _, f := range []*string{&c.TLS.CAFile, &c.TLS.CertFile, &c.TLS.KeyFile} {
			if *f != "" && !filepath.IsAbs(*f) {
				*f = filepath.Join(dir, *f)
			}
		}
	}
	return c, nil
}

// Parse reads and validates a configuration from YAML text, like Load. Its
// errors start with "line N:" instead of a file name, and Source is "".
func Parse(data []byte, opts ...Opt) (*Config, error) {
	return parse("", data, lookup(opts))
}

// Opt changes how Load and Parse resolve a file.
type Opt interface{ apply(*loadCfg) }

type loadCfg struct{ brokers []string }

type loadOpt func(*loadCfg)

func (o loadOpt) apply(c *loadCfg) { o(c) }

// WithBrokers replaces the file's brokers and KRETRY_BROKERS, as the CLI's
// --brokers flag does: with it the file may leave brokers out. Empty entries
// are dropped; with none left it has no effect. Default: none.
func WithBrokers(brokers ...string) Opt {
	return loadOpt(func(c *loadCfg) {
		for _, b := range brokers {
			if b = strings.TrimSpace(b); b != "" {
				c.brokers = append(c.brokers, b)
			}
		}
	})
}

// lookup is the environment as the options change it: WithBrokers stands in
// for KRETRY_BROKERS.
func lookup(opts []Opt) lookupEnv {
	var c loadCfg
	for _, o := range opts {
		o.apply(&c)
	}
	if len(c.brokers) == 0 {
		return os.LookupEnv
	}
	flag := strings.Join(c.brokers, ",")
	return func(name string) (string, bool) {
		switch name {
		case EnvBrokers:
			return flag, true
		case brokersLabel:
			return "brokers given with WithBrokers (--brokers)", true
		}
		return os.LookupEnv(name)
	}
}

// Ladders resolves the retry ladder of every topic for c.Group, in the order
// of c.Topics.
func (c *Config) Ladders() ([]*ladder.Ladder, error) {
	ls := make([]*ladder.Ladder, 0, len(c.Topics))
	for _, t := range c.Topics {
		l, err := t.Ladder(c.Group)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// Ladder resolves t's retry ladder for group: its tier topics from t.Naming
// and its DLQ t.DLQ.
func (t Topic) Ladder(group string) (*ladder.Ladder, error) {
	var opts []ladder.Opt
	tiers := t.Tiers
	if t.Backoff != nil {
		if len(t.Tiers) > 0 {
			return nil, fmt.Errorf("topic %s: %s", t.Name, tiersAndBackoffProblem)
		}
		var err error
		if tiers, err = t.Backoff.Tiers(); err != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, err)
		}
		opts = append(opts, ladder.WithJitter(t.Backoff.Jitter))
	}
	if t.Naming != "" {
		opts = append(opts, ladder.WithNaming(t.Naming))
	}
	if t.DLQ != "" {
		opts = append(opts, ladder.WithDLQ(t.DLQ))
	}
	if len(t.DLQRoutes) > 0 {
		opts = append(opts, ladder.WithDLQRoutes(t.DLQRoutes))
	}
	if t.RetryAfterMax > 0 {
		opts = append(opts, ladder.WithRetryAfterMax(t.RetryAfterMax))
	}
	return ladder.New(t.Name, group, tiers, opts...)
}

// LadderTiers returns t's tiers: Tiers, or those Backoff generates (nil
// when Backoff is invalid).
func (t Topic) LadderTiers() []ladder.Tier {
	if t.Backoff == nil || len(t.Tiers) > 0 {
		return t.Tiers
	}
	tiers, _ := t.Backoff.Tiers()
	return tiers
}

// Provisions returns what topics.Plan provisions for c: one Provision
// per topic, in order, with its ladder for c.Group and its retention
// settings (0 for the defaults), its main topic's partitions and
// replication factor, and its extra topic configs.
func (c *Config) Provisions() ([]topics.Provision, error) {
	ls, err := c.Ladders()
	if err != nil {
		return nil, err
	}
	ps := make([]topics.Provision, len(ls))
	for i, l := range ls {
		t := c.Topics[i]
		ps[i] = topics.Provision{Ladder: l, TierRetention: t.TierRetention, DLQRetention: t.DLQRetention,
			MainPartitions: t.Partitions, MainReplication: t.ReplicationFactor,
			TierConfigs: t.ConfigsOf(topics.KindTier), DLQConfigs: t.ConfigsOf(topics.KindDLQ)}
	}
	return ps, nil
}

// RetentionForTier returns the retention a tier topic of t with the given
// delay should have: TierRetention when set, else max(2 × delay, 24h).
func (t Topic) RetentionForTier(delay time.Duration) time.Duration {
	if t.TierRetention > 0 {
		return t.TierRetention
	}
	return topics.TierRetention(delay)
}

// RetentionForDLQ returns the retention t's DLQ should have: DLQRetention when
// set, else 14 days.
func (t Topic) RetentionForDLQ() time.Duration {
	if t.DLQRetention > 0 {
		return t.DLQRetention
	}
	return DefaultDLQRetention
}

// FieldError is one problem in a configuration: where it is and what is
// wrong. Load and Parse return them joined with errors.Join; get them back with
// errors.As (the first) or by unwrapping the joined error.
type FieldError struct {
	Source  string // file name as given to Load; "" from Parse
	Line    int    // 1-based; 0 when the problem has no line (an environment variable)
	Field   string // field path, e.g. "topics[0].tiers[1].delay"
	Problem string // what is wrong and what is allowed
}

// Error returns "file:line: field: problem", "line N: field: problem" without
// a file, or "field: problem" without a line.
func (e *FieldError) Error() string {
	var prefix string
	switch {
	case e.Line > 0 && e.Source != "":
		prefix = fmt.Sprintf("%s:%d: ", e.Source, e.Line)
	case e.Line > 0:
		prefix = fmt.Sprintf("line %d: ", e.Line)
	case e.Source != "":
		prefix = e.Source + ": "
	}
	if e.Field == "" {
		return prefix + e.Problem
	}
	return prefix + e.Field + ": " + e.Problem
}

// fieldError builds the error of a field of a loaded config for ClientOpts,
// with its line when c came from Load or Parse.
func (c *Config) fieldError(field, format string, args ...any) error {
	return &FieldError{Source: c.Source, Line: c.lines[field], Field: field, Problem: fmt.Sprintf(format, args...)}
}

var _ error = (*FieldError)(nil)

// maxErrors is how many problems of a file an error lists.
const maxErrors = 50

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// joinSorted orders errs by line, stable, with line-less errors last, and
// keeps the first maxErrors.
func joinSorted(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	key := func(e *FieldError) int {
		if e.Line == 0 {
			return math.MaxInt
		}
		return e.Line
	}
	sorted := slices.Clone(errs)
	slices.SortStableFunc(sorted, func(a, b *FieldError) int { return cmp.Compare(key(a), key(b)) })
	if len(sorted) > maxErrors {
		more := len(sorted) - maxErrors
		sorted = append(sorted[:maxErrors:maxErrors], &FieldError{Source: sorted[0].Source,
			Problem: fmt.Sprintf("and %d more %s: fix these first", more, plural(more, "problem", "problems"))})
	}
	out := make([]error, len(sorted))
	for i, e := range sorted {
		out[i] = e
	}
	return errors.Join(out...)
}
