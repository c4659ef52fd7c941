package headers_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/headers"
)

// kretry-in-place-retries: written after kretry-error when above 0 on a
// record with attempts, read back strictly (1 to MaxAttempts), refused on a
// replayed record and without kretry-group, and carried by Failed.
func TestInPlaceRetriesHeader(t *testing.T) {
	md := sampleMetadata()
	md.InPlaceRetries = 7
	hs := headers.Encode(nil, md)
	got, ok, err := headers.Decode(hs)
	if err != nil || !ok || !reflect.DeepEqual(got, md) {
		t.Fatalf("round trip: %+v %v %v, want %+v", got, ok, err, md)
	}
	if v, _ := headerValue(hs, headers.HeaderInPlaceRetries); v != "7" {
		t.Errorf("kretry-in-place-retries = %q, want 7", v)
	}
	md.InPlaceRetries = 0
	if _, found := headerValue(headers.Encode(nil, md), headers.HeaderInPlaceRetries); found {
		t.Error("written when 0")
	}
	for _, v := range []string{"0", "-1", "01", "x", "2147483648"} {
		bad := append(sampleHeaders(), hdr(headers.HeaderInPlaceRetries, v)...)
		var he *headers.HeaderError
		if _, _, err := headers.Decode(bad); !errors.As(err, &he) || he.Header != headers.HeaderInPlaceRetries {
			t.Errorf("value %q: %v, want a HeaderError on kretry-in-place-retries", v, err)
		}
	}
	replayed := hdr("kretry-version", "1", "kretry-group", "g", "kretry-replays", "1", headers.HeaderInPlaceRetries, "2")
	if _, _, err := headers.Decode(replayed); err == nil {
		t.Error("a replayed record with kretry-in-place-retries read")
	}
	if _, _, err := headers.Decode(hdr("kretry-replays", "1", headers.HeaderInPlaceRetries, "2")); err == nil {
		t.Error("kretry-in-place-retries without kretry-group read")
	}
	md.InPlaceRetries = 3
	if n := md.Failed("g", nil, md.LastFailureAt, "e").InPlaceRetries; n != 3 {
		t.Errorf("Failed keeps %d in-place retries, want 3", n)
	}
}

func headerValue(hs []kgo.RecordHeader, name string) (string, bool) {
	for _, h := range hs {
		if h.Key == name {
			return string(h.Value), true
		}
	}
	return "", false
}
