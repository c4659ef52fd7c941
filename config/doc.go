// Package config loads and validates kretry's YAML configuration file: the
// cluster to connect to (Config, TLS, SASL), the main topics with their retry
// ladders (Topic), and the relay (Relay). Load reads a file and Parse reads
// text; both resolve every default, so the Config they return holds the
// values kretry will use. A Config can also be built in Go, without a file:
// Validate holds it to the rules of a file (Parse runs Validate too) and
// SetDefaults fills its zero fields with the defaults of a file. ClientOpts turns the connection settings into
// franz-go options, and Ladders resolves each topic's ladder.Ladder.
//
// # Format
//
//	brokers: ["127.0.0.1:9092"]        # required; KRETRY_BROKERS overrides
//	client_id: orders-service          # default "kretry"
//	group: orders-service              # required; KRETRY_GROUP overrides
//	tls:                               # optional; present (even {}) = TLS on
//	  ca_file: ca.pem                  # default: the system's CAs
//	  cert_file: client.pem            # client certificate: cert_file and
//	  key_file: client-key.pem         #   key_file together, or neither
//	  insecure_skip_verify: false      # default false; for testing only
//	sasl:                              # optional
//	  mechanism: SCRAM-SHA-512         # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
//	  username: orders
//	  password_env: KRETRY_SASL_PASSWORD   # the NAME of the variable holding the password
//	topics:                            # required, at least one
//	  - name: orders                   # the main topic
//	    tiers:                         # required, at least one, delays increasing
//	      - delay: 5s
//	      - delay: 1m
//	      - delay: 10m
//	        attempts: 2                # default 1
//	    dlq: orders.dlq                # default "{topic}.dlq"
//	    naming: "{topic}.retry-{delay}"  # the default
//	    max_age: 24h                   # default none
//	    retention:
//	      tiers: 72h                   # default per tier max(2 × delay, 24h)
//	      dlq: 336h                    # default 336h (14 days)
//	relay:
//	  group: orders-service-relay      # default "{group}-relay"
//	  fetch_max_wait: 100ms            # default 100ms
//	  hold_bytes: 64MiB                # default 64MiB; 0 holds nothing
//	exactly_once: false                # default false
//	commit_interval: 1s                # default 1s; 100ms to 10m
//	session_timeout: 10s               # default 10s; 6s to 30m
//	instance_id: orders-0              # default none; KRETRY_INSTANCE_ID overrides
//	group_protocol: classic            # default classic; or consumer (KIP-848)
//	delivery_timeout: 30s              # default 30s; 1ms to 1h
//
// # Defaults
//
//	client_id                 "kretry"
//	tls                       off; with tls present: the system's CAs, no client certificate
//	sasl                      off
//	tiers[].attempts          1
//	dlq                       "{topic}.dlq"
//	naming                    "{topic}.retry-{delay}"
//	max_age                   none: records are retried however old they are
//	retention.tiers           per tier max(2 × delay, 24h)
//	retention.dlq             336h (14 days)
//	relay.group               "{group}-relay"
//	relay.fetch_max_wait      100ms
//	relay.hold_bytes          64MiB
//	exactly_once              false
//	commit_interval           1s
//	session_timeout           10s; heartbeats every tenth of it, at most 3s
//	instance_id               none: dynamic group members
//	group_protocol            classic
//	delivery_timeout          30s
//
// Config.GroupOpts and Config.ProducerOpts turn the last five into the
// franz-go options of a group member and of a producer.
//
// # Values
//
// Durations use Go's syntax (500ms, 5s, 1m, 1h30m) and may start with a whole
// number of days: 14d, 1d12h. Every duration must be > 0.
//
// Sizes are a whole number of bytes (0, 1048576), or a whole number and a
// unit, with or without a space between, in any case: KiB, MiB, GiB, TiB are
// powers of 1024 (512KiB, 64MiB, 1GiB) and kB, MB, GB, TB powers of 1000
// (64MB is 64,000,000 bytes); the B may be left out (64Mi, 64M). A sign, a
// fraction (1.5GiB: write 1536MiB), digit separators (1,048,576) and sizes
// past what an int holds are errors.
//
// The naming template builds each tier topic's name from {topic} (the main
// topic), {group} (the consumer group), {delay} (the tier's delay in its
// shortest form: 5s, 1m, 1h30m, 500ms) and {index} (the tier's position,
// 1 for the first); it must contain {delay} or {index}. dlq is a name or a
// template with {topic} and {group}; Topic.DLQ holds it expanded with the
// file's group (after KRETRY_GROUP). Every main, tier and DLQ topic of a file
// needs a name of its own, legal for Kafka (letters, digits, '.', '_', '-',
// at most 249 characters).
//
// relay.group must differ from group: the relay consumes the tier topics in
// a consumer group of its own. relay.fetch_max_wait is how long a relay fetch
// waits on the broker for new records, and so bounds how late a partition
// resumed at its due time is fetched. relay.hold_bytes bounds the records the
// relay holds in memory ahead of their due time, to re-feed them when due
// without fetching them then: their keys, values and headers, and one record
// per 640 bytes of it. Allow two to three times it on top of the process's
// other memory while the relay holds that much. At 0 it holds nothing: a
// partition whose first record is not due is paused and rewound, and fetched
// again shortly before that record is due. Relay.HoldBytes is nil in a Config
// built by hand, which means the default.
//
// A tier retention set in the file must be at least 2 × the longest delay of
// the topic, so that no record expires before it is due.
//
// The SASL password is never in the file: password_env names an environment
// variable that ClientOpts reads; a "password" key is an error. TLS file
// paths are relative to the directory of the file given to Load (to the
// working directory for Parse).
//
// # Environment
//
// KRETRY_BROKERS (comma-separated host:port) replaces brokers and KRETRY_GROUP
// replaces group, and KRETRY_INSTANCE_ID replaces instance_id (so that each
// pod of one deployment sets its own), in Load and Parse. An empty variable counts as unset. With
// them set, the file may leave brokers and group out. The option WithBrokers
// (the CLI's --brokers) replaces both the file's brokers and KRETRY_BROKERS.
//
// # Errors
//
// The format is strict. Every problem is a *FieldError naming the file as
// given to Load, the line, the field and what is allowed:
//
//	kretry.yaml:7: topics[0].tiers[1].delay: must be > 0, got -1m
//	kretry.yaml:9: topics[0].colour: unknown key; allowed keys here: name, tiers, backoff, retry_in_place, dlq, naming, max_age, retry_after_max, retention, partitions, replication_factor, topic_configs, tier_configs, dlq_configs, dlq_routes, circuit_breaker
//
// Load and Parse report all of a file's problems at once, joined with
// errors.Join, one per line in file order. Parse has no file name, so its
// errors start with "line N:". A problem of an environment variable has no
// line and comes last. A YAML syntax error stops at the first one.
package config
