// Command relay runs kretry's relay on its own: it consumes every retry tier
// of the ladders in a config file and re-feeds each record to its main topic
// when it is due. Run it when the main consumers run with
// consumer.WithRelay(false), or to scale the relay apart from them. It is what
// `kretry relay -c kretry.yaml` does.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/relay"
)

func main() {
	path := flag.String("c", "kretry.yaml", "the kretry config file")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*path, logger); err != nil {
		logger.Error("relay", "error", err)
		os.Exit(1)
	}
}

func run(path string, logger *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		return err
	}
	clientOpts, err := cfg.ClientOpts() // seeds, client id, TLS, SASL
	if err != nil {
		return err
	}
	// cfg.RelayOpts: relay.group, fetch_max_wait, hold_bytes, commit_interval,
	// delivery_timeout, exactly_once with instance_id, the group members' and
	// producers' options.
	opts := append(cfg.RelayOpts(), relay.WithClientOpts(clientOpts...), relay.WithLogger(logger))
	r, err := relay.New(ladders, opts...)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("relay running", "group", cfg.Relay.Group, "ladders", len(ladders))
	return r.Run(ctx) // until Ctrl-C; leaves the group on the way out
}
