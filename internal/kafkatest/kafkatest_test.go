package kafkatest

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	t.Run("sub test/with spaces & slashes", func(t *testing.T) {
		a, b := Name(t, "orders"), Name(t, "orders")
		if a == b {
			t.Fatalf("two names are equal: %s", a)
		}
		for _, n := range []string{a, b} {
			if !strings.HasPrefix(n, "orders-TestName-sub_test-with_spaces_-_slashes-") {
				t.Errorf("name %q does not start with the prefix and the sanitized test name", n)
			}
			if !valid.MatchString(n) {
				t.Errorf("name %q has characters Kafka does not allow in a topic", n)
			}
		}
	})
	t.Run(strings.Repeat("x", 300), func(t *testing.T) {
		if n := Name(t, "p"); len(n) > 249 {
			t.Errorf("name is %d characters, Kafka allows 249", len(n))
		}
	})
}

func TestBrokersLine(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want string
		ok   bool
	}{
		{"starting\nKRETRY_BROKERS=127.0.0.1:9092\n", "127.0.0.1:9092", true},
		{"KRETRY_BROKERS=old:1\nKRETRY_BROKERS=a:1,b:2", "a:1,b:2", true},
		{"KRETRY_BROKERS=\n", "", false},
		{"nothing here", "", false},
	} {
		got, ok := brokersLine(tc.out)
		if ok != tc.ok || strings.Join(got, ",") != tc.want {
			t.Errorf("brokersLine(%q) = %v, %v; want %q, %v", tc.out, got, ok, tc.want, tc.ok)
		}
	}
}

// A KRETRY_BROKERS that does not answer is an error that names the address
// and the fix, returned within the probe timeout instead of hanging.
func TestFromEnvUnreachable(t *testing.T) {
	d := fromEnv("127.0.0.1:1")
	if d.err == nil {
		t.Fatalf("no error for a dead address: %+v", d)
	}
	for _, want := range []string{"KRETRY_BROKERS=127.0.0.1:1", "make kafka-up"} {
		if !strings.Contains(d.err.Error(), want) {
			t.Errorf("error %q does not contain %q", d.err, want)
		}
	}
}

func TestFakeRoundTrip(t *testing.T) {
	_, seeds := Fake(t, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "v" {
		t.Fatalf("consumed %v, want one record with value v", recs)
	}
}

// Inside a synctest bubble, a client of VirtualFake's cluster works and an hour
// of fake time passes at once.
func TestVirtualFakeInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, opts := VirtualFake(t, kfake.SeedTopics(3, "t")) // kfake's default: 3 brokers
		cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics("t"))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx := context.Background()
		start := time.Now()
		time.Sleep(time.Hour)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		if recs := fs.Records(); len(recs) != 1 {
			t.Fatalf("consumed %d records, want 1", len(recs))
		}
		if got := time.Since(start); got < time.Hour {
			t.Fatalf("fake clock advanced %v, want at least an hour", got)
		}
	})
}

func TestWaitTopics(t *testing.T) {
	_, seeds := Fake(t, kfake.NumBrokers(1))
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(context.Background(), 3, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	WaitTopics(t, adm, "t")
	tds, err := adm.ListTopics(context.Background(), "t")
	if err != nil || len(tds["t"].Partitions) != 3 {
		t.Fatalf("after WaitTopics: %v, %v", tds, err)
	}
}
