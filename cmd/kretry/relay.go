package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/relay"
	"github.com/kretry/kretry/topics"
)

func (a *app) newRelayCommand() *cobra.Command {
	var (
		logLevel    string
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Run the relay alone: re-feed due records from the tier topics until SIGINT/SIGTERM",
		Long: `relay consumes every tier topic of the config in the relay group (relay.group,
default GROUP-relay) and re-feeds each record to its main topic, to its
original partition, once it is due. Run it when the consumers run with the
in-process relay turned off. It checks first that every tier and DLQ topic exists.
SIGINT or SIGTERM stops it gracefully: it waits at most delivery_timeout for
the re-feeds in flight, commits those acknowledged and leaves the group, within
delivery_timeout plus about 5s even when the brokers do not answer. With
exactly_once its re-feeds and tier offsets commit in transactions.
With --json it logs JSON lines. With --metrics it serves the relay's kretry_*
metrics (re-feeds, their lateness, paused partitions, held bytes, untrusted
due times, dead letters, records too large to re-feed), franz-go's client metrics and Go's process metrics,
and /healthz (the relay's loop is alive) and /readyz (it has joined its group and its
re-feeds are not failing), 200 or 503 with a JSON body that says why.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level %q: use debug, info, warn or error", logLevel)
			}
			if cmd.Flags().Changed("metrics") {
				if err := checkListenAddr(metricsAddr); err != nil {
					return usagef("--metrics %q: %v", metricsAddr, err)
				}
			}
			return a.relay(cmd.Context(), level, metricsAddr)
		},
	}
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn or error")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "serve Prometheus /metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9100); empty: off")
	return cmd
}

func (a *app) relay(ctx context.Context, level slog.Level, metricsAddr string) error {
	cfg, adm, plan, err := a.planWith(ctx, false)
	if err != nil {
		return err
	}
	adm.Close()
	var missing []string
	for _, s := range plan.Topics {
		if !s.Exists { // the relay reads the tiers and dead-letters unreadable records
			missing = append(missing, s.Topic)
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return fmt.Errorf("topic %s does not exist: run %s", missing[0], a.hint("topics apply"))
	default:
		return fmt.Errorf("topics %s do not exist: run %s", strings.Join(missing, ", "), a.hint("topics apply"))
	}

	ladders, err := cfg.Ladders()
	if err != nil {
		return err
	}
	opts, err := a.clientOpts(cfg)
	if err != nil {
		return err
	}
	var handler slog.Handler = slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level})
	if a.json {
		handler = slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(handler)
	relayOpts := append(cfg.RelayOpts(), relay.WithLogger(logger), relay.WithClientOpts(opts...))

	var reg *prometheus.Registry
	if metricsAddr != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		relayOpts = append(relayOpts, relay.WithRegisterer(reg))
	}
	r, err := relay.New(ladders, relayOpts...)
	if err != nil {
		return err
	}
	setRelayGroupTimeouts(ctx, cfg, opts, r.Group(), logger)
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("serve metrics on %s: %w: pass another --metrics address", metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.Handle("/healthz", r.HealthHandler())
		mux.Handle("/readyz", r.HealthHandler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		logger.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics", "health", "/healthz, /readyz")
	}
	err = r.Run(ctx)
	var gone *topics.MissingTopicsError
	if errors.As(err, &gone) { // deleted since the check above
		return fmt.Errorf("%w: run %s", err, a.hint("topics apply"))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("relay: %w", a.kafkaError(context.Background(), cfg, err))
	}
	return nil
}

// checkListenAddr checks an address to listen on: [host]:port with a port
// from 0 to 65535 (0 picks a free one) and a host that is an IP address or
// a name.
func checkListenAddr(addr string) error {
	if addr == "" {
		return errors.New("give an address such as 127.0.0.1:9100, or leave --metrics out")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("give host:port, e.g. 127.0.0.1:9100 (:9100 listens on every interface)")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || port[0] == '+' {
		return errors.New("the port must be a number from 0 to 65535 (0 picks a free one), e.g. 127.0.0.1:9100")
	}
	if host != "" && net.ParseIP(host) == nil {
		if err := config.CheckBroker(net.JoinHostPort(host, "1")); err != nil {
			return errors.New("the host must be an IP address or a host name, e.g. 127.0.0.1:9100")
		}
	}
	return nil
}

// setRelayGroupTimeouts makes session_timeout and the heartbeat interval that
// follows it the brokers' settings of the relay's group with group_protocol:
// consumer, as the consumer does for its in-process relay.
func setRelayGroupTimeouts(ctx context.Context, cfg *config.Config, opts []kgo.Opt, group string, log *slog.Logger) {
	if cfg.GroupProtocol != config.GroupProtocolConsumer {
		return
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		log.Warn("kretry relay could not set its group's session timeout", "group", group, "error", err)
		return
	}
	defer cl.Close()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg.SetGroupTimeouts(sctx, cl, group, log)
}
