// Command dockerkafka starts Apache Kafka in Docker with testcontainers-go for
// kretry's integration tests, where Java and Maven are missing but Docker is
// healthy. internal/kafkatest runs it with `go run` and reads its output.
//
// It prints KRETRY_BROKERS=127.0.0.1:PORT as the last line once the broker is
// up, then keeps the container until its stdin closes (the test binary that
// started it exited) or it gets SIGINT/SIGTERM, and removes it.
//
// This is a module of its own so that testcontainers-go and the Docker client
// it pulls in stay out of kretry's go.mod: a library user never downloads them.
//
// The image is apache/kafka (the same Apache Kafka release scripts/kafka/pom.xml
// fetches), overridable with KRETRY_KAFKA_IMAGE. testcontainers-go's Kafka
// module is not used: the version available (v0.40.0) runs only Confluent's
// confluent-local images.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

const defaultImage = "apache/kafka:4.4.0"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dockerkafka:", err)
		os.Exit(1)
	}
}

func run() error {
	image := os.Getenv("KRETRY_KAFKA_IMAGE")
	if image == "" {
		image = defaultImage
	}
	// The broker advertises the host port, so it must be known before the
	// container starts: pick a free one and bind it explicitly.
	port, err := freePort()
	if err != nil {
		return err
	}
	hostPort := strconv.Itoa(port)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ctr, err := testcontainers.Run(ctx, image,
		testcontainers.WithExposedPorts("9092/tcp"),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = nat.PortMap{"9092/tcp": {{HostIP: "127.0.0.1", HostPort: hostPort}}}
		}),
		testcontainers.WithEnv(map[string]string{
			"KAFKA_NODE_ID":                                          "1",
			"KAFKA_PROCESS_ROLES":                                    "broker,controller",
			"KAFKA_LISTENERS":                                        "PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093",
			"KAFKA_ADVERTISED_LISTENERS":                             "PLAINTEXT://127.0.0.1:" + hostPort,
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"KAFKA_CONTROLLER_LISTENER_NAMES":                        "CONTROLLER",
			"KAFKA_INTER_BROKER_LISTENER_NAME":                       "PLAINTEXT",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":                         "1@127.0.0.1:9093",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 "1",
			"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":                     "10",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         "1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    "1",
			"KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS":             "10",
			"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
			"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            "1",
			"KAFKA_MIN_INSYNC_REPLICAS":                              "1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":                 "0",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                        "false",
			"KAFKA_HEAP_OPTS":                                        "-Xmx512m -Xms128m",
		}),
		testcontainers.WithWaitStrategy(
			wait.ForListeningPort("9092/tcp"),
			wait.ForLog("Kafka Server started"),
		),
	)
	defer func() {
		if ctr != nil {
			if err := testcontainers.TerminateContainer(ctr); err != nil {
				fmt.Fprintln(os.Stderr, "dockerkafka: removing the container:", err)
			}
		}
	}()
	if err != nil {
		return fmt.Errorf("starting %s: %w", image, err)
	}
	fmt.Fprintf(os.Stderr, "dockerkafka: %s runs in container %s\n", image, ctr.GetContainerID())
	fmt.Printf("KRETRY_BROKERS=127.0.0.1:%s\n", hostPort)

	stdinClosed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-stdinClosed:
	case <-sig:
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
