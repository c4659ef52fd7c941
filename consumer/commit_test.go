package consumer_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/consumer"
)

// A slow handler with a backlog gets its records committed on time, about
// every commit interval (1s by default), not only after 256 records or when
// its queue runs dry: a crash repeats about one commit interval of work.
func TestSlowHandlerCommitsOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, 1)
		const n = 20
		for range n {
			c.produce(&kgo.Record{Key: []byte("slow")})
		}
		var calls counter
		h := consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
			calls.add(r.Key)
			time.Sleep(3 * time.Second)
			return nil
		})
		r := c.start(h, consumer.WithRelay(false))
		waitFor(t, "the second record's handler", func() bool { return calls.get("slow") == 2 })
		// Record 0 was done just now: it is committed within 1.25 commit
		// intervals (1s by default), not franz-go's default 5s.
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if got := c.committed(testGroup, testTopic)[0]; got != 1 {
			t.Errorf("committed offset %d 1.5s after record 0 was done, want 1", got)
		}
		waitFor(t, "the fifth record's handler", func() bool { return calls.get("slow") == 5 })
		// Records 0-3 were done by now, the fourth 3s ago at most:
		// committed within 1.25 commit intervals of being done.
		synctest.Wait()
		if got := c.committed(testGroup, testTopic)[0]; got < 3 {
			t.Errorf("committed offset %d while the fifth record is handled, want at least 3: done records must be committed on time", got)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		// At shutdown the fifth record's handler finished within the grace
		// period and was committed with the rest.
		if got, want := c.committed(testGroup, testTopic)[0], int64(calls.get("slow")); got != want {
			t.Errorf("committed offset %d after shutdown, want %d: every record handled", got, want)
		}
	})
}

// The consumer joins its group with the config's session timeout (10s by
// default, not franz-go's 45s: a killed member's partitions move within
// seconds), its instance id (static membership) and its commit interval.
func TestGroupOptionsFromConfig(t *testing.T) {
	for _, tc := range []struct {
		name         string
		session      time.Duration
		instance     string
		wantSession  int32
		wantInstance string
	}{
		{name: "defaults", wantSession: 10000},
		{name: "set", session: 6 * time.Second, instance: "orders-0", wantSession: 6000, wantInstance: "orders-0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCluster(t, 1, 1)
				c.cfg.SessionTimeout, c.cfg.InstanceID = tc.session, tc.instance
				joins := make(chan *kmsg.JoinGroupRequest, 16)
				c.fake.ControlKey(int16(kmsg.JoinGroup), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
					c.fake.KeepControl()
					if req := kreq.(*kmsg.JoinGroupRequest); req.Group == testGroup {
						select {
						case joins <- req:
						default:
						}
					}
					return nil, nil, false
				})
				c.produce(&kgo.Record{Key: []byte("k")})
				var calls counter
				r := c.start(consumer.HandlerFunc(func(_ context.Context, r *kgo.Record) error {
					calls.add(r.Key)
					return nil
				}), consumer.WithRelay(false))
				waitFor(t, "the record handled", func() bool { return calls.get("k") == 1 })
				if err := r.stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				req := <-joins
				if req.SessionTimeoutMillis != tc.wantSession {
					t.Errorf("joined with session timeout %dms, want %dms", req.SessionTimeoutMillis, tc.wantSession)
				}
				if got := req.InstanceID; (got == nil) != (tc.wantInstance == "") || got != nil && *got != tc.wantInstance {
					t.Errorf("joined with instance id %v, want %q", got, tc.wantInstance)
				}
			})
		})
	}
}
