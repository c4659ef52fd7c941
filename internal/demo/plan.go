package demo

import (
	"fmt"
	"hash/fnv"
)

// Kind is what the demo handler does with a record.
type Kind int

// The outcomes the demo mixes.
const (
	// OK succeeds at the first attempt.
	OK Kind = iota
	// Heal fails with a retryable error until the record has failed
	// Plan.Failures times, then succeeds.
	Heal
	// Permanent fails with consumer.Permanent: straight to the DLQ.
	Permanent
	// Panic makes the handler panic: the DLQ with reason panic.
	Panic
	// Exhausted always fails with a retryable error, so the record walks the
	// whole ladder and lands in the DLQ with reason exhausted.
	Exhausted
)

func (k Kind) String() string {
	switch k {
	case OK:
		return "ok"
	case Heal:
		return "heal"
	case Permanent:
		return "permanent"
	case Panic:
		return "panic"
	case Exhausted:
		return "exhausted"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Plan is the fate the demo handler gives a record.
type Plan struct {
	Kind     Kind
	Failures int // Heal: failed attempts before the handler succeeds (1–3)
}

// PlanFor decides a record's fate from its key alone, so that a record keeps
// its fate across re-feeds and runs. Out of 1000 keys about 700 succeed at
// once, 150 heal after 1 failure, 80 after 2, 40 after 3, 20 fail
// permanently, 5 panic and 5 never heal.
func PlanFor(key []byte) Plan {
	h := fnv.New32a()
	h.Write(key)
	switch b := h.Sum32() % 1000; {
	case b < 700:
		return Plan{Kind: OK}
	case b < 850:
		return Plan{Kind: Heal, Failures: 1}
	case b < 930:
		return Plan{Kind: Heal, Failures: 2}
	case b < 970:
		return Plan{Kind: Heal, Failures: 3}
	case b < 990:
		return Plan{Kind: Permanent}
	case b < 995:
		return Plan{Kind: Panic}
	default:
		return Plan{Kind: Exhausted}
	}
}

// Key is the key of the demo's i-th record.
func Key(i int) string { return fmt.Sprintf("order-%05d", i) }
