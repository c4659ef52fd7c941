//go:build integration

package config_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/kafkatest"
)

// TestIntegrationSetGroupSessionTimeout sets session_timeout as a
// consumer-protocol group's consumer.session.timeout.ms on the real broker:
// a value within the brokers' bounds is what the group's config then says;
// one below group.consumer.min.session.timeout.ms (45s by default) is
// refused with an error naming that broker setting, and the group keeps its
// value; with the classic protocol nothing is sent.
func TestIntegrationSetGroupSessionTimeout(t *testing.T) {
	seeds, cl, ctx, group := groupConfigSetup(t)

	c := &config.Config{Brokers: seeds, Group: group, GroupProtocol: config.GroupProtocolConsumer, SessionTimeout: 50 * time.Second}
	if err := c.SetGroupSessionTimeout(ctx, cl, group); err != nil {
		t.Fatalf("50s, within the brokers' default bounds (45s to 60s): %v", err)
	}
	// The broker applies a group config through its metadata log: a
	// describe right after the alter can still show the default (a CI run
	// read 45000), so wait for it.
	var got string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got = groupSessionTimeout(ctx, t, cl, group); got == "50000" || time.Now().After(deadline) {
			break
		}
	}
	if got != "50000" {
		t.Fatalf("%s of group %s is %q 15s after setting 50s, want 50000", config.GroupConfigSessionTimeout, group, got)
	}

	c.SessionTimeout = 0 // the default, 10s
	err := c.SetGroupSessionTimeout(ctx, cl, group)
	if err == nil {
		t.Skipf("the broker took a 10s consumer session timeout: its group.consumer.min.session.timeout.ms is not the default 45s")
	}
	t.Logf("10s refused: %v", err)
	for _, want := range []string{"session_timeout 10s", group, "group.consumer.min.session.timeout.ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal of 10s does not name %q: %v", want, err)
		}
	}
	if got := groupSessionTimeout(ctx, t, cl, group); got != "50000" {
		t.Errorf("%s of group %s is %q after a refused 10s, want 50000 still", config.GroupConfigSessionTimeout, group, got)
	}

	classic := &config.Config{Brokers: seeds, Group: group + "-classic", SessionTimeout: 50 * time.Second}
	if err := classic.SetGroupSessionTimeout(ctx, cl, group+"-classic"); err != nil {
		t.Fatal(err)
	}
	if got := groupSessionTimeout(ctx, t, cl, group+"-classic"); got != "45000" {
		t.Errorf("classic protocol: %s of group %s is %q, want the brokers' default 45000 (nothing set)", config.GroupConfigSessionTimeout, group+"-classic", got)
	}
}

// groupConfigSetup returns the real broker's seeds, a client of it, a
// guard of a minute (not a measurement) and a group name of t's.
func groupConfigSetup(t *testing.T) ([]string, *kgo.Client, context.Context, string) {
	t.Helper()
	seeds := kafkatest.Brokers(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return seeds, cl, ctx, kafkatest.Name(t, "groupcfg")
}

// groupSessionTimeout is consumer.session.timeout.ms of group as the brokers
// describe it.
func groupSessionTimeout(ctx context.Context, t *testing.T, cl *kgo.Client, group string) string {
	t.Helper()
	return groupConfig(ctx, t, cl, group, config.GroupConfigSessionTimeout)
}

// groupConfig is the config name of group as the brokers describe it.
func groupConfig(ctx context.Context, t *testing.T, cl *kgo.Client, group, name string) string {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = group
	res.ConfigNames = []string{name}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("describing group %s's configs: %v", group, err)
	}
	for _, r := range resp.Resources {
		for _, c := range r.Configs {
			if c.Name == name && c.Value != nil {
				return *c.Value
			}
		}
		if r.ErrorCode != 0 {
			t.Fatalf("describing group %s's configs: error code %d", group, r.ErrorCode)
		}
	}
	return ""
}

// TestIntegrationSetGroupHeartbeatInterval sets the heartbeat interval that
// follows session_timeout (1s with the default 10s) as a consumer-protocol
// group's consumer.heartbeat.interval.ms on the real broker: with the
// brokers' default group.consumer.min.heartbeat.interval.ms (5s) it is
// refused with an error naming that broker setting; a broker that allows it
// then describes the group with 1000.
func TestIntegrationSetGroupHeartbeatInterval(t *testing.T) {
	seeds, cl, ctx, group := groupConfigSetup(t)
	c := &config.Config{Brokers: seeds, Group: group, GroupProtocol: config.GroupProtocolConsumer}
	err := c.SetGroupHeartbeatInterval(ctx, cl, group)
	if err != nil {
		t.Logf("1s refused: %v", err)
		for _, want := range []string{"heartbeat interval 1s", group, config.GroupConfigHeartbeatInterval, "group.consumer.min.heartbeat.interval.ms"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal of 1s does not name %q: %v", want, err)
			}
		}
		return
	}
	var got string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got = groupConfig(ctx, t, cl, group, config.GroupConfigHeartbeatInterval); got == "1000" || time.Now().After(deadline) {
			break
		}
	}
	if got != "1000" {
		t.Fatalf("%s of group %s is %q 15s after setting 1s, want 1000", config.GroupConfigHeartbeatInterval, group, got)
	}
}
