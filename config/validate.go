package config

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/topics"
)

// MaxTierAttempts is the most attempts one tier may take.
const MaxTierAttempts = 1 << 20

// SetDefaults sets every zero field of c that has a default to that
// default, as Load and Parse do: client_id, each topic's naming, DLQ
// (expanded with c.Group), the tiers' attempts, the relay's group,
// fetch_max_wait and hold_bytes, commit_interval, session_timeout,
// group_protocol and delivery_timeout. Fields set are kept; c.Topics and
// their tiers are copied before they are changed, so a slice shared with
// the caller is not written. Call Validate after it, or before: zero
// fields pass Validate either way.
func (c *Config) SetDefaults() {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	c.Topics = slices.Clone(c.Topics)
	for i := range c.Topics {
		t := &c.Topics[i]
		if t.Naming == "" {
			t.Naming = ladder.DefaultNaming
		}
		if t.DLQ == "" {
			t.DLQ = ladder.DefaultDLQ
		}
		if l, err := t.Ladder(c.Group); err == nil {
			t.DLQ = l.DLQ() // expanded as the ladder expands it
		}
		if t.Backoff != nil && t.Backoff.Multiplier == 0 {
			b := *t.Backoff // the caller's is not written
			b.Multiplier = ladder.DefaultMultiplier
			t.Backoff = &b
		}
		if r := t.RetryInPlace; r != nil {
			x := *r // the caller's is not written
			x.Backoff, x.MaxBackoff = x.resolved()
			t.RetryInPlace = &x
		}
		t.Tiers = slices.Clone(t.Tiers)
		for j := range t.Tiers {
			if t.Tiers[j].Attempts == 0 {
				t.Tiers[j].Attempts = 1
			}
		}
	}
	if c.Relay.Group == "" && c.Group != "" {
		c.Relay.Group = c.Group + DefaultRelaySuffix
	}
	if c.Relay.FetchMaxWait == 0 {
		c.Relay.FetchMaxWait = DefaultFetchMaxWait
	}
	if c.Relay.HoldBytes == nil {
		c.Relay.HoldBytes = new(DefaultHoldBytes)
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if p, ok := groupProtocol(c.GroupProtocol); ok || c.GroupProtocol == "" {
		c.GroupProtocol = cmp.Or(p, GroupProtocolClassic)
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = DefaultDeliveryTimeout
	}
}

// Validate checks c with the rules of Load and Parse, for a Config built in
// Go rather than read from a file (Parse runs it too, so a file and a
// Config built by hand pass and fail alike). A zero field stands for its
// default and passes. All problems are returned at once, joined; each is a
// *FieldError whose Field is the path a file would use, e.g.
// "topics[0].max_age", and whose Line is 0 unless c came from Load or Parse.
func (c *Config) Validate() error {
	v := validator{c: c}
	v.connection()
	v.topics()
	v.relayAndMembers()
	return joinSorted(v.errs)
}

type validator struct {
	c    *Config
	errs []*FieldError
}

func (v *validator) errorf(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Source: v.c.Source, Line: v.c.lines[field], Field: field, Problem: fmt.Sprintf(format, args...)})
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }

func (v *validator) connection() {
	c := v.c
	if len(c.Brokers) == 0 {
		v.errorf("brokers", `required: list at least one broker, e.g. brokers: ["127.0.0.1:9092"], or set %s`, EnvBrokers)
	}
	for i, b := range c.Brokers {
		if err := CheckBroker(b); err != nil {
			v.errorf(fmt.Sprintf("brokers[%d]", i), "%v", err)
		}
	}
	if c.ClientID != "" && blank(c.ClientID) {
		v.errorf("client_id", `must not be empty: omit it for the default "%s"`, DefaultClientID)
	}
	if blank(c.Group) {
		v.errorf("group", "required: the consumer group of the main consumer, e.g. group: orders-service, or set %s", EnvGroup)
	}
	if t := c.TLS; t != nil {
		for _, f := range []struct{ name, value string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
			if f.value != "" && blank(f.value) {
				v.errorf("tls."+f.name, "must not be empty: a PEM file name, or nothing")
			}
		}
		switch {
		case t.KeyFile != "" && t.CertFile == "":
			v.errorf("tls.key_file", "given without tls.cert_file: set both for a client certificate, or neither")
		case t.CertFile != "" && t.KeyFile == "":
			v.errorf("tls.cert_file", "given without tls.key_file: set both for a client certificate, or neither")
		}
	}
	if s := c.SASL; s != nil {
		switch {
		case blank(s.Mechanism):
			v.errorf("sasl.mechanism", "required: one of %s", strings.Join(mechanisms, ", "))
		case !slices.ContainsFunc(mechanisms, func(m string) bool { return strings.EqualFold(m, s.Mechanism) }):
			v.errorf("sasl.mechanism", "must be one of %s, got %s", strings.Join(mechanisms, ", "), quoteCut(s.Mechanism))
		}
		if blank(s.Username) {
			v.errorf("sasl.username", "required: the SASL user name")
		}
		switch {
		case s.PasswordEnv == "":
			v.errorf("sasl.password_env", "required: the name of the environment variable that holds the password, e.g. password_env: KRETRY_SASL_PASSWORD")
		case !envName.MatchString(s.PasswordEnv):
			v.errorf("sasl.password_env", "must be the name of an environment variable (letters, digits and _, e.g. KRETRY_SASL_PASSWORD) that holds the password, not the password itself")
		}
	}
}

func (v *validator) topics() {
	c := v.c
	if len(c.Topics) == 0 {
		v.errorf("topics", "required: list at least one topic with its tiers, e.g. topics: [{name: orders, tiers: [{delay: 5s}]}]")
		return
	}
	first := map[string]int{}    // main topic → index
	owner := map[string]string{} // every topic name of c → what it is
	for i, t := range c.Topics {
		path := fmt.Sprintf("topics[%d]", i)
		before := len(v.errs)
		switch {
		case t.Name == "":
			v.errorf(path+".name", "required: the name of the main topic, e.g. name: orders")
		case topicNameProblem(t.Name) != "":
			v.errorf(path+".name", "%s, got %s", topicNameProblem(t.Name), quoteCut(t.Name))
		default:
			if j, dup := first[t.Name]; dup {
				v.errorf(path+".name", "duplicate topic %s, also topics[%d]: list each topic once", quoteCut(t.Name), j)
			} else {
				first[t.Name] = i
			}
		}
		v.tiers(t, path)
		if r := t.RetryInPlace; r != nil {
			if field, p := inPlaceProblem(*r); p != "" {
				v.errorf(path+".retry_in_place"+field, "%s", p)
			}
		}
		if t.DLQ != "" {
			if p := templateProblem(t.DLQ, false); p != "" {
				v.errorf(path+".dlq", "%s", p)
			}
		}
		if t.Naming != "" {
			if p := templateProblem(t.Naming, true); p != "" {
				v.errorf(path+".naming", "%s", p)
			}
		}
		if b := t.CircuitBreaker; b != nil {
			if key, problem := breakerProblem(b); problem != "" {
				v.errorf(path+".circuit_breaker."+key, "%s", problem)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(t.DLQRoutes)) {
			rpath := join(path+".dlq_routes", show(name))
			if err := ladder.CheckRouteName(name); err != nil {
				v.errorf(rpath, "%v", err)
			} else if rt := t.DLQRoutes[name]; strings.TrimSpace(rt) == "" {
				v.errorf(rpath, "must name the route's topic, e.g. %s: orders.%s", name, name)
			} else if p := templateProblem(rt, false); p != "" {
				v.errorf(rpath, "%s", p)
			}
		}
		switch {
		case t.MaxAge < 0:
			v.errorf(path+".max_age", "must be > 0 (0 in Go, or omitted in a file, for no limit), got %s", t.MaxAge)
		case t.MaxAge > 0 && len(t.LadderTiers()) > 0 && t.MaxAge <= t.LadderTiers()[0].Delay:
			v.errorf(path+".max_age", "%s; got %s", maxAgeProblem(t.LadderTiers()[0].Delay), ladder.FormatDelay(t.MaxAge))
		}
		longest := time.Duration(0)
		for _, tier := range t.LadderTiers() {
			longest = max(longest, tier.Delay)
		}
		if t.RetryAfterMax != 0 {
			if p := retryAfterMaxProblem(t.RetryAfterMax, longest); p != "" {
				v.errorf(path+".retry_after_max", "%s; got %s", p, ladder.FormatDelay(t.RetryAfterMax))
			}
		}
		switch {
		case t.TierRetention < 0:
			v.errorf(path+".retention.tiers", "must be > 0 (0 in Go, or omitted in a file, for the default max(2 × delay, 24h) per tier), got %s", t.TierRetention)
		case t.TierRetention > 0 && t.TierRetention < 2*longest:
			v.errorf(path+".retention.tiers", "%s, got %s", retentionProblem(longest), ladder.FormatDelay(t.TierRetention))
		}
		if t.DLQRetention < 0 {
			v.errorf(path+".retention.dlq", "must be > 0 (0 in Go, or omitted in a file, for the default 336h, 14 days), got %s", t.DLQRetention)
		}
		if t.Partitions < 0 {
			v.errorf(path+".partitions", "must be ≥ 1 (0 in Go, or omitted in a file, to leave the main topic alone), got %d", t.Partitions)
		}
		switch {
		case t.ReplicationFactor < 0:
			v.errorf(path+".replication_factor", "must be ≥ 1 (0 in Go, or omitted in a file, for the brokers' default), got %d", t.ReplicationFactor)
		case t.ReplicationFactor > 0 && t.Partitions <= 0:
			v.errorf(path+".replication_factor", "%s", replicationProblem)
		}
		for _, kc := range []struct {
			key string
			cs  map[string]string
		}{{"topic_configs", t.TopicConfigs}, {"tier_configs", t.TierConfigs}, {"dlq_configs", t.DLQConfigs}} {
			key := kc.key
			for _, name := range slices.Sorted(maps.Keys(kc.cs)) {
				if err := topics.CheckConfigName(name); err != nil {
					v.errorf(path+"."+key+"."+name, "%v", err)
				}
			}
		}
		if len(v.errs) > before || blank(c.Group) {
			continue // the ladder would repeat these errors
		}
		l, err := t.Ladder(c.Group)
		if err != nil {
			v.errorf(path, "%v", err)
			continue
		}
		claim := func(name, field, what string) {
			if first, dup := owner[name]; dup {
				v.errorf(field, "topic %s is also %s: every main, tier and DLQ topic needs its own name; change naming or dlq", quoteCut(name), first)
				return
			}
			owner[name] = what
		}
		claim(t.Name, path+".name", "the main topic "+path)
		for j, s := range l.Steps() {
			claim(s.Topic, fmt.Sprintf("%s.tiers[%d]", path, j), fmt.Sprintf("the tier topic of %s.tiers[%d]", path, j))
		}
		claim(l.DLQ(), path+".dlq", "the DLQ of "+path)
		for _, name := range l.RouteNames() {
			rt, _ := l.Route(name)
			claim(rt, path+".dlq_routes."+name, "the DLQ route "+path+".dlq_routes."+name)
		}
	}
}

func (v *validator) tiers(t Topic, path string) {
	if b := t.Backoff; b != nil {
		if len(t.Tiers) > 0 {
			v.errorf(path+".backoff", "%s", tiersAndBackoffProblem)
			return
		}
		if field, err := b.Check(MaxTierAttempts); err != nil {
			v.errorf(path+".backoff."+field, "%v", err)
		}
		return
	}
	path += ".tiers"
	if len(t.Tiers) == 0 {
		v.errorf(path, "%s", tiersRequiredProblem)
		return
	}
	for i, tier := range t.Tiers {
		tpath := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case tier.Delay <= 0:
			v.errorf(tpath+".delay", "must be > 0, got %s", tier.Delay)
		case i > 0 && tier.Delay <= t.Tiers[i-1].Delay:
			v.errorf(tpath+".delay", "must be longer than the previous tier's delay %s: tiers go in strictly increasing order of delay, got %s",
				ladder.FormatDelay(t.Tiers[i-1].Delay), ladder.FormatDelay(tier.Delay))
		}
		if tier.Attempts < 0 || tier.Attempts > MaxTierAttempts {
			v.errorf(tpath+".attempts", "must be a whole number from 1 to %d (0 in Go, or omitted in a file, for the default 1), got %d", MaxTierAttempts, tier.Attempts)
		}
	}
}

func (v *validator) relayAndMembers() {
	c := v.c
	if c.Relay.Group != "" {
		switch {
		case blank(c.Relay.Group):
			v.errorf("relay.group", `must not be empty: omit it for the default "{group}%s"`, DefaultRelaySuffix)
		case c.Relay.Group == c.Group:
			v.errorf("relay.group", "%s", relayGroupProblem(c.Group))
		}
	}
	switch {
	case c.Relay.FetchMaxWait < 0:
		v.errorf("relay.fetch_max_wait", "must be > 0 (default %s), got %s", ladder.FormatDelay(DefaultFetchMaxWait), c.Relay.FetchMaxWait)
	case c.Relay.FetchMaxWait > 0 && c.Relay.FetchMaxWait < MinFetchMaxWait:
		v.errorf("relay.fetch_max_wait", "%s, got %s", fetchMaxWaitProblem, c.Relay.FetchMaxWait)
	}
	if n := c.Relay.HoldBytes; n != nil && *n < 0 {
		v.errorf("relay.hold_bytes", "must be ≥ 0 (0 holds nothing; default %s), got %d", humanize.IBytes(DefaultHoldBytes), *n)
	}
	for _, b := range []struct {
		field     string
		v, lo, hi time.Duration
		def       time.Duration
		why       string
	}{
		{"commit_interval", c.CommitInterval, MinCommitInterval, MaxCommitInterval, DefaultCommitInterval, commitIntervalWhy},
		{"session_timeout", c.SessionTimeout, MinSessionTimeout, MaxSessionTimeout, DefaultSessionTimeout, sessionTimeoutWhy},
		{"delivery_timeout", c.DeliveryTimeout, time.Millisecond, MaxDeliveryTimeout, DefaultDeliveryTimeout, deliveryTimeoutWhy},
	} {
		if b.v != 0 && (b.v < b.lo || b.v > b.hi) {
			v.errorf(b.field, "%s; got %s", boundsProblem(b.lo, b.hi, b.def, b.why), b.v)
		}
	}
	if c.InstanceID != "" {
		if p := instanceIDProblem(c.InstanceID); p != "" {
			v.errorf("instance_id", "%s, got %s", p, quoteCut(c.InstanceID))
		}
	}
	if _, ok := groupProtocol(c.GroupProtocol); !ok && c.GroupProtocol != "" {
		v.errorf("group_protocol", "%s, got %s", groupProtocolProblem, quoteCut(c.GroupProtocol))
	}
}

// The rules Parse and Validate share, in the words of their errors.

const (
	commitIntervalWhy  = "how often marked offsets are committed, which bounds the work a crash repeats"
	sessionTimeoutWhy  = "Kafka brokers refuse a session timeout outside group.min.session.timeout.ms and group.max.session.timeout.ms, 6s and 30m by default"
	deliveryTimeoutWhy = "how long a produced record waits for its acknowledgement before it fails"

	fetchMaxWaitProblem = "must be at least 1ms (default 100ms): brokers wait for a fetch in whole milliseconds, and the relay refuses less"

	groupProtocolProblem = "must be " + GroupProtocolClassic + " (the default, assignment by the clients) or " + GroupProtocolConsumer + " (KIP-848 assignment by the broker, Kafka 4.0+)"
)

// groupProtocol is s read as a group_protocol, in any case as Kafka's own
// group.protocol: GroupProtocolClassic or GroupProtocolConsumer, ok; false
// for anything else, "" included.
func groupProtocol(s string) (p string, ok bool) {
	p = strings.ToLower(strings.TrimSpace(s))
	return p, p == GroupProtocolClassic || p == GroupProtocolConsumer
}

func boundsProblem(lo, hi, def time.Duration, why string) string {
	return fmt.Sprintf("must be between %s and %s (default %s): %s",
		ladder.FormatDelay(lo), ladder.FormatDelay(hi), ladder.FormatDelay(def), why)
}

const (
	tiersAndBackoffProblem = "has both tiers and backoff: keep one, tiers to list the delays or backoff to generate them"
	tiersRequiredProblem   = "required: list at least one tier, e.g. tiers: [{delay: 5s}, {delay: 1m}], or generate them with backoff: {initial: 1s, max: 1m, attempts: 8}"
)

// Check reports what is wrong with r by the rules of retry_in_place, as
// Validate does for a topic's; nil when it is right.
func (r RetryInPlace) Check() error {
	if field, p := inPlaceProblem(r); p != "" {
		return fmt.Errorf("retry_in_place%s: %s", field, p)
	}
	return nil
}

// inPlaceProblem checks a retry_in_place: the field at fault (".attempts",
// ".max_backoff", or "" for the whole) and the problem, or "".
func inPlaceProblem(r RetryInPlace) (field, problem string) {
	backoff, maxBackoff := r.resolved()
	switch {
	case r.Attempts < 1 || r.Attempts > MaxInPlaceAttempts:
		return ".attempts", fmt.Sprintf("must be a whole number from 1 to %d: the retries in place before the first tier; got %d", MaxInPlaceAttempts, r.Attempts)
	case r.Backoff < 0:
		return ".backoff", fmt.Sprintf("must be > 0 (default %s), got %s", ladder.FormatDelay(DefaultInPlaceBackoff), r.Backoff)
	case r.MaxBackoff < 0 || maxBackoff < backoff:
		return ".max_backoff", fmt.Sprintf("must be at least backoff %s: it caps the doubling waits; got %s", ladder.FormatDelay(backoff), ladder.FormatDelay(r.MaxBackoff))
	}
	if worst := r.WorstCase(); worst > MaxInPlaceWait {
		return "", fmt.Sprintf("its waits take up to %s together (%d attempts, %s doubling, capped at %s), more than %s, half of the group rebalance timeout (60s): one record would hold its partition that long; lower attempts or max_backoff, and let a retry tier take the longer waits",
			ladder.FormatDelay(worst), r.Attempts, ladder.FormatDelay(backoff), ladder.FormatDelay(maxBackoff), ladder.FormatDelay(MaxInPlaceWait))
	}
	return "", ""
}

func maxAgeProblem(firstDelay time.Duration) string {
	return fmt.Sprintf("must be longer than the first tier's delay %s: a record that fails once would expire before its first retry", ladder.FormatDelay(firstDelay))
}

func retentionProblem(longest time.Duration) string {
	return fmt.Sprintf("must be at least 2 × the longest tier delay (2 × %s = %s) so that no record expires before it is due",
		ladder.FormatDelay(longest), ladder.FormatDelay(2*longest))
}

func relayGroupProblem(group string) string {
	return fmt.Sprintf("must differ from group %s: the relay consumes the tier topics in a group of its own (default %s)", quoteCut(group), quoteCut(group+DefaultRelaySuffix))
}
