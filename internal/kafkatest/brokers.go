package kafkatest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvBrokers names the environment variable with the seed brokers of a running
// broker, comma-separated; `make kafka-up` prints it.
const EnvBrokers = "KRETRY_BROKERS"

// EnvKafkaVersion, if set, names the release of the broker in KRETRY_BROKERS
// (make test sets it for the broker of scripts/kafka/kafka.sh); it is only logged.
const EnvKafkaVersion = "KRETRY_KAFKA_VERSION"

// How long a broker named by KRETRY_BROKERS gets to answer before every test
// that needs it fails.
const probeTimeout = 10 * time.Second

// found is what the first Brokers call of a test binary found; later calls
// reuse it, so one binary starts at most one broker.
var (
	findOnce sync.Once
	found    discovery
	logOnce  sync.Once

	// dockerStdin keeps the dockerkafka process's stdin open for as long as
	// this test binary lives: it stops its container on EOF.
	//lint:ignore U1000 only held, so that the garbage collector does not close it
	dockerStdin io.WriteCloser
)

type discovery struct {
	seeds   []string
	version string // e.g. "4.4.0 (v4.4 by ApiVersions)"
	source  string // where the broker came from
	skip    string // why there is no broker, when there is none
	err     error  // a broker was expected and is broken
}

// Brokers returns seed brokers of a real Apache Kafka broker for an integration
// test: KRETRY_BROKERS if set; else it starts one (java+mvn) for the test binary;
// else testcontainers via a separate module where Docker is healthy; else t.Skip
// — except with CI=true, where it is t.Fatal.
//
// A broker started here runs until the test binary exits, then is stopped and
// its data removed. The first test of a binary to get a broker logs the Kafka
// version it runs against.
func Brokers(t testing.TB) []string {
	t.Helper()
	findOnce.Do(func() { found = find() })
	if found.err != nil {
		t.Fatalf("kafkatest: %v", found.err)
	}
	if found.skip != "" {
		if ci() {
			t.Fatalf("kafkatest: no Kafka broker, and CI=true does not allow skipping integration tests: %s", found.skip)
		}
		t.Skipf("kafkatest: no Kafka broker: %s", found.skip)
	}
	logOnce.Do(func() {
		t.Logf("kafkatest: Apache Kafka %s at %s, from %s",
			found.version, strings.Join(found.seeds, ","), found.source)
	})
	return slices.Clone(found.seeds)
}

func ci() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

func find() discovery {
	if env := strings.TrimSpace(os.Getenv(EnvBrokers)); env != "" {
		return fromEnv(env)
	}

	root, err := repoRoot()
	if err != nil {
		return discovery{skip: fmt.Sprintf("%s is unset and %v", EnvBrokers, err)}
	}

	script := filepath.Join(root, "scripts", "kafka", "kafka.sh")
	check := exec.Command("bash", script, "check")
	out, err := check.CombinedOutput()
	if err == nil {
		return fromScript(script)
	}
	why := fmt.Sprintf("%s is unset; no local broker (%s)", EnvBrokers, strings.TrimSpace(strings.TrimPrefix(string(out), "kafka.sh: ")))

	if err := dockerHealthy(); err != nil {
		return discovery{skip: fmt.Sprintf("%s; no Docker (%v). Run `make kafka-up` and set %s, install Java 17 and Maven, or start Docker", why, err, EnvBrokers)}
	}
	return fromDocker(filepath.Join(root, "internal", "kafkatest", "dockerkafka"))
}

func fromEnv(env string) discovery {
	var seeds []string
	for _, s := range strings.Split(env, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	info, err := Probe(ctx, seeds)
	if err != nil {
		return discovery{err: fmt.Errorf("%s=%s does not answer within %v (%v): start a broker with `make kafka-up` and set %s to the address it prints, or unset %s",
			EnvBrokers, env, probeTimeout, err, EnvBrokers, EnvBrokers)}
	}
	// ApiVersions gives only major.minor; whoever started the broker may know more.
	version := info.Version + " by ApiVersions"
	if v := os.Getenv(EnvKafkaVersion); v != "" {
		version = v + " (" + version + ")"
	}
	return discovery{seeds: seeds, version: version, source: EnvBrokers}
}

// fromScript starts a broker of this test binary's own, in a state dir of its
// own, stopped by kafka.sh's watchdog once this process is gone.
func fromScript(script string) discovery {
	state, err := os.MkdirTemp("", "kretry-kafkatest-")
	if err != nil {
		return discovery{err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, "up", "--owner", strconv.Itoa(os.Getpid()))
	cmd.Env = append(os.Environ(), "KRETRY_KAFKA_STATE="+state)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return discovery{err: fmt.Errorf("%s up failed (%v):\n%s", script, err, stderr.String())}
	}
	seeds, ok := brokersLine(stdout.String())
	if !ok {
		return discovery{err: fmt.Errorf("%s up printed no %s= line:\n%s%s", script, EnvBrokers, stdout.String(), stderr.String())}
	}
	d := fromEnv(strings.Join(seeds, ","))
	if v, err := os.ReadFile(filepath.Join(state, "version")); err == nil && d.err == nil {
		d.version = strings.TrimSpace(string(v)) + " (" + d.version + ")"
	}
	d.source = "a broker started by scripts/kafka/kafka.sh for this test binary"
	return d
}

// fromDocker runs the dockerkafka module (Apache Kafka with testcontainers-go),
// which prints KRETRY_BROKERS=... and keeps the container until its stdin
// closes, that is until this test binary exits.
func fromDocker(dir string) discovery {
	cmd := exec.Command("go", "run", ".")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return discovery{err: err}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return discovery{err: err}
	}
	if err := cmd.Start(); err != nil {
		return discovery{err: fmt.Errorf("go run in %s: %w", dir, err)}
	}
	dockerStdin = stdin

	lines := make(chan string, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), EnvBrokers+"=") {
				lines <- sc.Text()
				io.Copy(io.Discard, stdout) // keep the pipe drained
				return
			}
		}
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			cmd.Wait()
			return discovery{err: fmt.Errorf("the Kafka container did not start (go run in %s):\n%s", dir, stderr.String())}
		}
		seeds, _ := brokersLine(line)
		d := fromEnv(strings.Join(seeds, ","))
		d.source = "a testcontainers-go Kafka container"
		return d
	case <-time.After(10 * time.Minute):
		cmd.Process.Kill()
		return discovery{err: fmt.Errorf("the Kafka container did not start within 10 minutes (go run in %s):\n%s", dir, stderr.String())}
	}
}

// brokersLine finds the last KRETRY_BROKERS=... line of out.
func brokersLine(out string) ([]string, bool) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), EnvBrokers+"="); ok && v != "" {
			return strings.Split(v, ","), true
		}
	}
	return nil, false
}

func dockerHealthy() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return errors.New("docker not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if i := strings.IndexByte(msg, '\n'); i > 0 {
			msg = msg[:i]
		}
		return fmt.Errorf("docker info: %v: %s", err, msg)
	}
	return nil
}

// repoRoot walks up from the working directory (a test runs in its package's
// directory) to the directory holding scripts/kafka/kafka.sh.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "kafka", "kafka.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/kafka/kafka.sh is not in the working directory or above it")
		}
		dir = parent
	}
}
