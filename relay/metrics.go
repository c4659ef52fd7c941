package relay

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kretry/kretry/headers"
	"github.com/kretry/kretry/internal/metrics"
	"github.com/kretry/kretry/internal/safetext"
	"github.com/kretry/kretry/ladder"
)

// countHeld brings kretry_held_bytes to what held holds. s.mu is held.
func (s *session) countHeld() {
	sums := map[string]int{}
	for tp, h := range s.held {
		sums[s.r.tiers[tp.topic].step.Name] += h.size
	}
	s.heldByTier = setByTier(s.r.metrics.HeldBytes, s.heldByTier, sums)
}

// countPaused brings kretry_paused_partitions to the partitions paused, by a
// timer or while they hold. s.mu is held; call it after changing either.
func (s *session) countPaused() {
	sums := map[string]int{}
	for tp := range s.paused {
		sums[s.r.tiers[tp.topic].step.Name]++
	}
	for tp := range s.holdPaused {
		if s.paused[tp] == nil {
			sums[s.r.tiers[tp.topic].step.Name]++
		}
	}
	s.pausedByTier = setByTier(s.r.metrics.PausedPartitions, s.pausedByTier, sums)
}

// setByTier moves g's series from was, what this session set, to sums and
// returns sums. It adds the differences, so that relays sharing a registry
// add up.
func setByTier(g *prometheus.GaugeVec, was, sums map[string]int) map[string]int {
	for tier, n := range sums {
		if d := n - was[tier]; d != 0 {
			g.WithLabelValues(tier).Add(float64(d))
		}
	}
	for tier, n := range was {
		if _, ok := sums[tier]; !ok && n != 0 {
			g.WithLabelValues(tier).Sub(float64(n))
		}
	}
	return sums
}

// refed counts and logs a re-feed the broker acknowledged.
func (s *session) refed(t tierOf, f *refeed) {
	lateness := f.at.Sub(f.due)
	t.refed.Inc()
	t.lateness.Observe(lateness.Seconds())
	if f.untrusted {
		s.r.metrics.UntrustedDueAt.WithLabelValues(t.ladder.Topic(), t.step.Name).Inc()
		s.log.Warn("kretry relay re-fed a record at its last failure plus its tier's delay: its kretry-due-at is later than its last failure plus retry_after_max, so it is not trusted (forged, or written by a clock far ahead)",
			"topic", f.rec.Topic, "partition", f.rec.Partition, "offset", f.rec.Offset, "to", f.out.Topic,
			"due_at", safetext.Quoted(headers.FormatTime(f.dueAt)), "refed_at_bound", headers.FormatTime(f.due), "tier_delay", t.step.Delay,
			"retry_after_max", t.ladder.RetryAfterMax())
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) { // the arguments would allocate
		s.log.Debug("kretry relay re-fed a record", "topic", f.rec.Topic, "partition", f.rec.Partition, "offset", f.rec.Offset,
			"to", f.out.Topic, "to_partition", f.out.Partition, "to_offset", f.out.Offset, "attempts", f.attempts,
			"lateness", lateness)
	}
}

// skippedCopy counts and logs a copy of a re-fed attempt, done without a
// re-feed.
func (s *session) skippedCopy(t tierOf, f *refeed) {
	t.skipped.Inc()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("kretry relay skips a copy of an attempt it re-fed already", "topic", f.rec.Topic, "partition", f.rec.Partition,
			"offset", f.rec.Offset, "original_topic", safetext.Quoted(f.copyOf.topic), "original_partition", f.copyOf.partition,
			"original_offset", f.copyOf.offset, "attempts", f.copyOf.attempts, "replays", f.copyOf.replays)
	}
}

// tierInfos is every tier of ladders, as kretry_tier_delay_seconds and
// kretry_tier_attempts show them.
func tierInfos(ladders []*ladder.Ladder) []metrics.TierInfo {
	var ts []metrics.TierInfo
	for _, l := range ladders {
		for _, s := range l.Steps() {
			ts = append(ts, metrics.TierInfo{Group: l.Group(), Topic: l.Topic(), Tier: s.Name, Delay: s.Delay, Attempts: s.Attempts})
		}
	}
	return ts
}
