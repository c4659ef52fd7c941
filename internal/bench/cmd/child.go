package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kretry/kretry/internal/bench"
)

// A child is one side of one benchmark run in a process of its own (this
// binary, `child <mode> ...`), so that its CPU time, heap and RSS are its own.
// It prints progress on stderr and its result as one `RESULT {json}` line on
// stdout.

// result is what a child reports.
type result struct {
	Mode     string  `json:"mode"`
	Records  int64   `json:"records"`            // records counted in the window
	Seconds  float64 `json:"seconds"`            // first counted record to last
	CPU      float64 `json:"cpu"`                // process CPU seconds over the same window
	Failures int64   `json:"failures,omitempty"` // first deliveries failed on purpose
	// Lateness of re-fed records as the main consumer's handler saw them:
	// handling time − kretry-due-at, in milliseconds.
	Lateness *latency `json:"lateness,omitempty"`
	// RefeedLateness is the re-feed time − kretry-due-at, in milliseconds:
	// the re-fed record's timestamp, which the relay's producer stamps when
	// it produces the record, as the handler reads it.
	RefeedLateness *latency `json:"refeed_lateness,omitempty"`
	// RelayLateness is the relay's own kretry_refeed_lateness_seconds histogram,
	// read as bucket upper bounds, in milliseconds.
	RelayLateness *latency `json:"relay_lateness,omitempty"`
	PeakRSS       int64    `json:"peak_rss,omitempty"` // bytes, VmHWM
	// Capped says the run hit its time cap: Records were counted, not n.
	Capped bool   `json:"capped,omitempty"`
	Note   string `json:"note,omitempty"`
	// B5 holds the figures of the circuit breaker benchmark (b5.go).
	B5 *b5Result `json:"b5,omitempty"`
}

type latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func (r result) rate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Records) / r.Seconds
}

// cpuPerMillion is CPU seconds per million records.
func (r result) cpuPerMillion() float64 {
	if r.Records == 0 {
		return 0
	}
	return r.CPU / float64(r.Records) * 1e6
}

// window times a run from its first counted record to its n-th, or to the
// moment its time cap ran out.
type window struct {
	n        int64
	capped   atomic.Bool
	count    atomic.Int64
	shards   []shard // see tickPartition
	once     sync.Once
	start    time.Time
	cpu0     time.Duration
	end      time.Time
	cpu1     time.Duration
	endCount int64
	done     chan struct{}
	started  chan struct{}
}

func newWindow(n int64) *window {
	return &window{n: n, done: make(chan struct{}), started: make(chan struct{})}
}

// tick counts k records; it is safe for concurrent use. A k of 0 only
// opens the window.
func (w *window) tick(k int64) {
	w.once.Do(func() {
		w.start, w.cpu0 = time.Now(), bench.SelfCPU()
		close(w.started)
	})
	if k == 0 {
		return
	}
	if c := w.count.Add(k); c >= w.n && c-k < w.n {
		w.close()
	}
}

// shard is one partition's share of a window's count, for handlers that
// count one record per call: each adds to the window's counter once per
// shardFlush records, not on every call from every partition's goroutine.
type shard struct {
	pending atomic.Int64
	_       [56]byte // a cache line of its own
}

const shardFlush = 256

// withShards gives w a shard per partition and returns it.
func (w *window) withShards(partitions int) *window {
	w.shards = make([]shard, partitions)
	return w
}

// tickPartition counts one record of partition p; it is safe for concurrent
// use. Near the end (fewer records missing than the shards may hold) it
// moves every shard's count to the window's, so that the window closes at
// its n-th record.
func (w *window) tickPartition(p int32) {
	if len(w.shards) == 0 {
		w.tick(1)
		return
	}
	sh := &w.shards[int(p)%len(w.shards)]
	end := w.count.Load() >= w.n-2*shardFlush*int64(len(w.shards))
	if sh.pending.Add(1) < shardFlush && !end {
		w.tick(0)
		return
	}
	if !end {
		w.tick(sh.pending.Swap(0))
		return
	}
	for i := range w.shards {
		if k := w.shards[i].pending.Swap(0); k > 0 {
			w.tick(k)
		}
	}
}

var windowMu sync.Mutex

// close ends the window now, once.
func (w *window) close() {
	windowMu.Lock()
	defer windowMu.Unlock()
	select {
	case <-w.done:
		return
	default:
	}
	w.end, w.cpu1, w.endCount = time.Now(), bench.SelfCPU(), w.count.Load()
	close(w.done)
}

func (w *window) fill(r *result) {
	r.Records = w.endCount
	if r.Records == 0 { // the window never closed: report what was counted
		r.Records = w.count.Load()
	}
	r.Capped = w.capped.Load()
	r.Seconds = w.end.Sub(w.start).Seconds()
	r.CPU = (w.cpu1 - w.cpu0).Seconds()
}

// childFlags are the flags every child mode takes.
type childFlags struct {
	brokers    []string
	topic      string
	group      string
	n          int64
	partitions int
	delay      time.Duration
	timeout    time.Duration
	cap        time.Duration // stop counting this long after the first record; 0: no cap
	cpuProfile string
	memProfile string
	memTrace   bool          // trace the memory classes' peaks (see memTrace)
	heapProf   string        // with memTrace: an in-use heap profile at the live heap's peak
	relay      bool          // kretry sides: run the relay in process (consumer.WithRelay)
	eos        bool          // kretry sides: exactly_once
	lateEvery  int           // retry-kretry: read the lateness of every so many re-fed records of a partition
	b5Breaker  bool          // B5: the topic has a circuit_breaker
	b5Outage   time.Duration // B5: how long the dependency fails every call
}

func childMain(args []string) int {
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: bench child <mode> [flags]")
		return 2
	}
	mode := args[0]
	fs := flag.NewFlagSet("child "+mode, flag.ContinueOnError)
	var cf childFlags
	var brokers string
	fs.StringVar(&brokers, "brokers", os.Getenv("KRETRY_BROKERS"), "seed brokers, comma-separated")
	fs.StringVar(&cf.topic, "topic", "", "main topic")
	fs.StringVar(&cf.group, "group", "", "consumer group")
	fs.Int64Var(&cf.n, "n", 0, "records to count before stopping")
	fs.IntVar(&cf.partitions, "partitions", 8, "partitions of the topics")
	fs.DurationVar(&cf.delay, "delay", time.Second, "tier delay")
	fs.DurationVar(&cf.timeout, "timeout", 5*time.Minute, "give up after this long")
	fs.DurationVar(&cf.cap, "cap", 0, "stop counting this long after the first record and report what was counted (0: count all n)")
	fs.StringVar(&cf.cpuProfile, "cpuprofile", "", "write a CPU profile of the run here")
	fs.StringVar(&cf.memProfile, "memprofile", "", "write an allocation profile of the run here")
	fs.BoolVar(&cf.memTrace, "memtrace", false, "print the peak of each runtime memory class and of VmRSS on stderr at the end")
	fs.StringVar(&cf.heapProf, "heapprofile", "", "with -memtrace: write an in-use heap profile here at each new peak of the live heap")
	fs.BoolVar(&cf.relay, "relay", true, "kretry sides: run the relay in process")
	fs.BoolVar(&cf.eos, "eos", false, "kretry sides: exactly_once (Kafka transactions)")
	fs.IntVar(&cf.lateEvery, "late-every", 1, "retry-kretry: read the lateness of every so many re-fed records of a partition (1: all)")
	fs.BoolVar(&cf.b5Breaker, "b5-breaker", false, "B5: give the topic a circuit_breaker")
	fs.DurationVar(&cf.b5Outage, "b5-outage", time.Minute, "B5: how long the dependency fails every call, from the first call")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cf.brokers = splitBrokers(brokers)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()

	if cf.cpuProfile != "" {
		f, err := os.Create(cf.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if cf.memProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}

	var trace *memTrace
	if cf.memTrace {
		trace = startMemTrace(cf.heapProf)
	}

	run, ok := childModes[mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
		return 2
	}
	res, err := run(ctx, cf)
	if trace != nil {
		trace.report(os.Stderr)
	}
	if cf.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if cf.memProfile != "" {
		if f, ferr := os.Create(cf.memProfile); ferr == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	res.Mode = mode
	if rss, rerr := bench.PeakRSS(0); rerr == nil {
		res.PeakRSS = rss
	}
	out, jerr := json.Marshal(res)
	if jerr != nil {
		fmt.Fprintf(os.Stderr, "child %s: encoding the result: %v\n", mode, jerr)
		return 1
	}
	fmt.Printf("RESULT %s\n", out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", mode, err)
		return 1
	}
	return 0
}

// childModes maps a mode name to its run function.
var childModes = map[string]func(context.Context, childFlags) (result, error){}

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// waitWindow waits until w has counted its records, ctx is done, or run
// (the consumer's Run) returns early.
func waitWindow(ctx context.Context, w *window, cap time.Duration, runErr <-chan error) error {
	if cap > 0 {
		go func() {
			select {
			case <-w.started:
			case <-w.done:
				return
			}
			t := time.NewTimer(cap)
			defer t.Stop()
			select {
			case <-t.C:
				w.capped.Store(true)
				w.close()
			case <-w.done:
			}
		}()
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("counted %d of %d records: %w", w.count.Load(), w.n, ctx.Err())
	case err := <-runErr:
		return fmt.Errorf("consumer stopped after %d of %d records: %v", w.count.Load(), w.n, err)
	}
}

// spawn runs this binary as `child mode args...` and returns its result. Its
// stderr is copied to ours with a prefix; onLine, when set, sees every stdout
// line (and may act on the running process).
type spawned struct {
	cmd    *exec.Cmd
	lines  chan string
	result chan childOutcome
}

type childOutcome struct {
	res result
	err error
}

func spawn(ctx context.Context, mode string, args ...string) (*spawned, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, append([]string{"child", mode}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &spawned{cmd: cmd, lines: make(chan string, 64), result: make(chan childOutcome, 1)}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		copyPrefixed(os.Stderr, stderr, "    ["+mode+"] ")
	}()
	var res *result
	go func() {
		defer wg.Done()
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := sc.Text()
			if js, ok := strings.CutPrefix(line, "RESULT "); ok {
				var r result
				if err := json.Unmarshal([]byte(js), &r); err == nil {
					res = &r
				}
				continue
			}
			select {
			case s.lines <- line:
			default: // nobody listens: drop progress lines
			}
		}
	}()
	go func() {
		wg.Wait()
		err := cmd.Wait()
		switch {
		case res == nil && err == nil:
			err = errors.New("child printed no result")
		case res == nil:
			err = fmt.Errorf("child %s: %w", mode, err)
		case err != nil:
			err = fmt.Errorf("child %s: %w", mode, err)
		}
		var r result
		if res != nil {
			r = *res
		}
		s.result <- childOutcome{r, err}
	}()
	return s, nil
}

// runChild spawns a child and waits for its result.
func runChild(ctx context.Context, mode string, args ...string) (result, error) {
	s, err := spawn(ctx, mode, args...)
	if err != nil {
		return result{}, err
	}
	go func() {
		for range s.lines {
		}
	}()
	o := <-s.result
	return o.res, o.err
}

func copyPrefixed(dst io.Writer, src io.Reader, prefix string) {
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintln(dst, prefix+sc.Text())
	}
}
