// Package kafkatest gives kretry's tests a Kafka to talk to: Brokers for a real
// Apache Kafka broker (integration tests, build tag integration), Fake and
// VirtualFake for kfake in process (VirtualFake inside a testing/synctest
// bubble), and Name for unique topic and group names.
//
// Brokers looks, in order, at KRETRY_BROKERS, at a broker it can start with
// scripts/kafka/kafka.sh (Java and Maven), at Docker through the separate module
// in dockerkafka (testcontainers-go, kept out of kretry's go.mod), and otherwise
// skips the test — except under CI=true, where a missing broker fails it.
package kafkatest
