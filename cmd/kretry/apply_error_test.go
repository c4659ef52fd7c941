package main

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/internal/kafkatest"
)

// An apply that fails prints what it did before the error and the error,
// never "nothing to change".
func TestTopicsApplyFailureIsNotNothingToChange(t *testing.T) {
	noEnvOverrides(t)
	main := kafkatest.Name(t, "orders")
	c, seeds := kafkatest.Fake(t, kfake.SeedTopics(3, main))
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		creq := req.(*kmsg.CreateTopicsRequest)
		resp := creq.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range creq.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic = rt.Topic
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cfg := writeConfig(t, seeds, main, "")

	r := kretry(t, "topics", "apply", "-c", cfg)
	if r.code == 0 {
		t.Fatalf("apply with every create refused exited 0: %v", r)
	}
	if strings.Contains(r.stdout, "nothing to change") {
		t.Errorf("a failed apply printed \"nothing to change\":\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "applied 0 changes before an error") {
		t.Errorf("a failed apply did not say how far it got:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "TOPIC_AUTHORIZATION_FAILED") {
		t.Errorf("the error does not name the broker's refusal:\n%s", r.stderr)
	}
}
