package dlqview_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/dlqview"
)

// A record on a DLQ route's topic shows its route, in JSON and in show;
// with a malformed kretry header elsewhere too (the lenient read).
func TestRouteShown(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	md := headers.Metadata{Group: "g", Attempts: 1, Tier: "dlq", DueAt: at, OriginalTopic: "orders",
		FirstFailureAt: at, LastFailureAt: at, OriginalTimestamp: at, Error: "no sku",
		Reason: headers.ReasonPermanent, Route: "invalid"}
	good := headers.Encode(nil, md)
	bad := append(append([]kgo.RecordHeader(nil), good...), kgo.RecordHeader{Key: headers.HeaderAttempts, Value: []byte("x")})
	for name, hs := range map[string][]kgo.RecordHeader{"valid": good, "malformed": bad} {
		r := dlq.NewRecord(&kgo.Record{Topic: "orders.invalid", Headers: hs, Timestamp: at})
		if got := dlqview.Record(r).Route; got != "invalid" {
			t.Errorf("%s: JSON route %q, want invalid", name, got)
		}
		var b bytes.Buffer
		if err := dlqview.WriteRecord(&b, r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "route") || !strings.Contains(b.String(), "invalid") {
			t.Errorf("%s: show does not print the route:\n%s", name, b.String())
		}
	}
}
