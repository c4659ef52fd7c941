//go:build !integration

package consumer_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine of the package outlives its tests. (The integration build
// checks each test instead: a broker started by kafkatest lives until the
// binary exits.)
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
