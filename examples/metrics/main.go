// Command metrics runs a kretry consumer that serves its Prometheus metrics —
// kretry_* and franz-go's client metrics — on http://127.0.0.1:2112/metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/consumer"
)

func main() {
	path := flag.String("c", "kretry.yaml", "the kretry config file")
	addr := flag.String("metrics", "127.0.0.1:2112", "where to serve /metrics")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*path, *addr, logger); err != nil {
		logger.Error("metrics example", "error", err)
		os.Exit(1)
	}
}

func run(path, addr string, logger *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}

	// A registry of our own, never the global one: kretry registers its
	// collectors here, and the kprom client metrics of its clients.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	handler := consumer.HandlerFunc(func(_ context.Context, rec *kgo.Record) error {
		if len(rec.Value) == 0 {
			return errors.New("empty order") // retried along the ladder
		}
		return nil
	})
	c, err := consumer.New(cfg, handler, consumer.WithLogger(logger), consumer.WithRegisterer(reg))
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Liveness and readiness of the consumer and its relay, for probes.
	mux.Handle("/healthz", c.HealthHandler())
	mux.Handle("/readyz", c.HealthHandler())
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ListenAndServe() }()
	logger.Info("serving metrics", "url", "http://"+addr+"/metrics")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runErr := c.Run(ctx)

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(runErr, err)
	}
	return runErr
}
