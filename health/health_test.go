package health_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/health"
)

var now = time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)

// ready is a State that passes every check at now.
func ready() health.State {
	return health.State{Component: "relay", Group: "g-relay", Running: true, Polling: true, PollSince: now.Add(-time.Hour), Joined: true, Partitions: 3}
}

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		name        string
		edit        func(*health.State)
		live, ready bool
		failed      string // the check that fails
		reason      string // in its reason
	}{
		{"all good", func(*health.State) {}, true, true, "", ""},
		{"idle in PollRecords for long", func(s *health.State) { s.PollSince = now.Add(-24 * time.Hour) }, true, true, "", ""},
		{"not running", func(s *health.State) { s.Running = false }, false, false, "running", "the relay's Run is not running"},
		{"out of PollRecords within the bound", func(s *health.State) { s.Polling, s.PollSince = false, now.Add(-time.Minute) }, true, true, "", ""},
		{"stuck out of PollRecords", func(s *health.State) { s.Polling, s.PollSince = false, now.Add(-3*time.Minute) }, false, false, "polling",
			"the poll loop has not waited for records for 3m0s (more than 2m0s)"},
		{"joining", func(s *health.State) { s.Joined = false }, true, false, "joined", "not a member of group g-relay: joining"},
		{"lost the group", func(s *health.State) { s.Joined, s.GroupErr = false, "unable to dial: connection refused" }, true, false, "joined",
			"not a member of group g-relay: lost it after: unable to dial: connection refused; rejoining"},
		{"failing within the bound", func(s *health.State) { s.FailingSince, s.LastFailure = now.Add(-59*time.Second), "x" }, true, true, "", ""},
		{"failing for long", func(s *health.State) { s.FailingSince, s.LastFailure = now.Add(-61*time.Second), "NOT_ENOUGH_REPLICAS" }, true, false, "writes",
			"re-feeds to the main topics have failed for 1m1s (more than 1m0s), none succeeded since: NOT_ENOUGH_REPLICAS"},
		{"breaker open", func(s *health.State) { s.BreakerOpen, s.BreakerReason = true, "5 failures in 10s" }, true, false, "breaker", "the circuit breaker is open: 5 failures in 10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ready()
			tc.edit(&s)
			r := health.Judge(s, now)
			if r.Live != tc.live || r.Ready != tc.ready {
				t.Errorf("live %v ready %v, want %v %v: %+v", r.Live, r.Ready, tc.live, tc.ready, r)
			}
			for _, c := range r.Checks {
				switch {
				case c.Name == tc.failed && (c.OK || !strings.Contains(c.Reason, tc.reason)):
					t.Errorf("check %s: %+v, want failed with %q", c.Name, c, tc.reason)
				case c.Name != tc.failed && !c.OK:
					t.Errorf("check %s failed: %s", c.Name, c.Reason)
				case c.OK && c.Reason != "":
					t.Errorf("check %s passed with a reason: %s", c.Name, c.Reason)
				}
			}
		})
	}
}

type source health.State

func (s source) HealthState() health.State { return health.State(s) }

func TestHandler(t *testing.T) {
	notJoined := ready()
	notJoined.Component, notJoined.Joined = "consumer", false
	h := health.Handler([]health.Source{source(ready()), source(notJoined)}, health.WithStallAfter(time.Minute))
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get("/healthz")
	var resp health.Response
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || resp.Status != "ok" || len(resp.Components) != 2 || strings.Contains(body, `"joined"`) {
		t.Errorf("/healthz: %d %s: want 200, ok, two components, no readiness check", code, body)
	}
	code, body = get("/readyz")
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || resp.Status != "not ready" || !resp.Components[0].Ready ||
		resp.Components[1].Ready || !resp.Components[1].Live || !strings.Contains(body, "not a member of group g-relay: joining") {
		t.Errorf("/readyz: %d %s: want 503, not ready, the consumer not joined", code, body)
	}
	if code, _ := get("/live"); code != http.StatusNotFound {
		t.Errorf("/live: %d, want 404", code)
	}
	// Mounted under a prefix.
	if code, _ := get("/kretry/healthz"); code != http.StatusOK {
		t.Errorf("/kretry/healthz: %d, want 200", code)
	}
}
