package batchlimit_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/batchlimit"
	"github.com/kretry/kretry/internal/kafkatest"
)

func TestLimits(t *testing.T) {
	_, seeds := kafkatest.Fake(t, kfake.NumBrokers(1))
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	big, tiny := "3145728", "10"
	for topic, v := range map[string]*string{"big": &big, "tiny": &tiny, "plain": nil} {
		var configs map[string]*string
		if v != nil {
			configs = map[string]*string{"max.message.bytes": v}
		}
		if _, err := adm.CreateTopic(ctx, 1, 1, configs, topic); err != nil {
			t.Fatal(err)
		}
	}
	var l batchlimit.Limits
	if got := l.Of("big"); got != batchlimit.DefaultBytes {
		t.Errorf("before Read: %d, want kgo's default %d", got, batchlimit.DefaultBytes)
	}
	if err := l.Read(ctx, adm, []string{"big", "tiny", "plain"}); err != nil {
		t.Fatal(err)
	}
	if got := l.Of("big"); got != 3145728 {
		t.Errorf("big: %d, want its max.message.bytes 3145728", got)
	}
	if got := l.Of("tiny"); got != 512 {
		t.Errorf("tiny: %d, want kgo's least batch limit 512", got)
	}
	if got := l.Of("unread"); got != batchlimit.DefaultBytes {
		t.Errorf("a topic not read: %d, want %d", got, batchlimit.DefaultBytes)
	}
}
