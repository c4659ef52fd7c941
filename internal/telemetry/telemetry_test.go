package telemetry_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/telemetry"
)

// Two clients with the same labels on one registry must not panic, and
// releasing one must leave the other's metrics in place.
func TestClientMetricsShareARegistry(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	labels := prometheus.Labels{"component": "relay"}

	newClient := func() (*kgo.Client, *telemetry.ClientMetrics) {
		opt, m := telemetry.NewClientMetrics(reg, log, labels)
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		return cl, m
	}
	cl1, m1 := newClient()
	cl2, m2 := newClient()

	count := func() int {
		n, err := testutil.GatherAndCount(reg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count() == 0 {
		t.Fatal("no kretry_client_* metrics registered")
	}
	cl2.Close()
	m2.Release()
	if count() == 0 {
		t.Fatal("releasing the second client removed the first client's metrics")
	}
	cl1.Close()
	m1.Release()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "kretry_client_") {
			t.Errorf("%s still registered after both clients released their metrics", mf.GetName())
		}
	}
}

func TestNilRegistererGivesNoOption(t *testing.T) {
	opt, m := telemetry.NewClientMetrics(nil, slog.Default(), nil)
	if opt != nil {
		t.Fatalf("option = %v, want nil for a nil registerer", opt)
	}
	m.Release() // must not panic
}
