package relay

import "testing"

// BenchmarkRefedIDs is what every re-feed costs the copy check: copyOf,
// then remember, with the memory full.
func BenchmarkRefedIDs(b *testing.B) {
	var m refedIDs
	topic := "orders"
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		id := copyID{topic: topic, offset: i, partition: int32(i % 8), attempts: 1}
		if m.copyOf(id, i) {
			b.Fatal("copy")
		}
		m.remember(id, i)
		i++
	}
}
