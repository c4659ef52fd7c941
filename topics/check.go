package topics

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kretry/kretry/ladder"
)

// MissingTopicsError is returned by Check (and so by a consumer's or a
// relay's Run) when topics of the ladders do not exist.
type MissingTopicsError struct {
	Main   []string // main topics that do not exist
	Ladder []string // tier and DLQ topics that do not exist
}

func (e *MissingTopicsError) Error() string {
	var parts []string
	if len(e.Main) > 0 {
		parts = append(parts, notExist("main topic", e.Main)+": create it, then its retry and DLQ topics")
	}
	if len(e.Ladder) > 0 {
		parts = append(parts, notExist("topic", e.Ladder)+": create the retry and DLQ topics (EnsureTopics creates them)")
	}
	return strings.Join(parts, "; ")
}

// notExist says that topics do not exist: "topic a does not exist" or
// "topics a, b do not exist".
func notExist(kind string, topics []string) string {
	if len(topics) == 1 {
		return kind + " " + topics[0] + " does not exist"
	}
	return kind + "s " + strings.Join(topics, ", ") + " do not exist"
}

// Check checks that the main, tier and DLQ topics of every ladder
// exist and returns the partition count of each. Topics that do not exist
// make a *MissingTopicsError naming all of them.
func Check(ctx context.Context, adm *kadm.Client, ladders []*ladder.Ladder) (map[string]int32, error) {
	var names []string
	mains := map[string]bool{}
	for _, l := range ladders {
		mains[l.Topic()] = true
		names = append(names, l.Topic())
		for _, step := range l.Steps() {
			names = append(names, step.Topic)
		}
		names = append(names, l.DLQTopics()...)
	}
	parts, gone, err := Partitions(ctx, adm, names...)
	if err != nil {
		return nil, err
	}
	if len(gone) > 0 {
		var missing MissingTopicsError
		for _, name := range gone {
			if mains[name] {
				missing.Main = append(missing.Main, name)
			} else {
				missing.Ladder = append(missing.Ladder, name)
			}
		}
		return nil, &missing
	}
	return parts, nil
}

// Partitions returns the partition count of each named topic that exists
// and the names of those that do not, in the order given, each once. Any
// other failure to read a topic is an error naming it. It asks the brokers,
// not the client's metadata cache, so a topic created just before is seen.
func Partitions(ctx context.Context, adm *kadm.Client, names ...string) (counts map[string]int32, missing []string, err error) {
	var uniq []string
	for _, name := range names {
		if !slices.Contains(uniq, name) {
			uniq = append(uniq, name)
		}
	}
	details, err := listTopics(ctx, adm, uniq)
	if err != nil {
		return nil, nil, err
	}
	counts = make(map[string]int32, len(details))
	for _, name := range uniq {
		d, ok := details[name]
		switch {
		case !ok:
			missing = append(missing, name)
		case len(d.Partitions) == 0:
			return nil, nil, fmt.Errorf("topic %s has no partitions", name)
		default:
			counts[name] = int32(len(d.Partitions))
		}
	}
	return counts, missing, nil
}
