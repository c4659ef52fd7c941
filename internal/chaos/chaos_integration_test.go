//go:build integration

package chaos_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kretry/kretry/internal/chaos"
)

// TestShortFaultSuite is the short version of make chaos, in both modes:
// (a) a few kill -9 of consumers with the in-process relay, and (c) the
// broker stopped and restarted with its data once, on a broker of its own
// started with scripts/kafka/cluster.sh. It asserts what kretry guarantees in
// every run: nothing lost, nothing misrouted, no re-feed early, no process
// that exits by itself; in exactly_once mode no duplicate ladder copy and
// every ladder record in a transaction. The duplicate handlings against
// issue 13's bound are logged; make chaos reports them.
func TestShortFaultSuite(t *testing.T) {
	root, err := chaos.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", filepath.Join(root, "scripts", "kafka", "kafka.sh"), "check").CombinedOutput(); err != nil {
		msg := "cannot start a broker of its own: " + strings.TrimSpace(string(out))
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	// Its own deadline, well inside go test's, so a wedged run fails with
	// what it saw instead of hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if d, ok := t.Deadline(); ok {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, d.Add(-time.Minute))
		defer c2()
	}

	dir := t.TempDir()
	bins, err := chaos.Build(ctx, root, dir)
	if err != nil {
		t.Fatal(err)
	}
	env := &chaos.Env{Root: root, Bins: bins, Dir: dir, Log: tlog{t}}
	t.Cleanup(func() {
		if err := env.Single.Down(); err != nil {
			t.Log(err)
		}
	})

	scenarios := map[string]chaos.Scenario{}
	for _, s := range chaos.Scenarios(chaos.Short) {
		scenarios[s.Key] = s
	}
	for _, mode := range chaos.Modes {
		t.Run(string(mode), func(t *testing.T) {
			for _, key := range []string{"a", "c"} {
				scn := scenarios[key]
				res, err := chaos.RunScenario(ctx, env, scn, mode)
				if err != nil {
					t.Fatalf("(%s) %s: %v", key, scn.Title, err)
				}
				t.Log(res.Line())
				if res.Unavailable != "" {
					t.Skip(res.Unavailable)
				}
				check(t, res, map[string]int{"a": chaos.Short.ConsumerKills, "c": chaos.Short.BrokerRestarts}[key])
			}
		})
	}
}

func check(t *testing.T, res chaos.Result, faults int) {
	t.Helper()
	where := "(" + res.Scenario + ") " + res.Title + ", " + string(res.Mode)
	if res.Produced == 0 || res.Handlings == 0 {
		t.Errorf("%s: produced %d, handled %d: the run did nothing", where, res.Produced, res.Handlings)
	}
	if res.Faults != faults {
		t.Errorf("%s: %d faults injected, want %d", where, res.Faults, faults)
	}
	switch {
	case res.Lost != 0 && res.Unsettled:
		t.Errorf("%s: %d records neither handled ok nor dead-lettered when the wait for them ended (stuck or lost)", where, res.Lost)
	case res.Lost != 0:
		t.Errorf("%s: %d records lost", where, res.Lost)
	}
	if res.Misrouted != 0 {
		t.Errorf("%s: %d records ended in the wrong place", where, res.Misrouted)
	}
	if res.Early != 0 {
		t.Errorf("%s: %d re-feeds or handlings before their due time", where, res.Early)
	}
	// The re-deliveries are figures here, not failures: issue 13's bound
	// (what the processes handled in one commit interval plus what was in
	// flight) is not met in every run on a loaded machine, in either mode
	// (at least once, franz-go commits nothing while a classic rebalance's
	// join is in progress, so a kill after a long join re-delivers more;
	// exactly once, a rebalance aborts the transactions in progress). make
	// chaos reports them in RELIABILITY.md.
	if res.Redelivered > res.DupBound {
		t.Logf("%s: %d records re-delivered (of %d duplicate handlings; at most %d calls of one attempt), above the goal of %d: the commit interval (%v) plus %v in flight before the faults",
			where, res.Redelivered, res.DupHandlings, res.MaxRepeat, res.DupBound, chaos.CommitInterval, chaos.InFlight)
	}
	if res.MissingOutputs != 0 {
		t.Errorf("%s: %d records handled ok without an Emit output", where, res.MissingOutputs)
	}
	if res.Mode == chaos.ExactlyOnce {
		if res.DupOutputs != 0 {
			t.Errorf("%s: %d duplicate Emit outputs visible to a read_committed reader, want 0", where, res.DupOutputs)
		}
		if res.CommittedRedelivered != 0 {
			t.Errorf("%s: %d re-deliveries of handlings whose transaction had committed, want 0", where, res.CommittedRedelivered)
		}
		if res.DupLadder != 0 {
			t.Errorf("%s: %d duplicate ladder copies (tier %d, re-feed %d, DLQ %d), want 0", where, res.DupLadder, res.DupTier, res.DupRefeed, res.DupDLQ)
		}
		if res.NotInTxn != 0 {
			t.Errorf("%s: %d ladder records written outside a transaction (tier %d, re-feed %d, DLQ %d)", where, res.NotInTxn, res.NotInTxnTier, res.NotInTxnRefeed, res.NotInTxnDLQ)
		}
	}
	for _, n := range res.Notes {
		t.Errorf("%s: %s", where, n)
	}
}

// tlog writes the suite's progress to the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
