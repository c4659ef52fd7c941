package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
)

func (a *app) newConfigCommand() *cobra.Command {
	cfgCmd := &cobra.Command{
		Use:   "config",
		Short: "Check a kretry config file",
	}
	cfgCmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the config file and show the ladders it defines",
		Long: `check loads the -c file as kretry would, with KRETRY_BROKERS, KRETRY_GROUP and
--brokers applied, and prints the retry ladder of each topic. It does not
talk to Kafka. A bad file exits 1 with every problem, each with its line and
field.`,
		RunE: func(*cobra.Command, []string) error { return a.configCheck() },
	})
	return cfgCmd
}

type configJSON struct {
	File       string   `json:"file"`
	OK         bool     `json:"ok"`
	Brokers    []string `json:"brokers"`
	Group      string   `json:"group"`
	RelayGroup string   `json:"relay_group"`
	HoldBytes  int      `json:"relay_hold_bytes"`

	ExactlyOnce       bool              `json:"exactly_once"`
	CommitInterval    string            `json:"commit_interval"`
	SessionTimeout    string            `json:"session_timeout"`
	HeartbeatInterval string            `json:"heartbeat_interval"`
	InstanceID        string            `json:"instance_id,omitempty"`
	GroupProtocol     string            `json:"group_protocol"`
	DeliveryTimeout   string            `json:"delivery_timeout"`
	Topics            []configTopicJSON `json:"topics"`
}

type configTopicJSON struct {
	Name       string            `json:"name"`
	Backoff    *backoffJSON      `json:"backoff,omitempty"`
	InPlace    *inPlaceJSON      `json:"retry_in_place,omitempty"`
	Tiers      []tierJSON        `json:"tiers"`
	DLQ        string            `json:"dlq"`
	DLQRoutes  map[string]string `json:"dlq_routes,omitempty"`
	Breaker    *breakerJSON      `json:"circuit_breaker,omitempty"`
	MaxRetries int               `json:"max_retries"`
	// RetryAfterMax is the ladder's: retry_after_max, or its default.
	RetryAfterMax string `json:"retry_after_max"`
}

// breakerJSON is a topic's circuit_breaker.
type breakerJSON struct {
	FailureRatio float64 `json:"failure_ratio"`
	MinRecords   int     `json:"min_records"`
	Window       string  `json:"window"`
	OpenFor      string  `json:"open_for"`
	HalfOpen     int     `json:"half_open_records"`
}

// backoffJSON is a topic's backoff, whose generated ladder is Tiers.
type backoffJSON struct {
	Initial    string  `json:"initial"`
	Multiplier float64 `json:"multiplier"`
	Max        string  `json:"max"`
	Attempts   int     `json:"attempts"`
	Jitter     float64 `json:"jitter"`
}

// inPlaceJSON is a topic's retry_in_place, with the worst case of its waits.
type inPlaceJSON struct {
	Attempts   int    `json:"attempts"`
	Backoff    string `json:"backoff"`
	MaxBackoff string `json:"max_backoff"`
	WorstCase  string `json:"worst_case"`
}

type tierJSON struct {
	Name     string `json:"name"`
	Topic    string `json:"topic"`
	Delay    string `json:"delay"`
	Attempts int    `json:"attempts"`
}

func (a *app) configCheck() error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		return fmt.Errorf("%s: %w", a.configPath, err)
	}
	out := configJSON{File: a.configPath, OK: true, Brokers: cfg.Brokers, Group: cfg.Group, RelayGroup: cfg.Relay.Group, HoldBytes: *cfg.Relay.HoldBytes,
		ExactlyOnce: cfg.ExactlyOnce, CommitInterval: ladder.FormatDelay(cfg.CommitInterval),
		SessionTimeout: ladder.FormatDelay(cfg.SessionTimeout), HeartbeatInterval: cfg.HeartbeatInterval().String(),
		InstanceID: cfg.InstanceID, GroupProtocol: cfg.GroupProtocol, DeliveryTimeout: ladder.FormatDelay(cfg.DeliveryTimeout)}
	tiers := 0
	var dlqs []string
	for i, l := range ladders {
		t := configTopicJSON{Name: l.Topic(), DLQ: l.DLQ(), MaxRetries: l.MaxRetries(), RetryAfterMax: ladder.FormatDelay(l.RetryAfterMax())}
		if r := cfg.Topics[i].RetryInPlace; r != nil {
			t.InPlace = &inPlaceJSON{Attempts: r.Attempts, Backoff: ladder.FormatDelay(r.Backoff),
				MaxBackoff: ladder.FormatDelay(r.MaxBackoff), WorstCase: ladder.FormatDelay(r.WorstCase())}
		}
		if b := cfg.Topics[i].Backoff; b != nil {
			t.Backoff = &backoffJSON{Initial: ladder.FormatDelay(b.Initial), Multiplier: b.Multiplier,
				Max: ladder.FormatDelay(b.Max), Attempts: b.Attempts, Jitter: b.Jitter}
		}
		for _, s := range l.Steps() {
			t.Tiers = append(t.Tiers, tierJSON{Name: s.Name, Topic: s.Topic, Delay: ladder.FormatDelay(s.Delay), Attempts: s.Attempts})
		}
		if b := cfg.Topics[i].CircuitBreaker; b != nil {
			t.Breaker = &breakerJSON{b.FailureRatio, b.MinRecords, ladder.FormatDelay(b.Window), ladder.FormatDelay(b.OpenFor), b.Probes()}
		}
		for _, name := range l.RouteNames() {
			if t.DLQRoutes == nil {
				t.DLQRoutes = map[string]string{}
			}
			t.DLQRoutes[name], _ = l.Route(name)
		}
		tiers += len(t.Tiers)
		dlqs = append(dlqs, l.DLQ())
		out.Topics = append(out.Topics, t)
	}
	if a.json {
		return json.NewEncoder(a.stdout).Encode(out)
	}
	fmt.Fprintf(a.stdout, "%s: ok: %d %s, %d %s, %s %s\n", a.configPath,
		len(ladders), plural(len(ladders), "topic", "topics"),
		tiers, plural(tiers, "tier", "tiers"),
		plural(len(dlqs), "dlq", "dlqs"), strings.Join(dlqs, ", "))
	fmt.Fprintf(a.stdout, "  brokers  %s\n", strings.Join(cfg.Brokers, ","))
	fmt.Fprintf(a.stdout, "  group    %s (relay %s)\n", cfg.Group, cfg.Relay.Group)
	if out.HoldBytes == 0 {
		fmt.Fprintf(a.stdout, "  relay    hold_bytes 0 (holds nothing)\n")
	} else {
		fmt.Fprintf(a.stdout, "  relay    hold_bytes %s\n", humanize.IBytes(uint64(out.HoldBytes)))
	}
	mode := "at least once"
	if out.ExactlyOnce {
		mode = "exactly once (transactions)"
	}
	fmt.Fprintf(a.stdout, "  mode     %s, commit_interval %s, delivery_timeout %s\n", mode, out.CommitInterval, out.DeliveryTimeout)
	member := "dynamic member"
	if out.InstanceID != "" {
		member = "static member " + out.InstanceID
	}
	session := fmt.Sprintf("session_timeout %s (heartbeat %s)", out.SessionTimeout, out.HeartbeatInterval)
	if out.GroupProtocol == config.GroupProtocolConsumer {
		session = "session timeout set by the broker (group config consumer.session.timeout.ms)"
	}
	fmt.Fprintf(a.stdout, "  members  group_protocol %s, %s, %s\n", out.GroupProtocol, session, member)
	for i, t := range out.Topics {
		var rungs []string
		for _, s := range t.Tiers {
			r := s.Topic
			if s.Attempts > 1 {
				r += fmt.Sprintf(" ×%d", s.Attempts)
			}
			rungs = append(rungs, r)
		}
		fmt.Fprintf(a.stdout, "  %s: %s -> %s (%d %s)\n", t.Name, strings.Join(rungs, " -> "), t.DLQ,
			t.MaxRetries, plural(t.MaxRetries, "retry", "retries"))
		if r := t.InPlace; r != nil {
			fmt.Fprintf(a.stdout, "    retry_in_place first: %d %s, %s doubling to %s, at most %s of waits in all (bound %s)\n",
				r.Attempts, plural(r.Attempts, "attempt", "attempts"), r.Backoff, r.MaxBackoff, r.WorstCase, ladder.FormatDelay(config.MaxInPlaceWait))
		}
		if b := t.Breaker; b != nil {
			fmt.Fprintf(a.stdout, "    circuit breaker: opens when ≥ %v of ≥ %d records in %s fail; not fetched for %s, then half-open: %d probe %s (half_open_records) must succeed to close it\n",
				b.FailureRatio, b.MinRecords, b.Window, b.OpenFor, b.HalfOpen, plural(b.HalfOpen, "record", "records"))
		}
		for _, name := range slices.Sorted(maps.Keys(t.DLQRoutes)) {
			fmt.Fprintf(a.stdout, "    dlq route %s -> %s (consumer.DeadLetterTo(%q, err))\n", name, t.DLQRoutes[name], name)
		}
		if b := t.Backoff; b != nil {
			fmt.Fprintf(a.stdout, "    generated by backoff: initial %s, multiplier %v, max %s, %d %s, jitter %v (due after %s of each delay)\n",
				b.Initial, b.Multiplier, b.Max, b.Attempts, plural(b.Attempts, "attempt", "attempts"), b.Jitter, jitterRange(b.Jitter))
		}
		if cfg.Topics[i].RetryAfterMax > 0 {
			last := t.Tiers[len(t.Tiers)-1]
			fmt.Fprintf(a.stdout, "    retry_after_max %s: a longer consumer.RetryAfter is cut to it; a wait past %s is kept by re-parking in %s\n",
				t.RetryAfterMax, last.Delay, last.Topic)
		}
	}
	return nil
}

// jitterRange says what share of its delay a jittered record waits.
func jitterRange(j float64) string {
	if j == 0 {
		return "100%"
	}
	return fmt.Sprintf("%.4g%% to 100%%", 100*(1-j))
}
