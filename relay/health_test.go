package relay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/health"
	"github.com/kretry/kretry/internal/kafkatest"
	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TestRelayHealthTransitions: the relay is not live before Run; ready once
// it has joined its group (owning every tier partition); not ready while its
// re-feeds have failed for longer than the bound, ready again once one is
// acknowledged; not live after Run returns.
func TestRelayHealthTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newVirtualEnv(t, 1, 1)
		var refuse atomic.Bool
		e.fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			e.fake.KeepControl()
			if refuse.Load() { // only the relay produces then
				return kafkatest.RefuseProduce(kreq.(*kmsg.ProduceRequest), kerr.NotEnoughReplicas.Code), nil, true
			}
			return nil, nil, false
		})
		r, err := relay.New([]*ladder.Ladder{e.ladder}, relay.WithClientOpts(e.kopts...),
			relay.WithDeliveryTimeout(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		h := r.HealthHandler(health.WithFailingAfter(20 * time.Second))
		get := func(path string) (int, health.Response) {
			t.Helper()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			var resp health.Response
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Components) != 1 {
				t.Fatalf("GET %s: %d %q: %v", path, rec.Code, rec.Body.String(), err)
			}
			return rec.Code, resp
		}
		if code, resp := get("/healthz"); code != http.StatusServiceUnavailable || resp.Status != "not live" {
			t.Errorf("/healthz before Run: %d %+v", code, resp)
		}

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		waitFor(t, "ready", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
		if _, resp := get("/readyz"); resp.Components[0].Partitions != 2 || resp.Components[0].Group != relayGroup+"-relay" {
			t.Errorf("/readyz: %+v, want group %s-relay owning its 2 tier partitions", resp.Components[0], relayGroup)
		}

		// Due in a second of virtual time, so that the refusal is on before
		// the relay re-feeds it (due now, a re-feed could get through first,
		// and a CI run then waited 2h of virtual time for not ready).
		rec, _ := e.tierRecord(0, 0, "k", time.Now().Add(time.Second))
		e.produce(rec)
		refuse.Store(true)
		waitFor(t, "not ready: re-feeds failing", func() bool { code, _ := get("/readyz"); return code == http.StatusServiceUnavailable })
		_, resp := get("/readyz")
		var reason string
		for _, c := range resp.Components[0].Checks {
			if c.Name == "writes" && !c.OK {
				reason = c.Reason
			}
		}
		if !strings.Contains(reason, "re-feeds to the main topics have failed for") {
			t.Errorf("/readyz with failing re-feeds: %+v", resp)
		}
		if code, _ := get("/healthz"); code != http.StatusOK {
			t.Errorf("/healthz with failing re-feeds: %d, want 200", code)
		}

		refuse.Store(false)
		waitFor(t, "ready again", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
		waitFor(t, "the record re-fed", func() bool { return len(e.read(relayTopic)) == 1 })
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
			t.Errorf("/healthz after Run returned: %d, want 503", code)
		}
	})
}
