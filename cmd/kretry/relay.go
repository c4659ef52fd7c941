package main

import (
	"errors"
	"log/slog"

	"github.com/spf13/cobra"
)

// newRelayCommand is registered with its flags; it runs once retrytopics has
// its Relay (the full command is written and waits for it).
func (a *app) newRelayCommand() *cobra.Command {
	var logLevel string
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Run the relay alone: re-feed due records from the tier topics until SIGINT/SIGTERM (not built yet)",
		RunE: func(*cobra.Command, []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level %q: use debug, info, warn or error", logLevel)
			}
			return errors.New("kretry relay is not built yet: run the relay in process with the consumer meanwhile")
		},
	}
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn or error")
	return cmd
}
