package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

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
	add := func(t string) {
		if !slices.Contains(names, t) {
			names = append(names, t)
		}
	}
	for _, l := range ladders {
		mains[l.Topic()] = true
		add(l.Topic())
		for _, step := range l.Steps() {
			add(step.Topic)
		}
		add(l.DLQ())
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("checking topics %s: %w", strings.Join(names, ", "), err)
	}
	var missing MissingTopicsError
	parts := make(map[string]int32, len(names))
	for _, name := range names {
		d, ok := details[name]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			if mains[name] {
				missing.Main = append(missing.Main, name)
			} else {
				missing.Ladder = append(missing.Ladder, name)
			}
		case d.Err != nil:
			return nil, fmt.Errorf("checking topic %s: %w", name, d.Err)
		case len(d.Partitions) == 0:
			return nil, fmt.Errorf("topic %s has no partitions", name)
		default:
			parts[name] = int32(len(d.Partitions))
		}
	}
	if len(missing.Main)+len(missing.Ladder) > 0 {
		return nil, &missing
	}
	return parts, nil
}
