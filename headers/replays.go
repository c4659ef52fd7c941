package headers

import "github.com/twmb/franz-go/pkg/kgo"

// Reasons returns every Reason a DLQ record can carry, in the order help
// text lists them; a new slice on each call.
func Reasons() []Reason {
	return []Reason{ReasonExhausted, ReasonPermanent, ReasonPanic, ReasonExpired, ReasonTooLarge, ReasonInvalidMetadata}
}

// DecodeReplays reads kretry-replays alone, as Decode reads it: 0 when the
// record has none, a *HeaderError when it is repeated or malformed. It reads
// the count of a record whose other kretry headers may not read.
func DecodeReplays(hs []kgo.RecordHeader) (int, error) {
	var d decoder
	i := iReplays
	for _, h := range hs {
		if h.Key != HeaderReplays {
			continue
		}
		if d.have[i] {
			return 0, &HeaderError{Header: h.Key, Value: string(h.Value), Err: errRepeated}
		}
		d.have[i], d.vals[i] = true, string(h.Value)
	}
	n := d.int(iReplays, false, 0, MaxAttempts)
	if d.err != nil {
		return 0, d.err
	}
	return int(n), nil
}
