package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/internal/bench"
)

type runFlags struct {
	brokers    []string
	out        string
	only       map[string]bool
	command    string
	kafkaVer   string
	keep       bool
	profileDir string
	partitions int
	valueBytes int
	b1Records  int
	b1Rounds   int
	b1Relay    bool
	b2Records  int
	b2Rounds   int
	b2Delay    time.Duration
	b2Cap      time.Duration
	b3Records  int
	b3Rounds   int
	b3Delay    time.Duration
	b3Cap      time.Duration
	b3Rate     int
	b4Records  []int
	b4Hold     time.Duration
	b4Trace    bool
	// exactly_once against at-least-once
	eosRounds    int
	eosB1Records int
	eosB2Records int
	// DLQ replay
	replayRecords int
	replayRounds  int
	childTimout   time.Duration
	// circuit breaker (b5.go)
	b5Rate   int
	b5Offer  time.Duration
	b5Outage time.Duration
}

func runMain(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var rf runFlags
	var brokers, only, b4 string
	fs.StringVar(&brokers, "brokers", os.Getenv("KRETRY_BROKERS"), "seed brokers of the real broker, comma-separated (default $KRETRY_BROKERS)")
	fs.StringVar(&rf.out, "out", "", "write the report as Markdown to this file (BENCHMARKS.md)")
	fs.StringVar(&only, "only", "B1,B2,EOS,B3,B4,B5,replay", "benchmarks to run (EOS: B1 and B2's kretry sides in exactly_once against at-least-once; B5: a dependency outage with and without circuit_breaker; replay: the DLQ replay, no goal)")
	fs.StringVar(&rf.command, "command", "go run ./internal/bench/cmd", "the command to name in the report")
	fs.StringVar(&rf.kafkaVer, "kafka-version", "", "Kafka version to name in the report when it cannot be read from the running broker")
	fs.BoolVar(&rf.keep, "keep", false, "keep the topics and groups of this run")
	fs.StringVar(&rf.profileDir, "profile", "", "write CPU and allocation profiles of both sides of B1, of every side of B2 (round 1) and of the first B3 burst into this directory")
	fs.IntVar(&rf.partitions, "partitions", 8, "partitions of every topic")
	fs.IntVar(&rf.valueBytes, "value-bytes", 256, "record value size")
	fs.IntVar(&rf.b1Records, "b1-records", 1_000_000, "B1 records")
	fs.IntVar(&rf.b1Rounds, "b1-rounds", 9, "B1 rounds (each runs kretry and raw once)")
	fs.BoolVar(&rf.b1Relay, "b1-relay", true, "B1: the kretry consumer runs its relay in process, as by default")
	fs.IntVar(&rf.b2Records, "b2-records", 500_000, "B2 records")
	fs.IntVar(&rf.b2Rounds, "b2-rounds", 5, "B2 rounds")
	fs.DurationVar(&rf.b2Delay, "b2-delay", 10*time.Millisecond, "B2 and B2eos tier delay (short: the hand path has none, and the window counts it)")
	fs.DurationVar(&rf.b2Cap, "b2-cap", time.Minute, "B2: stop a side this long after its first record and rate what it did (keeps make bench inside its time budget)")
	fs.IntVar(&rf.b3Records, "b3-records", 100_000, "B3 records")
	fs.IntVar(&rf.b3Rounds, "b3-rounds", 3, "B3 burst runs (the summary takes the median of each figure)")
	fs.DurationVar(&rf.b3Delay, "b3-delay", 5*time.Second, "B3 tier delay")
	fs.DurationVar(&rf.b3Cap, "b3-cap", 2*time.Minute, "B3: stop this long after the first record and report the re-feeds seen")
	fs.IntVar(&rf.b3Rate, "b3-paced-rate", 10_000, "B3, second run: records/s at which the main topic is fed while the consumer runs (0: skip that run)")
	fs.StringVar(&b4, "b4-records", "100000,1000000", "B4 backlog sizes")
	fs.DurationVar(&rf.b4Hold, "b4-hold", 5*time.Second, "B4: how long the relay runs after pausing every partition")
	fs.BoolVar(&rf.b4Trace, "b4-memtrace", false, "B4: the relay prints the peak of each runtime memory class on stderr (with -profile, and an in-use heap profile at the live heap's peak); its RSS then counts the trace too")
	fs.IntVar(&rf.eosRounds, "eos-rounds", 5, "EOS rounds (each runs both modes once, for B1 and for B2)")
	fs.IntVar(&rf.eosB1Records, "eos-b1-records", 500_000, "EOS: B1 records")
	fs.IntVar(&rf.eosB2Records, "eos-b2-records", 500_000, "EOS: B2 records (as B2)")
	fs.IntVar(&rf.replayRecords, "replay-records", 100_000, "DLQ replay: records in the DLQ")
	fs.IntVar(&rf.replayRounds, "replay-rounds", 3, "DLQ replay: rounds")
	fs.DurationVar(&rf.childTimout, "child-timeout", 5*time.Minute, "give up on one run after this long")
	fs.IntVar(&rf.b5Rate, "b5-rate", 10_000, "B5: records/s offered")
	fs.DurationVar(&rf.b5Offer, "b5-offer", time.Minute, "B5: how long records are offered")
	fs.DurationVar(&rf.b5Outage, "b5-outage", time.Minute, "B5: how long the dependency fails every call")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rf.brokers = splitBrokers(brokers)
	if len(rf.brokers) == 0 {
		fmt.Fprintln(os.Stderr, "bench: no broker: set KRETRY_BROKERS (`make kafka-up` prints it) or pass -brokers")
		return 2
	}
	for _, r := range []struct {
		flag string
		n    int
	}{{"-b2-rounds", rf.b2Rounds}, {"-b3-rounds", rf.b3Rounds}, {"-eos-rounds", rf.eosRounds}} {
		if r.n < 1 {
			fmt.Fprintf(os.Stderr, "bench: %s %d: want at least 1 round\n", r.flag, r.n)
			return 2
		}
	}
	rf.only = map[string]bool{}
	for _, b := range strings.Split(only, ",") {
		rf.only[strings.ToUpper(strings.TrimSpace(b))] = true
	}
	for _, s := range strings.Split(b4, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: -b4-records %q: want a comma-separated list of positive counts\n", b4)
			return 2
		}
		rf.b4Records = append(rf.b4Records, n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, rf); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, rf runFlags) error {
	started := time.Now()
	prefix := fmt.Sprintf("kretry-bench-%d", started.Unix())
	adm, err := newAdmin(rf.brokers, prefix)
	if err != nil {
		return err
	}
	defer adm.close()
	if !rf.keep {
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := adm.cleanup(cctx); err != nil {
				logf("cleanup: %v", err)
			}
		}()
	}
	if rf.profileDir != "" {
		if err := os.MkdirAll(rf.profileDir, 0o755); err != nil {
			return err
		}
	}

	rep := &bench.Report{Title: "kretry benchmarks"}
	rep.Preamble = preamble(ctx, adm, rf, started)
	b := &benches{rf: rf, adm: adm, rep: rep}

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"B1", b.b1}, {"B2", b.b2}, {"EOS", b.eos}, {"B3", b.b3}, {"B4", b.b4}, {"B5", b.b5}, {"REPLAY", b.replay},
	}
	for _, s := range steps {
		if !rf.only[s.name] {
			continue
		}
		t0 := time.Now()
		logf("%s: start", s.name)
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		logf("%s: done in %s", s.name, time.Since(t0).Round(time.Second))
		if !rf.keep {
			// Each benchmark finds the broker as the first one did, not
			// carrying the topics and records of the ones before it.
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := adm.cleanup(cctx)
			cancel()
			if err != nil {
				logf("cleanup after %s: %v", s.name, err)
			}
		}
	}
	rep.Sections = append(rep.Sections, methodSection(rf))
	rep.Preamble = append(rep.Preamble, fmt.Sprintf("- Wall time of the whole run: %s", time.Since(started).Round(time.Second)))

	md := rep.Markdown()
	fmt.Print(md)
	if rf.out != "" {
		if err := os.WriteFile(rf.out, []byte(md), 0o644); err != nil {
			return err
		}
		logf("wrote %s", rf.out)
	}
	fmt.Println()
	return rep.WriteSummary(os.Stdout)
}

func preamble(ctx context.Context, adm *admin, rf runFlags, started time.Time) []string {
	kafka := bench.LocalKafkaVersion(ctx)
	guess := ""
	if vs, err := adm.adm.ApiVersions(ctx); err == nil {
		for _, v := range vs.Sorted() {
			if v.Err == nil {
				guess = v.VersionGuess()
				break
			}
		}
	}
	switch {
	case kafka == "" && rf.kafkaVer != "":
		kafka = "Apache Kafka " + rf.kafkaVer
	case kafka != "":
		kafka = "Apache Kafka " + kafka
	default:
		kafka = "unknown"
	}
	if guess != "" {
		kafka += " (ApiVersions: " + guess + ")"
	}
	return []string{
		fmt.Sprintf("Generated by `%s` on %s.", rf.command, started.UTC().Format("2006-01-02 15:04 MST")),
		"",
		"- Machine: " + bench.ReadMachine().String(),
		"- Go: " + runtime.Version(),
		"- franz-go: " + bench.ModuleVersion("github.com/twmb/franz-go"),
		"- Kafka: " + kafka + ", one KRaft node on 127.0.0.1, replication factor 1",
		fmt.Sprintf("- Records: %d B values, no key, %d partitions per topic", rf.valueBytes, rf.partitions),
	}
}

// benches runs the benchmarks of one run and adds their sections to rep.
type benches struct {
	rf  runFlags
	adm *admin
	rep *bench.Report
}

func (b *benches) childArgs(topic, group string, n int, extra ...string) []string {
	return append([]string{
		"-brokers", strings.Join(b.rf.brokers, ","),
		"-topic", topic, "-group", group, "-n", strconv.Itoa(n),
		"-partitions", strconv.Itoa(b.rf.partitions),
		"-timeout", b.rf.childTimout.String(),
	}, extra...)
}

func (b *benches) profileArgs(name string) []string {
	if b.rf.profileDir == "" {
		return nil
	}
	return []string{
		"-cpuprofile", filepath.Join(b.rf.profileDir, name+".cpu.pprof"),
		"-memprofile", filepath.Join(b.rf.profileDir, name+".alloc.pprof"),
	}
}

// createLadderTopics creates main, its tier topic for delay, and its DLQ.
func (b *benches) createLadderTopics(ctx context.Context, topic string, delay time.Duration, extra ...string) error {
	topics := append([]string{topic, tierTopic(topic, delay), topic + ".dlq"}, extra...)
	return b.adm.createTopics(ctx, int32(b.rf.partitions), topics...)
}

func (b *benches) fill(ctx context.Context, topic string, n int, headers func(int, int32) []kgo.RecordHeader) error {
	// Records parked in a tier are compressed as the consumer's forwards are.
	snappy := headers != nil
	d, err := fill(ctx, b.rf.brokers, fillSpec{topic: topic, n: n, valueBytes: b.rf.valueBytes, partitions: int32(b.rf.partitions), headers: headers, snappy: snappy})
	if err != nil {
		return err
	}
	logf("filled %s with %d records in %s (%.0f records/s)", topic, n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	return nil
}

// b1 is the happy path: kretry with a no-op handler against a plain franz-go
// group consumer, alternating, over one pre-filled topic.
func (b *benches) b1(ctx context.Context) error {
	rf := b.rf
	topic := b.adm.prefix + "-b1"
	if err := b.createLadderTopics(ctx, topic, time.Second); err != nil {
		return err
	}
	if err := b.fill(ctx, topic, rf.b1Records, nil); err != nil {
		return err
	}
	t := &bench.Table{Header: []string{"round", "raw franz-go records/s", "kretry records/s", "kretry/raw", "raw CPU s per 1M", "kretry CPU s per 1M", "raw peak RSS MiB", "kretry peak RSS MiB"}}
	var ratios, rawRates, kRates, rawCPU, kCPU []float64
	for round := 1; round <= rf.b1Rounds; round++ {
		sides := []string{"raw", "kretry"}
		if round%2 == 0 {
			sides = []string{"kretry", "raw"}
		}
		res := map[string]result{}
		for _, side := range sides {
			group := b.adm.group(fmt.Sprintf("b1-%s-r%d", side, round))
			var prof []string
			if side == "kretry" {
				prof = append(prof, "-relay="+strconv.FormatBool(rf.b1Relay))
			}
			if round == 1 {
				prof = append(prof, b.profileArgs("b1-"+side)...)
			}
			r, err := runChild(ctx, "b1-"+side, b.childArgs(topic, group, rf.b1Records, prof...)...)
			if err != nil {
				return err
			}
			logf("B1 round %d %s: %.0f records/s, %.2f CPU s per 1M records", round, side, r.rate(), r.cpuPerMillion())
			res[side] = r
		}
		raw, k := res["raw"], res["kretry"]
		ratio := k.rate() / raw.rate()
		ratios = append(ratios, ratio)
		rawRates, kRates = append(rawRates, raw.rate()), append(kRates, k.rate())
		rawCPU, kCPU = append(rawCPU, raw.cpuPerMillion()), append(kCPU, k.cpuPerMillion())
		t.Add(round, f0(raw.rate()), f0(k.rate()), f3(ratio), f2(raw.cpuPerMillion()), f2(k.cpuPerMillion()), mib(raw.PeakRSS), mib(k.PeakRSS))
	}
	med := bench.Median(ratios)
	t.Add("median", f0(bench.Median(rawRates)), f0(bench.Median(kRates)), f3(med), f2(bench.Median(rawCPU)), f2(bench.Median(kCPU)), "", "")
	b.rep.Sections = append(b.rep.Sections, bench.Section{
		Title: "B1 happy path: kretry with a no-op handler vs raw franz-go",
		Text: []string{fmt.Sprintf("%s records of %d B over %d partitions, consumed from the start by a fresh group each run; "+
			"the two sides alternate (which goes first alternates too), %d rounds. Goal: median kretry/raw ≥ 0.99. "+
			"**Result: %s** (%s).", commas(rf.b1Records), rf.valueBytes, rf.partitions, rf.b1Rounds, f3(med), verdict(med >= 0.99))},
		Table: t,
	})
	b.rep.Summary = append(b.rep.Summary, fmt.Sprintf("B1 ratio=%s", f3(med)))
	return nil
}

// b2 is the retry path: every record fails once and succeeds when re-fed.
// Each round also runs the same path by hand twice (with kretry's headers and
// with one byte of header) for the context section that follows B2's.
func (b *benches) b2(ctx context.Context) error {
	rf := b.rf
	t := &bench.Table{Header: []string{"round", "raw pipe records/s", "kretry records/s", "kretry/raw", "kretry window s", "re-feed lateness p50/p99 ms", "raw CPU s per 1M", "kretry CPU s per 1M"}}
	ct := &bench.Table{Header: []string{"round", "raw pipe records/s", "3 hops, 1 B header records/s", "3 hops, 1 B header / pipe", "3 hops, kretry headers records/s", "3 hops, kretry headers / pipe", "kretry records/s", "kretry / 3 hops, kretry headers", "CPU s per 1M: pipe / 1 B header / kretry headers / kretry"}}
	var ratios, ratios3, ratiosBare, ratiosHeaders, rawRates, kRates, raw3Rates, bareRates, cpuRatios []float64
	headerBytes := 0 // of kretry's headers on a raw 3-hop tier record
	notes := map[string]bool{}
	for round := 1; round <= rf.b2Rounds; round++ {
		topic := fmt.Sprintf("%s-b2-r%d", b.adm.prefix, round)
		if err := b.createLadderTopics(ctx, topic, rf.b2Delay, topic+".pipe"); err != nil {
			return err
		}
		if err := b.fill(ctx, topic, rf.b2Records, nil); err != nil {
			return err
		}
		// The raw pipe only reads the topic, so it goes first; kretry then
		// re-feeds into the same topic.
		capArg := []string{"-cap", rf.b2Cap.String()}
		rawArgs := capArg
		if round == 1 {
			rawArgs = append(slices.Clone(capArg), b.profileArgs("b2-raw")...)
		}
		raw, err := runChild(ctx, "b2-raw", b.childArgs(topic, b.adm.group(fmt.Sprintf("b2-raw-r%d", round)), rf.b2Records, rawArgs...)...)
		if err != nil {
			return err
		}
		logf("B2 round %d raw pipe: %.0f records/s%s", round, raw.rate(), cappedNote(raw, rf.b2Records))
		var prof []string
		if round == 1 {
			prof = b.profileArgs("b2-kretry")
		}
		k, err := runChild(ctx, "retry-kretry", b.childArgs(topic, b.adm.group(fmt.Sprintf("b2-kretry-r%d", round)), rf.b2Records,
			append(append([]string{"-delay", rf.b2Delay.String(), "-late-every", strconv.Itoa(b2LateEvery)}, capArg...), prof...)...)...)
		if err != nil {
			return err
		}
		logf("B2 round %d kretry: %.0f records/s%s", round, k.rate(), cappedNote(k, rf.b2Records))
		if k.Note != "" {
			notes[k.Note] = true
		}
		// The same path by hand, on topics of its own (it re-feeds too).
		var hops [2]result
		for i, mode := range []string{"b2-raw3", "b2-raw3-bare"} {
			topic3 := topic + "-" + strings.TrimPrefix(mode, "b2-")
			if err := b.createLadderTopics(ctx, topic3, rf.b2Delay); err != nil {
				return err
			}
			if err := b.fill(ctx, topic3, rf.b2Records, nil); err != nil {
				return err
			}
			group := b.adm.group(fmt.Sprintf("%s-r%d", mode, round))
			if mode == "b2-raw3" && headerBytes == 0 {
				for _, h := range contractHeaders(group, topic3, rf.b2Delay) { // as the child writes them
					headerBytes += len(h.Key) + len(h.Value)
				}
			}
			args := append([]string{"-delay", rf.b2Delay.String()}, capArg...)
			if round == 1 {
				args = append(args, b.profileArgs(mode)...)
			}
			hops[i], err = runChild(ctx, mode, b.childArgs(topic3, group, rf.b2Records, args...)...)
			if err != nil {
				return err
			}
			logf("B2 round %d %s: %.0f records/s%s", round, mode, hops[i].rate(), cappedNote(hops[i], rf.b2Records))
		}
		raw3, bare := hops[0], hops[1]
		ratio := k.rate() / raw.rate()
		ratio3 := k.rate() / raw3.rate()
		ratios, ratios3 = append(ratios, ratio), append(ratios3, ratio3)
		cpuRatios = append(cpuRatios, k.cpuPerMillion()/raw3.cpuPerMillion())
		ratiosBare, ratiosHeaders = append(ratiosBare, bare.rate()/raw.rate()), append(ratiosHeaders, raw3.rate()/raw.rate())
		rawRates, kRates = append(rawRates, raw.rate()), append(kRates, k.rate())
		raw3Rates, bareRates = append(raw3Rates, raw3.rate()), append(bareRates, bare.rate())
		late := ""
		if k.Lateness != nil {
			late = f0(k.Lateness.P50) + " / " + f0(k.Lateness.P99)
		}
		kRate := f0(k.rate())
		if k.Capped {
			kRate += fmt.Sprintf(" (capped: %d of %d)", k.Records, rf.b2Records)
			notes[fmt.Sprintf("A side marked capped hit the %s cap: its rate is the records it finished over its window.", rf.b2Cap)] = true
		}
		t.Add(round, f0(raw.rate()), kRate, f3(ratio), f2(k.Seconds), late, f2(raw.cpuPerMillion()), f2(k.cpuPerMillion()))
		ct.Add(round, f0(raw.rate()), f0(bare.rate()), f3(bare.rate()/raw.rate()), f0(raw3.rate()), f3(raw3.rate()/raw.rate()), f0(k.rate()), f3(ratio3),
			strings.Join([]string{f2(raw.cpuPerMillion()), f2(bare.cpuPerMillion()), f2(raw3.cpuPerMillion()), f2(k.cpuPerMillion())}, " / "))
	}
	med := bench.Median(ratios)
	floor, cpu := bench.Median(ratios3), bench.Median(cpuRatios)
	t.Add("median", f0(bench.Median(rawRates)), f0(bench.Median(kRates)), f3(med), "", "", "", "")
	ct.Add("median", f0(bench.Median(rawRates)), f0(bench.Median(bareRates)), f3(bench.Median(ratiosBare)), f0(bench.Median(raw3Rates)),
		f3(bench.Median(ratiosHeaders)), f0(bench.Median(kRates)), f3(bench.Median(ratios3)), "kretry / kretry headers: "+f3(cpu))
	b.rep.Sections = append(b.rep.Sections, bench.Section{
		Title: "B2 retry path: fail once, succeed when re-fed, vs a raw consume→produce pipe",
		Text: []string{fmt.Sprintf("%s records of %d B over %d partitions, a fresh topic each round. kretry: the handler fails every first delivery; "+
			"the record goes to a %s tier, the in-process relay re-feeds it to the main topic when due, and the handler succeeds; "+
			"records/s = records / (first handler call → last success), the tier's short delay included (the hand path of the next section has none; "+
			"B3 measures the waits). The handler tells a re-fed record by its headers "+
			"(the topic is filled without any), as the hand path of the next section does, and reads the re-feed lateness of every %dth "+
			"re-fed record of a partition, so that kretry's CPU carries little bookkeeping the hand path has not. Raw: a plain franz-go group consumer that "+
			"produces each partition's batch to another topic (acks=all, idempotent) and marks it once acknowledged; records/s = records / "+
			"(first record → last acknowledged batch). Goal: kretry/raw ≥ 0.5. **Result: %s** (%s). The next section shows where the gap comes from.",
			commas(rf.b2Records), rf.valueBytes, rf.partitions, rf.b2Delay, b2LateEvery, f3(med), verdict(med >= 0.5))},
		Table: t,
		Notes: sortedKeys(notes),
	}, bench.Section{
		Title: "B2 context: the retry path by hand with plain franz-go",
		Text: []string{"Each round of B2 also runs the path itself, written by hand with plain franz-go on topics of its own, twice: " +
			"a group consumer produces each record of the main topic to the tier topic, a second group consumer produces each tier record " +
			"straight back to the main topic (no delay, no checks), and the first counts the records that come back; each batch is marked " +
			"once its produces are acknowledged (acks=all, idempotent), as in the pipe. **3 hops, 1 B header**: the tier record carries one " +
			fmt.Sprintf("header of one byte, so this is what the three hops cost on their own. **3 hops, kretry headers**: it carries the 14 headers of "+
				"kretry's header contract (%d B of keys and values here, next to a %d B value), built once; this is what any retry layer must at least do "+
				"per record under that contract, so kretry / 3 hops says how close kretry comes to that floor. "+
				"Summary lines: **B2floor** is the median of kretry / 3 hops with kretry headers (records/s; goal ≥ 0.95), **B2cpu** the median "+
				"per round of kretry's CPU seconds per retried record ÷ those of 3 hops with kretry headers (goal ≤ 1.2). Each side's CPU is the "+
				"user+system time (getrusage RUSAGE_SELF) of its own child process, which runs all its clients (kretry: the consumer and its "+
				"in-process relay; by hand: both group consumers and their producers), over its records/s window, divided by the records it finished.", headerBytes, rf.valueBytes),
			fmt.Sprintf("**Result: B2floor %s** (%s), **B2cpu %s** (%s).", f3(floor), verdict(floor >= 0.95), f3(cpu), verdict(cpu <= 1.2))},
		Table: ct,
		Notes: []string{"Per record, the pipe consumes once and produces once; the retry path consumes three times " +
			"(the first delivery, the tier record in the relay, the re-fed record) and produces twice (the forward and the re-feed), " +
			"and the broker on the same cores does the matching appends and fetches. On a machine where the cores are the limit, " +
			"that alone puts the path near 0.4 of the pipe at equal cost per operation, before any header."},
	})
	b.rep.Summary = append(b.rep.Summary, fmt.Sprintf("B2 ratio=%s", f3(med)),
		fmt.Sprintf("B2floor ratio=%s", f3(floor)),
		fmt.Sprintf("B2cpu ratio=%s", f3(cpu)))
	return nil
}

// b2LateEvery is B2's -late-every: the handler reads the lateness of one
// re-fed record in so many of a partition (B3 reads every one).
const b2LateEvery = 16

// b4 measures the peak RSS of a standalone relay holding a backlog in a 10m tier.
func (b *benches) b4(ctx context.Context) error {
	rf := b.rf
	const delay = 10 * time.Minute
	t := &bench.Table{Header: []string{"records waiting", "tier bytes MiB", "relay peak RSS MiB", "relay RSS at end MiB", "paused partitions", "re-fed (must be 0)"}}
	var peaks []float64
	for i, n := range rf.b4Records {
		topic := fmt.Sprintf("%s-b4-%d-%d", b.adm.prefix, i+1, n)
		tier := tierTopic(topic, delay)
		if err := b.createLadderTopics(ctx, topic, delay); err != nil {
			return err
		}
		group := b.adm.group(fmt.Sprintf("b4-%d-%d", i+1, n))
		headers := tierHeaders(topic, group, delay, time.Now())
		if err := b.fill(ctx, tier, n, headers); err != nil {
			return err
		}
		m, err := b.runRelay(ctx, topic, group, delay)
		if err != nil {
			return err
		}
		refed, err := b.adm.endOffsets(ctx, topic)
		if err != nil {
			return err
		}
		size, _ := b.adm.topicBytes(ctx, tier)
		peaks = append(peaks, float64(m.peak))
		t.Add(commas(n), f0(float64(size)/(1<<20)), mib(m.peak), mib(m.rss), m.paused, refed)
		logf("B4 %d waiting: relay peak RSS %s MiB", n, mib(m.peak))
	}
	worst := slices.Max(peaks)
	flat := slices.Max(peaks) <= 1.25*slices.Min(peaks)+16<<20
	b.rep.Sections = append(b.rep.Sections, bench.Section{
		Title: "B4 parked memory: a standalone relay over a 10m tier",
		Text: []string{fmt.Sprintf("The tier topic is filled directly with records carrying kretry headers due in %s; a relay (relay.Relay "+
			"in a process of its own) joins, finds every head not due, pauses all %d partitions, and runs %s more; "+
			"the parent then reads the child's peak RSS (VmHWM in /proc/PID/status). Goal: ≤ 32 MiB and flat. "+
			"**Result: %s MiB at most** (%s; %s).", delay, rf.partitions, rf.b4Hold, mib(int64(worst)), verdict(worst <= 32<<20), flatWord(flat))},
		Table: t,
	})
	b.rep.Summary = append(b.rep.Summary, fmt.Sprintf("B4 rss_mib=%s", mib(int64(worst))))
	return nil
}

func flatWord(flat bool) string {
	if flat {
		return "flat: the 10× larger backlog costs no more than noise"
	}
	return "NOT flat: grows with the backlog"
}

type relayMem struct {
	peak, rss int64
	paused    int
}

// runRelay starts the relay child and waits until it reports every partition
// paused, then b4Hold more, then reads its peak RSS and stops it.
func (b *benches) runRelay(ctx context.Context, topic, group string, delay time.Duration) (relayMem, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := []string{"-delay", delay.String()}
	if b.rf.b4Trace {
		args = append(args, "-memtrace")
		if b.rf.profileDir != "" {
			args = append(args, "-heapprofile", filepath.Join(b.rf.profileDir, topic+".heap.pprof"))
		}
	}
	s, err := spawn(ctx, "relay", b.childArgs(topic, group, 0, args...)...)
	if err != nil {
		return relayMem{}, err
	}
	var m relayMem
	timeout := time.After(b.rf.childTimout)
	var hold <-chan time.Time
	for hold == nil {
		select {
		case line, ok := <-s.lines:
			if !ok {
				o := <-s.result
				return m, fmt.Errorf("relay exited before pausing every partition: %v", o.err)
			}
			if v, ok := strings.CutPrefix(line, "paused="); ok {
				m.paused, _ = strconv.Atoi(v)
				if m.paused >= b.rf.partitions {
					hold = time.After(b.rf.b4Hold)
				}
			}
		case <-timeout:
			return m, fmt.Errorf("the relay paused %d of %d partitions in %s", m.paused, b.rf.partitions, b.rf.childTimout)
		}
	}
	go func() {
		for line := range s.lines {
			if v, ok := strings.CutPrefix(line, "paused="); ok {
				_ = v
			}
		}
	}()
	<-hold
	pid := s.cmd.Process.Pid
	if m.peak, err = bench.PeakRSS(pid); err != nil {
		return m, err
	}
	m.rss, _ = bench.RSS(pid)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	o := <-s.result
	if o.err != nil {
		return m, o.err
	}
	return m, nil
}

func methodSection(rf runFlags) bench.Section {
	return bench.Section{
		Title: "How these figures are measured",
		Text: []string{
			"- Every consumer side runs in a child process of its own (the bench binary re-executed), so CPU time and peak RSS are that side's alone. " +
				"CPU seconds are the child's user+system time (getrusage) over the same window as the records/s.",
			"- A throughput window runs from the first record the handler sees to the last one counted, so group joins and client start-up are left out of both sides alike.",
			"- The broker, the producer that fills the topics, and both sides share this machine's cores; ratios measured in one run are the figures to trust, absolute rates vary with the machine and its load.",
			"- The summary lines at the end are for scripts: B1 and B2 are median kretry/raw ratios, B1eos and B2eos median exactly-once/at-least-once ratios of B1's and B2's kretry sides, B2floor kretry / 3 hops with kretry headers (records/s) and B2cpu the ratio of their CPU per retried record (see B2 context), B3 the median over the burst runs of their re-feed lateness (re-fed record's timestamp − kretry-due-at), B4 the largest peak RSS of the relay, B5 the share of the offered records dead-lettered during a dependency outage with and without circuit_breaker.",
		},
	}
}

func tierTopic(topic string, delay time.Duration) string {
	return topic + ".retry-" + formatDelay(delay)
}

func verdict(ok bool) string {
	if ok {
		return "goal met"
	}
	return "goal NOT met"
}

func f0(v float64) string { return fmtF(v, 0) }
func f1(v float64) string { return fmtF(v, 1) }
func f2(v float64) string { return fmtF(v, 2) }
func f3(v float64) string { return fmtF(v, 3) }

func fmtF(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func mib(b int64) string { return fmtF(float64(b)/(1<<20), 1) }

func commas(n int) string {
	s := strconv.Itoa(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func cappedNote(r result, n int) string {
	if !r.Capped {
		return ""
	}
	return fmt.Sprintf(" (capped: %d of %d records)", r.Records, n)
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, "Note: "+k)
	}
	slices.Sort(keys)
	return keys
}

// bucketText renders a quantile read from histogram buckets (see
// histogramLatency): "≤ bound", or "> bound" past the last bucket.
func bucketText(v float64) string {
	if v < 0 {
		return "> " + f1(-v)
	}
	return "≤ " + f1(v)
}
