package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
)

// connectTimeout bounds the first contact with the brokers, so that a wrong
// address fails in seconds instead of franz-go retrying for long.
const connectTimeout = 10 * time.Second

// connect returns a client for cfg (and extra options) that has reached a
// broker. Its error is one sentence naming the brokers and what to check; it
// never contains the SASL password.
func (a *app) connect(ctx context.Context, cfg *config.Config, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := a.clientOpts(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, a.kafkaError(ctx, cfg, err)
	}
	return cl, nil
}

// kafkaError turns an error of talking to the brokers into one sentence that
// names them and says what to check.
func (a *app) kafkaError(ctx context.Context, cfg *config.Config, err error) error {
	brokers := strings.Join(cfg.Brokers, ",")
	var netErr *net.OpError
	var firstEOF *kgo.ErrFirstReadEOF
	var known *config.ConnectionError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted while talking to Kafka at %s", brokers)
	case errors.As(cfg.ConnectError(err), &known) && known.Setting != "":
		// The library names the cause and the setting; the CLI says where
		// that setting is.
		where := fmt.Sprintf("%s in %s", known.Setting, a.configPath)
		if known.Setting == "brokers" {
			where = "--brokers, or brokers in " + a.configPath
		}
		return fmt.Errorf("%w; edit %s", known, where)
	case cfg.SASL != nil && (errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) || errors.Is(err, kerr.UnsupportedSaslMechanism)):
		return fmt.Errorf("login of user %q (%s) refused by Kafka at %s (%v): check the username and the password in $%s",
			cfg.SASL.Username, cfg.SASL.Mechanism, brokers, err, cfg.SASL.PasswordEnv)
	case cfg.SASL != nil && errors.Is(err, io.EOF):
		// Some brokers (kfake among them) close the connection on a
		// wrong password instead of answering SaslAuthenticationFailed.
		return fmt.Errorf("connection closed by Kafka at %s during the %s login of user %q, as brokers do on a wrong password: check the username and the password in $%s",
			brokers, cfg.SASL.Mechanism, cfg.SASL.Username, cfg.SASL.PasswordEnv)
	case cfg.SASL == nil && (errors.As(err, &firstEOF) || errors.Is(err, kerr.SaslAuthenticationFailed)):
		return fmt.Errorf("connection closed by Kafka at %s, as brokers do when they want SASL or TLS: add the sasl or tls section to %s (%v)",
			brokers, a.configPath, err)
	case errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot reach Kafka at %s (%v): check --brokers or brokers in %s, and that Kafka runs (try \"kretry broker\")",
			brokers, err, a.configPath)
	default:
		return fmt.Errorf("talking to Kafka at %s: %w", brokers, err)
	}
}
