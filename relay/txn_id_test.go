package relay_test

import (
	"testing"
	"time"

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
