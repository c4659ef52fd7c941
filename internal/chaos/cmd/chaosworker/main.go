// Command chaosworker is the kretry consumer the fault suite (internal/chaos)
// runs and kills: consumer.New and Run on a config file, with a deterministic
// handler (chaos.Outcome) that appends one line per handling to a file of its
// own, so what it did survives a kill -9, and emits (consumer.Emit) one
// output per handling that succeeds to chaos.OutputTopic.
//
//	chaosworker -config FILE -events FILE [-relay=false]
//
// SIGTERM or SIGINT stops it gracefully. It logs warnings and errors to
// stderr; KRETRY_CHAOS_LOG=info or debug logs more (debug includes
// franz-go's info lines), to see where a fault's time goes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/chaos"
)

func main() {
	cfgPath := flag.String("config", "", "the kretry config file")
	events := flag.String("events", "", "append one line per handling to this file")
	relay := flag.Bool("relay", true, "run the relay in process")
	flag.Parse()
	if err := run(*cfgPath, *events, *relay); err != nil {
		fmt.Fprintln(os.Stderr, "chaosworker:", err)
		os.Exit(1)
	}
}

func run(cfgPath, events string, relay bool) error {
	if cfgPath == "" || events == "" {
		return errors.New("give -config and -events")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(events, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	pid := os.Getpid()
	topic := cfg.Topics[0].Name

	h := consumer.HandlerFunc(func(ctx context.Context, r *kgo.Record) error {
		ev := chaos.Event{At: time.Now(), PID: pid, Partition: r.Partition, Offset: r.Offset}
		id, attempt, due, herr := chaos.ReadRecord(r)
		ev.ID, ev.Attempt, ev.DueAt = id, attempt, due
		var err error
		switch {
		case herr != nil:
			ev.Outcome = chaos.OutcomeMalformed
			err = consumer.Permanent(herr)
		default:
			ev.Outcome = chaos.Outcome(id, attempt)
			switch ev.Outcome {
			case chaos.OutcomeFail:
				err = fmt.Errorf("chaos: record %d fails attempt %d", id, attempt)
			case chaos.OutcomePermanent:
				err = consumer.Permanent(fmt.Errorf("chaos: record %d fails for good", id))
			}
		}
		// One write per event: it is in the file once write returns, kill or not.
		if _, werr := f.Write(ev.AppendLine(nil)); werr != nil {
			return fmt.Errorf("chaos: recording a handling: %w", werr)
		}
		if err == nil {
			if eerr := consumer.Emit(ctx, chaos.Output(topic, ev, r.Value)); eerr != nil {
				return fmt.Errorf("chaos: emitting the output: %w", eerr)
			}
		}
		return err
	})

	level := slog.LevelWarn
	if v := os.Getenv("KRETRY_CHAOS_LOG"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("KRETRY_CHAOS_LOG: %w (use debug, info, warn or error)", err)
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	c, err := consumer.New(cfg, h, consumer.WithRelay(relay), consumer.WithLogger(logger))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fmt.Fprintf(os.Stderr, "chaosworker %d: running (relay in process: %v)\n", pid, relay)
	if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
