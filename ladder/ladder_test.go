package ladder_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/ladder"
)

func TestFormatDelay(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{5 * time.Second, "5s"},
		{time.Minute, "1m"},
		{10 * time.Minute, "10m"},
		{90 * time.Minute, "1h30m"},
		{time.Hour, "1h"},
		{500 * time.Millisecond, "500ms"},
		{1500 * time.Millisecond, "1s500ms"},
		{90 * time.Second, "1m30s"},
		{time.Hour + time.Second, "1h1s"},
		{25 * time.Hour, "25h"},
		{250 * time.Microsecond, "250us"},
		{1001 * time.Nanosecond, "1001ns"},
		{0, "0s"},
		{-5 * time.Second, "-5s"},
	} {
		got := ladder.FormatDelay(tc.d)
		if got != tc.want {
			t.Errorf("FormatDelay(%v) = %q, want %q", tc.d, got, tc.want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != tc.d {
			t.Errorf("time.ParseDuration(%q) = %v, %v; want %v", got, back, err, tc.d)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	l, err := ladder.New("orders", "orders-service", []ladder.Tier{
		{Delay: 5 * time.Second},
		{Delay: time.Minute, Attempts: 1},
		{Delay: 10 * time.Minute, Attempts: 2},
		{Delay: 90 * time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.Topic() != "orders" || l.Group() != "orders-service" || l.DLQ() != "orders.dlq" {
		t.Errorf("Topic, Group, DLQ = %q, %q, %q", l.Topic(), l.Group(), l.DLQ())
	}
	want := []ladder.Step{
		{Index: 0, Name: "retry-5s", Topic: "orders.retry-5s", Delay: 5 * time.Second, Attempts: 1},
		{Index: 1, Name: "retry-1m", Topic: "orders.retry-1m", Delay: time.Minute, Attempts: 1},
		{Index: 2, Name: "retry-10m", Topic: "orders.retry-10m", Delay: 10 * time.Minute, Attempts: 2},
		{Index: 3, Name: "retry-1h30m", Topic: "orders.retry-1h30m", Delay: 90 * time.Minute, Attempts: 1},
	}
	if got := l.Steps(); !reflect.DeepEqual(got, want) {
		t.Errorf("Steps() =\n%+v\nwant\n%+v", got, want)
	}
	if got := l.MaxRetries(); got != 5 {
		t.Errorf("MaxRetries() = %d, want 5", got)
	}

	// Steps returns a copy: changing it leaves the ladder alone.
	l.Steps()[0].Topic = "changed"
	if l.Steps()[0].Topic != "orders.retry-5s" {
		t.Error("Steps() exposes the ladder's own slice")
	}

	for _, s := range want {
		if got, ok := l.StepByTopic(s.Topic); !ok || got != s {
			t.Errorf("StepByTopic(%q) = %+v, %v", s.Topic, got, ok)
		}
		if got, ok := l.StepByName(s.Name); !ok || got != s {
			t.Errorf("StepByName(%q) = %+v, %v", s.Name, got, ok)
		}
	}
	for _, topic := range []string{"orders", "orders.dlq", "orders.retry-2s", ""} {
		if got, ok := l.StepByTopic(topic); ok {
			t.Errorf("StepByTopic(%q) = %+v, true; want false", topic, got)
		}
	}
}

func TestLadderFor(t *testing.T) {
	l, err := ladder.New("orders", "g", []ladder.Tier{
		{Delay: 5 * time.Second},
		{Delay: time.Minute},
		{Delay: 10 * time.Minute, Attempts: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		failure int
		tier    string // "" for the DLQ
	}{
		{-1, ""},
		{0, ""},
		{1, "retry-5s"},
		{2, "retry-1m"},
		{3, "retry-10m"},
		{4, "retry-10m"},
		{5, ""}, // MaxRetries()+1
		{6, ""},
		{1 << 40, ""},
	} {
		s, ok := l.For(tc.failure)
		if ok != (tc.tier != "") || s.Name != tc.tier {
			t.Errorf("For(%d) = %q, %v; want %q, %v", tc.failure, s.Name, ok, tc.tier, tc.tier != "")
		}
	}
	if _, ok := l.For(l.MaxRetries() + 1); ok {
		t.Error("For(MaxRetries()+1) reports a tier; want the DLQ")
	}
}

func TestNewNaming(t *testing.T) {
	tiers := []ladder.Tier{{Delay: 5 * time.Second}, {Delay: time.Minute}}
	for _, tc := range []struct {
		name   string
		opts   []ladder.Opt
		topics []string
		dlq    string
	}{
		{"defaults", nil, []string{"orders.retry-5s", "orders.retry-1m"}, "orders.dlq"},
		{"index is 1-based",
			[]ladder.Opt{ladder.WithNaming("{topic}-retry-{index}")},
			[]string{"orders-retry-1", "orders-retry-2"}, "orders.dlq"},
		{"group and both",
			[]ladder.Opt{ladder.WithNaming("{group}.{topic}.{index}-{delay}"), ladder.WithDLQ("{group}.{topic}.dead")},
			[]string{"svc.orders.1-5s", "svc.orders.2-1m"}, "svc.orders.dead"},
		{"plain DLQ name",
			[]ladder.Opt{ladder.WithDLQ("dead-letters")},
			[]string{"orders.retry-5s", "orders.retry-1m"}, "dead-letters"},
		{"last option wins",
			[]ladder.Opt{ladder.WithNaming("x-{delay}"), ladder.WithNaming("y-{delay}")},
			[]string{"y-5s", "y-1m"}, "orders.dlq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ladder.New("orders", "svc", tiers, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range l.Steps() {
				got = append(got, s.Topic)
			}
			if !reflect.DeepEqual(got, tc.topics) || l.DLQ() != tc.dlq {
				t.Errorf("topics %v, DLQ %q; want %v, %q", got, l.DLQ(), tc.topics, tc.dlq)
			}
			// The tier name does not depend on the template.
			if s := l.Steps()[1]; s.Name != "retry-1m" {
				t.Errorf("Steps()[1].Name = %q, want retry-1m", s.Name)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	s5, m1 := 5*time.Second, time.Minute
	for _, tc := range []struct {
		name         string
		topic, group string
		tiers        []ladder.Tier
		opts         []ladder.Opt
		want         string // a part of the error
	}{
		{"no tiers", "orders", "g", nil, nil, "no tiers"},
		{"zero delay", "orders", "g", []ladder.Tier{{Delay: 0}}, nil, "want a delay > 0"},
		{"negative delay", "orders", "g", []ladder.Tier{{Delay: -s5}}, nil, "want a delay > 0"},
		{"negative attempts", "orders", "g", []ladder.Tier{{Delay: s5, Attempts: -1}}, nil, "attempts -1"},
		{"out of order", "orders", "g", []ladder.Tier{{Delay: m1}, {Delay: s5}}, nil, "tier 2 (5s) does not wait longer than tier 1 (1m)"},
		{"equal delays", "orders", "g", []ladder.Tier{{Delay: s5}, {Delay: s5}}, nil, "strictly increasing"},
		{"empty topic", "", "g", []ladder.Tier{{Delay: s5}}, nil, "main topic: topic name is empty"},
		{"empty group", "orders", "", []ladder.Tier{{Delay: s5}}, nil, "group is empty"},
		{"bad topic", "or ders", "g", []ladder.Tier{{Delay: s5}}, nil, `character ' '`},
		{"no per-tier placeholder", "orders", "g", []ladder.Tier{{Delay: s5}},
			[]ladder.Opt{ladder.WithNaming("{topic}.retry")}, "no {delay} or {index}"},
		{"unknown placeholder", "orders", "g", []ladder.Tier{{Delay: s5}},
			[]ladder.Opt{ladder.WithNaming("{topic}.{delai}")}, "unknown placeholder {delai}"},
		{"unclosed brace", "orders", "g", []ladder.Tier{{Delay: s5}},
			[]ladder.Opt{ladder.WithNaming("{topic}.{delay")}, "'{' without its '}'"},
		{"stray brace", "orders", "g", []ladder.Tier{{Delay: s5}},
			[]ladder.Opt{ladder.WithNaming("{topic}}.{delay}")}, "'}' without its '{'"},
		{"empty naming", "orders", "g", []ladder.Tier{{Delay: s5}},
			[]ladder.Opt{ladder.WithNaming("")}, "naming template \"\": empty"},
		{"DLQ with delay", "orders", "g", []ladder.Tier{{Delay: s5}},
			[]ladder.Opt{ladder.WithDLQ("{topic}.{delay}.dlq")}, "{delay} names a tier"},
		{"DLQ is the main topic", "orders", "g", []ladder.Tier{{Delay: s5}},
			[]ladder.Opt{ladder.WithDLQ("{topic}")}, "the DLQ is the main topic"},
		{"tier is the DLQ", "orders", "g", []ladder.Tier{{Delay: s5}},
			[]ladder.Opt{ladder.WithNaming("{topic}.retry-{delay}"), ladder.WithDLQ("orders.retry-5s")}, "like the DLQ"},
		{"group makes an illegal name", "orders", "my group", []ladder.Tier{{Delay: s5}},
			[]ladder.Opt{ladder.WithNaming("{group}.{delay}")}, `"my group.5s"`},
		{"too long", strings.Repeat("o", 246), "g", []ladder.Tier{{Delay: s5}}, nil, "at most 249"},
		// kretry-attempts saturates at MaxAttempts: such a ladder would never reach its DLQ.
		{"attempts past the header's range", "orders", "g", []ladder.Tier{{Delay: s5, Attempts: 1 << 30}, {Delay: m1, Attempts: 1 << 30}},
			nil, "want fewer than 2147483647 in all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ladder.New(tc.topic, tc.group, tc.tiers, tc.opts...)
			if err == nil {
				t.Fatalf("New = %+v, nil; want an error with %q", l.Steps(), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestNewDuplicateTierTopic(t *testing.T) {
	// {delay} alone cannot collide, since delays are strictly increasing, but a
	// template can still map a tier onto the main topic.
	_, err := ladder.New("orders-1", "g", []ladder.Tier{{Delay: time.Second}},
		ladder.WithNaming("{topic}"+"-{index}"), ladder.WithDLQ("dlq"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_, err = ladder.New("orders-1", "g", []ladder.Tier{{Delay: time.Second}},
		ladder.WithNaming("orders-{index}"))
	if err == nil || !strings.Contains(err.Error(), "like the main topic") {
		t.Fatalf("New with a tier named like the main topic: err = %v", err)
	}
}

func ExampleNew() {
	l, err := ladder.New("orders", "orders-service", []ladder.Tier{
		{Delay: 5 * time.Second},
		{Delay: time.Minute},
		{Delay: 10 * time.Minute, Attempts: 2},
	})
	if err != nil {
		panic(err)
	}
	for failure := 1; failure <= l.MaxRetries()+1; failure++ {
		if s, ok := l.For(failure); ok {
			fmt.Printf("failure %d → %s (%s)\n", failure, s.Topic, s.Name)
		} else {
			fmt.Printf("failure %d → %s\n", failure, l.DLQ())
		}
	}
	// Output:
	// failure 1 → orders.retry-5s (retry-5s)
	// failure 2 → orders.retry-1m (retry-1m)
	// failure 3 → orders.retry-10m (retry-10m)
	// failure 4 → orders.retry-10m (retry-10m)
	// failure 5 → orders.dlq
}

func ExampleWithNaming() {
	l, err := ladder.New("orders", "billing", []ladder.Tier{{Delay: 30 * time.Second}, {Delay: 90 * time.Minute}},
		ladder.WithNaming("{group}.{topic}.retry{index}-{delay}"), ladder.WithDLQ("{group}.{topic}.dead"))
	if err != nil {
		panic(err)
	}
	for _, s := range l.Steps() {
		fmt.Println(s.Index, s.Name, s.Topic)
	}
	fmt.Println(l.DLQ())
	// Output:
	// 0 retry-30s billing.orders.retry1-30s
	// 1 retry-1h30m billing.orders.retry2-1h30m
	// billing.orders.dead
}

func TestAtLeastAndFirstFailure(t *testing.T) {
	l, err := ladder.New("orders", "g", []ladder.Tier{{Delay: 5 * time.Second}, {Delay: time.Minute}, {Delay: 10 * time.Minute, Attempts: 2}, {Delay: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		d     time.Duration
		name  string
		first int
	}{
		{0, "retry-5s", 1}, {5 * time.Second, "retry-5s", 1}, {6 * time.Second, "retry-1m", 2},
		{time.Minute, "retry-1m", 2}, {2 * time.Minute, "retry-10m", 3}, {time.Hour, "retry-1h", 5}, {48 * time.Hour, "retry-1h", 5},
	} {
		s := l.AtLeast(c.d)
		first, ok := l.FirstFailure(s)
		if s.Name != c.name || !ok || first != c.first {
			t.Errorf("AtLeast(%v) = %s, first failure %d %v; want %s, %d", c.d, s.Name, first, ok, c.name, c.first)
		}
		if got, _ := l.For(first); got.Name != s.Name {
			t.Errorf("For(%d) = %s, want %s", first, got.Name, s.Name)
		}
	}
	if _, ok := l.FirstFailure(ladder.Step{Topic: "other"}); ok {
		t.Error("FirstFailure of a step of no ladder reported ok")
	}
}
