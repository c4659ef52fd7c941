package config

import (
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/kretry/kretry/ladder"
)

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
		if p, ok := groupProtocol(s); !ok {
			d.errorf(l, "group_protocol", "%s, got %s", groupProtocolProblem, quoteCut(s))
		} else if p == GroupProtocolConsumer {
			c.GroupProtocol = p
		}
	}
}

// durationIn reads a duration that, when given, must be within [lo, hi].
// why says what the field is for or where the bounds come from.
func (d *decoder) durationIn(fields map[string]field, key string, lo, hi time.Duration, why string, def time.Duration) (time.Duration, bool) {
	v, l, ok := d.duration(fields, key, key, " (default "+ladder.FormatDelay(def)+")")
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
