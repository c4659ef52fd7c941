package consumer

import (
	"errors"

	"github.com/kretry/kretry/retrytopics"
)

func newRelay(c *Consumer, ladders []*retrytopics.Ladder) (relayRunner, error) {
	return nil, errors.New("relay not yet available: use WithRelay(false)")
}
