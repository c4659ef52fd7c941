package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/kretry/kretry/config"
	"github.com/kretry/kretry/dlq"
	"github.com/kretry/kretry/internal/dlqview"
	"github.com/kretry/kretry/internal/safetext"
)

const dlqFiltersHelp = `Filters (all optional; a record must match every one given):
  --since, --until T     dead-lettered at or after / before T: a time
                         (2026-11-25T10:00:00Z, 2026-11-25 10:00, 2026-11-25; UTC
                         unless a zone is given) or a duration ago (90s, 30m, 2h, 3d)
  --reason R,...         exhausted, permanent, panic, expired, too-large,
                         invalid-metadata, or unknown (a record without kretry
                         headers); a Spring dead letter is permanent when its
                         exception is one Spring does not retry, else exhausted
  --error-contains S     the error text contains S, ignoring case
  --key K                the key is exactly K
  --key-hex HEX          the key is exactly these bytes (a binary key, as ls shows
                         it: 0xff00)
  --original-topic T     first delivered on topic T
  --failed-group G       failed by consumer group G (the record's kretry-group,
                         or Spring's kafka_dlt-original-consumer-group)
  --partition P,...      only these DLQ partitions
  --offsets FROM-TO      only these DLQ offsets (both included; also FROM-, -TO, N)
  --limit N              at most N records`

func newDLQCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, count and replay the records of a DLQ topic",
		Long: `kretry dlq reads a dead-letter topic: ls lists its records, show prints one in
full, stats counts them, replay re-produces them to their original topic.

The DLQ is --topic, or the DLQ of the config's topic when the config has one
topic. A dead-letter topic written by Spring Kafka (its kafka_dlt-* headers, or
those of its retryable topics) is read as well as kretry's own. A read covers the records there when it starts: it always ends. Nothing
here deletes or alters a DLQ record.

` + dlqFiltersHelp,
	}
	cmd.AddCommand(newDLQLsCommand(a), newDLQShowCommand(a), newDLQStatsCommand(a), newDLQReplayCommand(a))
	return cmd
}

// dlqFlags are the flags every dlq command shares.
type dlqFlags struct {
	topic         string
	since, until  string
	reasons       []string
	errorContains string
	key           string
	keyHex        string
	originalTopic string
	failedGroup   string
	partitions    []int32
	offsets       string
	limit         int
}

func (d *dlqFlags) addTopic(fs *pflag.FlagSet) {
	fs.StringVar(&d.topic, "topic", "", "the DLQ topic, or a DLQ route's topic (dlq_routes) (default: the DLQ of the config's only topic)")
}

func (d *dlqFlags) addFilters(fs *pflag.FlagSet) {
	fs.StringVar(&d.since, "since", "", "records dead-lettered at or after this time or duration ago (2026-11-25T10:00:00Z, 2h, 3d)")
	fs.StringVar(&d.until, "until", "", "records dead-lettered before this time or duration ago")
	fs.StringSliceVar(&d.reasons, "reason", nil, "records with these reasons: "+reasonList())
	fs.StringVar(&d.errorContains, "error-contains", "", "records whose error contains this text, ignoring case")
	fs.StringVar(&d.key, "key", "", "records with exactly this key")
	fs.StringVar(&d.keyHex, "key-hex", "", "records with exactly this binary key, in hex (0xff00, as ls shows it)")
	fs.StringVar(&d.originalTopic, "original-topic", "", "records first delivered on this topic")
	fs.StringVar(&d.failedGroup, "failed-group", "", "records failed by this consumer group (their kretry-group, or Spring's kafka_dlt-original-consumer-group)")
	fs.Int32SliceVar(&d.partitions, "partition", nil, "only these DLQ partitions")
	fs.Lookup("partition").DefValue = "" // all, not "[]"
	fs.StringVar(&d.offsets, "offsets", "", "only these DLQ offsets: FROM-TO (both included), FROM-, -TO or N")
	fs.IntVar(&d.limit, "limit", 0, "at most this many records (0: all)")
}

// reasonList is dlq.Reasons for help text.
func reasonList() string {
	var names []string
	for _, r := range dlq.Reasons() {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}

// filter checks the filter flags; a bad one is a usage error that says what
// is allowed.
func (d *dlqFlags) filter(cmd *cobra.Command) (dlq.Filter, error) {
	var f dlq.Filter
	if err := emptyFlags(cmd); err != nil {
		return f, err
	}
	var err error
	if d.since != "" {
		if f.Since, err = dlq.ParseTimeBound(d.since); err != nil {
			return f, usagef("--since %v", err)
		}
	}
	if d.until != "" {
		if f.Until, err = dlq.ParseTimeBound(d.until); err != nil {
			return f, usagef("--until %v", err)
		}
	}
	for _, r := range d.reasons {
		reason, err := dlq.ParseReason(r)
		if err != nil {
			return f, usagef("--reason %v", err)
		}
		f.Reasons = append(f.Reasons, reason)
	}
	if d.offsets != "" {
		if f.Offsets, err = dlq.ParseOffsets(d.offsets); err != nil {
			return f, usagef("--offsets %v", err)
		}
	}
	for _, p := range d.partitions {
		if p < 0 {
			return f, usagef("--partition %d: want a partition number, 0 or more", p)
		}
	}
	if d.limit < 0 {
		return f, usagef("--limit %d: want a number of records, 0 (all) or more", d.limit)
	}
	f.ErrorContains, f.Key, f.OriginalTopic = d.errorContains, d.key, d.originalTopic
	if d.keyHex != "" {
		if d.key != "" {
			return f, usagef("--key and --key-hex both name a key: give one")
		}
		if f.Key, err = dlq.ParseKeyHex(d.keyHex); err != nil {
			return f, usagef("--key-hex %v", err)
		}
	}
	f.Partitions, f.Limit, f.FailedGroup = d.partitions, d.limit, d.failedGroup
	if err := f.CheckAt(time.Now()); err != nil {
		return f, usagef("--since %s is not before --until %s: no record can match; swap them, or widen the window", d.since, d.until)
	}
	return f, nil
}

// emptyFlags refuses a flag given with an empty value where empty means
// nothing: `--topic ""` would read another topic than the one meant, and
// an empty filter would select every record.
func emptyFlags(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if err != nil {
			return
		}
		switch fl.Value.Type() {
		case "string":
			if strings.TrimSpace(fl.Value.String()) == "" {
				err = usagef("--%s is empty: give it a value, or leave it out", fl.Name)
			}
		case "stringSlice":
			sv, ok := fl.Value.(pflag.SliceValue)
			if !ok {
				return
			}
			vals := sv.GetSlice()
			if len(vals) == 0 || slices.ContainsFunc(vals, func(v string) bool { return strings.TrimSpace(v) == "" }) {
				err = usagef("--%s has an empty value: give one or more values separated by commas, or leave it out", fl.Name)
			}
		}
	})
	return err
}

// openDLQ loads the config, resolves the DLQ topic, checks that the brokers
// answer and returns a Reader of the DLQ, with the config (nil when the DLQ
// was named with --topic and --brokers, without a config file).
func (a *app) openDLQ(cmd *cobra.Command, d *dlqFlags) (*dlq.Reader, *config.Config, error) {
	if err := emptyFlags(cmd); err != nil {
		return nil, nil, err
	}
	cfg, fromFile, err := a.dlqConfig(cmd, d)
	if err != nil {
		return nil, nil, err
	}
	topic := d.topic
	if topic == "" {
		switch len(cfg.Topics) {
		case 0:
			return nil, nil, usagef("%s has no topics: name the DLQ with --topic", a.configPath)
		case 1:
			topic = cfg.Topics[0].DLQ
		default:
			var dlqs []string
			for _, t := range cfg.Topics {
				dlqs = append(dlqs, t.DLQ)
			}
			return nil, nil, usagef("%s has %d topics: name the DLQ with --topic, one of %s", a.configPath, len(cfg.Topics), strings.Join(dlqs, ", "))
		}
	}
	// Fail on unreachable brokers or a refused login as every command does.
	cl, err := a.connect(cmd.Context(), cfg)
	if err != nil {
		return nil, nil, err
	}
	cl.Close()
	opts, err := a.clientOpts(cfg)
	if err != nil {
		return nil, nil, err
	}
	r, err := dlq.NewReader(topic, dlq.WithClientOpts(opts...))
	if !fromFile {
		cfg = nil
	}
	return r, cfg, err
}

// dlqConfig loads -c. Without a config file, --topic with --brokers (or
// KRETRY_BROKERS) is enough: the DLQ tools need no ladder. fromFile says
// whether a config file was read.
func (a *app) dlqConfig(cmd *cobra.Command, d *dlqFlags) (cfg *config.Config, fromFile bool, err error) {
	if _, err := os.Stat(a.configPath); errors.Is(err, fs.ErrNotExist) && !cmd.Flags().Changed("config") {
		brokers := a.brokers
		if len(brokers) == 0 {
			for _, b := range strings.Split(os.Getenv(config.EnvBrokers), ",") {
				if b = strings.TrimSpace(b); b != "" {
					brokers = append(brokers, b)
				}
			}
		}
		switch {
		case d.topic == "":
			return nil, false, usagef("no DLQ to read: name it with --topic DLQ and the brokers with --brokers (or %s), "+
				"or give a config file with -c FILE (%s does not exist here)", config.EnvBrokers, a.configPath)
		case len(brokers) == 0:
			return nil, false, usagef("--topic %s needs the brokers: give --brokers HOST:PORT (or %s), or a config file with -c FILE (%s does not exist here)",
				d.topic, config.EnvBrokers, a.configPath)
		}
		return &config.Config{Brokers: brokers}, false, nil
	}
	cfg, err = a.loadConfig()
	return cfg, err == nil, err
}

// unlimitedWidth is the line width of output that goes to a file or a pipe:
// nothing is cut there, so keys and errors stay whole for grep and less.
const unlimitedWidth = 1 << 20

// termWidth is the width of the terminal w writes to: COLUMNS when set, else
// the terminal's; output that is not a terminal is not cut.
func termWidth(w io.Writer) int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if n, _, err := term.GetSize(int(f.Fd())); err == nil && n > 0 {
			return n
		}
		return dlqview.DefaultWidth
	}
	return unlimitedWidth
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newDLQLsCommand(a *app) *cobra.Command {
	var d dlqFlags
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the DLQ's records, one line each (--json: one object each)",
		Long: `ls lists the records of the DLQ, partition by partition in offset order: their
partition/offset, when they were dead-lettered (UTC), key (hex when not
printable), original topic/partition@offset, attempts, reason and error, the
error cut to fit the terminal ($COLUMNS when set; not cut when the output is
not a terminal).

With --json, one JSON object per record with every header, the key and the
value as base64 and, when printable UTF-8, as text.

` + dlqFiltersHelp,
		Example: `  kretry dlq ls -c kretry.yaml --since 2h --reason permanent
  kretry dlq ls --brokers 127.0.0.1:9092 --topic orders.dlq --json --limit 10`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := d.filter(cmd)
			if err != nil {
				return err
			}
			r, _, err := a.openDLQ(cmd, &d)
			if err != nil {
				return err
			}
			defer r.Close()
			n := 0
			var emit func(*dlq.Record) error
			var table *dlqview.Table
			if a.json {
				enc := newJSONEncoder(a.stdout)
				emit = func(rec *dlq.Record) error { return enc.Encode(dlqview.Record(rec)) }
			} else {
				table = dlqview.NewTable(a.stdout, termWidth(a.stdout))
				emit = table.Add
			}
			err = r.Read(cmd.Context(), f, func(rec *dlq.Record) error {
				n++
				return emit(rec)
			})
			if table != nil && n > 0 {
				if ferr := table.Flush(); err == nil {
					err = ferr
				}
			}
			if err != nil {
				return err
			}
			if n == 0 && !a.json {
				fmt.Fprintf(a.stderr, "no records in %s match\n", r.Topic())
			}
			return nil
		},
	}
	d.addTopic(cmd.Flags())
	d.addFilters(cmd.Flags())
	return cmd
}

func newDLQShowCommand(a *app) *cobra.Command {
	var d dlqFlags
	var partition int32
	var offset int64
	cmd := &cobra.Command{
		Use:   "show --partition P --offset O",
		Short: "Print one DLQ record in full",
		Long: `show prints one record of the DLQ in full: where it is, what its kretry headers
say, every header, the key, and the value as indented JSON when it is JSON,
else as text when printable, else as a hex dump. With --json, the object ls
--json prints for it.`,
		Example: `  kretry dlq show -c kretry.yaml --partition 0 --offset 17`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("partition") || !cmd.Flags().Changed("offset") {
				return usagef("show needs --partition P and --offset O (ls lists them as P/O)")
			}
			if partition < 0 || offset < 0 {
				return usagef("--partition and --offset: want numbers, 0 or more")
			}
			r, _, err := a.openDLQ(cmd, &d)
			if err != nil {
				return err
			}
			defer r.Close()
			rec, err := r.Record(cmd.Context(), partition, offset)
			if err != nil {
				return err
			}
			if a.json {
				return newJSONEncoder(a.stdout).Encode(dlqview.Record(rec))
			}
			return dlqview.WriteRecord(a.stdout, rec)
		},
	}
	d.addTopic(cmd.Flags())
	cmd.Flags().Int32Var(&partition, "partition", 0, "the record's DLQ partition")
	cmd.Flags().Int64Var(&offset, "offset", 0, "the record's offset")
	return cmd
}

func newDLQStatsCommand(a *app) *cobra.Command {
	var d dlqFlags
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Count the DLQ's records by reason, original topic, error and hour",
		Long: `stats counts the records of the DLQ by reason, by original topic, by error and
by hour dead-lettered (UTC). Errors are grouped with their numbers and ids
masked: "order 17 not found" and "order 99 not found" count as
"order <n> not found"; UUIDs become <uuid>, hex ids <hex>. With --json, one
JSON object.

` + dlqFiltersHelp,
		Example: `  kretry dlq stats -c kretry.yaml --since 1d`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := d.filter(cmd)
			if err != nil {
				return err
			}
			r, _, err := a.openDLQ(cmd, &d)
			if err != nil {
				return err
			}
			defer r.Close()
			s, err := r.Stats(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.json {
				return newJSONEncoder(a.stdout).Encode(dlqview.Stats(r.Topic(), s))
			}
			return writeStats(a.stdout, r.Topic(), s, f, termWidth(a.stdout))
		},
	}
	d.addTopic(cmd.Flags())
	d.addFilters(cmd.Flags())
	return cmd
}

func writeStats(w io.Writer, topic string, s *dlq.Stats, f dlq.Filter, width int) error {
	if s.Total == 0 {
		msg := fmt.Sprintf("%s: no records match\n", topic)
		if f.Selection() == "all" && len(f.Partitions) == 0 {
			msg = fmt.Sprintf("%s holds no records: nothing was dead-lettered there (or retention removed it all)\n", topic)
		}
		_, err := io.WriteString(w, msg)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d records, dead-lettered %s to %s (UTC)\n", topic, s.Total,
		s.First.Format(time.DateTime), s.Last.Format(time.DateTime))
	if s.ByReason[string(dlq.ReasonUnknown)] == s.Total {
		fmt.Fprintf(&b, "none of them is a kretry dead letter (none carries kretry-reason): %s holds no kretry DLQ records (is it the DLQ of a kretry consumer? kretry names it {topic}.dlq)\n", topic)
	}
	cw := len(strconv.Itoa(s.Total))
	section := func(title string, rows []dlq.Count, blank string) {
		fmt.Fprintf(&b, "\n%s\n", title)
		for _, c := range rows {
			v := safetext.Text(c.Value)
			if v == "" {
				v = blank
			}
			fmt.Fprintf(&b, "  %*d  %s\n", cw, c.Count, cutText(v, width-cw-4))
		}
	}
	section("by reason", s.Reasons(), "-")
	section("by original topic", s.OriginalTopics(), "- (none: not written by kretry)")
	section("by error", s.Errors(), "- (no error)")
	fmt.Fprintf(&b, "\nby hour (UTC)\n")
	for _, h := range s.Hours() {
		fmt.Fprintf(&b, "  %*d  %s\n", cw, h.Count, h.Hour.Format("2006-01-02 15:04"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cutText(s string, n int) string {
	n = max(n, 20)
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// newJSONEncoder writes one JSON object per line, with <, > and & as they
// are and control characters escaped (safetext.JSON).
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(safeJSONWriter{w})
	enc.SetEscapeHTML(false)
	return enc
}

// safeJSONWriter passes each JSON value written through safetext.JSON; a
// json.Encoder writes one whole value per Write.
type safeJSONWriter struct{ w io.Writer }

func (s safeJSONWriter) Write(b []byte) (int, error) {
	if _, err := s.w.Write(safetext.JSON(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}
