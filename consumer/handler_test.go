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
		{consumer.DeadLetterTo("invalid", errors.New("no sku")), consumer.DeadLetterRoute("invalid")},
		{fmt.Errorf("order 7: %w", consumer.DeadLetterTo("fraud", errors.New("stolen card"))), consumer.DeadLetterRoute("fraud")},
	}
	for _, tc := range cases {
		if got := consumer.DefaultClassifier(tc.err); got != tc.want {
			t.Errorf("DefaultClassifier(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if s := consumer.Decision("").String(); s != "retry" {
		t.Errorf(`Decision("").String() = %q, want retry (the zero Decision)`, s)
	}
	if r, ok := consumer.DeadLetterRoute("fraud").Route(); !ok || r != "fraud" {
		t.Errorf("DeadLetterRoute(fraud).Route() = %q, %v", r, ok)
	}
	if _, ok := consumer.DeadLetter.Route(); ok {
		t.Error("DeadLetter.Route() reports a route")
	}
	err := consumer.DeadLetterTo("invalid", errors.New("no sku"))
	if !errors.Is(err, consumer.ErrPermanent) || err.Error() != "no sku" {
		t.Errorf("DeadLetterTo: errors.Is ErrPermanent %v, text %q", errors.Is(err, consumer.ErrPermanent), err)
	}
	if consumer.DeadLetterTo("invalid", nil) != nil {
		t.Error("DeadLetterTo(name, nil) is not nil")
	}
}
