package txnfence

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestOurs(t *testing.T) {
	f := New("orders", Consumer, "kretry/orders/consumer/self", nil, nil)
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"kretry/orders/consumer/3f9a", true},
		{"kretry/orders/consumer/pod-1", true},
		{"kretry/orders/consumer/", false},
		{"kretry/orders/relay/3f9a", false},
		{"kretry/orders-relay/consumer/3f9a", false},
		{"kretry/orders/consumer/x/consumer/3f9a", false}, // group "orders/consumer/x"
		{"other/orders/consumer/3f9a", false},
	} {
		if got := f.ours(tc.id); got != tc.want {
			t.Errorf("ours(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestIDsOf(t *testing.T) {
	const self = "kretry/g/relay/self"
	f := New("g", Relay, self, nil, nil)
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name    string
		members []member
		want    []string // nil: ErrInDoubt
		unknown bool     // ErrInDoubt for a member it cannot tell
	}{
		{"client ids", []member{{self, nil}, {"kretry/g/relay/a", nil}}, []string{self, "kretry/g/relay/a"}, false},
		{"static member", []member{{self, nil}, {"billing", str("pod-1")}}, []string{self, "kretry/g/relay/pod-1"}, false},
		{"static member with a kretry client id", []member{{self, nil}, {"kretry/g/relay/pod-1", str("pod-1")}}, []string{self, "kretry/g/relay/pod-1"}, false},
		{"a member it cannot tell", []member{{self, nil}, {"kretry", nil}}, nil, true},
		{"an empty instance id", []member{{self, nil}, {"kretry", str("")}}, nil, true},
		{"without itself", []member{{"kretry/g/relay/a", nil}}, nil, false},
		{"no members", nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := f.idsOf(tc.members)
			if tc.want == nil {
				if !errors.Is(err, ErrInDoubt) || errors.Is(err, errUnknownMember) != tc.unknown {
					t.Fatalf("idsOf = %v, %v; want ErrInDoubt (for a member it cannot tell: %v)", ids, err, tc.unknown)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(maps.Keys(ids))
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("idsOf = %v, want %v", got, tc.want)
			}
		})
	}
}
