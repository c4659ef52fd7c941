package relay_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kretry/kretry/ladder"
	"github.com/kretry/kretry/relay"
)

// TransactionalID is the exactly-once mode's id, and "" when the relay uses
// no transactions.
func TestTransactionalID(t *testing.T) {
	l, err := ladder.New("orders", "svc", []ladder.Tier{{Delay: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts []relay.Opt
		want string
	}{
		{"at-least-once", []relay.Opt{relay.WithInstanceID("pod-0")}, ""},
		{"exactly-once", []relay.Opt{relay.WithExactlyOnce(true), relay.WithInstanceID("pod-0")}, "kretry/svc-relay/relay/pod-0"},
	} {
		r, err := relay.New([]*ladder.Ladder{l}, tc.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := r.TransactionalID(); got != tc.want {
			t.Errorf("%s: TransactionalID() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The error of a fenced relay names each cause the brokers' answer can stand
// for, not only a second instance with the same id.
func TestFencedErrorNamesEveryCause(t *testing.T) {
	err := relay.FencedError(t, kerr.InvalidProducerEpoch)
	if !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Errorf("the error does not wrap the brokers' error: %v", err)
	}
	for _, want := range []string{"kretry/svc-relay/relay/pod-0", "same instance id", "not authorized", "transaction timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
}
