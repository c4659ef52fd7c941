package dlqview_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Reader a test opens stops its goroutines when closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
