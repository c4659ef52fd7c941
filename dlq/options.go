package dlq

import (
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Opt configures a Reader (NewReader); ReplayOpt configures a replay.
type Opt interface{ apply(*cfg) }

type optFunc func(*cfg)

func (f optFunc) apply(c *cfg) { f(c) }

type cfg struct {
	clientOpts []kgo.Opt
	logger     *slog.Logger
	now        func() time.Time
	// idleCheck is how long a scan waits for records before it checks
	// whether retention removed the rest of its span.
	idleCheck time.Duration
}

func defaultCfg() cfg {
	return cfg{
		logger:    slog.New(slog.DiscardHandler),
		now:       time.Now,
		idleCheck: 5 * time.Second,
	}
}

// WithClientOpts adds franz-go client options: seed brokers, TLS, SASL, a
// dialer. Default: none, which connects to localhost:9092. Consumer and
// producer options are set by the Reader and should not be given.
func WithClientOpts(opts ...kgo.Opt) Opt {
	return optFunc(func(c *cfg) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithLogger logs through l. Default: discard; nil means the default.
func WithLogger(l *slog.Logger) Opt {
	return optFunc(func(c *cfg) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	})
}

// WithClock resolves relative times (Filter.Since, Filter.Until) against now
// instead of time.Now. Default: time.Now.
func WithClock(now func() time.Time) Opt {
	return optFunc(func(c *cfg) {
		if now != nil {
			c.now = now
		}
	})
}
