//go:build integration

package config_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/internal/kafkatest"
)

// TestIntegrationEnvBrokersConnect loads a file whose brokers point nowhere,
// lets KRETRY_BROKERS replace them with the real broker, and connects with
// ClientOpts: the path a deployment takes.
func TestIntegrationEnvBrokersConnect(t *testing.T) {
	seeds := kafkatest.Brokers(t)
	t.Setenv(config.EnvBrokers, strings.Join(seeds, ","))
	group := kafkatest.Name(t, "config")
	t.Setenv(config.EnvGroup, group)

	path := filepath.Join(t.TempDir(), "kretry.yaml")
	yaml := "brokers: [\"127.0.0.1:1\"]\nclient_id: kretry-config-test\ngroup: from-file\ntopics: [{name: orders, tiers: [{delay: 5s}]}]\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Brokers, ",") != strings.Join(seeds, ",") || c.Group != group || c.Relay.Group != group+"-relay" {
		t.Fatalf("overrides not applied: brokers %v group %q relay %q", c.Brokers, c.Group, c.Relay.Group)
	}
	opts, err := c.ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard, not a measurement
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("metadata from %v: %v", seeds, c.ConnectError(err))
	}
	if len(md.Brokers) == 0 {
		t.Fatalf("metadata from %v lists no broker", seeds)
	}
}

// TestIntegrationTLSAgainstPlaintext: a tls section against the real
// broker's plaintext listener is named as such, with the setting to change.
func TestIntegrationTLSAgainstPlaintext(t *testing.T) {
	c := &config.Config{Brokers: kafkatest.Brokers(t), TLS: &config.TLS{}}
	opts, err := c.ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard, not a measurement
	defer cancel()
	err = cl.Ping(ctx)
	if err == nil {
		t.Fatal("a TLS client reached the plaintext listener")
	}
	got := c.ConnectError(err)
	var ce *config.ConnectionError
	if !errors.As(got, &ce) || ce.Setting != "tls" || !strings.Contains(got.Error(), "the listener does not speak TLS; remove the tls section") {
		t.Errorf("ConnectError(%v) = %v, want the tls setting named", err, got)
	}
}
