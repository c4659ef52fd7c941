package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Cluster is a throwaway Apache Kafka cluster of scripts/kafka/cluster.sh,
// stopped (and its data removed) by Down, or by the script's watchdog once
// this process exits.
type Cluster struct {
	Brokers []string
	Nodes   int
	script  string
	state   string
}

// StartCluster starts a cluster of nodes nodes (3 or more: replication factor 3,
// min.insync.replicas 2) with the scripts of the repository at root, with the
// broker settings ("key=value") added to every node's.
func StartCluster(ctx context.Context, root string, nodes int, settings ...string) (*Cluster, error) {
	state, err := os.MkdirTemp("", "kretry-chaos-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Nodes: nodes, script: filepath.Join(root, "scripts", "kafka", "cluster.sh"), state: state}
	args := []string{"up", "--nodes", strconv.Itoa(nodes), "--owner", strconv.Itoa(os.Getpid())}
	for _, kv := range settings {
		args = append(args, "--set", kv)
	}
	out, err := c.run(ctx, args...)
	if err != nil {
		os.RemoveAll(state)
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	v, ok := strings.CutPrefix(lines[len(lines)-1], "KRETRY_BROKERS=")
	if !ok {
		c.Down()
		return nil, fmt.Errorf("cluster.sh up printed no KRETRY_BROKERS= line:\n%s", out)
	}
	c.Brokers = strings.Split(v, ",")
	return c, nil
}

func (c *Cluster) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{c.script}, args...)...)
	cmd.Env = append(os.Environ(), "KRETRY_CLUSTER_STATE="+c.state)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cluster.sh %s: %v:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Stop stops node (1..Nodes) with SIGTERM, Kill with SIGKILL; its data stays.
func (c *Cluster) Stop(ctx context.Context, node int) error {
	_, err := c.run(ctx, "stop", strconv.Itoa(node))
	return err
}

// Kill kills node with SIGKILL; its data stays.
func (c *Cluster) Kill(ctx context.Context, node int) error {
	_, err := c.run(ctx, "kill", strconv.Itoa(node))
	return err
}

// Start starts a stopped node again with its data and waits until it answers.
func (c *Cluster) Start(ctx context.Context, node int) error {
	_, err := c.run(ctx, "start", strconv.Itoa(node))
	return err
}

// Down stops every node and removes the cluster's state.
func (c *Cluster) Down() error {
	if c == nil {
		return nil
	}
	_, err := c.run(context.Background(), "down")
	return err
}

// NodeOf returns the node number whose listener is broker (host:port).
func (c *Cluster) NodeOf(broker string) (int, error) {
	for i, b := range c.Brokers {
		if b == broker {
			return i + 1, nil
		}
	}
	return 0, errors.New("no node listens on " + broker)
}
