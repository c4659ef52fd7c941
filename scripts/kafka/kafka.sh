#!/usr/bin/env bash
# kafka.sh runs one Apache Kafka broker (KRaft, combined broker+controller) on
# 127.0.0.1 for kretry's integration tests, without Docker.
#
#   kafka.sh up [--owner PID]  start it (or reuse the running one); the last line
#                              printed is KRETRY_BROKERS=127.0.0.1:PORT. With
#                              --owner, the broker is stopped and its data
#                              removed once process PID exits.
#   kafka.sh down              stop it and remove its data
#   kafka.sh status            print KRETRY_BROKERS=... and exit 0 if it runs, else exit 1
#   kafka.sh check             exit 0 if this machine can start a broker, else say why
#   kafka.sh version           print the Apache Kafka release pom.xml pins
#   kafka.sh libs              fetch the jars if needed and print their directory
#                              (cluster.sh runs its nodes from the same cache)
#
# The jars are fetched once with mvn from pom.xml into
# ${XDG_CACHE_HOME:-$HOME/.cache}/kretry/kafka-VERSION and reused by every clone.
# The broker's state (pid, port, data dir, log) lives in $KRETRY_KAFKA_STATE,
# by default .cache/kafka in the repository.
#
# Environment: KRETRY_KAFKA_STATE (state dir), KRETRY_KAFKA_START_TIMEOUT
# (seconds to wait for the broker, default 300: a loaded 2-core machine takes over a minute), KRETRY_KAFKA_HEAP (default 512m).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kretry/kafka-$version
libs=$cache/libs
state=${KRETRY_KAFKA_STATE:-$root/.cache/kafka}
start_timeout=${KRETRY_KAFKA_START_TIMEOUT:-300}
heap=${KRETRY_KAFKA_HEAP:-512m}

say() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { # elapsed START_MS → "1.23s"
	local ms=$(($(now_ms) - $1))
	printf '%d.%02ds' $((ms / 1000)) $((ms % 1000 / 10))
}

pom_sum() { sha256sum "$here/pom.xml" | cut -d' ' -f1; }

jars_cached() { [[ -f $libs/.pom.sha256 && $(cat "$libs/.pom.sha256") == "$(pom_sum)" ]]; }

need_java() {
	command -v java >/dev/null ||
		die "java not found: install a Java 17 or newer runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless), or use Docker for the integration tests"
	local v
	v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | sed -n 1p)
	[[ -n $v && $v -ge 17 ]] ||
		die "java ${v:-of unknown version} found; Apache Kafka $version needs Java 17 or newer: install openjdk-17-jre-headless"
}

need_mvn() {
	command -v mvn >/dev/null ||
		die "mvn not found: install Apache Maven (Debian/Ubuntu: apt-get install maven); it fetches the broker's jars once into $cache"
}

# fetch_jars copies the broker's runtime jars into $libs once. It copies into a
# fresh dir and renames it, so a concurrent run never sees half a set.
fetch_jars() {
	jars_cached && return 0
	need_mvn
	mkdir -p "$cache"
	local tmp t0
	tmp=$(mktemp -d "$cache/libs.tmp.XXXXXX")
	t0=$(now_ms)
	say "fetching the jars of Apache Kafka $version with mvn (once; cached in $cache)"
	if ! mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
		-DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.log" 2>&1; then
		tail -n 30 "$tmp.log" >&2
		rm -rf "$tmp" "$tmp.log"
		die "mvn could not fetch the broker's jars (above); check network access to Maven Central or your Maven settings"
	fi
	rm -f "$tmp.log"
	pom_sum >"$tmp/.pom.sha256"
	rm -rf "$libs"
	mv "$tmp" "$libs" 2>/dev/null || rm -rf "$tmp" # another run won the race
	say "fetched $(du -sh "$libs" | cut -f1) of jars in $(elapsed "$t0")"
}

probe_bin=""
probe() { # probe ARGS... runs internal/kafkatest/cmd/kafkaprobe
	if [[ -z $probe_bin ]]; then
		command -v go >/dev/null || die "go not found: install Go 1.26"
		mkdir -p "$state"
		(cd "$root" && go build -o "$state/kafkaprobe" ./internal/kafkatest/cmd/kafkaprobe) ||
			die "could not build internal/kafkatest/cmd/kafkaprobe"
		probe_bin=$state/kafkaprobe
	fi
	"$probe_bin" "$@"
}

read_state() {
	pid=$(cat "$state/pid" 2>/dev/null || true)
	port=$(cat "$state/port" 2>/dev/null || true)
	data=$(cat "$state/data" 2>/dev/null || true)
}

# alive PID: the process exists and is a Kafka broker (not a recycled pid).
alive() {
	[[ -n $1 ]] && kill -0 "$1" 2>/dev/null && [[ $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) == *kafka.Kafka* ]]
}

log_tail() {
	local f
	for f in "$state/broker.log" "$state/broker.out"; do
		if [[ -s $f ]]; then
			say "last lines of $f:"
			tail -n 25 "$f" >&2
		fi
	done
}

# wait_ready PID PORT: until the broker answers a metadata request.
wait_ready() {
	local pid=$1 port=$2 deadline=$(($(date +%s) + start_timeout))
	while :; do
		# kill -0, not alive: right after the fork the child is not yet java.
		if ! kill -0 "$pid" 2>/dev/null; then
			log_tail
			say "the broker (pid $pid) exited while starting; the reason is in the log above"
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
			info=$(probe ping -timeout 5s "127.0.0.1:$port" 2>/dev/null); then
			return 0
		fi
		if (($(date +%s) >= deadline)); then
			log_tail
			say "the broker (pid $pid) did not answer on 127.0.0.1:$port within ${start_timeout}s (KRETRY_KAFKA_START_TIMEOUT); the log is above"
			return 1
		fi
		sleep 0.3
	done
}

cleanup_stale() {
	read_state
	if [[ -n $data && $data == */kretry-kafka.* ]]; then
		rm -rf "$data"
	fi
	# The next broker takes the same port if it is free, so a KRETRY_BROKERS
	# someone exported stays valid across a restart.
	if [[ -n $port ]]; then echo "$port" >"$state/last-port"; fi
	rm -f "$state/pid" "$state/port" "$state/data"
}

cmd_up() {
	local owner=""
	while (($#)); do
		case $1 in
		--owner)
			owner=${2:?--owner needs a pid}
			shift 2
			;;
		*) die "unknown argument to up: $1" ;;
		esac
	done

	mkdir -p "$state"
	exec 9>"$state/lock"
	if command -v flock >/dev/null; then flock 9; fi

	read_state
	if alive "$pid"; then
		wait_ready "$pid" "$port" ||
			die "the running broker does not answer: stop it with '$0 down' and try again"
		say "reusing the running broker (pid $pid): Apache Kafka $version, ${info#*version=}"
		echo "KRETRY_BROKERS=127.0.0.1:$port"
		return 0
	fi
	cleanup_stale

	need_java
	fetch_jars

	local t0 ports cport id last
	ports=$(probe ports 2) # builds kafkaprobe first: not part of the start time
	t0=$(now_ms)
	port=$(sed -n 1p <<<"$ports")
	cport=$(sed -n 2p <<<"$ports")
	last=$(cat "$state/last-port" 2>/dev/null || true)
	if [[ -n $last && $last != "$cport" ]] && probe free "$last"; then
		port=$last
	fi
	data=$(mktemp -d -t kretry-kafka.XXXXXX)
	cat >"$data/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/logs
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
	# A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
	# A random cluster id; not one that starts with "-", which StorageTool's
	# argument parser takes for an option (1 start in 64 failed so).
	id=-
	while [[ $id == -* ]]; do id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22); done

	local jvm=(java -Xms128m "-Xmx$heap" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError
		-Djava.awt.headless=true "-Dkafka.logs.dir=$state"
		"-Dlog4j2.configurationFile=$here/log4j2.yaml" -cp "$libs/*")
	if ! "${jvm[@]}" kafka.tools.StorageTool format -t "$id" -c "$data/server.properties" \
		>"$state/broker.out" 2>&1; then
		log_tail
		rm -rf "$data"
		die "formatting KRaft storage in $data failed (above)"
	fi

	# The broker must not hold the lock (fd 9) or the caller's stdout, or
	# callers that read our output would wait for it to exit.
	nohup "${jvm[@]}" kafka.Kafka "$data/server.properties" \
		</dev/null >>"$state/broker.out" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$state/pid"
	echo "$port" >"$state/port"
	echo "$data" >"$state/data"
	echo "$version" >"$state/version"

	if ! wait_ready "$pid" "$port"; then
		kill -KILL "$pid" 2>/dev/null || true
		cleanup_stale
		die "could not start Apache Kafka $version"
	fi
	say "Apache Kafka $version (KRaft, 1 node) started in $(elapsed "$t0"), pid $pid, data in $data, log in $state/broker.log; ${info#*version=} by ApiVersions"

	if [[ -n $owner ]]; then
		# Stop the broker once the owner (a test binary) is gone.
		KRETRY_KAFKA_STATE=$state nohup bash -c '
			while kill -0 "$1" 2>/dev/null; do sleep 1; done
			"$2" down && rm -rf "$KRETRY_KAFKA_STATE"
		' watchdog "$owner" "$here/kafka.sh" </dev/null >/dev/null 2>&1 9>&- &
	fi
	echo "KRETRY_BROKERS=127.0.0.1:$port"
}

cmd_down() {
	[[ -d $state ]] || { say "no broker running"; return 0; }
	exec 9>"$state/lock"
	if command -v flock >/dev/null; then flock 9; fi
	read_state
	if alive "$pid"; then
		kill -TERM "$pid"
		local i
		for ((i = 0; i < 300; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			say "the broker (pid $pid) did not stop in 30s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		say "stopped the broker (pid $pid) and removed $data"
	else
		say "no broker running"
	fi
	cleanup_stale
	rm -f "$state/version"
}

cmd_status() {
	read_state
	if alive "$pid"; then
		say "running: pid $pid, Apache Kafka $(cat "$state/version" 2>/dev/null), data in $data"
		echo "KRETRY_BROKERS=127.0.0.1:$port"
	else
		say "not running"
		return 1
	fi
}

cmd_check() {
	need_java
	jars_cached || need_mvn
}

case ${1:-} in
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
status) cmd_status ;;
check) cmd_check ;;
version) echo "$version" ;;
libs)
	need_java
	fetch_jars
	echo "$libs"
	;;
*)
	echo "usage: $0 up [--owner PID] | down | status | check | version | libs" >&2
	exit 2
	;;
esac
