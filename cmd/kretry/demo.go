package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kretry/kretry/internal/demo"
)

func newDemoCommand(a *app) *cobra.Command {
	var (
		records int
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole retry ladder on an embedded broker and tally what became of every record",
		Long: `demo starts an embedded broker in this process (127.0.0.1 only), creates a
main topic "orders" with a ladder of retry tiers 1s, 3s and 5s×2 and the DLQ
orders.dlq, and produces records whose handler outcome is decided by their
key: most succeed, some fail and heal after 1 to 3 attempts, some fail
permanently, a few panic, a few never heal. The consumer and the relay run
until every record is accounted for, with a line per second of how many
records wait in each tier and in the DLQ, and /metrics served on 127.0.0.1.

The tally is computed by reading the topics back: every produced key must
have been handled or be in the DLQ; a key that is neither is lost, and the
exit status is then 1. It ends with "kretry dlq ls" of the demo's DLQ.

--json prints only the tally, as one JSON object on stdout; the progress
goes to stderr.`,
		Example: `  kretry demo
  kretry demo --records 10000 --json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if records < 1 {
				return usagef("--records %d: give a number of records ≥ 1", records)
			}
			if timeout <= 0 {
				return usagef("--timeout %v: give a duration > 0, e.g. 50s", timeout)
			}
			return a.demo(cmd.Context(), records, timeout)
		},
	}
	cmd.Flags().IntVar(&records, "records", 3000, "how many records to produce")
	cmd.Flags().DurationVar(&timeout, "timeout", 50*time.Second, "give up waiting after this; records not accounted for by then are reported lost")
	return cmd
}

func (a *app) demo(ctx context.Context, records int, timeout time.Duration) error {
	progress := a.stdout
	if a.json {
		progress = a.stderr
	}
	res, err := demo.Run(ctx, demo.Options{
		Records:  records,
		Timeout:  timeout,
		Progress: progress,
		Report: func(ctx context.Context, r *demo.Result, brokers []string) error {
			if a.json {
				return r.Tally.WriteJSON(a.stdout)
			}
			fmt.Fprintln(a.stdout)
			if err := r.Tally.WriteText(a.stdout, r.Tiers); err != nil {
				return err
			}
			dead := 0
			for _, n := range r.Tally.DeadLettered {
				dead += n
			}
			return a.demoDLQ(ctx, a.stdout, brokers, r.DLQ, dead)
		},
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if res.Tally.Lost > 0 {
		return fmt.Errorf("demo: %d of %d records lost: neither handled nor in %s", res.Tally.Lost, res.Tally.Produced, res.DLQ)
	}
	return nil
}

// demoDLQ runs `kretry dlq ls` on the demo's DLQ, in process, while the
// embedded broker still runs: the first records, then those that used up the
// ladder (they come last).
func (a *app) demoDLQ(ctx context.Context, w io.Writer, brokers []string, topic string, total int) error {
	base := []string{"dlq", "ls", "--brokers", strings.Join(brokers, ","), "--topic", topic}
	for _, extra := range [][]string{{"--limit", "6"}, {"--reason", "exhausted", "--limit", "4"}} {
		args := append(slices.Clone(base), extra...)
		fmt.Fprintf(w, "\n$ kretry %s\n", strings.Join(args, " "))
		var stderr bytes.Buffer
		if code := runContext(ctx, args, w, &stderr); code != exitOK {
			return fmt.Errorf("kretry dlq ls on the demo's DLQ: exit %d: %s", code, strings.TrimSpace(stderr.String()))
		}
	}
	fmt.Fprintf(w, "\n%s holds %d records; the embedded broker and its topics end with the demo\n", topic, total)
	return nil
}
