package txnfence

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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

// A Sweep waits the long confirm wait only within TroubleWindow of a failed
// connection of its client (a broker restart drops live members out of the
// group too), else the quick one (a member killed while the rest ran on).
func TestConfirmWait(t *testing.T) {
	f := New("g", Relay, "kretry/g/relay/self", nil, nil)
	now := time.Now()
	if got := f.confirmWait(now); got != QuickConfirm {
		t.Errorf("without trouble: %v, want QuickConfirm %v", got, QuickConfirm)
	}
	f.OnBrokerConnect(kgo.BrokerMetadata{}, 0, nil, nil)
	if got := f.confirmWait(now); got != QuickConfirm {
		t.Errorf("after a connection that succeeded: %v, want QuickConfirm %v", got, QuickConfirm)
	}
	f.OnBrokerConnect(kgo.BrokerMetadata{}, 0, nil, errors.New("connection refused"))
	if got := f.confirmWait(time.Now()); got != DefaultConfirm {
		t.Errorf("right after a failed connection: %v, want DefaultConfirm %v", got, DefaultConfirm)
	}
	if got := f.confirmWait(time.Now().Add(TroubleWindow + time.Second)); got != QuickConfirm {
		t.Errorf("TroubleWindow after a failed connection: %v, want QuickConfirm %v", got, QuickConfirm)
	}
	if got := f.ConfirmAfter(0).confirmWait(time.Now()); got != 0 {
		t.Errorf("ConfirmAfter(0) after a failed connection: %v, want 0", got)
	}
}
