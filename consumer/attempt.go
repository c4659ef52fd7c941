package consumer

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// Metadata is what kretry knows of a record's failures so far, for a handler
// that adapts to them; RecordMetadata returns it.
type Metadata struct {
	// Attempt is the number of this call of the handler for the record: 1
	// on its first delivery, then one more for every failed call before,
	// in place (retry_in_place) and through the tiers alike. A RetryAfter
	// that sends the record down the ladder counts the attempts of the
	// tiers it skips as used (kretry-attempts), so Attempt jumps by them.
	Attempt int
	// Tier is the tier the record was re-fed from ("retry-5s"); "" on a
	// first delivery (its in-place retries included).
	Tier string
	// FirstFailureAt and LastFailureAt are the times of its first and last
	// failed call; zero before any failure.
	FirstFailureAt, LastFailureAt time.Time
	// LastError is the text of the last failed call's error (at most 1 KiB
	// once the record went through a tier); "" before any failure.
	LastError string
	// Replays is how often the record was replayed from the DLQ.
	Replays int
}

// infoKey is the context key of a record's Metadata on rec.Context.
type infoKey struct{}

// RecordMetadata returns what kretry knows of rec's failures, for the rec a
// Handler was called with, without decoding its headers (the consumer read
// them once before the call). A record without kretry metadata (a first
// delivery on its first call, or a record not handed over by kretry) has
// Metadata{Attempt: 1}.
func RecordMetadata(rec *kgo.Record) Metadata {
	if rec != nil && rec.Context != nil {
		if md, ok := rec.Context.Value(infoKey{}).(*Metadata); ok {
			return *md
		}
	}
	return Metadata{Attempt: 1}
}

// Attempt returns the number of this call of the handler for rec: 1 on its
// first delivery, counting every failed call before it, in place and through
// the tiers, and the tier attempts a RetryAfter skipped
// (RecordMetadata(rec).Attempt).
func Attempt(rec *kgo.Record) int { return RecordMetadata(rec).Attempt }

// withInfo puts what the handler may know of rec on rec.Context, from its
// kretry metadata md (decoded once, in process) and the in-place retries of
// this delivery; a first delivery's first call keeps rec as it is, so the
// handled path allocates nothing.
func (w *worker) withInfo(rec *kgo.Record, md *headers.Metadata, lastErr string, lastAt time.Time) {
	retried := md.Group == w.s.c.cfg.Group && md.Attempts > 0
	if !retried && w.inPlaceRetries == 0 && md.Replays == 0 {
		return
	}
	info := &w.info
	*info = Metadata{Attempt: 1 + w.inPlaceRetries, Replays: md.Replays}
	if retried {
		info.Attempt += md.Attempts + md.InPlaceRetries
		info.Tier, info.FirstFailureAt, info.LastFailureAt, info.LastError = md.Tier, md.FirstFailureAt, md.LastFailureAt, md.Error
	}
	if w.inPlaceRetries > 0 {
		info.LastFailureAt, info.LastError = lastAt, lastErr
		if info.FirstFailureAt.IsZero() {
			info.FirstFailureAt = w.inPlaceFirst
		}
	}
	if rec.Context == nil {
		// Made once per worker: info is the worker's either way.
		if w.infoCtx == nil {
			w.infoCtx = context.WithValue(context.Background(), infoKey{}, info)
		}
		rec.Context = w.infoCtx
		return
	}
	rec.Context = context.WithValue(rec.Context, infoKey{}, info)
}
