// Command configfile runs a kretry consumer from a kretry.yaml: brokers, group,
// topics and their ladders all come from the file, logs go to stderr.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
)

func main() {
	path := flag.String("c", "kretry.yaml", "the kretry config file")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// Load validates the file: an unknown key, a tier out of order or an
	// empty broker list is an error that names the file, the line and the field.
	cfg, err := config.Load(*path)
	if err != nil {
		logger.Error("load config", "error", err)
		os.Exit(1)
	}

	handler := consumer.HandlerFunc(func(_ context.Context, rec *kgo.Record) error {
		logger.Debug("handled", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset)
		return nil
	})
	// The consumer logs one line per record it forwards to a retry tier or
	// the DLQ, and nothing per record handled.
	c, err := consumer.New(cfg, handler, consumer.WithLogger(logger))
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
