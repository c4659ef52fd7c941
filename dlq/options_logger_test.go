package dlq

import (
	"bytes"
	"log/slog"
	"testing"
)

// WithLogger(nil) means the default (discard), as in the consumer: it
// resets an earlier WithLogger instead of being ignored.
func TestWithLoggerNilMeansDefault(t *testing.T) {
	var buf bytes.Buffer
	c := defaultCfg()
	WithLogger(slog.New(slog.NewTextHandler(&buf, nil))).apply(&c)
	WithLogger(nil).apply(&c)
	if c.logger == nil {
		t.Fatal("WithLogger(nil) left no logger")
	}
	c.logger.Error("must be discarded")
	if buf.Len() != 0 {
		t.Fatalf("WithLogger(nil) kept the earlier logger: it wrote %q", buf.String())
	}
}
