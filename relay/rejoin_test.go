package relay

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kretry/kretry/ladder"
)

// A fenced relay starts a new session only without an instance id (its id
// was its own): with one, another instance with the same id may run.
func TestMayRejoin(t *testing.T) {
	l, err := ladder.New("orders", "svc", []ladder.Tier{{Delay: 1}})
	if err != nil {
		t.Fatal(err)
	}
	fenced := fmt.Errorf("relay: ending: %w", kerr.ProducerFenced)
	tests := []struct {
		name     string
		instance string
		err      error
		want     bool
	}{
		{"random id, PRODUCER_FENCED", "", fenced, true},
		{"random id, INVALID_PRODUCER_EPOCH", "", kerr.InvalidProducerEpoch, true},
		{"random id, not authorized", "", kerr.TransactionalIDAuthorizationFailed, false},
		{"random id, another error", "", errors.New("relay: unknown topic"), false},
		{"instance id, PRODUCER_FENCED", "pod-0", fenced, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []Opt{WithExactlyOnce(true)}
			if tt.instance != "" {
				opts = append(opts, WithInstanceID(tt.instance))
			}
			r, err := New([]*ladder.Ladder{l}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.mayRejoin(tt.err); got != tt.want {
				t.Errorf("mayRejoin(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	r, err := New([]*ladder.Ladder{l}, WithExactlyOnce(true))
	if err != nil {
		t.Fatal(err)
	}
	old := r.TransactionalID()
	r.newInstance()
	if r.TransactionalID() == old {
		t.Errorf("a new session's transactional id is the fenced one's, %s", old)
	}
}
