// Package batchlimit gives a producer the batch limit of each topic it writes
// to: the topic's max.message.bytes, so that a record the topic accepts is
// not refused first by the client's default limit (1,000,012 bytes). The
// consumer's forwards and the relay's re-feeds and dead letters use it.
package batchlimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
)

// The bounds kgo takes for a batch limit, and its default.
const (
	minBytes     = 512
	maxBytes     = 1 << 30
	DefaultBytes = 1_000_012
)

// Limits is the batch limit per topic. The zero value gives every topic
// DefaultBytes; it is safe for concurrent use.
type Limits struct {
	mu sync.Mutex
	m  map[string]int32
}

// Of is the limit of topic, for kgo.ProducerBatchMaxBytesFn: kgo asks once
// per partition, when it first produces to it, which is after Read.
func (l *Limits) Of(topic string) int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.m[topic]; ok {
		return n
	}
	return DefaultBytes
}

// Read reads the max.message.bytes of topics. A topic it could not read
// keeps DefaultBytes; the error says which and why.
func (l *Limits) Read(ctx context.Context, adm *kadm.Client, topics []string) error {
	m := make(map[string]int32, len(topics))
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", rc.Name, rc.Err))
		}
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			if n, perr := strconv.ParseInt(*c.Value, 10, 64); perr == nil {
				m[rc.Name] = int32(min(max(n, minBytes), maxBytes))
			}
		}
	}
	l.mu.Lock()
	l.m = m
	l.mu.Unlock()
	return errors.Join(errs...)
}
