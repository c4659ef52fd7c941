package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
)

// Exit statuses of run.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitChanges is "topics plan --exit-code" finding changes pending.
	exitChanges = 3
)

// errChangesPending ends "topics plan --exit-code" with exitChanges once the
// plan is printed: it is a result, not an error, so nothing more is printed.
var errChangesPending = errors.New("changes pending")

// app is what every command shares: the output streams and the global flags.
type app struct {
	stdout, stderr io.Writer

	configPath string   // -c/--config
	brokers    []string // --brokers: replaces the config's brokers
	json       bool     // --json: one JSON object per line

	ran bool // a command's RunE started: an error now is a failure, not bad usage
}

// usageError marks bad usage (exit 2): an unknown command or flag, a bad flag
// value, a missing argument.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError: the message says what is allowed.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// run runs the command line args until it is done or SIGINT/SIGTERM, and
// returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the first signal stops gracefully; a second one kills
	}()
	return runContext(ctx, args, stdout, stderr)
}

// runContext is run with the context that long-running commands (relay,
// broker) stop on.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.newRootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errChangesPending) {
		return exitChanges
	}
	var ue *usageError
	if errors.As(err, &ue) || !a.ran {
		if cmd == nil {
			cmd = root
		}
		msg, sep := strings.TrimSpace(err.Error()), ":"
		if strings.HasSuffix(msg, "?") {
			sep = ""
		}
		fmt.Fprintf(stderr, "kretry: %s%s see \"%s --help\"\n", msg, sep, cmd.CommandPath())
		return exitUsage
	}
	for line := range strings.SplitSeq(strings.TrimSpace(err.Error()), "\n") {
		fmt.Fprintf(stderr, "kretry: %s\n", line)
	}
	return exitFailure
}

func (a *app) newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "kretry",
		Short: "Non-blocking tiered retries for Kafka consumers",
		Long: `kretry gives a Kafka consumer tiered retry topics and a dead-letter topic.

This CLI checks a kretry.yaml, creates the retry and DLQ topics it needs,
runs the relay on its own, inspects and replays the DLQ, and starts an
embedded broker for trying it all without Kafka.

Exit status: 0 on success, 1 on failure, 2 on bad usage; "topics plan
--exit-code" exits 3 when changes are pending.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVarP(&a.configPath, "config", "c", "kretry.yaml", "the kretry config file")
	pf.StringSliceVar(&a.brokers, "brokers", nil, "seed brokers host:port,... (replace the config's brokers and KRETRY_BROKERS)")
	pf.BoolVar(&a.json, "json", false, "print data as one JSON object per line")

	root.AddCommand(
		a.newConfigCommand(),
		a.newTopicsCommand(),
		a.newRelayCommand(),
		newDLQCommand(a),
		a.newBrokerCommand(),
		a.newVersionCommand(),
		newDemoCommand(a),
	)
	root.InitDefaultCompletionCmd()
	a.finishTree(root)
	return root
}

// finishTree gives every command of the tree the same rules: the global
// flags are checked before a command runs, leaf commands take no stray
// arguments, a command with subcommands and nothing to run
// rejects an unknown subcommand (exit 2) instead of printing help with exit
// 0, and a RunE that starts marks later errors as failures (exit 1).
func (a *app) finishTree(c *cobra.Command) {
	for _, sub := range c.Commands() {
		a.finishTree(sub)
	}
	c.SuggestionsMinimumDistance = 2
	switch {
	case c.RunE != nil:
		runE := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := a.checkGlobalFlags(cmd); err != nil {
				return err
			}
			a.ran = true
			return runE(cmd, args)
		}
		if c.Args == nil {
			c.Args = noArgs
		}
	case c.Run != nil:
		run := c.Run
		c.Run = func(cmd *cobra.Command, args []string) {
			a.ran = true
			run(cmd, args)
		}
	case c.HasSubCommands():
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			var names []string
			for _, s := range cmd.Commands() {
				if s.IsAvailableCommand() {
					names = append(names, s.Name())
				}
			}
			return usagef("%s needs a command: one of %s", cmd.CommandPath(), strings.Join(names, ", "))
		}
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

func unknownCommand(cmd *cobra.Command, name string) error {
	var names []string
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	msg := fmt.Sprintf("unknown command %q for %q: the commands are %s", name, cmd.CommandPath(), strings.Join(names, ", "))
	if sug := cmd.SuggestionsFor(name); len(sug) > 0 {
		msg = fmt.Sprintf("unknown command %q for %q: did you mean %q?", name, cmd.CommandPath(), sug[0])
	}
	return &usageError{errors.New(msg)}
}

// checkGlobalFlags refuses empty and malformed values of the global flags
// before a command runs (exit 2): --brokers "" would otherwise be dropped
// without a word, and --brokers localhost fail only when dialing.
func (a *app) checkGlobalFlags(cmd *cobra.Command) error {
	flags := cmd.Flags()
	if flags.Changed("config") && strings.TrimSpace(a.configPath) == "" {
		return usagef("--config is empty: give the config file, e.g. -c kretry.yaml, or leave it out for kretry.yaml")
	}
	if !flags.Changed("brokers") {
		return nil
	}
	const empty = "--brokers has an empty value: give one or more host:port separated by commas, e.g. --brokers 127.0.0.1:9092, or leave it out"
	if len(a.brokers) == 0 {
		return usagef(empty)
	}
	for _, b := range a.brokers {
		if strings.TrimSpace(b) == "" {
			return usagef(empty)
		}
		if err := config.CheckBroker(strings.TrimSpace(b)); err != nil {
			return usagef("--brokers: %v", err)
		}
	}
	return nil
}

// loadConfig loads the -c file with --brokers in place of its brokers (and
// of KRETRY_BROKERS), so a file without brokers works with --brokers. Its errors name the
// file, and for a missing file say how to give one.
func (a *app) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(a.configPath, config.WithBrokers(a.brokers...))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("config file %s does not exist: pass -c FILE (the format is in the README)", a.configPath)
	}
	return cfg, err
}

// clientOpts returns the franz-go options for cfg: seeds, client id, TLS and
// SASL.
func (a *app) clientOpts(cfg *config.Config) ([]kgo.Opt, error) {
	return cfg.ClientOpts()
}

// hint is how the CLI writes a command to run in an error message, with the
// -c that this invocation was given.
func (a *app) hint(command string) string {
	return fmt.Sprintf("\"kretry %s -c %s\"", command, a.configPath)
}
