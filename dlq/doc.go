// Package dlq reads kretry dead-letter topics: it lists and filters records,
// counts them, and replays them to their original topic, resumably and at most
// once per run.
//
// Its options come in two families, both With…: Opt configures a Reader
// (NewReader: the client, the logger, the clock) and holds for everything
// it reads, while ReplayOpt configures one Reader.Replay (its targets, rate,
// progress group, dry run). A Reader lists, counts and replays many times
// with different replay settings, so they are given per call, and the
// types keep a replay setting from being given to NewReader by mistake.
package dlq
