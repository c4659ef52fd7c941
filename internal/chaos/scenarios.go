package chaos

import (
	"context"
	"time"
)

// Size is how hard the suite hits: Full for make chaos, Short for the
// integration test.
type Size struct {
	ConsumerKills  int // (a)
	RelayKills     int // (b)
	BrokerRestarts int // (c)
	Rebalances     int // (d) joins and leaves
	LeaderKills    int // (e)
	Rate           int // records a second
	// StaticKills > 0 adds (i): (a) with static members (a restarted
	// worker takes the killed one's instance_id, as a StatefulSet's pod
	// does) and this many kills.
	StaticKills int
}

var (
	Full  = Size{ConsumerKills: 12, RelayKills: 8, BrokerRestarts: 2, Rebalances: 30, LeaderKills: 3, Rate: 200, StaticKills: 6}
	Short = Size{ConsumerKills: 3, BrokerRestarts: 1, Rate: 100}
)

// tail is how long production goes on after the last fault, so the
// partitions hit have records to be handled again.
const tail = 15 * time.Second

// Scenarios returns the suite's scenarios at size s, keyed "a" to "i": (g)
// and (h) are one kill -9 with each group protocol, (i) is (a) with static
// members and StaticKills kills (not in Short).
func Scenarios(s Size) []Scenario {
	storm := func(kills int) func(ctx context.Context, r *Run) error {
		return func(ctx context.Context, r *Run) error {
			for range kills {
				if err := sleep(ctx, r.Rand(3*time.Second, 8*time.Second)); err != nil {
					return err
				}
				if err := r.KillWorker(); err != nil {
					return err
				}
			}
			return sleep(ctx, tail)
		}
	}
	// One kill, no restart; production goes on for tail, and the records
	// the killed worker left are handled once its partitions move (with
	// KIP-848 after the group's session timeout, which the 1-node cluster
	// lets kretry set to 10s, heartbeats to 1s: KIP848Settings).
	failover := func(ctx context.Context, r *Run) error {
		if err := sleep(ctx, 8*time.Second); err != nil {
			return err
		}
		if err := r.KillWorkerOnly(); err != nil {
			return err
		}
		return sleep(ctx, tail)
	}
	scns := []Scenario{
		{
			Key: "a", Title: "kill -9 storm of consumers", Nodes: 1, Workers: 2, Rate: s.Rate, Settle: 3 * time.Minute,
			Faults: storm(s.ConsumerKills),
		},
		{
			Key: "b", Title: "kill -9 storm of kretry relay", Nodes: 1, Workers: 2, Relays: 2, Rate: s.Rate, Settle: 3 * time.Minute,
			Faults: func(ctx context.Context, r *Run) error {
				for range s.RelayKills {
					if err := sleep(ctx, r.Rand(3*time.Second, 8*time.Second)); err != nil {
						return err
					}
					if err := r.KillRelay(); err != nil {
						return err
					}
				}
				return sleep(ctx, tail)
			},
		},
		{
			Key: "c", Title: "broker stopped and restarted", Nodes: 1, Workers: 2, Rate: s.Rate, Settle: 3 * time.Minute,
			Faults: func(ctx context.Context, r *Run) error {
				for range s.BrokerRestarts {
					if err := sleep(ctx, 8*time.Second); err != nil {
						return err
					}
					if err := r.RestartBroker(ctx, 1, 5*time.Second); err != nil {
						return err
					}
				}
				return sleep(ctx, tail)
			},
		},
		{
			Key: "d", Title: "rebalance storm (every 2s)", Nodes: 1, Workers: 2, Rate: s.Rate, Settle: 3 * time.Minute,
			Faults: func(ctx context.Context, r *Run) error {
				for range s.Rebalances {
					if err := sleep(ctx, 2*time.Second); err != nil {
						return err
					}
					n := r.Workers()
					join := n <= 1 || (n < 4 && r.Rand(0, 2) == 0)
					var err error
					if join {
						err = r.Join()
					} else {
						err = r.Leave()
					}
					if err != nil {
						return err
					}
				}
				return sleep(ctx, tail)
			},
		},
		{
			Key: "e", Title: "3-node cluster, leaders killed", Nodes: 3, Workers: 2, Rate: s.Rate, Settle: 3 * time.Minute,
			Faults: func(ctx context.Context, r *Run) error {
				for range s.LeaderKills {
					if err := sleep(ctx, 8*time.Second); err != nil {
						return err
					}
					if err := r.KillLeader(ctx, 10*time.Second); err != nil {
						return err
					}
				}
				return sleep(ctx, tail)
			},
		},
		{
			Key: "f", Title: "malformed kretry headers", Nodes: 1, Workers: 2, Rate: s.Rate / 2, Malformed: 30, Settle: 2 * time.Minute,
			Faults: func(ctx context.Context, r *Run) error {
				return sleep(ctx, 20*time.Second) // the malformed records go out over the first 15s
			},
		},
		{
			Key: "g", Title: "one of two consumers killed (classic)", Nodes: 1, Workers: 2, Rate: s.Rate, Settle: 3 * time.Minute,
			Faults: failover,
		},
		{
			Key: "h", Title: "one of two consumers killed (KIP-848, 10s session)", Nodes: 1, Workers: 2, Rate: s.Rate, Settle: 3 * time.Minute,
			GroupProtocol: "consumer", Faults: failover,
		},
	}
	if s.StaticKills > 0 {
		scns = append(scns, Scenario{
			Key: "i", Title: "kill -9 storm, static members", Nodes: 1, Workers: 2, Rate: s.Rate, Settle: 3 * time.Minute,
			Static: true, Faults: storm(s.StaticKills),
		})
	}
	return scns
}
