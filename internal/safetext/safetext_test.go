package safetext_test

import (
	"testing"

	"github.com/kretry/kretry/internal/safetext"
)

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, é ✓", "plain text, é ✓"},
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"a\rb\nc\td", `a\rb\nc\td`},
		{"\x7f\u0085\u009b", `\x7f\u0085\u009b`},
		{"abc\u202edef\u2066", `abc\u202edef\u2066`},
		{"\xff\xfe", `\xff\xfe`},
		{"\u2028", `\u2028`},
		{"", ""},
	} {
		if got := safetext.Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{nil, "-"},
		{[]byte{}, `""`},
		{[]byte("order-17"), "order-17"},
		{[]byte("clé"), "clé"},
		{[]byte{0, 1, 0xff}, "0x0001ff"},
		{[]byte("a\nb"), "0x610a62"},
		{[]byte{0xc3}, "0xc3"},
		{[]byte("a\u202eb"), "0x61e280ae62"},
	} {
		if got := safetext.Key(tc.in); got != tc.want {
			t.Errorf("Key(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
