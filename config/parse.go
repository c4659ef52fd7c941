package config

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/goccy/go-yaml/ast"

	"github.com/kretry/kretry/retrytopics"
)

// The file is read from goccy/go-yaml's AST rather than decoded into structs:
// walking the nodes gives every error its line and lets one pass collect all
// of a file's errors instead of stopping at the first.

type lookupEnv func(string) (string, bool)

var (
	topKeys       = []string{"brokers", "client_id", "group", "tls", "sasl", "topics", "relay", "exactly_once", "commit_interval", "session_timeout", "instance_id", "group_protocol", "delivery_timeout"}
	tlsKeys       = []string{"ca_file", "cert_file", "key_file", "insecure_skip_verify"}
	saslKeys      = []string{"mechanism", "username", "password_env"}
	topicKeys     = []string{"name", "tiers", "dlq", "naming", "max_age", "retention"}
	tierKeys      = []string{"delay", "attempts"}
	retentionKeys = []string{"tiers", "dlq"}
	relayKeys     = []string{"group", "fetch_max_wait", "hold_bytes"}

	mechanisms = []string{MechanismPlain, MechanismScramSHA256, MechanismScramSHA512}

	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// field is one key of a mapping with its value; value is nil for a null.
type field struct {
	line  int // line of the key
	value ast.Node
}

type decoder struct {
	src     string
	errs    []*FieldError
	lines   map[string]int
	anchors map[string]ast.Node
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Source: d.src, Line: line, Field: path, Problem: fmt.Sprintf(format, args...)})
}

func parse(src string, data []byte, env lookupEnv) (*Config, error) {
	d := &decoder{src: src, lines: map[string]int{}, anchors: map[string]ast.Node{}}
	file, err := parseYAML(src, data)
	if err != nil {
		return nil, err
	}
	var root ast.Node
	for _, doc := range file.Docs {
		if doc.Body == nil {
			continue
		}
		if root != nil {
			d.errorf(lineOf(doc.Body), "", "a second YAML document: put the whole configuration in one document")
			continue
		}
		root = doc.Body
		ast.Walk(anchorCollector(d.anchors), root)
	}
	if root != nil {
		// Aliases let a small file stand for a huge one (every topic's
		// tiers an alias of a long list): bound what the decoder will walk.
		sz := &sizer{anchors: d.anchors, memo: map[string]int{}, busy: map[string]bool{}}
		if n := sz.size(root); n > MaxExpanded {
			return nil, &FieldError{Source: src, Line: 0, Problem: fmt.Sprintf(
				"with its aliases (*name) expanded the file has more than %d values: write the values out, or use fewer aliases", MaxExpanded)}
		}
	}
	c := &Config{Source: src, lines: d.lines}
	d.config(root, c, env)
	if len(d.errs) > 0 {
		return nil, joinSorted(d.errs)
	}
	c.SetDefaults()
	// The decoder has checked each value where it stood, with its line;
	// Validate is the contract a Config built in Go is held to, so a file
	// is held to it too.
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// sizer counts the nodes of a tree with every alias counted as the nodes of
// its anchor's value, as the decoder walks them.
type sizer struct {
	anchors map[string]ast.Node
	memo    map[string]int
	busy    map[string]bool // anchors being counted: an alias cycle counts once
	n       int
}

func (s *sizer) size(root ast.Node) int {
	s.n = 0
	ast.Walk(s, root)
	return s.n
}

func (s *sizer) Visit(n ast.Node) ast.Visitor {
	s.n++
	if s.n > MaxExpanded {
		return nil // enough: stop walking
	}
	al, ok := n.(*ast.AliasNode)
	if !ok || al.Value == nil {
		return s
	}
	name := al.Value.GetToken().Value
	target, ok := s.anchors[name]
	if !ok || s.busy[name] {
		return nil
	}
	size, ok := s.memo[name]
	if !ok {
		s.busy[name] = true
		sub := &sizer{anchors: s.anchors, memo: s.memo, busy: s.busy}
		size = sub.size(target)
		delete(s.busy, name)
		s.memo[name] = size
	}
	s.n += size
	return nil
}

type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// brokersLabel is a name the lookup of Load and Parse answers when the
// brokers come from WithBrokers rather than KRETRY_BROKERS: the name their
// errors give.
const brokersLabel = "\x00brokers-label"

// CheckBroker checks a seed broker address: "host:port" with a host name or
// an IP address (IPv6 in brackets) and a port from 1 to 65535, without a
// scheme. Its error says what is wrong and shows the address quoted.
func CheckBroker(addr string) error {
	bad := func(why string) error {
		return fmt.Errorf(`must be a broker address "host:port" with a port from 1 to 65535, e.g. "127.0.0.1:9092"%s, got %s`, why, quoteCut(addr))
	}
	if i := strings.Index(addr, "://"); i >= 0 {
		return bad(": no scheme (" + show(addr[:i+3]) + ")")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Count(addr, ":") == 0 {
			return bad(": the port is missing")
		}
		return bad("")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '0' {
		return bad(": the port is not in 1-65535")
	}
	if host == "" {
		return bad(": the host is missing")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if strings.ContainsRune(host, ':') || len(host) > 253 {
		return bad("")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return bad("")
		}
		for _, r := range label {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
				return bad("")
			}
		}
	}
	return nil
}

// getenv returns the trimmed value of an environment variable; empty is unset.
func getenv(env lookupEnv, name string) string {
	v, _ := env(name)
	return strings.TrimSpace(v)
}

func lineOf(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// resolve strips tags and anchors and follows aliases; a null becomes nil.
func (d *decoder) resolve(n ast.Node) ast.Node {
	for range 64 { // an alias may point at an alias; bound the chain
		switch v := n.(type) {
		case nil, *ast.NullNode:
			return nil
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			target, ok := d.anchors[v.Value.GetToken().Value]
			if !ok {
				return n
			}
			n = target
		default:
			return n
		}
	}
	return n
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe says what a value is for a "got ..." message.
func describe(n ast.Node) string {
	switch v := n.(type) {
	case nil:
		return "nothing"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.AliasNode:
		return "an alias to an unknown anchor"
	case *ast.StringNode:
		return quoteCut(v.Value)
	}
	if s, ok := scalarText(n); ok {
		return show(s)
	}
	return n.Type().String()
}

func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, true
	}
	return "", false
}

// mapping reads the mapping n (nil reads as empty) at path. Keys not in
// allowed are errors that list the allowed ones, except those in forbidden,
// whose problem is given. ok is false when n is not a mapping.
func (d *decoder) mapping(n ast.Node, line int, path string, allowed []string, forbidden map[string]string) (map[string]field, bool) {
	fields := map[string]field{}
	var pairs []*ast.MappingValueNode
	switch v := n.(type) {
	case nil:
		return fields, true
	case *ast.MappingNode:
		pairs = v.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{v}
	default:
		what := "must be"
		if path == "" {
			what = "the configuration must be"
		}
		d.errorf(line, path, "%s a mapping with the keys %s, got %s", what, strings.Join(allowed, ", "), describe(n))
		return nil, false
	}
	for _, p := range pairs {
		kline := lineOf(p.Key)
		if p.Key.IsMergeKey() {
			d.errorf(kline, join(path, "<<"), "merge keys are not supported; allowed keys here: %s", strings.Join(allowed, ", "))
			continue
		}
		key, ok := scalarText(d.resolve(p.Key))
		if !ok {
			d.errorf(kline, path, "a key must be a plain word, got %s", describe(d.resolve(p.Key)))
			continue
		}
		if problem, ok := forbidden[key]; ok {
			d.errorf(kline, join(path, show(key)), "%s", problem)
			continue
		}
		known := false
		for _, a := range allowed {
			known = known || a == key
		}
		if !known {
			d.errorf(kline, join(path, show(key)), "unknown key; allowed keys here: %s", strings.Join(allowed, ", "))
			continue
		}
		fields[key] = field{line: kline, value: d.resolve(p.Value)}
		d.lines[join(path, key)] = kline
	}
	return fields, true
}

// item is one element of a list: its resolved value (nil for a null) and
// its line.
type item struct {
	value ast.Node
	line  int
}

// sequence reads the list in f at path; ok is false (and the error is
// recorded) when it is not a list.
func (d *decoder) sequence(f field, path, want string) ([]item, bool) {
	s, ok := f.value.(*ast.SequenceNode)
	if !ok {
		d.errorf(f.line, path, "must be a list of %s, got %s", want, describe(f.value))
		return nil, false
	}
	out := make([]item, len(s.Values))
	for i, v := range s.Values {
		line := lineOf(v)
		if i < len(s.Entries) && s.Entries[i] != nil && s.Entries[i].Start != nil {
			line = s.Entries[i].Start.Position.Line // the "-": a null value has no token of its own
		}
		out[i] = item{d.resolve(v), max(line, f.line)}
	}
	return out, true
}

// str reads a string value; set is false for a missing or null value and for
// a value that is not a scalar (an error).
func (d *decoder) str(fields map[string]field, key, path string) (s string, line int, set bool) {
	f, ok := fields[key]
	if !ok || f.value == nil {
		return "", f.line, false
	}
	s, ok = scalarText(f.value)
	if !ok {
		d.errorf(f.line, path, "must be a string, got %s", describe(f.value))
		return "", f.line, false
	}
	return s, f.line, true
}

// nonEmpty reads a string that, when given, must not be empty.
func (d *decoder) nonEmpty(fields map[string]field, key, path, what string) (string, int, bool) {
	s, line, set := d.str(fields, key, path)
	if set && strings.TrimSpace(s) == "" {
		d.errorf(line, path, "must not be empty: %s", what)
		return "", line, false
	}
	return s, line, set
}

// duration reads a duration that, when given, must be > 0. what says what the
// field means when it is ≤ 0 (the text after "must be > 0").
func (d *decoder) duration(fields map[string]field, key, path, what string) (time.Duration, int, bool) {
	f, ok := fields[key]
	if !ok || f.value == nil {
		return 0, f.line, false
	}
	text, ok := scalarText(f.value)
	if !ok {
		d.errorf(f.line, path, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got %s", describe(f.value))
		return 0, f.line, false
	}
	v, err := parseDuration(text)
	if err != nil {
		d.errorf(f.line, path, "must be a duration such as 500ms, 5s, 1m, 1h30m or 14d, got %s", show(text))
		return 0, f.line, false
	}
	if v <= 0 {
		d.errorf(f.line, path, "must be > 0%s, got %s", what, show(text))
		return 0, f.line, false
	}
	return v, f.line, true
}

// size reads a size in bytes that, when given, must be ≥ 0 and fit an int.
// what says what the field means (a parenthesis after the allowed values).
func (d *decoder) size(fields map[string]field, key, path, what string) (int, int, bool) {
	f, ok := fields[key]
	if !ok || f.value == nil {
		return 0, f.line, false
	}
	const notSize = "must be a size such as 1048576, 512KiB, 64MiB or 1GiB%s, got %s"
	text, ok := scalarText(f.value)
	if !ok {
		d.errorf(f.line, path, notSize, what, describe(f.value))
		return 0, f.line, false
	}
	// ParseBigBytes multiplies exactly and never overflows, so that a size
	// too big for an int is told from a bad one; but it reads "1,5GiB" as
	// 15GiB and drops a fraction of a byte, which are refused here.
	n, err := humanize.ParseBigBytes(strings.TrimPrefix(text, "-"))
	switch {
	case err != nil || strings.ContainsRune(text, ','):
		d.errorf(f.line, path, notSize, what, show(text))
	case strings.HasPrefix(text, "-"):
		d.errorf(f.line, path, "must be ≥ 0%s, got %s", what, show(text))
	case strings.ContainsRune(text, '.'):
		d.errorf(f.line, path, "must be a whole number of bytes or of a unit, e.g. 1536MiB rather than 1.5GiB, got %s", show(text))
	case !n.IsInt64() || n.Int64() > math.MaxInt:
		d.errorf(f.line, path, "must be at most %d bytes, got %s", math.MaxInt, show(text))
	default:
		return int(n.Int64()), f.line, true
	}
	return 0, f.line, false
}

// parseDuration reads Go's duration syntax and also a leading whole number of
// days: "14d", "1d12h".
func parseDuration(s string) (time.Duration, error) {
	rest, neg := s, false
	if len(rest) > 0 && (rest[0] == '-' || rest[0] == '+') {
		neg, rest = rest[0] == '-', rest[1:]
	}
	i := strings.IndexByte(rest, 'd')
	if i <= 0 {
		return time.ParseDuration(s)
	}
	days, err := strconv.ParseUint(rest[:i], 10, 64)
	if err != nil || days > uint64(math.MaxInt64/int64(24*time.Hour)) {
		return 0, fmt.Errorf("bad number of days in %q", s)
	}
	v := time.Duration(days) * 24 * time.Hour
	if tail := rest[i+1:]; tail != "" {
		if tail[0] == '-' || tail[0] == '+' {
			return 0, fmt.Errorf("sign inside %q", s)
		}
		t, err := time.ParseDuration(tail)
		if err != nil {
			return 0, err
		}
		if t > math.MaxInt64-v {
			return 0, fmt.Errorf("%q overflows", s)
		}
		v += t
	}
	if neg {
		v = -v
	}
	return v, nil
}

func (d *decoder) config(root ast.Node, c *Config, env lookupEnv) {
	rootLine := max(lineOf(root), 1)
	top, ok := d.mapping(root, rootLine, "", topKeys, nil)
	if !ok {
		return
	}

	// brokers
	if f, ok := top["brokers"]; ok && f.value != nil {
		if items, ok := d.sequence(f, "brokers", `"host:port" strings`); ok {
			for i, it := range items {
				path := fmt.Sprintf("brokers[%d]", i)
				s, ok := scalarText(it.value)
				if !ok || strings.TrimSpace(s) == "" {
					d.errorf(it.line, path, `must be a broker address "host:port", got %s`, describe(it.value))
					continue
				}
				if err := CheckBroker(strings.TrimSpace(s)); err != nil {
					d.errorf(it.line, path, "%v", err)
					continue
				}
				c.Brokers = append(c.Brokers, strings.TrimSpace(s))
			}
			if len(items) == 0 {
				if getenv(env, EnvBrokers) == "" {
					d.errorf(f.line, "brokers", `must list at least one broker "host:port", got an empty list`)
				}
			}
		}
	}
	if v := getenv(env, EnvBrokers); v != "" {
		name := EnvBrokers
		if label, ok := env(brokersLabel); ok {
			name = label
		}
		c.Brokers = nil
		for b := range strings.SplitSeq(v, ",") {
			if b = strings.TrimSpace(b); b == "" {
				continue
			}
			if err := CheckBroker(b); err != nil {
				d.errorf(0, name, "%v", err)
				continue
			}
			c.Brokers = append(c.Brokers, b)
		}
		if len(c.Brokers) == 0 && len(strings.Trim(v, ", \t")) == 0 {
			d.errorf(0, name, "must be a comma-separated list of host:port, got %s", quoteCut(v))
		}
	} else if f, ok := top["brokers"]; !ok || f.value == nil {
		d.errorf(max(f.line, rootLine), "brokers", `required: list at least one broker, e.g. brokers: ["127.0.0.1:9092"], or set %s`, EnvBrokers)
	}

	// client_id, group
	if s, _, ok := d.nonEmpty(top, "client_id", "client_id", `omit it for the default "`+DefaultClientID+`"`); ok {
		c.ClientID = s
	}
	if s, _, ok := d.nonEmpty(top, "group", "group", "the consumer group of the main consumer"); ok {
		c.Group = s
	}
	if v := getenv(env, EnvGroup); v != "" {
		c.Group = v
	} else if f, ok := top["group"]; !ok || f.value == nil {
		d.errorf(max(f.line, rootLine), "group", "required: the consumer group of the main consumer, e.g. group: orders-service, or set %s", EnvGroup)
	}

	if f, ok := top["tls"]; ok {
		c.TLS = d.tls(f)
	}
	if f, ok := top["sasl"]; ok {
		c.SASL = d.sasl(f)
	}
	d.topics(top, rootLine, c)
	d.relay(top, c)
	d.members(top, c, env)
}

// members reads the top-level keys of the group members and producers:
// exactly_once, commit_interval, session_timeout, instance_id,
// group_protocol and delivery_timeout.
func (d *decoder) members(top map[string]field, c *Config, env lookupEnv) {
	if v, ok := top["exactly_once"]; ok && v.value != nil {
		if b, isBool := v.value.(*ast.BoolNode); isBool {
			c.ExactlyOnce = b.Value
		} else {
			d.errorf(v.line, "exactly_once", "must be true or false (default false), got %s", describe(v.value))
		}
	}
	if v, ok := d.durationIn(top, "commit_interval", MinCommitInterval, MaxCommitInterval,
		commitIntervalWhy, DefaultCommitInterval); ok {
		c.CommitInterval = v
	}
	if v, ok := d.durationIn(top, "session_timeout", MinSessionTimeout, MaxSessionTimeout,
		sessionTimeoutWhy, DefaultSessionTimeout); ok {
		c.SessionTimeout = v
	}
	if v, ok := d.durationIn(top, "delivery_timeout", time.Millisecond, MaxDeliveryTimeout,
		deliveryTimeoutWhy, DefaultDeliveryTimeout); ok {
		c.DeliveryTimeout = v
	}
	if s, l, ok := d.str(top, "instance_id", "instance_id"); ok {
		if problem := instanceIDProblem(s); problem != "" {
			d.errorf(l, "instance_id", "%s, got %s", problem, quoteCut(s))
		} else {
			c.InstanceID = s
		}
	}
	if v := getenv(env, EnvInstanceID); v != "" {
		if problem := instanceIDProblem(v); problem != "" {
			d.errorf(0, EnvInstanceID, "%s, got %s", problem, quoteCut(v))
		} else {
			c.InstanceID = v
		}
	}
	if s, l, ok := d.str(top, "group_protocol", "group_protocol"); ok {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case GroupProtocolClassic:
		case GroupProtocolConsumer:
			c.GroupProtocol = GroupProtocolConsumer
		default:
			d.errorf(l, "group_protocol", "%s, got %s", groupProtocolProblem, quoteCut(s))
		}
	}
}

// durationIn reads a duration that, when given, must be within [lo, hi].
// why says what the field is for or where the bounds come from.
func (d *decoder) durationIn(fields map[string]field, key string, lo, hi time.Duration, why string, def time.Duration) (time.Duration, bool) {
	v, l, ok := d.duration(fields, key, key, " (default "+retrytopics.FormatDelay(def)+")")
	if !ok {
		return 0, false
	}
	if v < lo || v > hi {
		d.errorf(l, key, "%s; got %s", boundsProblem(lo, hi, def, why), show(fields[key].value.GetToken().Value))
		return 0, false
	}
	return v, true
}

// instanceIDProblem applies Kafka's rules for a group.instance.id, which are
// those of a topic name.
func instanceIDProblem(id string) string {
	const rule = "must be a Kafka group instance id: 1 to 249 letters, digits, '.', '_' and '-', not \".\" or \"..\"; give each instance its own, e.g. the pod name in " + EnvInstanceID
	if id == "" || id == "." || id == ".." || len(id) > MaxInstanceIDLength {
		return rule
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return rule
		}
	}
	return ""
}

func (d *decoder) tls(f field) *TLS {
	fields, ok := d.mapping(f.value, f.line, "tls", tlsKeys, nil)
	if !ok {
		return nil
	}
	t := &TLS{}
	t.CAFile, _, _ = d.nonEmpty(fields, "ca_file", "tls.ca_file", "the PEM file of the CAs that sign the brokers' certificates; omit it for the system's CAs")
	cert, certLine, hasCert := d.nonEmpty(fields, "cert_file", "tls.cert_file", "the PEM file of the client certificate")
	key, keyLine, hasKey := d.nonEmpty(fields, "key_file", "tls.key_file", "the PEM file of the client certificate's private key")
	t.CertFile, t.KeyFile = cert, key
	switch {
	case hasKey && !hasCert:
		d.errorf(keyLine, "tls.key_file", "given without tls.cert_file: set both for a client certificate, or neither")
	case hasCert && !hasKey:
		d.errorf(certLine, "tls.cert_file", "given without tls.key_file: set both for a client certificate, or neither")
	}
	if v, ok := fields["insecure_skip_verify"]; ok && v.value != nil {
		b, isBool := v.value.(*ast.BoolNode)
		if !isBool {
			d.errorf(v.line, "tls.insecure_skip_verify", "must be true or false, got %s", describe(v.value))
		} else {
			t.InsecureSkipVerify = b.Value
		}
	}
	return t
}

func (d *decoder) sasl(f field) *SASL {
	fields, ok := d.mapping(f.value, f.line, "sasl", saslKeys, map[string]string{
		"password": "not allowed: never put the password in the file; export it in an environment variable and name that variable in sasl.password_env",
	})
	if !ok {
		return nil
	}
	s := &SASL{}
	line := func(key string) int { return max(fields[key].line, f.line) }
	if m, l, ok := d.nonEmpty(fields, "mechanism", "sasl.mechanism", "one of "+strings.Join(mechanisms, ", ")); ok {
		for _, want := range mechanisms {
			if strings.EqualFold(m, want) {
				s.Mechanism = want
			}
		}
		if s.Mechanism == "" {
			d.errorf(l, "sasl.mechanism", "must be one of %s, got %s", strings.Join(mechanisms, ", "), quoteCut(m))
		}
	} else if fv, given := fields["mechanism"]; !given || fv.value == nil {
		d.errorf(line("mechanism"), "sasl.mechanism", "required: one of %s", strings.Join(mechanisms, ", "))
	}
	if u, _, ok := d.nonEmpty(fields, "username", "sasl.username", "the SASL user name"); ok {
		s.Username = u
	} else if fv, given := fields["username"]; !given || fv.value == nil {
		d.errorf(line("username"), "sasl.username", "required: the SASL user name")
	}
	if e, l, ok := d.str(fields, "password_env", "sasl.password_env"); ok {
		// The value is not echoed: it may be a password put there by mistake.
		if !envName.MatchString(e) {
			d.errorf(l, "sasl.password_env", "must be the name of an environment variable (letters, digits and _, e.g. KRETRY_SASL_PASSWORD) that holds the password, not the password itself")
		} else {
			s.PasswordEnv = e
		}
	} else if fv, given := fields["password_env"]; !given || fv.value == nil {
		d.errorf(line("password_env"), "sasl.password_env", "required: the name of the environment variable that holds the password, e.g. password_env: KRETRY_SASL_PASSWORD")
	}
	return s
}

func (d *decoder) relay(top map[string]field, c *Config) {
	f, ok := top["relay"]
	if !ok {
		return
	}
	fields, ok := d.mapping(f.value, f.line, "relay", relayKeys, nil)
	if !ok {
		return
	}
	if g, l, ok := d.nonEmpty(fields, "group", "relay.group", `omit it for the default "{group}`+DefaultRelaySuffix+`"`); ok {
		c.Relay.Group = g
		if g == c.Group {
			d.errorf(l, "relay.group", "%s", relayGroupProblem(c.Group))
		}
	}
	if v, l, ok := d.duration(fields, "fetch_max_wait", "relay.fetch_max_wait", " (default "+retrytopics.FormatDelay(DefaultFetchMaxWait)+")"); ok {
		if v < MinFetchMaxWait {
			d.errorf(l, "relay.fetch_max_wait", "%s, got %s", fetchMaxWaitProblem, show(fields["fetch_max_wait"].value.GetToken().Value))
		} else {
			c.Relay.FetchMaxWait = v
		}
	}
	if n, _, ok := d.size(fields, "hold_bytes", "relay.hold_bytes", " (0 holds nothing; default "+humanize.IBytes(DefaultHoldBytes)+")"); ok {
		c.Relay.HoldBytes = &n
	}
}
