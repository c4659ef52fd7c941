package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokerInfo is what a broker said about itself when probed.
type BrokerInfo struct {
	Brokers []string // host:port of every broker in the cluster metadata
	Version string   // kversion's guess from ApiVersions, e.g. "v4.4"
}

// Probe checks that seeds answer as Kafka: a TCP connect to each seed, then a
// metadata request (kadm ListBrokers) and ApiVersions. It returns when ctx is
// done at the latest, so a dead address fails fast instead of hanging on
// franz-go's retries.
func Probe(ctx context.Context, seeds []string) (BrokerInfo, error) {
	if len(seeds) == 0 {
		return BrokerInfo{}, errors.New("no seed brokers")
	}
	var d net.Dialer
	reachable := false
	var dialErr error
	for _, s := range seeds {
		c, err := d.DialContext(ctx, "tcp", s)
		if err != nil {
			dialErr = errors.Join(dialErr, err)
			continue
		}
		c.Close()
		reachable = true
	}
	if !reachable {
		return BrokerInfo{}, dialErr
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DialTimeout(3*time.Second))
	if err != nil {
		return BrokerInfo{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	bs, err := adm.ListBrokers(ctx)
	if err != nil {
		return BrokerInfo{}, fmt.Errorf("metadata request: %w", err)
	}
	if len(bs) == 0 {
		return BrokerInfo{}, errors.New("metadata lists no brokers")
	}
	var info BrokerInfo
	for _, b := range bs {
		info.Brokers = append(info.Brokers, net.JoinHostPort(b.Host, fmt.Sprint(b.Port)))
	}

	vs, err := adm.ApiVersions(ctx)
	if err != nil {
		return BrokerInfo{}, fmt.Errorf("api versions: %w", err)
	}
	var guesses []string
	for _, v := range vs.Sorted() {
		if v.Err != nil {
			return BrokerInfo{}, fmt.Errorf("api versions of broker %d: %w", v.NodeID, v.Err)
		}
		g := v.VersionGuess()
		if !slices.Contains(guesses, g) {
			guesses = append(guesses, g)
		}
	}
	info.Version = strings.Join(guesses, ", ")
	return info, nil
}
