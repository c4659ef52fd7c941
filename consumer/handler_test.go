package consumer_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kretry/kretry/consumer"
)

type codeError struct{ code int }

func (e *codeError) Error() string { return fmt.Sprintf("code %d", e.code) }

func TestPermanent(t *testing.T) {
	if consumer.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	inner := &codeError{7}
	err := fmt.Errorf("wrapped: %w", consumer.Permanent(inner))
	var ce *codeError
	if !errors.As(err, &ce) || ce.code != 7 {
		t.Errorf("errors.As through Permanent lost the inner error")
	}
	if !errors.Is(err, consumer.ErrPermanent) || !errors.Is(err, inner) {
		t.Errorf("errors.Is(%v): ErrPermanent %v, inner %v", err, errors.Is(err, consumer.ErrPermanent), errors.Is(err, inner))
	}
	if got := err.Error(); got != "wrapped: code 7" {
		t.Errorf("text = %q, want the inner text", got)
	}
}

func TestDefaultClassifier(t *testing.T) {
	cases := []struct {
		err  error
		want consumer.Decision
	}{
		{errors.New("timeout"), consumer.Retry},
		{consumer.Permanent(errors.New("bad")), consumer.DeadLetter},
		{fmt.Errorf("ctx: %w", consumer.ErrPermanent), consumer.DeadLetter},
		{errors.Join(errors.New("a"), consumer.Permanent(errors.New("b"))), consumer.DeadLetter},
	}
	for _, tc := range cases {
		if got := consumer.DefaultClassifier(tc.err); got != tc.want {
			t.Errorf("DefaultClassifier(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if s := consumer.Decision(9).String(); s != "Decision(9)" {
		t.Errorf("Decision(9).String() = %q", s)
	}
}
