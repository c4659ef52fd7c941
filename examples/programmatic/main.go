// Command programmatic builds a kretry consumer in Go, without a YAML file:
// the service reads its own settings (here flags and environment variables)
// and fills a config.Config, which consumer.New holds to the same rules and
// defaults as a kretry.yaml.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/ladder"
)

// settings are the service's own configuration, from wherever it keeps it.
type settings struct {
	brokers    string
	group      string
	instanceID string
	tls        bool
	saslUser   string
}

// kretryConfig turns the service's settings into kretry's. Fields left zero
// get the defaults a file would get (client_id "kretry", DLQ "orders.dlq",
// relay group "orders-service-relay", 10s session timeout, ...).
func kretryConfig(s settings) (*config.Config, error) {
	cfg := &config.Config{
		Brokers:  strings.Split(s.brokers, ","),
		ClientID: "orders-service",
		Group:    s.group,
		Topics: []config.Topic{{
			Name: "orders",
			Tiers: []ladder.Tier{
				{Delay: 5 * time.Second},
				{Delay: time.Minute},
				{Delay: 10 * time.Minute, Attempts: 2},
			},
			MaxAge: 24 * time.Hour, // older records go to the DLQ, reason expired
		}},
		Relay:           config.Relay{FetchMaxWait: 250 * time.Millisecond},
		CommitInterval:  2 * time.Second,
		SessionTimeout:  15 * time.Second,
		InstanceID:      s.instanceID, // static membership when set
		GroupProtocol:   config.GroupProtocolClassic,
		DeliveryTimeout: 20 * time.Second,
	}
	if s.tls {
		cfg.TLS = &config.TLS{} // the system's CAs
	}
	if s.saslUser != "" {
		// The password is read from the environment variable named here,
		// when the consumer connects; it never sits in the Config.
		cfg.SASL = &config.SASL{Mechanism: config.MechanismScramSHA512, Username: s.saslUser, PasswordEnv: "ORDERS_KAFKA_PASSWORD"}
	}
	cfg.SetDefaults() // optional: consumer.New resolves zero fields the same way
	// Optional too (consumer.New calls it), but it reports every problem at
	// once, each naming the field: "brokers[0]: must be a broker address ...".
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kretry settings: %w", err)
	}
	return cfg, nil
}

func main() {
	var s settings
	flag.StringVar(&s.brokers, "brokers", envOr("ORDERS_KAFKA_BROKERS", "127.0.0.1:9092"), "comma-separated host:port")
	flag.StringVar(&s.group, "group", "orders-service", "the consumer group")
	flag.StringVar(&s.instanceID, "instance-id", os.Getenv("POD_NAME"), "static group member id; empty for dynamic membership")
	flag.BoolVar(&s.tls, "tls", false, "connect over TLS")
	flag.StringVar(&s.saslUser, "sasl-user", "", "SCRAM-SHA-512 user; the password is in ORDERS_KAFKA_PASSWORD")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	cfg, err := kretryConfig(s)
	if err != nil {
		logger.Error("configure", "error", err)
		os.Exit(2)
	}
	c, err := consumer.New(cfg, consumer.HandlerFunc(handle), consumer.WithLogger(logger))
	if err != nil {
		logger.Error("start consumer", "error", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx); err != nil {
		logger.Error("consumer stopped", "error", err)
		os.Exit(1)
	}
}

// handle stands in for the service's handler: an order without a body cannot
// be fixed by retrying it.
func handle(_ context.Context, rec *kgo.Record) error {
	if len(rec.Value) == 0 {
		return consumer.Permanent(fmt.Errorf("order %q has no body", rec.Key))
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
