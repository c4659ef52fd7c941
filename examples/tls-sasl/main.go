// Command tls-sasl connects a kretry consumer to a cluster that wants TLS and
// SASL: from the config file (tls:, sasl:), or, for what the file cannot say,
// with franz-go options passed through consumer.WithClientOpts.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
)

func main() {
	path := flag.String("c", "kretry.yaml", "the kretry config file (tls: and sasl: sections)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	// Load resolves the tls: and sasl: sections; ClientOpts, which the
	// consumer calls, reads the PEM files and the password variable and
	// names the field of any problem.
	cfg, err := config.Load(*path)
	if err != nil {
		logger.Error("load config", "error", err)
		os.Exit(1)
	}

	// What the file cannot express goes in as franz-go options. They come
	// after those from the file, so they win: here TLS 1.3 only, and SASL
	// OAUTHBEARER with a token from the environment instead of sasl:.
	var extra []kgo.Opt
	if token := os.Getenv("KAFKA_OAUTH_TOKEN"); token != "" {
		extra = append(extra,
			kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS13}),
			kgo.SASL(oauth.Oauth(func(context.Context) (oauth.Auth, error) {
				return oauth.Auth{Token: token}, nil
			})),
		)
	}

	handler := consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil })
	c, err := consumer.New(cfg, handler, consumer.WithLogger(logger), consumer.WithClientOpts(extra...))
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
