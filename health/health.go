package health

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// State is what a consumer or a relay knows of itself at one moment: the
// facts that /healthz and /readyz judge.
type State struct {
	Component string // "consumer" or "relay"
	Group     string // its consumer group

	// Running: its Run has started and not returned.
	Running bool
	// Polling: its poll loop waits for records in kgo's PollRecords, which
	// is where an idle loop waits. PollSince is when the loop last entered
	// or left PollRecords: a loop that has been out of it for long is stuck
	// (on a transaction's end, a handler it waits for, a full buffer).
	Polling   bool
	PollSince time.Time

	// Joined: it is a member of its group with an assignment, possibly
	// empty (more members than partitions), from the first assignment
	// until the group is lost or Run returns. Partitions is how many it
	// owns. GroupErr is the error that lost the group last, if one did.
	Joined     bool
	Partitions int
	GroupErr   string

	// FailingSince is when the forwards (consumer) or re-feeds (relay) of
	// one of its partitions started to fail without one of that partition
	// succeeding since, the oldest such partition's; zero when none is
	// failing. LastFailure is the last failure's error.
	FailingSince time.Time
	LastFailure  string

	// BreakerOpen: a topic's circuit breaker is open or half-open and stops
	// (or limits) its handler calls, with BreakerReason saying which and why.
	BreakerOpen   bool
	BreakerReason string
}

// Source is a component whose State Handler judges: a consumer.Consumer or
// a relay.
type Source interface {
	HealthState() State
}

// Default bounds of a Handler.
const (
	// DefaultStallAfter is how long a poll loop may be out of PollRecords
	// before /healthz fails: more than a transaction's end (30s) and its
	// abort's retries; a handler that runs longer holds up an exactly-once
	// consumer's loop this long at a transaction's end.
	DefaultStallAfter = 2 * time.Minute
	// DefaultFailingAfter is how long forwards or re-feeds may keep
	// failing before /readyz fails: more than one produce's delivery
	// timeout (30s by default), so that one broker failover does not flap
	// readiness.
	DefaultFailingAfter = time.Minute
)

// Opt configures Handler.
type Opt interface{ apply(*cfg) }

type cfg struct {
	stallAfter, failingAfter time.Duration
	now                      func() time.Time
}

type opt func(*cfg)

func (o opt) apply(c *cfg) { o(c) }

// WithStallAfter sets how long a poll loop may stay out of PollRecords
// before /healthz reports it stuck. Default DefaultStallAfter (2m).
func WithStallAfter(d time.Duration) Opt { return opt(func(c *cfg) { c.stallAfter = d }) }

// WithFailingAfter sets how long forwards or re-feeds may keep failing
// before /readyz reports the component not ready. Default
// DefaultFailingAfter (1m).
func WithFailingAfter(d time.Duration) Opt { return opt(func(c *cfg) { c.failingAfter = d }) }

// Check is one judged condition. Live checks count for /healthz and
// /readyz, the others for /readyz only.
type Check struct {
	Name   string `json:"name"`
	Live   bool   `json:"-"` // counts for /healthz too
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// Report is one component's judged State.
type Report struct {
	Component  string  `json:"component"`
	Group      string  `json:"group"`
	Live       bool    `json:"live"`
	Ready      bool    `json:"ready"`
	Partitions int     `json:"partitions"`
	Checks     []Check `json:"checks"`
}

// Response is the JSON body of /healthz and /readyz.
type Response struct {
	// Status is "ok" when the probe passes, else "not live" or "not ready".
	Status     string   `json:"status"`
	Components []Report `json:"components"`
}

// Judge judges s at now with the bounds of opts.
func Judge(s State, now time.Time, opts ...Opt) Report {
	c := newCfg(opts)
	r := Report{Component: s.Component, Group: s.Group, Partitions: s.Partitions}
	add := func(name string, live, ok bool, reason string) {
		if ok {
			reason = ""
		}
		r.Checks = append(r.Checks, Check{Name: name, Live: live, OK: ok, Reason: reason})
	}
	add("running", true, s.Running, fmt.Sprintf("the %s's Run is not running", s.Component))
	out := now.Sub(s.PollSince)
	add("polling", true, !s.Running || s.Polling || out <= c.stallAfter,
		fmt.Sprintf("the poll loop has not waited for records for %s (more than %s)", round(out), c.stallAfter))
	joinReason := fmt.Sprintf("not a member of group %s: joining", s.Group)
	switch {
	case !s.Running:
		joinReason = fmt.Sprintf("not a member of group %s: not running", s.Group)
	case s.GroupErr != "":
		joinReason = fmt.Sprintf("not a member of group %s: lost it after: %s; rejoining", s.Group, s.GroupErr)
	}
	add("joined", false, s.Joined, joinReason)
	what := "forwards to the retry tiers and the DLQ"
	if s.Component == "relay" {
		what = "re-feeds to the main topics"
	}
	failing := now.Sub(s.FailingSince)
	add("writes", false, s.FailingSince.IsZero() || failing <= c.failingAfter,
		fmt.Sprintf("%s have failed for %s (more than %s), none succeeded since: %s", what, round(failing), c.failingAfter, s.LastFailure))
	add("breaker", false, !s.BreakerOpen, "the circuit breaker is open: "+s.BreakerReason)
	r.Live, r.Ready = true, true
	for _, ch := range r.Checks {
		if !ch.OK {
			r.Ready = false
			if ch.Live {
				r.Live = false
			}
		}
	}
	return r
}

func round(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }

func newCfg(opts []Opt) cfg {
	c := cfg{stallAfter: DefaultStallAfter, failingAfter: DefaultFailingAfter, now: time.Now}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// Handler serves, for every source, GET /healthz (200 when every one is
// live, else 503) and GET /readyz (200 when every one is ready, else 503),
// each with a Response as JSON; any other path is 404. Mount it as it is
// (mux.Handle("/healthz", h) and mux.Handle("/readyz", h), or at "/"): it
// routes on the path's last element. It is safe for concurrent use; a
// source that has not run yet is not live.
func Handler(sources []Source, opts ...Opt) http.Handler {
	c := newCfg(opts)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ready bool
		switch req.URL.Path[strings.LastIndexByte(req.URL.Path, '/')+1:] {
		case "healthz":
		case "readyz":
			ready = true
		default:
			http.NotFound(w, req)
			return
		}
		now := c.now()
		resp := Response{Status: "ok", Components: []Report{}}
		for _, s := range sources {
			r := Judge(s.HealthState(), now, opts...)
			if !ready {
				// Only what liveness judges.
				live := r.Checks[:0:0]
				for _, ch := range r.Checks {
					if ch.Live {
						live = append(live, ch)
					}
				}
				r.Checks = live
			}
			switch {
			case !r.Live:
				resp.Status = "not live"
			case ready && !r.Ready && resp.Status == "ok":
				resp.Status = "not ready"
			}
			resp.Components = append(resp.Components, r)
		}
		if ready && resp.Status == "not live" {
			resp.Status = "not ready"
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if resp.Status != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp)
	})
}
