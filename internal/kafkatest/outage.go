package kafkatest

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnCoordinatorOutage is a kgo.Dialer for tests of a transaction
// coordinator that does not answer (the broker hosting it killed, its
// partition of __transaction_state moving to another broker): while it is
// on, every request for a transaction coordinator (InitProducerID,
// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions) breaks
// the connection it is written to, before the broker reads it. Other
// requests go through.
type TxnCoordinatorOutage struct {
	on   atomic.Bool
	cuts atomic.Int64
}

// Start begins the outage; Stop ends it.
func (d *TxnCoordinatorOutage) Start() { d.on.Store(true) }

// Stop ends the outage.
func (d *TxnCoordinatorOutage) Stop() { d.on.Store(false) }

// Cuts is how many requests the outage has broken.
func (d *TxnCoordinatorOutage) Cuts() int64 { return d.cuts.Load() }

// DialContext dials host; pass it to kgo.Dialer.
func (d *TxnCoordinatorOutage) DialContext(ctx context.Context, network, host string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return &outageConn{Conn: c, d: d}, nil
}

// txnCoordinatorKeys are the requests a transaction coordinator answers.
var txnCoordinatorKeys = map[int16]bool{
	kmsg.InitProducerID.Int16():       true,
	kmsg.AddPartitionsToTxn.Int16():   true,
	kmsg.AddOffsetsToTxn.Int16():      true,
	kmsg.EndTxn.Int16():               true,
	kmsg.DescribeTransactions.Int16(): true,
}

type outageConn struct {
	net.Conn
	d *TxnCoordinatorOutage
}

// Write sends one request, or breaks the connection instead during the
// outage.
func (c *outageConn) Write(p []byte) (int, error) {
	if c.d.on.Load() && txnCoordinatorKeys[requestKey(p)] {
		c.d.cuts.Add(1)
		c.Conn.Close()
		// As a broker that went away: the connection reset.
		return 0, &net.OpError{Op: "write", Net: "tcp", Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", syscall.ECONNRESET)}
	}
	return c.Conn.Write(p)
}
