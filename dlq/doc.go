// Package dlq reads kretry dead-letter topics: it lists and filters records,
// counts them, and replays them to their original topic, resumably and at most
// once per run.
package dlq
