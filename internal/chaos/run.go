package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/ladder"
)

// Mode is the delivery mode a scenario runs in: the config's exactly_once key.
type Mode string

const (
	AtLeastOnce Mode = "at-least-once"
	ExactlyOnce Mode = "exactly_once"
)

// Modes are both modes, in the order the suite runs them.
var Modes = []Mode{AtLeastOnce, ExactlyOnce}

// Partitions of every topic of a scenario.
const Partitions = 4

// CommitInterval is the commit_interval the suite runs with (the default):
// the bound on duplicate handlings counts what a killed process handled in
// the last CommitInterval + InFlight before its kill.
const (
	CommitInterval = config.DefaultCommitInterval
	InFlight       = 2 * time.Second
)

// Env is what every scenario run shares.
type Env struct {
	Root string   // the repository
	Bins Binaries // built by Build
	Dir  string   // where runs keep their configs, logs and events
	Log  io.Writer
	// Single is a one-node cluster for the scenarios that do not need a
	// cluster of their own; (c) restarts it. Three is the 3-node cluster of
	// (e), started on first use when nil.
	Single *Cluster
	Three  *Cluster

	eosChecked bool
	eosWhyNot  string
}

func (e *Env) logf(format string, args ...any) {
	if e.Log != nil {
		fmt.Fprintf(e.Log, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
}

// Scenario is one fault scenario of the suite.
type Scenario struct {
	Key     string // "a" .. "f"
	Title   string
	Nodes   int // 1: Env.Single, 3: Env.Three
	Workers int // chaosworker processes at the start
	Relays  int // standalone `kretry relay` processes; when > 0 the workers run no relay
	Rate    int // records produced per second while the faults run
	// Malformed records with broken kretry headers, produced along the others.
	Malformed int
	// GroupProtocol is the config's group_protocol ("" for the default,
	// classic).
	GroupProtocol string
	// Static gives each worker an instance_id (KRETRY_INSTANCE_ID); a
	// worker started in place of a killed one takes its id.
	Static bool
	// Faults injects the scenario's faults; production runs meanwhile and
	// stops when it returns.
	Faults func(ctx context.Context, r *Run) error
	// Settle bounds the wait, once production stopped, for every record to
	// be handled ok or dead-lettered.
	Settle time.Duration
}

// Fault is one fault a scenario injected.
type Fault struct {
	Kind       string // "consumer", "relay", "broker", "leader", "join", "leave"
	At         time.Time
	Ready      time.Time // broker and leader faults: when the node answered again
	PID        int       // the process killed
	Partitions []int32   // leader: the main topic's partitions the killed node led
}

// Run is one scenario in one mode.
type Run struct {
	env     *Env
	scn     Scenario
	mode    Mode
	cluster *Cluster
	dir     string
	cfgPath string
	topic   string
	group   string
	steps   []ladder.Step
	dlq     string

	mu      sync.Mutex
	workers []*proc
	relays  []*proc
	all     []*proc
	faults  []Fault
	seq     int
	// selfExited describes the processes that exited without being killed
	// or stopped (found when a kill looked for a live one).
	selfExited []string
	rng        *rand.Rand
}

// RunScenario runs scn in mode and returns its figures. A mode the build does
// not support gives a Result with Unavailable set, not an error.
func RunScenario(ctx context.Context, env *Env, scn Scenario, mode Mode) (Result, error) {
	res := Result{Scenario: scn.Key, Title: scn.Title, Mode: mode}
	cluster, err := env.cluster(ctx, scn.Nodes)
	if err != nil {
		return res, err
	}
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	name := fmt.Sprintf("chaos-%s-%s-%s", scn.Key, strings.ReplaceAll(string(mode), "_", "-"), suffix)
	r := &Run{
		env: env, scn: scn, mode: mode, cluster: cluster,
		dir:   filepath.Join(env.Dir, name),
		topic: name, group: name,
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13)),
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return res, err
	}
	cfg, err := r.writeConfig()
	if err != nil {
		if mode == ExactlyOnce {
			// The error names the run's config file; the key and the reason are what matter.
			msg := strings.TrimPrefix(firstLine(err.Error()), r.cfgPath+":")
			res.Unavailable = "exactly_once is not available in this build: kretry.yaml:" + msg
			return res, nil
		}
		return res, err
	}
	if mode == ExactlyOnce {
		why, err := env.eosAvailable(ctx, r)
		if err != nil {
			return res, err
		}
		if why != "" {
			res.Unavailable = why
			return res, nil
		}
	}
	ladders, err := cfg.Ladders()
	if err != nil {
		return res, err
	}
	r.steps, r.dlq = ladders[0].Steps(), ladders[0].DLQ()
	env.logf("(%s) %s, %s: topic %s on %s", scn.Key, scn.Title, mode, r.topic, strings.Join(cluster.Brokers, ","))

	if err := r.createTopics(ctx); err != nil {
		return res, err
	}
	rd, err := startReader(cluster.Brokers, r.topics())
	if err != nil {
		return res, err
	}
	defer rd.close()

	defer r.stopAll()
	for range scn.Workers {
		if _, err := r.startWorker(); err != nil {
			return res, err
		}
	}
	for range scn.Relays {
		if _, err := r.startRelay(); err != nil {
			return res, err
		}
	}
	// Let the first members join before the faults start.
	if err := r.waitFirstHandling(ctx, 2*time.Minute); err != nil {
		return res, err
	}

	prodStart := time.Now()
	prod, err := startProducer(cluster.Brokers, r, scn)
	if err != nil {
		return res, err
	}
	faultErr := scn.Faults(ctx, r)
	produced, malformed, perr := prod.stop()
	prodStop := time.Now()
	if faultErr != nil {
		return res, fmt.Errorf("injecting the faults: %w", faultErr)
	}
	if perr != nil {
		env.logf("  producer: %v", perr)
	}
	env.logf("  faults done (%d); produced %d records and %d malformed; waiting for every record to be handled or dead-lettered (up to %v)", len(r.faults), len(produced), len(malformed), scn.Settle)

	want := make(map[int64]bool, len(produced)+len(malformed))
	for _, id := range produced {
		want[id] = WantDLQ(id)
	}
	for _, id := range malformed {
		want[id] = true
	}
	unsettled := r.waitSettled(ctx, rd, want, scn.Settle)
	exited := r.exitedByThemselves()
	stopErr := r.stopAll()
	if stopErr != nil {
		env.logf("  %v", stopErr)
	}
	recs := rd.drain(10 * time.Second)
	events, err := ReadEvents(r.dir)
	if err != nil {
		return res, err
	}
	res = analyze(res, analysis{
		want: want, malformed: len(malformed), events: events, recs: recs,
		topic: r.topic, steps: r.steps, dlq: r.dlq, faults: r.faults,
		from: prodStart, to: prodStop,
	})
	res.Notes = append(res.Notes, exited...)
	if unsettled != "" {
		res.Unsettled = true
		res.Notes = append(res.Notes, unsettled)
	}
	if perr != nil {
		res.Notes = append(res.Notes, "producer: "+firstLine(perr.Error()))
	}
	return res, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// KIP848Settings let KIP-848 groups of the 1-node cluster use kretry's
// default session_timeout (10s) and the heartbeat interval that follows it
// (1s): the brokers' default minimums are 45s and 5s, which would make
// scenario (h) measure the brokers' settings, not kretry's. Classic groups
// (every other scenario) do not read them.
var KIP848Settings = []string{"group.consumer.min.session.timeout.ms=10000", "group.consumer.min.heartbeat.interval.ms=1000"}

func (e *Env) cluster(ctx context.Context, nodes int) (*Cluster, error) {
	if nodes >= 3 {
		if e.Three == nil {
			e.logf("starting a 3-node cluster with cluster.sh")
			c, err := StartCluster(ctx, e.Root, 3)
			if err != nil {
				return nil, err
			}
			e.Three = c
		}
		return e.Three, nil
	}
	if e.Single == nil {
		e.logf("starting a 1-node cluster with cluster.sh")
		c, err := StartCluster(ctx, e.Root, 1, KIP848Settings...)
		if err != nil {
			return nil, err
		}
		e.Single = c
	}
	return e.Single, nil
}

// writeConfig writes the run's kretry.yaml and loads it as the processes will.
func (r *Run) writeConfig() (*config.Config, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "brokers: [%s]\n", strings.Join(r.cluster.Brokers, ", "))
	fmt.Fprintf(&b, "client_id: chaos\ngroup: %s\n", r.group)
	if r.mode == ExactlyOnce {
		b.WriteString("exactly_once: true\n")
	}
	if r.scn.GroupProtocol != "" {
		fmt.Fprintf(&b, "group_protocol: %s\n", r.scn.GroupProtocol)
	}
	fmt.Fprintf(&b, "topics:\n  - name: %s\n    tiers:\n      - delay: 1s\n      - delay: 2s\n", r.topic)
	r.cfgPath = filepath.Join(r.dir, "kretry.yaml")
	if err := os.WriteFile(r.cfgPath, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	// The processes run without KRETRY_BROKERS and KRETRY_GROUP (childEnv);
	// here the file's brokers and group win over them too.
	cfg, err := config.Load(r.cfgPath, config.WithBrokers(r.cluster.Brokers...))
	if err != nil {
		return nil, err
	}
	cfg.Group = r.group
	return cfg, nil
}

// topics are the run's topics: the main one, the tiers, the outputs and the
// DLQ, last.
func (r *Run) topics() []string {
	ts := []string{r.topic}
	for _, s := range r.steps {
		ts = append(ts, s.Topic)
	}
	return append(ts, OutputTopic(r.topic), r.dlq)
}

func (r *Run) createTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.cluster.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, Partitions, -1, nil, r.topics()...)
	if err != nil {
		return fmt.Errorf("creating the topics of %s: %w", r.topic, err)
	}
	if err := resp.Error(); err != nil {
		return fmt.Errorf("creating the topics of %s: %w", r.topic, err)
	}
	// Until every partition has a leader on every broker's metadata.
	for {
		tds, err := adm.ListTopics(ctx, r.topics()...)
		ok := err == nil
		for _, t := range r.topics() {
			td, found := tds[t]
			if !found || td.Err != nil || len(td.Partitions) != Partitions {
				ok = false
				continue
			}
			for _, p := range td.Partitions {
				if p.Leader < 0 || p.Err != nil {
					ok = false
				}
			}
		}
		if ok {
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("topics of %s have no leaders: %w", r.topic, err)
		}
	}
}

// startWorker starts a chaosworker (without its relay when the scenario runs
// standalone relays), with a new instance_id when the scenario has static
// members.
func (r *Run) startWorker() (*proc, error) {
	return r.startWorkerAs("")
}

// startWorkerAs starts a chaosworker with instance id (a new one when "" and
// the scenario has static members; none otherwise).
func (r *Run) startWorkerAs(instance string) (*proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	base := filepath.Join(r.dir, fmt.Sprintf("w%02d", r.seq))
	if r.scn.Static && instance == "" {
		instance = fmt.Sprintf("chaos-w%02d", r.seq)
	}
	p, err := startProc("worker", r.env.Bins.Worker, []string{
		"-config", r.cfgPath, "-events", base + ".events", "-relay=" + strconv.FormatBool(r.scn.Relays == 0),
	}, base+".log", instance)
	if err != nil {
		return nil, err
	}
	r.workers = append(r.workers, p)
	r.all = append(r.all, p)
	return p, nil
}

// StartRelay starts a `kretry relay` process.
func (r *Run) startRelay() (*proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	p, err := startProc("relay", r.env.Bins.Kretry, []string{"relay", "-c", r.cfgPath, "--log-level", "warn"},
		filepath.Join(r.dir, fmt.Sprintf("r%02d.log", r.seq)), "")
	if err != nil {
		return nil, err
	}
	r.relays = append(r.relays, p)
	r.all = append(r.all, p)
	return p, nil
}

// KillWorker kills a random running worker with SIGKILL and starts another in
// its place (with its instance_id when the scenario has static members).
func (r *Run) KillWorker() error {
	return r.killAndReplace(&r.workers, "consumer", func(killed *proc) (*proc, error) {
		return r.startWorkerAs(killed.instance)
	})
}

// KillWorkerOnly kills a random running worker with SIGKILL and starts none
// in its place.
func (r *Run) KillWorkerOnly() error {
	return r.killAndReplace(&r.workers, "consumer", nil)
}

// KillRelay kills a random running `kretry relay` with SIGKILL and starts
// another in its place.
func (r *Run) KillRelay() error {
	return r.killAndReplace(&r.relays, "relay", func(*proc) (*proc, error) { return r.startRelay() })
}

// killAndReplace kills a random live process of ps and, unless start is
// nil, starts another in its place.
func (r *Run) killAndReplace(ps *[]*proc, kind string, start func(killed *proc) (*proc, error)) error {
	r.mu.Lock()
	live := (*ps)[:0]
	for _, p := range *ps {
		if !p.exited() {
			live = append(live, p)
		} else {
			r.env.logf("  a %s (pid %d) exited by itself: %v (log in %s)", p.kind, p.pid(), p.err, r.dir)
			r.selfExited = append(r.selfExited, p.exitNote())
		}
	}
	*ps = live
	if len(live) == 0 {
		r.mu.Unlock()
		return fmt.Errorf("no %s process runs", kind)
	}
	i := r.rng.IntN(len(live))
	p := live[i]
	*ps = append(live[:i:i], live[i+1:]...)
	r.mu.Unlock()

	p.kill()
	r.addFault(Fault{Kind: kind, At: time.Now(), PID: p.pid()})
	if start == nil {
		return nil
	}
	_, err := start(p)
	return err
}

// Join starts one more worker; Leave stops one gracefully.
func (r *Run) Join() error {
	r.addFault(Fault{Kind: "join", At: time.Now()})
	_, err := r.startWorker()
	return err
}

func (r *Run) Leave() error {
	r.mu.Lock()
	if len(r.workers) == 0 {
		r.mu.Unlock()
		return errors.New("no worker to stop")
	}
	i := r.rng.IntN(len(r.workers))
	p := r.workers[i]
	r.workers = append(r.workers[:i:i], r.workers[i+1:]...)
	r.mu.Unlock()
	r.addFault(Fault{Kind: "leave", At: time.Now(), PID: p.pid()})
	// It leaves in the background, so the storm keeps its pace; stopAll
	// waits for it.
	go func() {
		if err := p.stop(time.Minute); err != nil {
			r.env.logf("  %v", err)
		}
	}()
	return nil
}

// Workers is the number of workers running.
func (r *Run) Workers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.workers)
}

// RestartBroker stops node of the run's cluster with SIGTERM, waits down,
// and starts it again with its data.
func (r *Run) RestartBroker(ctx context.Context, node int, down time.Duration) error {
	f := Fault{Kind: "broker", At: time.Now()}
	if err := r.cluster.Stop(ctx, node); err != nil {
		return err
	}
	if err := sleep(ctx, down); err != nil {
		return err
	}
	if err := r.cluster.Start(ctx, node); err != nil {
		return err
	}
	f.Ready = time.Now()
	r.addFault(f)
	return nil
}

// KillLeader kills with SIGKILL the node that leads the most partitions of the
// main topic, keeps it down for down, and starts it again with its data.
func (r *Run) KillLeader(ctx context.Context, down time.Duration) error {
	leaders, err := r.leaders(ctx)
	if err != nil {
		return err
	}
	count := map[int32][]int32{}
	var best int32 = -1
	for p, l := range leaders {
		count[l] = append(count[l], p)
		if best < 0 || len(count[l]) > len(count[best]) {
			best = l
		}
	}
	node := int(best) // cluster.sh gives node i the node.id i
	f := Fault{Kind: "leader", At: time.Now(), Partitions: count[best]}
	if err := r.cluster.Kill(ctx, node); err != nil {
		return err
	}
	r.env.logf("  killed node %d, leader of partitions %v", node, count[best])
	if err := sleep(ctx, down); err != nil {
		return err
	}
	if err := r.cluster.Start(ctx, node); err != nil {
		return err
	}
	f.Ready = time.Now()
	r.addFault(f)
	return nil
}

func (r *Run) leaders(ctx context.Context) (map[int32]int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.cluster.Brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tds, err := kadm.NewClient(cl).ListTopics(ctx, r.topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int32{}
	for _, p := range tds[r.topic].Partitions {
		out[p.Partition] = p.Leader
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no partitions of %s in the metadata", r.topic)
	}
	return out, nil
}

// Rand returns a duration in [lo, hi).
func (r *Run) Rand(lo, hi time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)))
}

func (r *Run) addFault(f Fault) {
	r.mu.Lock()
	r.faults = append(r.faults, f)
	r.mu.Unlock()
	r.env.logf("  fault %d: %s pid=%d", len(r.faults), f.Kind, f.PID)
}

// exitedByThemselves describes every process of the run that exited
// without being killed or stopped, with the last line of its log: a consumer
// whose Run returned an error, a relay that gave up.
func (r *Run) exitedByThemselves() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.selfExited
	for _, ps := range [][]*proc{r.workers, r.relays} {
		for _, p := range ps {
			if p.exited() {
				out = append(out, p.exitNote())
			}
		}
	}
	return out
}

func (r *Run) stopAll() error {
	r.mu.Lock()
	all := r.all
	r.all, r.workers, r.relays = nil, nil, nil
	r.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(all))
	for i, p := range all {
		wg.Go(func() { errs[i] = p.stop(time.Minute) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Run) waitFirstHandling(ctx context.Context, within time.Duration) error {
	// Probe records (negative ids, handled ok and left out of the figures):
	// once one is handled, the group has a member with partitions.
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.cluster.Brokers...), kgo.DefaultProduceTopic(r.topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(within)
	for i := range Partitions {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("probe-" + strconv.Itoa(i)), Value: RecordValue(int64(-1 - i))}).FirstErr(); err != nil {
			return fmt.Errorf("producing a probe record to %s: %w", r.topic, err)
		}
	}
	for time.Now().Before(deadline) {
		evs, err := ReadEvents(r.dir)
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			return nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("no worker handled a record of %s within %v; their logs are in %s", r.topic, within, r.dir)
}

func (r *Run) allWorkersExited() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.workers {
		if !p.exited() {
			return false
		}
	}
	return true
}

// waitSettled waits until every record of want is done: handled ok, or in
// the DLQ for those bound there. It returns "" then, else why it stopped
// waiting.
func (r *Run) waitSettled(ctx context.Context, rd *reader, want map[int64]bool, within time.Duration) string {
	deadline := time.Now().Add(within)
	for {
		evs, err := ReadEvents(r.dir)
		if err == nil {
			ok := map[int64]bool{}
			for _, e := range evs {
				if e.Outcome == OutcomeOK {
					ok[e.ID] = true
				}
			}
			dl := rd.dlqIDs(r.dlq)
			missing := 0
			for id, toDLQ := range want {
				if (toDLQ && !dl[id]) || (!toDLQ && !ok[id]) {
					missing++
				}
			}
			if missing == 0 {
				return ""
			}
			if time.Now().After(deadline) {
				why := fmt.Sprintf("%d records were not done %v after the last fault", missing, within)
				r.env.logf("  %s", why)
				return why
			}
			if r.allWorkersExited() {
				why := fmt.Sprintf("%d records were not done when every worker had exited by itself", missing)
				r.env.logf("  %s", why)
				return why
			}
		}
		if err := sleep(ctx, time.Second); err != nil {
			return fmt.Sprintf("the wait for every record stopped: %v", err)
		}
	}
}
