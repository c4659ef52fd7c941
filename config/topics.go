package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/topics"
)

// topicLines remembers where a topic's parts are, for the checks that span
// fields and topics.
type topicLines struct {
	topic, name, dlq int
	tiers            []int
	routes           map[string]int // dlq_routes: the line of each route
	ok               bool           // no error in the topic's own fields
}

func (d *decoder) topics(top map[string]field, rootLine int, c *Config) {
	f, ok := top["topics"]
	if !ok || f.value == nil {
		d.errorf(max(f.line, rootLine), "topics", "required: list at least one topic with its tiers, e.g. topics: [{name: orders, tiers: [{delay: 5s}]}]")
		return
	}
	items, ok := d.sequence(f, "topics", "topics, each with a name and tiers")
	if !ok {
		return
	}
	if len(items) == 0 {
		d.errorf(f.line, "topics", "must list at least one topic with its tiers, got an empty list")
		return
	}
	firstByName := map[string]int{}
	var lines []topicLines
	for i, it := range items {
		path := fmt.Sprintf("topics[%d]", i)
		before := len(d.errs)
		t, tl := d.topic(it.value, it.line, path)
		if t.Name != "" {
			if j, dup := firstByName[t.Name]; dup {
				d.errorf(tl.name, path+".name", "duplicate topic %s, also topics[%d] on line %d: list each topic once", quoteCut(t.Name), j, lines[j].name)
			} else {
				firstByName[t.Name] = i
			}
		}
		tl.ok = len(d.errs) == before
		c.Topics = append(c.Topics, t)
		lines = append(lines, tl)
	}
	d.ladders(c, lines)
}

func (d *decoder) topic(n ast.Node, line int, path string) (Topic, topicLines) {
	t := Topic{Naming: ladder.DefaultNaming, DLQ: ladder.DefaultDLQ}
	tl := topicLines{topic: line, name: line, dlq: line}
	if n == nil {
		d.errorf(line, path, "must be a mapping with the keys %s, got nothing", strings.Join(topicKeys, ", "))
		return t, tl
	}
	fields, ok := d.mapping(n, line, path, topicKeys, nil)
	if !ok {
		return t, tl
	}

	if name, l, ok := d.nonEmpty(fields, "name", path+".name", "the name of the main topic"); ok {
		tl.name = l
		if problem := topicNameProblem(name); problem != "" {
			d.errorf(l, path+".name", "%s, got %s", problem, quoteCut(name))
		} else {
			t.Name = name
		}
	} else if f, given := fields["name"]; !given || f.value == nil {
		d.errorf(max(f.line, line), path+".name", "required: the name of the main topic, e.g. name: orders")
	}

	if f, ok := fields["backoff"]; ok {
		t.Backoff = d.backoff(f, path+".backoff")
		if tf, both := fields["tiers"]; both {
			d.errorf(max(f.line, tf.line), path, "%s", tiersAndBackoffProblem)
		}
		for range t.LadderTiers() {
			tl.tiers = append(tl.tiers, f.line)
		}
	} else {
		t.Tiers, tl.tiers = d.tiers(fields, line, path)
	}

	if f, ok := fields["retry_in_place"]; ok {
		t.RetryInPlace = d.retryInPlace(f, path+".retry_in_place")
	}
	if s, l, ok := d.nonEmpty(fields, "dlq", path+".dlq", `omit it for the default "`+ladder.DefaultDLQ+`"`); ok {
		tl.dlq = l
		if problem := templateProblem(s, false); problem != "" {
			d.errorf(l, path+".dlq", "%s", problem)
		} else {
			t.DLQ = s
		}
	}
	if s, l, ok := d.nonEmpty(fields, "naming", path+".naming", `omit it for the default "`+ladder.DefaultNaming+`"`); ok {
		if problem := templateProblem(s, true); problem != "" {
			d.errorf(l, path+".naming", "%s", problem)
		} else {
			t.Naming = s
		}
	}
	if v, l, ok := d.duration(fields, "max_age", path+".max_age", " (omit max_age for no limit)"); ok {
		t.MaxAge = v
		if tiers := t.LadderTiers(); len(tiers) > 0 && v <= tiers[0].Delay {
			d.errorf(l, path+".max_age", "%s; got %s", maxAgeProblem(tiers[0].Delay), show(fields["max_age"].value.GetToken().Value))
		}
	}
	if v, l, ok := d.duration(fields, "retry_after_max", path+".retry_after_max", " (omit it for the default 24h)"); ok {
		longest := time.Duration(0)
		for _, tier := range t.LadderTiers() {
			longest = max(longest, tier.Delay)
		}
		if problem := retryAfterMaxProblem(v, longest); problem != "" {
			d.errorf(l, path+".retry_after_max", "%s; got %s", problem, show(fields["retry_after_max"].value.GetToken().Value))
		} else {
			t.RetryAfterMax = v
		}
	}
	if f, ok := fields["retention"]; ok {
		rpath := path + ".retention"
		rf, ok := d.mapping(f.value, f.line, rpath, retentionKeys, nil)
		if ok {
			longest := time.Duration(0)
			for _, tier := range t.LadderTiers() {
				longest = max(longest, tier.Delay)
			}
			if v, l, ok := d.duration(rf, "tiers", rpath+".tiers", " (omit it for the default max(2 × delay, 24h) per tier)"); ok {
				if longest > 0 && v < 2*longest {
					d.errorf(l, rpath+".tiers", "%s, got %s", retentionProblem(longest), show(rf["tiers"].value.GetToken().Value))
				} else {
					t.TierRetention = v
				}
			}
			if v, _, ok := d.duration(rf, "dlq", rpath+".dlq", " (omit it for the default 336h, 14 days)"); ok {
				t.DLQRetention = v
			}
		}
	}
	if v, _, ok := d.count(fields, "partitions", path+".partitions", math.MaxInt32); ok {
		t.Partitions = int32(v)
	}
	if v, l, ok := d.count(fields, "replication_factor", path+".replication_factor", math.MaxInt16); ok {
		if t.Partitions == 0 {
			d.errorf(l, path+".replication_factor", "%s", replicationProblem)
		} else {
			t.ReplicationFactor = int16(v)
		}
	}
	t.TopicConfigs = d.topicConfigs(fields, "topic_configs", path)
	t.TierConfigs = d.topicConfigs(fields, "tier_configs", path)
	t.DLQConfigs = d.topicConfigs(fields, "dlq_configs", path)
	t.DLQRoutes, tl.routes = d.dlqRoutes(fields, path)
	if f, ok := fields["circuit_breaker"]; ok && f.value != nil {
		t.CircuitBreaker = d.breaker(f, path+".circuit_breaker")
	}
	return t, tl
}

// halfOpenWhat is what half_open_records is, in the words of its errors.
var halfOpenWhat = fmt.Sprintf("a whole number from 1 to %d: the records let through half-open (omit it for %d), e.g. 5",
	MaxHalfOpenRecords, DefaultHalfOpenRecords)

// breaker reads a topic's circuit_breaker; every key is required but
// half_open_records.
func (d *decoder) breaker(f field, path string) *CircuitBreaker {
	fields, ok := d.mapping(f.value, f.line, path, breakerKeys, nil)
	if !ok {
		return nil
	}
	b := &CircuitBreaker{}
	const what = "a duration such as 30s or 1m"
	valid := d.requiredDurations(fields, f, path, requiredDuration{"window", what, &b.Window}, requiredDuration{"open_for", what, &b.OpenFor})
	if v, ok := d.number(fields, "failure_ratio", path+".failure_ratio", "a share of failed records above 0 and at most 1, e.g. 0.5"); ok {
		b.FailureRatio = v
	} else {
		valid = false
		if kf, given := fields["failure_ratio"]; !given || kf.value == nil {
			d.errorf(max(kf.line, f.line), path+".failure_ratio", "required: a share of failed records above 0 and at most 1, e.g. 0.5")
		}
	}
	if v, ok := d.number(fields, "min_records", path+".min_records", "a whole number ≥ 1, e.g. 100"); ok {
		if v != math.Trunc(v) || v < 1 || v > math.MaxInt32 {
			d.errorf(fields["min_records"].line, path+".min_records", "must be a whole number ≥ 1, e.g. 100, got %v", v)
			valid = false
		}
		b.MinRecords = int(v)
	} else {
		valid = false
		if kf, given := fields["min_records"]; !given || kf.value == nil {
			d.errorf(max(kf.line, f.line), path+".min_records", "required: the fewest records in the window that may open the breaker, e.g. 100")
		}
	}
	if v, ok := d.number(fields, "half_open_records", path+".half_open_records", halfOpenWhat); ok {
		if v != math.Trunc(v) || v < 1 || v > MaxHalfOpenRecords {
			d.errorf(fields["half_open_records"].line, path+".half_open_records", "must be %s, got %v", halfOpenWhat, v)
			valid = false
		}
		b.HalfOpenRecords = int(v)
	} else if kf, given := fields["half_open_records"]; given && kf.value != nil {
		valid = false
	}
	if !valid {
		return nil
	}
	if key, problem := breakerProblem(b); problem != "" {
		d.errorf(max(d.lines[path+"."+key], f.line), path+"."+key, "%s", problem)
		return nil
	}
	return b
}

// dlqRoutes reads a topic's dlq_routes: route name → topic (a name, or a
// template with {topic} and {group}).
func (d *decoder) dlqRoutes(fields map[string]field, path string) (map[string]string, map[string]int) {
	f, ok := fields["dlq_routes"]
	if !ok || f.value == nil {
		return nil, nil
	}
	path += ".dlq_routes"
	var pairs []*ast.MappingValueNode
	switch v := f.value.(type) {
	case *ast.MappingNode:
		pairs = v.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{v}
	default:
		d.errorf(f.line, path, "must be a mapping of route names to topics, e.g. dlq_routes: {invalid: orders.invalid, fraud: orders.fraud}, got %s", describe(f.value))
		return nil, nil
	}
	routes, lines := map[string]string{}, map[string]int{}
	for _, p := range pairs {
		kline := lineOf(p.Key)
		name, ok := scalarText(d.resolve(p.Key))
		if !ok {
			d.errorf(kline, path, "a route name must be a plain word, got %s", describe(d.resolve(p.Key)))
			continue
		}
		rpath := join(path, show(name))
		if err := ladder.CheckRouteName(name); err != nil {
			d.errorf(kline, rpath, "%v", err)
			continue
		}
		if l, dup := lines[name]; dup {
			d.errorf(kline, rpath, "duplicate route %s, also on line %d: list each route once", show(name), l)
			continue
		}
		v := d.resolve(p.Value)
		topic, ok := scalarText(v)
		switch {
		case v == nil || ok && strings.TrimSpace(topic) == "":
			d.errorf(kline, rpath, "must name the route's topic, e.g. %s: orders.%s", name, name)
			continue
		case !ok:
			d.errorf(kline, rpath, "must be a topic name, got %s", describe(v))
			continue
		}
		if problem := templateProblem(topic, false); problem != "" {
			d.errorf(kline, rpath, "%s", problem)
			continue
		}
		routes[name], lines[name] = topic, kline
		d.lines[join(path, name)] = kline
	}
	return routes, lines
}

const replicationProblem = "needs partitions: the replication factor is used only to create the main topic, which kretry does when the topic declares its partitions"

// count reads a whole number from 1 to hi.
func (d *decoder) count(fields map[string]field, key, path string, hi int64) (int64, int, bool) {
	f, ok := fields[key]
	if !ok || f.value == nil {
		return 0, f.line, false
	}
	n, isInt := f.value.(*ast.IntegerNode)
	v, inRange := int64(0), false
	if isInt {
		switch x := n.Value.(type) {
		case int64:
			v, inRange = x, true
		case uint64:
			v, inRange = int64(min(x, math.MaxInt64)), true
		}
	}
	if !isInt || !inRange || v < 1 || v > hi {
		d.errorf(f.line, path, "must be a whole number from 1 to %d (omit it to leave the main topic alone), got %s", hi, describe(f.value))
		return 0, f.line, false
	}
	return v, f.line, true
}

// topicConfigs reads a mapping of extra topic configs: names as
// topics.CheckConfigName allows, scalar values kept as text.
func (d *decoder) topicConfigs(fields map[string]field, key, path string) map[string]string {
	path += "." + key
	f, ok := fields[key]
	if !ok || f.value == nil {
		return nil
	}
	var pairs []*ast.MappingValueNode
	switch v := f.value.(type) {
	case *ast.MappingNode:
		pairs = v.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{v}
	default:
		d.errorf(f.line, path, "must be a mapping of Kafka topic configs to values, e.g. {min.insync.replicas: 2, compression.type: zstd}, got %s", describe(f.value))
		return nil
	}
	out := map[string]string{}
	for _, p := range pairs {
		kline := lineOf(p.Key)
		name, ok := scalarText(d.resolve(p.Key))
		if !ok {
			d.errorf(kline, path, "a key must be a Kafka topic config name, got %s", describe(d.resolve(p.Key)))
			continue
		}
		if err := topics.CheckConfigName(name); err != nil {
			d.errorf(kline, join(path, show(name)), "%v", err)
			continue
		}
		if _, dup := out[name]; dup {
			d.errorf(kline, join(path, name), "duplicate topic config: give it once")
			continue
		}
		val, ok := scalarText(d.resolve(p.Value))
		if !ok {
			d.errorf(kline, join(path, name), "must be a value such as 2 or zstd, got %s", describe(d.resolve(p.Value)))
			continue
		}
		out[name] = val
	}
	return out
}

// tiers reads a topic's tiers; the delays of those read must be > 0 and
// strictly increasing. It returns the valid tiers and every tier's line.
func (d *decoder) tiers(fields map[string]field, topicLine int, path string) ([]ladder.Tier, []int) {
	path += ".tiers"
	f, ok := fields["tiers"]
	if !ok || f.value == nil {
		d.errorf(max(f.line, topicLine), path, "%s", tiersRequiredProblem)
		return nil, nil
	}
	items, ok := d.sequence(f, path, "tiers, each with a delay and optional attempts")
	if !ok {
		return nil, nil
	}
	if len(items) == 0 {
		d.errorf(f.line, path, "must list at least one tier, e.g. tiers: [{delay: 5s}], got an empty list")
		return nil, nil
	}
	var tiers []ladder.Tier
	var lines []int
	var prev time.Duration
	prevText := ""
	for i, it := range items {
		tpath := fmt.Sprintf("%s[%d]", path, i)
		line := it.line
		lines = append(lines, line)
		if it.value == nil {
			d.errorf(line, tpath, "must be a mapping with a delay and optional attempts, e.g. {delay: 5s}, got nothing")
			continue
		}
		tf, ok := d.mapping(it.value, line, tpath, tierKeys, nil)
		if !ok {
			continue
		}
		tier := ladder.Tier{Attempts: 1}
		valid := true
		delay, dline, ok := d.duration(tf, "delay", tpath+".delay", "")
		switch {
		case ok && prev > 0 && delay <= prev:
			d.errorf(dline, tpath+".delay", "must be longer than the previous tier's delay %s: tiers go in strictly increasing order of delay, got %s",
				show(prevText), show(tf["delay"].value.GetToken().Value))
			valid = false
		case ok:
			tier.Delay, prev, prevText = delay, delay, tf["delay"].value.GetToken().Value
		case tf["delay"].value == nil:
			d.errorf(max(tf["delay"].line, line), tpath+".delay", "required: how long a record waits in this tier, a duration > 0 such as 5s, 1m or 1h30m")
			valid = false
		default:
			valid = false
		}
		if a, ok := tf["attempts"]; ok && a.value != nil {
			n, isInt := a.value.(*ast.IntegerNode)
			v, inRange := int64(0), false
			if isInt {
				switch x := n.Value.(type) {
				case int64:
					v, inRange = x, true
				case uint64:
					v, inRange = int64(min(x, math.MaxInt64)), true
				}
			}
			switch {
			case !isInt || !inRange || v > MaxTierAttempts:
				d.errorf(a.line, tpath+".attempts", "must be a whole number ≥ 1 (default 1), got %s", describe(a.value))
				valid = false
			case v < 1:
				d.errorf(a.line, tpath+".attempts", "must be ≥ 1 (omit it for the default 1), got %d", v)
				valid = false
			default:
				tier.Attempts = int(v)
			}
		}
		if valid {
			tiers = append(tiers, tier)
		}
	}
	return tiers, lines
}

// templateProblem checks a naming template (tier true) or a DLQ name.
func templateProblem(tmpl string, tier bool) string {
	allowed := "{topic}, {group}"
	if tier {
		allowed += ", {delay}, {index}"
	}
	perTier := false
	for rest := tmpl; ; {
		open, close := strings.IndexByte(rest, '{'), strings.IndexByte(rest, '}')
		if open < 0 && close < 0 {
			break
		}
		if open < 0 || (close >= 0 && close < open) {
			return fmt.Sprintf(`has a "}" without its "{"; placeholders are %s, got %s`, allowed, quoteCut(tmpl))
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return fmt.Sprintf(`has a "{" without its "}"; placeholders are %s, got %s`, allowed, quoteCut(tmpl))
		}
		switch ph := rest[open : open+end+1]; ph {
		case "{topic}", "{group}":
		case "{delay}", "{index}":
			if !tier {
				return fmt.Sprintf("%s names a tier, and the DLQ is one topic for all tiers; allowed: %s, got %s", ph, allowed, quoteCut(tmpl))
			}
			perTier = true
		default:
			return fmt.Sprintf("unknown placeholder %s; allowed: %s, got %s", show(ph), allowed, quoteCut(tmpl))
		}
		rest = rest[open+end+1:]
	}
	if tier && !perTier {
		return fmt.Sprintf("must contain {delay} or {index} so that each tier gets its own topic, got %s", quoteCut(tmpl))
	}
	return ""
}

// CheckTopicName applies Kafka's rules for topic names: letters, digits,
// '.', '_' and '-', at most 249 characters, not "." or "..".
func CheckTopicName(name string) error {
	if problem := topicNameProblem(name); problem != "" {
		return errors.New(problem)
	}
	return nil
}

// topicNameProblem applies Kafka's rules for topic names.
func topicNameProblem(name string) string {
	const rule = "must be a Kafka topic name: letters, digits, '.', '_' and '-', at most 249 characters, not \".\" or \"..\""
	if name == "." || name == ".." || len(name) > 249 {
		return rule
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return rule
		}
	}
	return ""
}

// ladders resolves the ladder of every topic whose own fields are valid,
// fills in its DLQ name, and checks that no two topics (main, tier or DLQ) of
// the file share a name.
func (d *decoder) ladders(c *Config, lines []topicLines) {
	if c.Group == "" {
		return // reported; {group} cannot be expanded
	}
	type owner struct {
		topic int
		main  bool
		what  string
		line  int
	}
	seen := map[string]owner{}
	claim := func(name, field, kind string, o owner) {
		first, dup := seen[name]
		switch {
		case !dup:
			seen[name] = o
		case first.topic == o.topic, first.main && o.main:
			// ladder.New and the duplicate-name check report these
		default:
			d.errorf(o.line, field, "%s %s is also %s (line %d): every main, tier and DLQ topic needs its own name; change naming or dlq",
				kind, quoteCut(name), first.what, first.line)
		}
	}
	for i := range c.Topics {
		t, tl := &c.Topics[i], lines[i]
		path := fmt.Sprintf("topics[%d]", i)
		if !tl.ok {
			continue
		}
		l, err := t.Ladder(c.Group)
		if err != nil {
			d.errorf(tl.topic, path, "%v", err)
			continue
		}
		t.DLQ = l.DLQ()
		claim(t.Name, path+".name", "topic", owner{i, true, "the main topic " + path, tl.name})
		for j, s := range l.Steps() {
			tpath := fmt.Sprintf("%s.tiers[%d]", path, j)
			if t.Backoff != nil {
				tpath = fmt.Sprintf("%s.backoff (tier %d, %s)", path, j+1, s.Name)
			}
			claim(s.Topic, tpath, "tier topic", owner{i, false, "the tier topic of " + tpath, tl.tiers[j]})
		}
		claim(t.DLQ, path+".dlq", "DLQ", owner{i, false, "the DLQ of " + path, tl.dlq})
		for _, name := range l.RouteNames() {
			rt, _ := l.Route(name)
			rpath := path + ".dlq_routes." + name
			claim(rt, rpath, "DLQ route topic", owner{i, false, "the DLQ route of " + rpath, tl.routes[name]})
		}
	}
}

// backoff reads a topic's backoff: its values' types here, the rules
// between them in Validate (which names the same fields, with their lines).
func (d *decoder) backoff(f field, path string) *ladder.Backoff {
	fields, ok := d.mapping(f.value, f.line, path, backoffKeys, nil)
	if !ok {
		return nil
	}
	b := &ladder.Backoff{}
	valid := d.requiredDurations(fields, f, path,
		requiredDuration{"initial", backoffWhat["initial"], &b.Initial}, requiredDuration{"max", backoffWhat["max"], &b.Max})
	if v, ok := d.number(fields, "multiplier", path+".multiplier", backoffWhat["multiplier"]); ok {
		b.Multiplier = v
	} else if _, given := fields["multiplier"]; given {
		valid = false
	}
	if v, ok := d.number(fields, "jitter", path+".jitter", backoffWhat["jitter"]); ok {
		b.Jitter = v
	} else if _, given := fields["jitter"]; given {
		valid = false
	}
	if a, ok := fields["attempts"]; ok && a.value != nil {
		n, isInt := a.value.(*ast.IntegerNode)
		v, inRange := int64(0), false
		if isInt {
			switch x := n.Value.(type) {
			case int64:
				v, inRange = x, true
			case uint64:
				v, inRange = int64(min(x, math.MaxInt64)), true
			}
		}
		if !isInt || !inRange || v < 1 || v > MaxTierAttempts {
			d.errorf(a.line, path+".attempts", "must be a whole number from 1 to %d: %s; got %s", MaxTierAttempts, backoffWhat["attempts"], describe(a.value))
			valid = false
		} else {
			b.Attempts = int(v)
		}
	} else {
		d.errorf(max(a.line, f.line), path+".attempts", "required: %s", backoffWhat["attempts"])
		valid = false
	}
	if !valid {
		return nil
	}
	if field, err := b.Check(MaxTierAttempts); err != nil {
		d.errorf(max(d.lines[path+"."+field], f.line), path+"."+field, "%v", err)
		return nil
	}
	return b
}

// number reads a number (integer or decimal); ok is false when the key is
// missing, null or not a finite number (an error).
func (d *decoder) number(fields map[string]field, key, path, what string) (float64, bool) {
	f, ok := fields[key]
	if !ok || f.value == nil {
		return 0, false
	}
	switch n := f.value.(type) {
	case *ast.IntegerNode:
		switch x := n.Value.(type) {
		case int64:
			return float64(x), true
		case uint64:
			return float64(x), true
		}
	case *ast.FloatNode:
		if !math.IsInf(n.Value, 0) && !math.IsNaN(n.Value) {
			return n.Value, true
		}
	}
	d.errorf(f.line, path, "must be a number, %s; got %s", what, describe(f.value))
	return 0, false
}

// What each backoff key is, in the words of its errors.
var backoffWhat = map[string]string{
	"initial":    "the first delay, e.g. initial: 1s",
	"max":        "the longest delay, which caps initial × multiplier^(attempt−1), e.g. max: 1m",
	"attempts":   "the retries before the DLQ, e.g. attempts: 8",
	"multiplier": "how much each delay grows, ≥ 1 (default 2)",
	"jitter":     "the share of a delay drawn away per record, ≥ 0 and < 1 (default 0)",
}

// retryInPlace reads a topic's retry_in_place: the types here, the rules in
// Validate (inPlaceProblem).
func (d *decoder) retryInPlace(f field, path string) *RetryInPlace {
	fields, ok := d.mapping(f.value, f.line, path, inPlaceKeys, nil)
	if !ok {
		return nil
	}
	r := &RetryInPlace{}
	valid := true
	if a, ok := fields["attempts"]; ok && a.value != nil {
		n, isInt := a.value.(*ast.IntegerNode)
		v, isNum := int64(0), false
		if isInt {
			switch x := n.Value.(type) {
			case int64:
				v, isNum = x, true
			case uint64:
				v, isNum = int64(min(x, math.MaxInt64)), true
			}
		}
		if !isNum || v < 1 || v > MaxInPlaceAttempts {
			d.errorf(a.line, path+".attempts", "must be a whole number from 1 to %d: the retries in place before the first tier; got %s", MaxInPlaceAttempts, describe(a.value))
			valid = false
		} else {
			r.Attempts = int(v)
		}
	} else {
		d.errorf(max(a.line, f.line), path+".attempts", "required: the retries in place before the first tier, e.g. attempts: 3")
		valid = false
	}
	if v, _, ok := d.duration(fields, "backoff", path+".backoff", " (default "+ladder.FormatDelay(DefaultInPlaceBackoff)+")"); ok {
		r.Backoff = v
	} else if bf, given := fields["backoff"]; given && bf.value != nil {
		valid = false
	}
	if v, _, ok := d.duration(fields, "max_backoff", path+".max_backoff", " (default "+ladder.FormatDelay(DefaultInPlaceMaxBackoff)+")"); ok {
		r.MaxBackoff = v
	} else if mf, given := fields["max_backoff"]; given && mf.value != nil {
		valid = false
	}
	if !valid {
		return nil
	}
	if field, p := inPlaceProblem(*r); p != "" {
		d.errorf(max(d.lines[path+field], f.line), path+field, "%s", p)
		return nil
	}
	return r
}
