package headers

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderParkedAt is when the relay last re-parked a tier record: wrote it
// again to its own tier topic because it was not due after its tier's delay
// (a consumer.RetryAfter longer than the delay). It is the relay's alone,
// outside the contract's Metadata: Decode ignores it and Encode drops it,
// so a re-fed record does not carry it. A time in TimeLayout.
const HeaderParkedAt = "kretry-parked-at"

// ParkedAt reads the kretry-parked-at of hs, strictly: ok is false when
// there is none, or more than one, or its value is not a time as FormatTime
// writes it.
func ParkedAt(hs []kgo.RecordHeader) (at time.Time, ok bool) {
	found := false
	for _, h := range hs {
		if h.Key != HeaderParkedAt {
			continue
		}
		if found {
			return time.Time{}, false
		}
		found = true
		at, ok = parseTime(string(h.Value))
		if !ok {
			return time.Time{}, false
		}
	}
	return at, found
}
