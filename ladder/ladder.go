package ladder

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kretry/kretry/headers"
)

// DefaultNaming is the template of a tier topic's name when WithNaming is not
// given: "orders" with a 5s tier gives "orders.retry-5s".
const DefaultNaming = "{topic}.retry-{delay}"

// DefaultDLQ is the template of the dead-letter topic's name when WithDLQ is
// not given: "orders" gives "orders.dlq".
const DefaultDLQ = "{topic}.dlq"

// DefaultRetryAfterMax is the longest wait a RetryAfter may ask for, and the
// relay trusts a kretry-due-at for, when WithRetryAfterMax is not given (or
// the longest tier's delay, when that is longer).
const DefaultRetryAfterMax = 24 * time.Hour

// Tier is one rung of a retry ladder as configured: records wait Delay in it,
// and it takes Attempts failures before the next tier does.
type Tier struct {
	Delay    time.Duration
	Attempts int // 0 means 1
}

// Step is one tier of a Ladder, resolved: its position, name and topic.
type Step struct {
	Index    int           // 0-based position in the ladder
	Name     string        // "retry-" + FormatDelay(Delay): the kretry-tier value and the metric label
	Topic    string        // from the naming template, e.g. "orders.retry-5s"
	Delay    time.Duration // how long a record waits in this tier
	Attempts int           // failures this tier takes, ≥ 1
	Jitter   float64       // the ladder's jitter (WithJitter), 0 ≤ Jitter < 1
}

// Wait returns how long a record that failed waits in s, for u uniform in
// [0, 1) drawn per record: Delay × (1 − Jitter × u), shortened by whole
// milliseconds only, so never longer than Delay nor shorter than
// Delay × (1 − Jitter), and a due time written in milliseconds keeps it
// exactly. Without jitter it is Delay.
func (s Step) Wait(u float64) time.Duration {
	if s.Jitter <= 0 || u <= 0 {
		return s.Delay
	}
	cut := time.Duration(float64(s.Delay) * s.Jitter * min(u, 1))
	return s.Delay - cut.Truncate(time.Millisecond)
}

// Ladder is the resolved retry ladder of one main topic for one consumer
// group: its tier topics in order and its DLQ. A Ladder is immutable and safe
// for concurrent use.
type Ladder struct {
	topic, group, dlq string
	steps             []Step
	maxRetries        int
	routes            map[string]string // DLQ route name → topic
	routeNames        []string          // sorted
	retryAfterMax     time.Duration
}

// Opt configures New. Options are applied in order; a later one overrides
// an earlier one of the same kind.
type Opt interface{ apply(*cfg) }

type cfg struct {
	naming string
	dlq    string
	jitter float64
	routes map[string]string
	// retryAfterMax: 0 is DefaultRetryAfterMax
	retryAfterMax time.Duration
}

func defaultCfg() cfg { return cfg{naming: DefaultNaming, dlq: DefaultDLQ} }

type opt func(*cfg)

func (o opt) apply(c *cfg) { o(c) }

// WithNaming sets the template of the tier topics' names. It may use
// {topic} (the main topic), {group} (the consumer group), {delay} (the tier's
// delay in FormatDelay form) and {index} (the tier's 1-based position in the
// ladder: the first tier is 1), and must use {delay} or {index} so that every
// tier gets its own topic. Default DefaultNaming, "{topic}.retry-{delay}".
func WithNaming(template string) Opt {
	return opt(func(c *cfg) { c.naming = template })
}

// WithDLQ sets the dead-letter topic: a plain name ("orders-dead") or a
// template using {topic} and {group}. Default DefaultDLQ, "{topic}.dlq".
func WithDLQ(nameOrTemplate string) Opt {
	return opt(func(c *cfg) { c.dlq = nameOrTemplate })
}

// WithJitter sets the share of a tier's delay that is drawn away per
// record: a record is due at the failure + Step.Wait(u), between
// delay × (1 − jitter) and delay, never later. 0 ≤ jitter < 1. Default 0,
// no jitter.
func WithJitter(jitter float64) Opt {
	return opt(func(c *cfg) { c.jitter = jitter })
}

// WithRetryAfterMax sets the longest wait a consumer.RetryAfter may ask
// for: the consumer cuts a longer one to it, and the relay trusts a
// kretry-due-at up to the last failure plus it (past that the record is due
// at the last failure plus its tier's delay). A wait longer than the last
// tier's delay is kept by the relay re-parking the record in its tier every
// tier delay until it is due. d ≥ 0; 0 is the default,
// DefaultRetryAfterMax (24h); a d shorter than the last tier's delay counts
// as that delay.
func WithRetryAfterMax(d time.Duration) Opt {
	return opt(func(c *cfg) { c.retryAfterMax = d })
}

// WithDLQRoutes sets the ladder's DLQ routes: dead-letter topics of their
// own, by route name (dlq_routes), besides the DLQ. A handler sends a record
// to one with consumer.DeadLetterTo. A route name is 1 to 64 letters,
// digits, '.', '_' or '-', and not "dlq" (the metrics' name of the DLQ);
// a route topic is a plain topic name (or a template using {topic} and
// {group}), distinct from the main topic, the tiers, the DLQ and the other
// routes. Default: none.
func WithDLQRoutes(routes map[string]string) Opt {
	return opt(func(c *cfg) { c.routes = routes })
}

// CheckRouteName checks a DLQ route's name (see WithDLQRoutes).
func CheckRouteName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("DLQ route name %q: want 1 to 64 letters, digits, '.', '_' or '-'", name)
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("DLQ route name %q has the character %q: want letters, digits, '.', '_' or '-'", name, c)
		}
	}
	if name == RouteDLQ {
		return fmt.Errorf("DLQ route name %q is the name of the DLQ itself: choose another", name)
	}
	return nil
}

// RouteDLQ is the route name of the DLQ itself, in metrics and tools.
const RouteDLQ = "dlq"

// New resolves the retry ladder of topic for group. Tiers must be given
// in order of strictly increasing delay, each delay > 0 and attempts ≥ 0
// (0 means 1). Every resolved name must be a legal Kafka topic name, and the
// main topic, the tier topics and the DLQ must all differ.
func New(topic, group string, tiers []Tier, opts ...Opt) (*Ladder, error) {
	cfg := defaultCfg()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := checkTopicName(topic); err != nil {
		return nil, fmt.Errorf("retry ladder: main topic: %w", err)
	}
	if group == "" {
		return nil, fmt.Errorf("retry ladder of topic %s: the consumer group is empty: give the group whose handler the ladder retries", topic)
	}
	if len(tiers) == 0 {
		return nil, fmt.Errorf("retry ladder of topic %s: no tiers: give at least one tier with a delay", topic)
	}
	if !(cfg.jitter >= 0 && cfg.jitter < 1) {
		return nil, fmt.Errorf("retry ladder of topic %s: %w, got %v", topic, errJitter, cfg.jitter)
	}
	if cfg.retryAfterMax < 0 {
		return nil, fmt.Errorf("retry ladder of topic %s: retry-after max %v: want a duration ≥ 0 (0 for the default %v)", topic, cfg.retryAfterMax, DefaultRetryAfterMax)
	}
	if err := checkTemplate(cfg.naming, true); err != nil {
		return nil, fmt.Errorf("retry ladder of topic %s: naming template %q: %w", topic, cfg.naming, err)
	}
	if err := checkTemplate(cfg.dlq, false); err != nil {
		return nil, fmt.Errorf("retry ladder of topic %s: DLQ name %q: %w", topic, cfg.dlq, err)
	}

	l := &Ladder{topic: topic, group: group, steps: make([]Step, 0, len(tiers))}
	l.dlq = expand(cfg.dlq, topic, group, "", "")
	if err := checkTopicName(l.dlq); err != nil {
		return nil, fmt.Errorf("retry ladder of topic %s: DLQ: %w", topic, err)
	}
	if l.dlq == topic {
		return nil, fmt.Errorf("retry ladder of topic %s: the DLQ is the main topic: give the DLQ its own name", topic)
	}
	seen := map[string]int{topic: -1, l.dlq: -2}
	for i, t := range tiers {
		switch {
		case t.Delay <= 0:
			return nil, fmt.Errorf("retry ladder of topic %s: tier %d: delay %v: want a delay > 0", topic, i+1, t.Delay)
		case t.Attempts < 0:
			return nil, fmt.Errorf("retry ladder of topic %s: tier %d (%s): attempts %d: want attempts ≥ 1 (0 means 1)", topic, i+1, FormatDelay(t.Delay), t.Attempts)
		case i > 0 && t.Delay <= tiers[i-1].Delay:
			return nil, fmt.Errorf("retry ladder of topic %s: tier %d (%s) does not wait longer than tier %d (%s): order tiers by strictly increasing delay",
				topic, i+1, FormatDelay(t.Delay), i, FormatDelay(tiers[i-1].Delay))
		}
		s := Step{
			Index:    i,
			Name:     "retry-" + FormatDelay(t.Delay),
			Topic:    expand(cfg.naming, topic, group, FormatDelay(t.Delay), strconv.Itoa(i+1)),
			Delay:    t.Delay,
			Attempts: max(t.Attempts, 1),
			Jitter:   cfg.jitter,
		}
		if err := checkTopicName(s.Topic); err != nil {
			return nil, fmt.Errorf("retry ladder of topic %s: tier %d (%s): %w", topic, i+1, s.Name, err)
		}
		if j, dup := seen[s.Topic]; dup {
			what := "the main topic"
			switch {
			case j == -2:
				what = "the DLQ"
			case j >= 0:
				what = fmt.Sprintf("tier %d", j+1)
			}
			return nil, fmt.Errorf("retry ladder of topic %s: tier %d (%s) is named %s, like %s: give every tier its own topic with {delay} or {index} in the naming template",
				topic, i+1, s.Name, s.Topic, what)
		}
		seen[s.Topic] = i
		l.steps = append(l.steps, s)
		l.maxRetries += s.Attempts
		if l.maxRetries >= headers.MaxAttempts {
			// kretry-attempts saturates at MaxAttempts: a longer ladder would
			// keep a record at its last tier for ever instead of reaching the DLQ.
			return nil, fmt.Errorf("retry ladder of topic %s: the tiers' attempts add up to %d or more: want fewer than %d in all",
				topic, l.maxRetries, headers.MaxAttempts)
		}
	}
	l.retryAfterMax = cmp.Or(cfg.retryAfterMax, DefaultRetryAfterMax)
	l.retryAfterMax = max(l.retryAfterMax, l.steps[len(l.steps)-1].Delay)
	if len(cfg.routes) > 0 {
		l.routes = make(map[string]string, len(cfg.routes))
		names := slices.Sorted(maps.Keys(cfg.routes))
		for _, name := range names {
			if err := CheckRouteName(name); err != nil {
				return nil, fmt.Errorf("retry ladder of topic %s: %w", topic, err)
			}
			if err := checkTemplate(cfg.routes[name], false); err != nil {
				return nil, fmt.Errorf("retry ladder of topic %s: DLQ route %s: %w", topic, name, err)
			}
			rt := expand(cfg.routes[name], topic, group, "", "")
			if err := checkTopicName(rt); err != nil {
				return nil, fmt.Errorf("retry ladder of topic %s: DLQ route %s: %w", topic, name, err)
			}
			if j, dup := seen[rt]; dup {
				what := "the main topic"
				switch {
				case j == -2:
					what = "the DLQ"
				case j == -3:
					what = "another DLQ route"
				case j >= 0:
					what = fmt.Sprintf("tier %d", j+1)
				}
				return nil, fmt.Errorf("retry ladder of topic %s: DLQ route %s is the topic %s, like %s: give every route its own topic", topic, name, rt, what)
			}
			seen[rt] = -3
			l.routes[name] = rt
		}
		l.routeNames = names
	}
	return l, nil
}

// Route returns the topic of the DLQ route name, and whether l has it.
func (l *Ladder) Route(name string) (string, bool) {
	t, ok := l.routes[name]
	return t, ok
}

// RouteNames returns the names of l's DLQ routes, sorted.
func (l *Ladder) RouteNames() []string { return slices.Clone(l.routeNames) }

// DLQTopics returns the DLQ and the topics of the DLQ routes, in that order
// (routes by name).
func (l *Ladder) DLQTopics() []string {
	out := []string{l.dlq}
	for _, n := range l.routeNames {
		out = append(out, l.routes[n])
	}
	return out
}

// Topic returns the main topic, the one that records are re-fed to.
func (l *Ladder) Topic() string { return l.topic }

// Group returns the consumer group whose handler the ladder retries.
func (l *Ladder) Group() string { return l.group }

// Jitter returns the ladder's jitter (WithJitter); 0: none.
func (l *Ladder) Jitter() float64 {
	if len(l.steps) == 0 {
		return 0
	}
	return l.steps[0].Jitter
}

// RetryAfterMax returns the longest wait a RetryAfter may ask for and the
// relay trusts a kretry-due-at for, past the last failure (WithRetryAfterMax):
// never shorter than the last tier's delay.
func (l *Ladder) RetryAfterMax() time.Duration { return l.retryAfterMax }

// DLQ returns the dead-letter topic.
func (l *Ladder) DLQ() string { return l.dlq }

// Steps returns the tiers in order. The slice is a copy.
func (l *Ladder) Steps() []Step { return append([]Step(nil), l.steps...) }

// MaxRetries returns the number of retries the ladder gives a record: the sum
// of its tiers' attempts. Failure MaxRetries()+1 goes to the DLQ.
func (l *Ladder) MaxRetries() int { return l.maxRetries }

// For returns the step that takes failure number failure (1 after the first
// failed attempt): the tier that covers it in the running total of attempts.
// It reports false when the ladder is used up (failure > MaxRetries()), which
// means the DLQ, and for failure < 1, which is no failure at all.
func (l *Ladder) For(failure int) (Step, bool) {
	if failure < 1 {
		return Step{}, false
	}
	total := 0
	for _, s := range l.steps {
		total += s.Attempts
		if failure <= total {
			return s, true
		}
	}
	return Step{}, false
}

// StepByTopic returns the step whose tier topic is topic.
func (l *Ladder) StepByTopic(topic string) (Step, bool) {
	for _, s := range l.steps {
		if s.Topic == topic {
			return s, true
		}
	}
	return Step{}, false
}

// StepByName returns the step named name ("retry-5s"), the value of a
// record's kretry-tier header.
func (l *Ladder) StepByName(name string) (Step, bool) {
	for _, s := range l.steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// FormatDelay returns d in the shortest Go duration form that
// time.ParseDuration reads back: the non-zero hours, minutes and seconds,
// then any sub-second rest in the largest exact unit: 5s, 1m, 10m, 1h30m,
// 1h, 500ms, 1s500ms, 250us. Unlike d.String() it never writes zero
// components ("1h0m0s") or a decimal point, which suit topic names badly.
func FormatDelay(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = -u // two's complement: right for math.MinInt64 too
	}
	for _, unit := range []struct {
		size uint64
		name string
	}{
		{uint64(time.Hour), "h"}, {uint64(time.Minute), "m"}, {uint64(time.Second), "s"},
	} {
		if n := u / unit.size; n > 0 {
			b.WriteString(strconv.FormatUint(n, 10))
			b.WriteString(unit.name)
			u %= unit.size
		}
	}
	if u > 0 {
		switch {
		case u%uint64(time.Millisecond) == 0:
			b.WriteString(strconv.FormatUint(u/uint64(time.Millisecond), 10) + "ms")
		case u%uint64(time.Microsecond) == 0:
			b.WriteString(strconv.FormatUint(u/uint64(time.Microsecond), 10) + "us")
		default:
			b.WriteString(strconv.FormatUint(u, 10) + "ns")
		}
	}
	return b.String()
}

var errNoTierPlaceholder = errors.New("no {delay} or {index}: every tier would get the same topic")

// checkTemplate accepts {topic} and {group} everywhere, {delay} and {index}
// only in a tier naming template, which must hold one of them.
func checkTemplate(tmpl string, tier bool) error {
	if tmpl == "" {
		return errors.New("empty")
	}
	perTier := false
	for rest := tmpl; ; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return errors.New("a '}' without its '{'")
			}
			break
		}
		if strings.IndexByte(rest[:open], '}') >= 0 {
			return errors.New("a '}' without its '{'")
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return errors.New("a '{' without its '}'")
		}
		switch name := rest[open : open+end+1]; name {
		case "{topic}", "{group}":
		case "{delay}", "{index}":
			if !tier {
				return fmt.Errorf("%s names a tier, and the DLQ is one topic for the whole ladder: use {topic} and {group} only", name)
			}
			perTier = true
		default:
			return fmt.Errorf("unknown placeholder %s: use {topic}, {group}, {delay} or {index}", name)
		}
		rest = rest[open+end+1:]
	}
	if tier && !perTier {
		return errNoTierPlaceholder
	}
	return nil
}

func expand(tmpl, topic, group, delay, index string) string {
	return strings.NewReplacer("{topic}", topic, "{group}", group, "{delay}", delay, "{index}", index).Replace(tmpl)
}

// checkTopicName applies Kafka's rules for topic names.
func checkTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed by Kafka", name)
	case len(name) > 249:
		return fmt.Errorf("topic name %q is %d characters long: Kafka allows at most 249", name, len(name))
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has the character %q: Kafka allows only letters, digits, '.', '_' and '-'", name, c)
		}
	}
	return nil
}

// FirstFailure returns the failure number of s's first attempt: 1 for the
// first tier, the attempts of the tiers before it + 1 for the others. It
// reports false when s is not a step of l.
func (l *Ladder) FirstFailure(s Step) (int, bool) {
	n := 1
	for _, t := range l.steps {
		if t.Topic == s.Topic {
			return n, true
		}
		n += t.Attempts
	}
	return 0, false
}

// AtLeast returns the first step whose delay is at least d, or the last step
// when none is: the tier that waits d or just longer.
func (l *Ladder) AtLeast(d time.Duration) Step {
	for _, s := range l.steps {
		if s.Delay >= d {
			return s
		}
	}
	return l.steps[len(l.steps)-1]
}
