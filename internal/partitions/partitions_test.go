package partitions

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kretry/kretry/internal/kafkatest"
)

// Partition reads a topic's count again only for a partition not below it,
// at most once every RefreshEvery, and keeps the count it had when
// the broker cannot tell, with one warning.
func TestPartitionCountsRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake, kopts := kafkatest.VirtualFake(t, kfake.NumBrokers(1), kfake.SeedTopics(3, "t"))
		cl, err := kgo.NewClient(kopts...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var requests atomic.Int32 // metadata requests for t alone: the refreshes
		var refuse atomic.Bool
		fake.ControlKey(int16(kmsg.Metadata), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			fake.KeepControl()
			req := kreq.(*kmsg.MetadataRequest)
			if len(req.Topics) != 1 || req.Topics[0].Topic == nil || *req.Topics[0].Topic != "t" {
				return nil, nil, false
			}
			requests.Add(1)
			if !refuse.Load() {
				return nil, nil, false
			}
			resp := req.ResponseKind().(*kmsg.MetadataResponse)
			rt := kmsg.NewMetadataResponseTopic()
			rt.Topic, rt.ErrorCode = kmsg.StringPtr("t"), kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, rt)
			return resp, nil, true
		})
		var logs kafkatest.Buffer
		c := New(cl, slog.New(slog.NewTextHandler(&logs, nil)), map[string]int32{"t": 3})
		ctx := context.Background()
		check := func(what string, p, want, wantRequests int32) {
			t.Helper()
			if got := c.Partition(ctx, "t", p); got != want {
				t.Errorf("%s: partition(%d) = %d, want %d", what, p, got, want)
			}
			if got := requests.Load(); got != wantRequests {
				t.Errorf("%s: %d refreshes in all, want %d", what, got, wantRequests)
			}
		}

		check("below the count", 1, 1, 0)
		for range 10 {
			check("past the count, at once", 5, 2, 1)
		}
		time.Sleep(RefreshEvery)
		check("past the count, after the interval", 5, 2, 2)

		resp, err := kadm.NewClient(cl).UpdatePartitions(ctx, 6, "t")
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		check("raised, within the interval", 5, 2, 2)
		time.Sleep(RefreshEvery)
		check("raised, after the interval", 5, 5, 3)
		check("raised, below the new count", 4, 4, 3)
		check("past the new count, at once", 7, 1, 3)
		if !strings.Contains(logs.String(), "level=INFO msg=\"kretry topic has a new partition count\" topic=t partitions=6 was=3") {
			t.Errorf("no info line on the new count; logs:\n%s", logs.String())
		}

		refuse.Store(true)
		time.Sleep(RefreshEvery)
		check("refused", 7, 1, 4)
		check("refused, within the interval", 7, 1, 4)
		if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "TOPIC_AUTHORIZATION_FAILED") {
			t.Errorf("%d warnings, want 1 with the broker's error; logs:\n%s", n, logs.String())
		}
	})
}
