package backlog_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/backlog"
)

// fetch returns one poll: partition p of topic t got records from..last, and
// the partition's last stable offset is lso.
func fetch(t string, p int32, from, last, lso int64) kgo.Fetches {
	var recs []*kgo.Record
	for o := from; o <= last; o++ {
		recs = append(recs, &kgo.Record{Topic: t, Partition: p, Offset: o})
	}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: t, Partitions: []kgo.FetchPartition{{Partition: p, LastStableOffset: lso, HighWatermark: lso, Records: recs}}}}}}
}

func TestPartitions(t *testing.T) {
	waitsP1 := func(_ string, p int32) bool { return p == 1 }
	for _, tc := range []struct {
		name  string
		polls []kgo.Fetches
		waits func(string, int32) bool
		reset bool // Reset before the last poll
		want  bool
	}{
		{name: "nothing polled", want: false},
		{name: "caught up", polls: []kgo.Fetches{fetch("t", 0, 0, 9, 10)}, want: false},
		{name: "a transaction marker left", polls: []kgo.Fetches{fetch("t", 0, 0, 9, 11)}, want: false},
		{name: "records left", polls: []kgo.Fetches{fetch("t", 0, 0, 9, 12)}, want: true},
		{name: "records left of a partition that waits", polls: []kgo.Fetches{fetch("t", 1, 0, 9, 500)}, waits: waitsP1, want: false},
		{name: "records left, then caught up", polls: []kgo.Fetches{fetch("t", 0, 0, 9, 500), fetch("t", 0, 10, 499, 500)}, want: false},
		{name: "records left, another partition caught up", polls: []kgo.Fetches{fetch("t", 0, 0, 9, 500), fetch("t", 2, 0, 9, 10)}, want: true},
		{name: "records left, a poll without records", polls: []kgo.Fetches{fetch("t", 0, 0, 9, 500), {}}, want: true},
		{name: "records left, reset", polls: []kgo.Fetches{fetch("t", 0, 0, 9, 500), {}}, reset: true, want: false},
		{name: "reset, then records left", polls: []kgo.Fetches{{}, fetch("t", 0, 0, 9, 500)}, reset: true, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b backlog.Partitions
			for i, f := range tc.polls {
				if tc.reset && i == len(tc.polls)-1 {
					b.Reset()
				}
				b.Note(f, tc.waits)
			}
			if got := b.Behind(); got != tc.want {
				t.Errorf("Behind() = %v, want %v", got, tc.want)
			}
		})
	}
}
