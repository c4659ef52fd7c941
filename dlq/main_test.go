package dlq_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Reader, scan client and replay stops its goroutines when closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
