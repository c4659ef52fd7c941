package kafkatest

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestKey is the API key of the request p, one write of kgo's (kgo
// writes one request a call: its size, then its API key), or -1.
func requestKey(p []byte) int16 {
	if len(p) < 6 {
		return -1
	}
	return int16(binary.BigEndian.Uint16(p[4:6]))
}

// EndTxnLoser is a kgo.Dialer for tests of a transaction end whose outcome
// the client never learns: once armed, it lets the next EndTxn request
// through to the broker and then breaks that connection, dropping the
// broker's answer, as a broker stopped right after it took the request
// would.
type EndTxnLoser struct {
	arm, lost atomic.Bool
}

// Arm makes the next EndTxn's answer lost.
func (d *EndTxnLoser) Arm() { d.arm.Store(true) }

// Lost reports whether an answer was lost since the dialer was made.
func (d *EndTxnLoser) Lost() bool { return d.lost.Load() }

// DialContext dials host; pass it to kgo.Dialer.
func (d *EndTxnLoser) DialContext(ctx context.Context, network, host string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return &endTxnLosingConn{Conn: c, d: d}, nil
}

type endTxnLosingConn struct {
	net.Conn
	d   *EndTxnLoser
	cut atomic.Bool
}

// Write sends one request.
func (c *endTxnLosingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil && requestKey(p) == kmsg.EndTxn.Int16() && c.d.arm.CompareAndSwap(true, false) {
		c.cut.Store(true)
	}
	return n, err
}

// Read drops what arrives once the connection is cut (a read may already
// wait when the EndTxn is written), after giving the broker time to take
// the request.
func (c *endTxnLosingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.cut.Load() {
		time.Sleep(200 * time.Millisecond)
		c.Conn.Close()
		c.d.lost.Store(true)
		return 0, errors.New("kafkatest: the connection to the broker broke before the EndTxn's answer")
	}
	return n, err
}

// EndHolder is a kgo.Dialer for tests that need a transaction to stay open:
// while held, a connection's AddOffsetsToTxn and EndTxn requests wait,
// unsent (kretry ends a transaction early when it is idle, so a long commit
// interval alone does not keep one open). Dial dials (nil: a net.Dialer).
type EndHolder struct {
	Dial func(ctx context.Context, network, host string) (net.Conn, error)
	held atomic.Bool
}

// Hold makes the requests that end a transaction wait (true) or go (false).
func (h *EndHolder) Hold(on bool) { h.held.Store(on) }

// DialContext dials host; pass it to kgo.Dialer.
func (h *EndHolder) DialContext(ctx context.Context, network, host string) (net.Conn, error) {
	dial := h.Dial
	if dial == nil {
		dial = new(net.Dialer).DialContext
	}
	c, err := dial(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return &endHoldingConn{Conn: c, h: h}, nil
}

type endHoldingConn struct {
	net.Conn
	h *EndHolder
}

// Write sends one request, after the hold when it ends a transaction.
func (c *endHoldingConn) Write(p []byte) (int, error) {
	if k := requestKey(p); k == kmsg.AddOffsetsToTxn.Int16() || k == kmsg.EndTxn.Int16() {
		for c.h.held.Load() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return c.Conn.Write(p)
}
