package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kretry/kretry/config"
)

func (a *app) newBrokerCommand() *cobra.Command {
	var (
		port   int
		data   string
		topics []string
	)
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an embedded single-node Kafka-compatible broker on 127.0.0.1 for trying kretry",
		Long: `broker runs kfake, franz-go's in-process Kafka-compatible broker, as one node
listening on 127.0.0.1 only, and prints its address as KRETRY_BROKERS=HOST:PORT.
It is for trying kretry without Kafka, not for production data.

Without --data its topics live in memory and are gone when it stops; with
--data DIR it keeps topics, records and committed offsets in DIR and loads
them again on the next start. SIGINT or SIGTERM stops it (and saves its state).`,
		Example: `  kretry broker --topic orders:3
  kretry broker --port 0 --data ./kretry-data`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port < 0 || port > 65535 {
				return usagef("--port %d: use a port from 1 to 65535, or 0 for a free one", port)
			}
			seeds := map[int32][]string{}
			for _, t := range topics {
				name, parts, err := parseTopicFlag(t)
				if err != nil {
					return err
				}
				seeds[parts] = append(seeds[parts], name)
			}
			return a.broker(cmd.Context(), port, data, seeds)
		},
	}
	cmd.Flags().IntVar(&port, "port", 9092, "port to listen on (127.0.0.1 only); 0 picks a free one")
	cmd.Flags().StringVar(&data, "data", "", "directory that keeps the broker's state across restarts; empty: in memory")
	cmd.Flags().StringArrayVar(&topics, "topic", nil, "create this topic at start, NAME or NAME:PARTITIONS (default 3 partitions); repeatable")
	return cmd
}

// parseTopicFlag reads NAME or NAME:PARTITIONS.
func parseTopicFlag(s string) (string, int32, error) {
	name, p, hasParts := strings.Cut(s, ":")
	if name == "" {
		return "", 0, usagef("--topic %q: use NAME or NAME:PARTITIONS, e.g. orders:3", s)
	}
	if err := config.CheckTopicName(name); err != nil {
		return "", 0, usagef("--topic %q: %v", s, err)
	}
	if !hasParts {
		return name, 3, nil
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil || n < 1 {
		return "", 0, usagef("--topic %q: partitions must be a number ≥ 1, e.g. orders:3", s)
	}
	return name, int32(n), nil
}

func (a *app) broker(ctx context.Context, port int, data string, seeds map[int32][]string) error {
	opts := []kfake.Opt{kfake.Ports(port), kfake.ClusterID("kretry")}
	if data != "" {
		opts = append(opts, kfake.DataDir(data))
	}
	for parts, names := range seeds {
		opts = append(opts, kfake.SeedTopics(parts, names...))
	}
	c, err := kfake.NewCluster(opts...)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("port %d on 127.0.0.1 is in use: pass --port N, or --port 0 for a free one", port)
	}
	if err != nil {
		return fmt.Errorf("start the embedded broker: %w", err)
	}
	addr := c.ListenAddrs()[0]
	if a.json {
		_ = json.NewEncoder(a.stdout).Encode(map[string]string{"brokers": addr, "data": data})
	} else {
		fmt.Fprintf(a.stdout, "KRETRY_BROKERS=%s\n", addr)
	}
	where := "in memory: stopping loses it"
	if data != "" {
		where = "in " + data
	}
	fmt.Fprintf(a.stderr, "kretry broker: listening on %s, state %s; SIGINT or SIGTERM stops it\n", addr, where)

	<-ctx.Done()
	c.Close() // with --data, saves the state before it returns
	fmt.Fprintln(a.stderr, "kretry broker: stopped")
	return nil
}
