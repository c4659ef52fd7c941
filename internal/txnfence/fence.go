package txnfence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Role is the kind of kretry instance a transactional id belongs to.
type Role string

// The roles of kretry's transactional ids.
const (
	Consumer Role = "consumer"
	Relay    Role = "relay"
)

// TransactionalID is the transactional id of a kretry instance:
// kretry/<group>/<role>/<instance>.
func TransactionalID(group string, role Role, instance string) string {
	return Prefix(group, role) + instance
}

// Prefix is what the transactional ids of a group's instances of role start
// with: kretry/<group>/<role>/.
func Prefix(group string, role Role) string {
	return "kretry/" + group + "/" + string(role) + "/"
}

// sweepAttempts bounds the sweeps one Trigger makes when a sweep fails or
// cannot tell who is alive (a rebalance in progress); the next assignment
// triggers again.
const sweepAttempts = 5

// Pacing of the retries: of a failed sweep, and of InitProducerID while the
// coordinator ends the transaction (CONCURRENT_TRANSACTIONS).
const (
	sweepBackoff    = 500 * time.Millisecond
	maxSweepBackoff = 5 * time.Second
	initBackoff     = 50 * time.Millisecond
	maxInitBackoff  = time.Second
	initAttempts    = 40
)

// ErrInDoubt is returned by Sweep when it cannot tell the transactional id
// of every live member of the group: it fences nothing then.
var ErrInDoubt = errors.New("cannot tell which transactional ids live members of the group use")

// errUnknownMember is ErrInDoubt because of a member that has neither a
// kretry client id nor an instance id.
var errUnknownMember = errors.New("a member of the group is not a kretry instance of this version")

// Fencer fences the open transactions of a group's dead kretry instances of
// one role. Trigger may be called from any goroutine (kgo's assignment
// callback); Run does the work.
type Fencer struct {
	group   string
	prefix  string
	self    string
	log     *slog.Logger
	fenced  prometheus.Counter
	wake    chan struct{}
	confirm time.Duration
	trouble atomic.Int64 // Unix nanoseconds of this client's last failed connection to a broker
}

// DefaultConfirm is how long a Sweep waits, after it found a transaction no
// member of the group owns, before it looks again and fences it only if it
// is still the same transaction and still no member's, when its own client
// failed to connect to a broker within TroubleWindow: a broker restart or
// a partition leader moving drops live instances out of the group for a
// moment too, and they are back by then and keep their transactions. A
// client without such trouble (a member of the group killed while the rest
// ran on) waits QuickConfirm.
const (
	DefaultConfirm = 5 * time.Second
	QuickConfirm   = 500 * time.Millisecond
	TroubleWindow  = time.Minute
)

// ConfirmAfter sets the wait of Sweep before it fences after trouble
// (DefaultConfirm) and returns f.
func (f *Fencer) ConfirmAfter(d time.Duration) *Fencer {
	f.confirm = d
	return f
}

// OnBrokerConnect is kgo's hook: give the Fencer to the client it sweeps
// with (kgo.WithHooks), so that it knows when that client lost the brokers.
func (f *Fencer) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		f.trouble.Store(time.Now().UnixNano())
	}
}

// confirmWait is how long a Sweep waits before it fences: DefaultConfirm
// (ConfirmAfter) within TroubleWindow of a failed connection, else
// QuickConfirm.
func (f *Fencer) confirmWait(now time.Time) time.Duration {
	if at := f.trouble.Load(); at != 0 && now.Sub(time.Unix(0, at)) < TroubleWindow {
		return f.confirm
	}
	return min(QuickConfirm, f.confirm)
}

// New returns the Fencer of the instance whose transactional id is self,
// TransactionalID(group, role, <its instance>): it fences transactions of
// ids with the same prefix only, never its own. fenced, if not nil, counts
// the transactions fenced; log, if not nil, gets a line for each.
func New(group string, role Role, self string, log *slog.Logger, fenced prometheus.Counter) *Fencer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fencer{group: group, prefix: Prefix(group, role), self: self, log: log, fenced: fenced, wake: make(chan struct{}, 1), confirm: DefaultConfirm}
}

// Trigger asks Run for a sweep; triggers while one is pending count once.
func (f *Fencer) Trigger() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run sweeps with cl, a client of the group's member, on each Trigger until
// ctx is done; a sweep that fails is tried again a few times.
func (f *Fencer) Run(ctx context.Context, cl *kgo.Client) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		backoff := sweepBackoff
		for attempt := 1; ; attempt++ {
			_, err := f.Sweep(ctx, cl)
			if err == nil || ctx.Err() != nil {
				break
			}
			if errors.Is(err, errUnknownMember) { // no retry tells it apart
				f.log.Info("kretry does not fence dead instances' open transactions while the group has a member it cannot tell; "+
					"a dead instance's transaction holds its partitions until the transaction timeout", "group", f.group, "reason", err)
				break
			}
			if attempt == sweepAttempts {
				f.log.Warn("kretry could not look for dead instances' open transactions (it needs Kafka 3.0+, and DESCRIBE and WRITE on the group's "+
					"transactional ids); it looks again at the next assignment, and a dead instance's transaction holds its partitions until the transaction timeout",
					"group", f.group, "error", err)
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxSweepBackoff)
		}
	}
}

// Sweep fences, once, the ongoing transactions of ids with the Fencer's
// prefix that no live member of the group uses, and returns their ids. It
// fences nothing when it cannot tell every member's id (ErrInDoubt). A
// transaction found without an owner is fenced only if, after the confirm
// wait (confirmWait), it is the same transaction and still no member's.
func (f *Fencer) Sweep(ctx context.Context, cl *kgo.Client) ([]string, error) {
	adm := kadm.NewClient(cl)
	// The pattern needs Kafka 4.1+; older brokers list every ongoing
	// transaction, filtered here.
	listed, listErr := adm.ListTransactionsByTxPattern(ctx, nil, []string{"Ongoing"}, "^"+regexp.QuoteMeta(f.prefix)+"[^/]+$")
	if listErr != nil && !isShardErr(listErr) {
		return nil, fmt.Errorf("listing ongoing transactions: %w", listErr)
	}
	var candidates []string
	for id, t := range listed {
		if t.State == "Ongoing" && id != f.self && f.ours(id) {
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 {
		return nil, shardErr(listErr)
	}
	owners, err := f.liveIDs(ctx, adm)
	if err != nil {
		return nil, err
	}
	slices.Sort(candidates)
	candidates = slices.DeleteFunc(candidates, func(id string) bool { return owners[id] })
	if len(candidates) == 0 {
		return nil, shardErr(listErr)
	}
	first, err := adm.DescribeTransactions(ctx, candidates...)
	if err != nil {
		return nil, fmt.Errorf("describing the transactions of %v: %w", candidates, err)
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(f.confirmWait(time.Now())):
	}
	if owners, err = f.liveIDs(ctx, adm); err != nil {
		return nil, err
	}
	var fenced []string
	var errs []error
	for _, id := range candidates {
		seen, known := first[id]
		if owners[id] || !known || seen.Err != nil {
			continue
		}
		ok, err := f.fence(ctx, cl, adm, id, seen)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			fenced = append(fenced, id)
		}
	}
	return fenced, errors.Join(append(errs, shardErr(listErr))...)
}

// ours reports whether id is the transactional id of an instance of the
// Fencer's group and role: the prefix, then an instance without "/" (a
// group instance id has none), so that no other group whose name extends
// this one's matches.
func (f *Fencer) ours(id string) bool {
	inst, ok := strings.CutPrefix(id, f.prefix)
	return ok && inst != "" && !strings.Contains(inst, "/")
}

// liveIDs returns the transactional ids of the group's members: a member's
// client id when it has the prefix, else the prefix and its group instance
// id. It is ErrInDoubt when a member has neither, or when the sweeping
// instance itself is not among them (the description is not of the group
// it is in: a rebalance, or the other protocol's description).
func (f *Fencer) liveIDs(ctx context.Context, adm *kadm.Client) (map[string]bool, error) {
	var members []member
	classic, err := adm.DescribeGroups(ctx, f.group)
	if err != nil {
		return nil, fmt.Errorf("describing group %s: %w", f.group, err)
	}
	if g, ok := classic[f.group]; ok && g.Err == nil {
		for _, m := range g.Members {
			members = append(members, member{m.ClientID, m.InstanceID})
		}
	}
	ids, err := f.idsOf(members)
	if err == nil {
		return ids, nil
	}
	// A group of the consumer protocol (KIP-848) describes as empty to
	// DescribeGroups.
	groups, cerr := adm.DescribeConsumerGroups(ctx, f.group)
	if cerr != nil || groups[f.group].Err != nil {
		return nil, err
	}
	members = members[:0]
	for _, m := range groups[f.group].Members {
		members = append(members, member{m.ClientID, m.InstanceID})
	}
	return f.idsOf(members)
}

// member is what a group's description tells of one member.
type member struct {
	clientID string
	instance *string
}

// idsOf returns the transactional ids of members (see liveIDs).
func (f *Fencer) idsOf(members []member) (map[string]bool, error) {
	ids := map[string]bool{}
	for _, m := range members {
		switch {
		case strings.HasPrefix(m.clientID, f.prefix):
			ids[m.clientID] = true
		case m.instance != nil && *m.instance != "":
			ids[f.prefix+*m.instance] = true
		default:
			return nil, fmt.Errorf("%w: %w: member with client id %q has no kretry transactional id as its client id, nor a group instance id "+
				"(a kretry older than this one, or another program in the group)", ErrInDoubt, errUnknownMember, m.clientID)
		}
	}
	if !ids[f.self] {
		return nil, fmt.Errorf("%w: the group's description does not list this instance (%s) among its %d members", ErrInDoubt, f.self, len(members))
	}
	return ids, nil
}

// isShardErr reports whether err is kadm's error of a request some brokers
// answered.
func isShardErr(err error) bool {
	_, ok := errors.AsType[*kadm.ShardErrors](err)
	return ok
}

// shardErr is err when it is a *kadm.ShardErrors, else nil.
func shardErr(err error) error {
	if isShardErr(err) {
		return fmt.Errorf("listing ongoing transactions: %w", err)
	}
	return nil
}

// fence initializes id's producer, which makes its coordinator bump the
// id's epoch and abort its open transaction, retrying while the
// coordinator ends it (CONCURRENT_TRANSACTIONS), if that transaction is
// still the one seen before the confirm wait. ok is whether this fence
// aborted it (not another ending it first).
func (f *Fencer) fence(ctx context.Context, cl *kgo.Client, adm *kadm.Client, id string, seen kadm.DescribedTransaction) (ok bool, err error) {
	described, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		return false, fmt.Errorf("describing the transaction of %s: %w", id, err)
	}
	t, err := described.On(id, nil)
	if err == nil {
		err = t.Err
	}
	if err != nil {
		return false, fmt.Errorf("describing the transaction of %s: %w", id, err)
	}
	if t.State != "Ongoing" || t.ProducerID != seen.ProducerID || t.ProducerEpoch != seen.ProducerEpoch || t.StartTimestamp != seen.StartTimestamp {
		return false, nil // it ended meanwhile, or its owner began another: alive
	}
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = t.TimeoutMillis
	req.ProducerID, req.ProducerEpoch = -1, -1
	backoff := initBackoff
	for attempt := 1; ; attempt++ {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return false, fmt.Errorf("fencing transactional id %s: %w", id, err)
		}
		err = kerr.ErrorForCode(resp.ErrorCode)
		if err == nil {
			break
		}
		// The first answer to an ongoing transaction is
		// CONCURRENT_TRANSACTIONS: its abort has begun.
		if !errors.Is(err, kerr.ConcurrentTransactions) || attempt == initAttempts {
			return false, fmt.Errorf("fencing transactional id %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxInitBackoff)
	}
	open := time.Duration(0)
	if t.StartTimestamp > 0 {
		open = time.Since(time.UnixMilli(t.StartTimestamp)).Round(time.Millisecond)
	}
	f.log.Info("kretry fenced and aborted the open transaction of a dead instance: no live member of the group uses its transactional id",
		"group", f.group, "transactional_id", id, "producer_id", t.ProducerID, "producer_epoch", t.ProducerEpoch,
		"open_for", open, "timeout", time.Duration(t.TimeoutMillis)*time.Millisecond, "partitions", partitionsText(t.Topics))
	if f.fenced != nil {
		f.fenced.Inc()
	}
	return true, nil
}

// partitionsText is "topic[0 1],other[3]".
func partitionsText(s kadm.TopicsSet) string {
	var b strings.Builder
	for _, tp := range s.Sorted() {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s%v", tp.Topic, tp.Partitions)
	}
	return b.String()
}
