package rejoin_test

import (
	"testing"
	"time"

	"github.com/kretry/kretry/internal/rejoin"
)

func TestBudget(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		every time.Duration // between two fences
		n     int           // fences
		want  bool          // Allow of the last
	}{
		{"first", 0, 1, true},
		{"four within a minute", time.Second, 4, true},
		{"the fifth within a minute stops", time.Second, 5, false},
		{"five spread over more than a minute", 16 * time.Second, 5, true},
		{"many, each more than a minute apart", time.Minute, 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b rejoin.Budget
			var got bool
			for i := range tt.n {
				got = b.Allow(start.Add(time.Duration(i) * tt.every))
			}
			if got != tt.want {
				t.Errorf("Allow after %d fences %v apart = %v, want %v", tt.n, tt.every, got, tt.want)
			}
		})
	}
}
