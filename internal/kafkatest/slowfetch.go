package kafkatest

import (
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SlowFetches is a kgo hook (kgo.WithHooks) that holds each fetch response
// a client reads for Delay before the client takes it, as a busy broker or
// network does, and counts the EndTxn requests the client writes.
type SlowFetches struct {
	Delay   time.Duration
	EndTxns atomic.Int64
}

// OnBrokerRead holds a fetch response for Delay.
func (h *SlowFetches) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	const fetchKey = 1
	if key == fetchKey && err == nil {
		time.Sleep(h.Delay)
	}
}

// OnBrokerWrite counts an EndTxn request written.
func (h *SlowFetches) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	const endTxnKey = 26
	if key == endTxnKey && err == nil {
		h.EndTxns.Add(1)
	}
}
