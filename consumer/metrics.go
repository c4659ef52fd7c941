package consumer

import (
	"maps"
	"slices"

	"github.com/kretry/kretry/internal/metrics"
)

// tierInfos is every tier of the consumer's ladders, as
// kretry_tier_delay_seconds and kretry_tier_attempts show them.
func (c *Consumer) tierInfos() []metrics.TierInfo {
	var ts []metrics.TierInfo
	for _, topic := range slices.Sorted(maps.Keys(c.ladders)) {
		l := c.ladders[topic]
		for _, s := range l.Steps() {
			ts = append(ts, metrics.TierInfo{Group: l.Group(), Topic: topic, Tier: s.Name, Delay: s.Delay, Attempts: s.Attempts})
		}
	}
	return ts
}
