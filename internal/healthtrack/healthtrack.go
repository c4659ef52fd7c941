// Package healthtrack keeps what a consumer or a relay knows of its own
// health while it runs (a health.State): its poll loop, its group
// membership and its writes. Every method is safe for concurrent use and
// cheap enough for the paths it is called on.
package healthtrack

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kretry/kretry/health"
)

// Tracker is the health of one component; its zero value is not usable, and
// a nil Tracker tracks nothing (for tests that build a component by hand).
type Tracker struct {
	component, group string

	nFailing atomic.Int32 // len(failing): the fast path of Wrote

	mu          sync.Mutex
	running     bool
	polling     bool
	pollSince   time.Time
	owned       map[string]map[int32]bool // partitions assigned, by topic
	joined      bool
	groupErr    string
	failing     map[partition]time.Time // partitions whose writes fail, since when
	lastFailure string
}

type partition struct {
	topic string
	p     int32
}

// New returns the Tracker of a component ("consumer" or "relay") of group.
func New(component, group string) *Tracker {
	return &Tracker{component: component, group: group}
}

// Start marks the component's Run started: a new session, not joined.
func (t *Tracker) Start() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running, t.polling, t.pollSince = true, false, time.Now()
	t.joined, t.owned, t.groupErr = false, map[string]map[int32]bool{}, ""
	t.failing, t.lastFailure = map[partition]time.Time{}, ""
	t.nFailing.Store(0)
}

// Stop marks Run returned.
func (t *Tracker) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running, t.joined, t.owned = false, false, map[string]map[int32]bool{}
	t.failing = map[partition]time.Time{}
	t.nFailing.Store(0)
}

// Polling marks the poll loop entering (true) or leaving (false) PollRecords.
func (t *Tracker) Polling(in bool) {
	if t == nil {
		return
	}
	now := time.Now()
	t.mu.Lock()
	t.polling, t.pollSince = in, now
	t.mu.Unlock()
}

// Assigned records an assignment: the member has joined, even with nothing
// assigned.
func (t *Tracker) Assigned(_ context.Context, _ *kgo.Client, tps map[string][]int32) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.running {
		return
	}
	t.joined, t.groupErr = true, ""
	for topic, ps := range tps {
		if t.owned[topic] == nil {
			t.owned[topic] = map[int32]bool{}
		}
		for _, p := range ps {
			t.owned[topic][p] = true
		}
	}
}

// Revoked records partitions revoked; the member stays in the group.
func (t *Tracker) Revoked(tps map[string][]int32) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, ps := range tps {
		for _, p := range ps {
			delete(t.owned[topic], p)
			delete(t.failing, partition{topic, p})
		}
	}
	t.nFailing.Store(int32(len(t.failing)))
}

// Lost records the group lost: nothing owned until the next assignment.
func (t *Tracker) Lost() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.joined, t.owned = false, map[string]map[int32]bool{}
	t.failing = map[partition]time.Time{}
	t.nFailing.Store(0)
}

// OnGroupManageError implements kgo.HookGroupManageError: the error that
// lost the group, which kgo reports after OnPartitionsLost.
func (t *Tracker) OnGroupManageError(err error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.joined, t.groupErr = false, err.Error()
}

// Wrote records the outcome of a write for a record of topic's partition
// (a consumer's forward, a relay's re-feed): nil clears the partition's
// failing state, an error starts it unless it has started. Each partition
// counts on its own, so that one stuck partition shows while others write.
func (t *Tracker) Wrote(topic string, p int32, err error) {
	if t == nil {
		return
	}
	if err == nil && t.nFailing.Load() == 0 {
		return // the hot path: nothing was failing
	}
	now := time.Now()
	k := partition{topic, p}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		delete(t.failing, k)
	} else {
		if _, ok := t.failing[k]; !ok {
			t.failing[k] = now
		}
		t.lastFailure = err.Error()
	}
	t.nFailing.Store(int32(len(t.failing)))
}

// State is the component's health.State now.
func (t *Tracker) State() health.State {
	if t == nil {
		return health.State{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, ps := range t.owned {
		n += len(ps)
	}
	var since time.Time // the oldest failure not cleared
	for _, at := range t.failing {
		if since.IsZero() || at.Before(since) {
			since = at
		}
	}
	last := ""
	if !since.IsZero() {
		last = t.lastFailure
	}
	return health.State{
		Component: t.component, Group: t.group,
		Running: t.running, Polling: t.polling, PollSince: t.pollSince,
		Joined: t.joined, Partitions: n, GroupErr: t.groupErr,
		FailingSince: since, LastFailure: last,
	}
}
