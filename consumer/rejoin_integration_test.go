//go:build integration

package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/consumer"
	"github.com/kretry/kretry/internal/kafkatest"
)

// Exactly once without instance_id on the real broker: the consumer rejoins
// with a new transactional id after each fence, and the fifth fence within a
// minute stops Run with the fence's error instead of looping (the rejoin
// budget, internal/rejoin). Each session's id is taken (an InitProducerID
// of it) once it is the group's member and has committed a transaction, and
// a record makes it end another. No timing is asserted: fences go on until Run stops, which it
// must do at the fifth if they came within a minute, and at a later one
// otherwise (a slow machine).
func TestExactlyOnceFifthFenceWithinAMinuteStopsRun(t *testing.T) {
	verifyNoLeaks(t)
	b := newRealBroker(t, 1)
	b.cfg.ExactlyOnce = true
	var logs kafkatest.Buffer
	c, err := consumer.New(b.cfg, consumer.HandlerFunc(func(context.Context, *kgo.Record) error { return nil }),
		consumer.WithRelay(false), consumer.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	fencedLines := func() int { return strings.Count(logs.String(), "transaction was fenced") }

	var fences []time.Time
	var runErr error
	last := ""
	var committed int64
fencing:
	for i := 1; i <= 20; i++ {
		var id string
		waitReal(t, 90*time.Second, fmt.Sprintf("session %d in the group, or Run stopped", i), func() bool {
			select {
			case runErr = <-errc:
				return true
			default:
			}
			id = memberTxnID(t, b)
			return strings.HasPrefix(id, "kretry/") && id != last
		})
		if runErr != nil || id == "" || id == last {
			break
		}
		last = id
		// A transaction committed first: a fence before the session's
		// producer has an id would be undone by the session's own
		// InitProducerID, which fences the test's instead.
		committed++
		b.produceSync(&kgo.Record{Topic: b.ladder.Topic(), Key: []byte(fmt.Sprint("a", i))})
		waitReal(t, 90*time.Second, fmt.Sprintf("session %d committed a transaction, or Run stopped", i), func() bool {
			select {
			case runErr = <-errc:
				return true
			default:
			}
			return b.committedSum(b.cfg.Group, b.ladder.Topic()) == committed
		})
		if runErr != nil {
			break
		}
		fenceTxnID(t, b, id)
		fences = append(fences, time.Now())
		committed++
		b.produceSync(&kgo.Record{Topic: b.ladder.Topic(), Key: []byte(fmt.Sprint("b", i))})
		waitReal(t, 90*time.Second, fmt.Sprintf("fence %d seen, or Run stopped", i), func() bool {
			select {
			case runErr = <-errc:
				return true
			default:
			}
			return fencedLines() == i
		})
		if runErr != nil {
			break fencing
		}
	}
	if runErr == nil {
		t.Fatalf("Run did not stop after %d fences; the log:\n%s", len(fences), logs.String())
	}
	if !strings.Contains(runErr.Error(), "fenced 5 times within 1m0s") {
		t.Errorf("Run: %v; want the error of the fifth fence within a minute", runErr)
	}
	n := len(fences)
	if n < 5 {
		t.Fatalf("Run stopped after %d fences, want 5 within a minute", n)
	}
	if within := fences[n-1].Sub(fences[n-5]); within >= time.Minute {
		t.Errorf("Run stopped at a fence whose 4 before it took %v, more than a minute", within)
	}
	// The sessions before the last rejoined: one warn line each.
	if got := fencedLines(); got != n-1 {
		t.Errorf("%d lines of a rejoin after a fence, want %d (every fence but the last)", got, n-1)
	}
}
