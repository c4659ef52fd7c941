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
	d := decoder{hs: hs}
	for j, h := range hs {
		if h.Key != HeaderReplays {
			continue
		}
		if d.has(iReplays) {
			return 0, &HeaderError{Header: h.Key, Value: string(h.Value), Err: errRepeated}
		}
		d.have |= 1 << iReplays
		d.at[iReplays] = int32(j)
	}
	n := d.int(iReplays, false, 0, MaxAttempts)
	if d.err != nil {
		return 0, d.err
	}
	return int(n), nil
}
