package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/goccy/go-yaml/ast"

	"github.com/kretry/kretry/ladder"
)

// The file is read from goccy/go-yaml's AST rather than decoded into structs:
// walking the nodes gives every error its line and lets one pass collect all
// of a file's errors instead of stopping at the first.

// lookupEnv is os.LookupEnv, or a test's stand-in.
type lookupEnv func(string) (string, bool)

var (
	topKeys       = []string{"brokers", "client_id", "group", "tls", "sasl", "topics", "relay", "exactly_once", "commit_interval", "session_timeout", "instance_id", "group_protocol", "delivery_timeout"}
	tlsKeys       = []string{"ca_file", "cert_file", "key_file", "insecure_skip_verify"}
	saslKeys      = []string{"mechanism", "username", "password_env"}
	topicKeys     = []string{"name", "tiers", "backoff", "retry_in_place", "dlq", "naming", "max_age", "retry_after_max", "retention", "partitions", "replication_factor", "topic_configs", "tier_configs", "dlq_configs", "dlq_routes", "circuit_breaker"}
	inPlaceKeys   = []string{"attempts", "backoff", "max_backoff"}
	backoffKeys   = []string{"initial", "multiplier", "max", "attempts", "jitter"}
	breakerKeys   = []string{"failure_ratio", "min_records", "window", "open_for", "half_open_records"}
	tierKeys      = []string{"delay", "attempts"}
	retentionKeys = []string{"tiers", "dlq"}
	relayKeys     = []string{"group", "fetch_max_wait", "hold_bytes"}

	mechanisms = []string{MechanismPlain, MechanismScramSHA256, MechanismScramSHA512}

	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// decoder reads a file's tree into a Config, collecting every error.
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

// getenv returns the trimmed value of an environment variable; empty is unset.
func getenv(env lookupEnv, name string) string {
	v, _ := env(name)
	return strings.TrimSpace(v)
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
	if v, l, ok := d.duration(fields, "fetch_max_wait", "relay.fetch_max_wait", " (default "+ladder.FormatDelay(DefaultFetchMaxWait)+")"); ok {
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
