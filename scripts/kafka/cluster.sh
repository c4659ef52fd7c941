#!/usr/bin/env bash
# cluster.sh runs a throwaway Apache Kafka cluster (KRaft, every node a combined
# broker+controller) on 127.0.0.1 for kretry's fault suite, whose nodes can be
# stopped, killed and started again with their data kept.
#
#   cluster.sh up [--nodes N] [--owner PID] [--set KEY=VALUE]...
#                              start N nodes (default 1) on free
#                              ports; the last line printed is
#                              KRETRY_BROKERS=127.0.0.1:P1,... With 3 or more
#                              nodes topics default to replication factor 3
#                              and min.insync.replicas 2. With --owner, the
#                              cluster is stopped and its state dir removed
#                              once process PID exits. --set adds a broker
#                              setting to every node's server.properties.
#   cluster.sh stop NODE       stop node NODE (1..N) with SIGTERM; its data stays
#   cluster.sh kill NODE       kill node NODE with SIGKILL; its data stays
#   cluster.sh start NODE      start a stopped node again on its ports, with its
#                              data, and wait until it answers
#   cluster.sh status          one line per node (node N pid P port X up|down),
#                              then KRETRY_BROKERS=...; exit 1 if no node is up
#   cluster.sh down            stop every node and remove the state dir
#
# The state (ports, pids, data, logs) lives in $KRETRY_CLUSTER_STATE, which is
# required: one dir per cluster, so several clusters (and kafka.sh's broker)
# run side by side. The jars are kafka.sh's cache (kafka.sh libs).
#
# Environment: KRETRY_CLUSTER_STATE (state dir, required),
# KRETRY_KAFKA_START_TIMEOUT (seconds to wait for a node, default 300),
# KRETRY_CLUSTER_HEAP (heap of each node, default 256m).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
start_timeout=${KRETRY_KAFKA_START_TIMEOUT:-300}
heap=${KRETRY_CLUSTER_HEAP:-256m}

say() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[[ -n ${KRETRY_CLUSTER_STATE:-} ]] ||
	die "KRETRY_CLUSTER_STATE is not set: give each cluster a state dir of its own (e.g. KRETRY_CLUSTER_STATE=\$(mktemp -d))"
state=$KRETRY_CLUSTER_STATE

probe_bin=""
probe() { # probe ARGS... runs internal/kafkatest/cmd/kafkaprobe
	if [[ -z $probe_bin ]]; then
		probe_bin=$state/kafkaprobe
		if [[ ! -x $probe_bin ]]; then
			(cd "$root" && go build -o "$probe_bin" ./internal/kafkatest/cmd/kafkaprobe) ||
				die "could not build internal/kafkatest/cmd/kafkaprobe"
		fi
	fi
	"$probe_bin" "$@"
}

nodes() { cat "$state/nodes" 2>/dev/null || echo 0; }
node_dir() { echo "$state/node-$1"; }
node_pid() { cat "$(node_dir "$1")/pid" 2>/dev/null || true; }
node_port() { cat "$(node_dir "$1")/port"; }

# alive PID: the process exists and is a Kafka broker (not a recycled pid).
alive() {
	[[ -n $1 ]] && kill -0 "$1" 2>/dev/null && [[ $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) == *kafka.Kafka* ]]
}

brokers_line() {
	local n i list=()
	n=$(nodes)
	for ((i = 1; i <= n; i++)); do list+=("127.0.0.1:$(node_port "$i")"); done
	(IFS=,; echo "KRETRY_BROKERS=${list[*]}")
}

need_node() {
	local n
	n=$(nodes)
	[[ $1 =~ ^[0-9]+$ && $1 -ge 1 && $1 -le $n ]] ||
		die "no node ${1:-(none given)}: the cluster in $state has nodes 1..$n"
}

# jvm DIR sets the array JVM: the java command line of a node logging to DIR.
jvm() {
	JVM=(java -Xms64m "-Xmx$heap" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:TieredStopAtLevel=1
		-Djava.awt.headless=true "-Dkafka.logs.dir=$1"
		"-Dlog4j2.configurationFile=$here/log4j2.yaml" -cp "$libs/*")
}

# launch NODE starts node NODE's process in the background and records its pid.
launch() {
	local dir
	dir=$(node_dir "$1")
	jvm "$dir"
	nohup "${JVM[@]}" kafka.Kafka "$dir/server.properties" \
		</dev/null >>"$dir/broker.out" 2>&1 9>&- &
	echo $! >"$dir/pid"
}

# wait_ready NODE: until the node answers a metadata request.
wait_ready() {
	local dir pid port deadline
	dir=$(node_dir "$1")
	pid=$(node_pid "$1")
	port=$(node_port "$1")
	deadline=$(($(date +%s) + start_timeout))
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 25 "$dir/broker.log" "$dir/broker.out" >&2 2>/dev/null || true
			say "node $1 (pid $pid) exited while starting; the reason is in the log above"
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
			probe ping -timeout 5s "127.0.0.1:$port" >/dev/null 2>&1; then
			return 0
		fi
		if (($(date +%s) >= deadline)); then
			tail -n 25 "$dir/broker.log" >&2 2>/dev/null || true
			say "node $1 (pid $pid) did not answer on 127.0.0.1:$port within ${start_timeout}s (KRETRY_KAFKA_START_TIMEOUT)"
			return 1
		fi
		sleep 0.3
	done
}

cmd_up() {
	local n=1 owner="" extra=""
	while (($#)); do
		case $1 in
		--nodes) n=${2:?--nodes needs a number}; shift 2 ;;
		--owner) owner=${2:?--owner needs a pid}; shift 2 ;;
		--set)
			[[ ${2:-} =~ ^[a-z][a-z0-9.]*=[^[:space:]]+$ ]] || die "--set ${2:-}: give a broker setting as key=value, e.g. --set group.consumer.min.session.timeout.ms=10000"
			extra+="$2"$'\n'
			shift 2
			;;
		*) die "unknown argument to up: $1" ;;
		esac
	done
	[[ $n =~ ^[0-9]+$ && $n -ge 1 ]] || die "--nodes $n: give a number of nodes, 1 or more"
	mkdir -p "$state"
	[[ ! -f $state/nodes ]] || die "a cluster already has its state in $state: run '$0 down' first, or use another KRETRY_CLUSTER_STATE"

	libs=$("$here/kafka.sh" libs)
	local ports i voters="" rf=1 isr=1 id
	ports=$(probe ports $((2 * n)))
	for ((i = 1; i <= n; i++)); do
		mkdir -p "$(node_dir "$i")"
		sed -n "$((2 * i - 1))p" <<<"$ports" >"$(node_dir "$i")/port"
		sed -n "$((2 * i))p" <<<"$ports" >"$(node_dir "$i")/cport"
		voters+="${voters:+,}$i@127.0.0.1:$(cat "$(node_dir "$i")/cport")"
	done
	if ((n >= 3)); then rf=3 isr=2; fi
	# A random cluster id; not one that starts with "-", which StorageTool's
	# argument parser takes for an option (1 start in 64 failed so).
	id=-
	while [[ $id == -* ]]; do id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22); done
	for ((i = 1; i <= n; i++)); do
		local dir port cport
		dir=$(node_dir "$i")
		port=$(cat "$dir/port")
		cport=$(cat "$dir/cport")
		cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/logs
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
background.threads=2
log.cleaner.enable=false
${extra}
EOF
		jvm "$dir"
		if ! "${JVM[@]}" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" \
			>"$dir/broker.out" 2>&1; then
			cat "$dir/broker.out" >&2
			die "formatting KRaft storage of node $i in $dir failed (above)"
		fi
	done
	echo "$n" >"$state/nodes"
	local t0=$SECONDS
	for ((i = 1; i <= n; i++)); do launch "$i"; done
	for ((i = 1; i <= n; i++)); do
		wait_ready "$i" || { cmd_down; die "could not start the cluster in $state"; }
	done
	say "Apache Kafka $("$here/kafka.sh" version) (KRaft, $n node(s), replication factor $rf, min.insync.replicas $isr) started in $((SECONDS - t0))s; state in $state"

	if [[ -n $owner ]]; then
		# Stop the cluster once the owner is gone.
		KRETRY_CLUSTER_STATE=$state nohup bash -c '
			while kill -0 "$1" 2>/dev/null; do sleep 1; done
			"$2" down
		' watchdog "$owner" "$here/cluster.sh" </dev/null >/dev/null 2>&1 9>&- &
	fi
	brokers_line
}

# signal_node SIG NODE: send SIG and wait (up to 30s) until the process is gone.
signal_node() {
	local sig=$1 pid i
	need_node "$2"
	pid=$(node_pid "$2")
	if ! alive "$pid"; then
		say "node $2 is not running"
		return 0
	fi
	kill "-$sig" "$pid"
	for ((i = 0; i < 300; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		say "node $2 (pid $pid) did not stop in 30s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$(node_dir "$2")/pid"
	say "node $2 (pid $pid) stopped with SIG$sig; its data stays"
}

cmd_start() {
	need_node "$1"
	if alive "$(node_pid "$1")"; then
		say "node $1 already runs (pid $(node_pid "$1"))"
		return 0
	fi
	libs=$("$here/kafka.sh" libs)
	local t0=$SECONDS
	launch "$1"
	wait_ready "$1" || die "node $1 did not start again"
	say "node $1 started again with its data in $((SECONDS - t0))s, pid $(node_pid "$1")"
}

cmd_status() {
	local n i up=0 pid
	n=$(nodes)
	((n > 0)) || { say "no cluster in $state"; return 1; }
	for ((i = 1; i <= n; i++)); do
		pid=$(node_pid "$i")
		if alive "$pid"; then
			echo "node $i pid $pid port $(node_port "$i") up"
			up=$((up + 1))
		else
			echo "node $i pid - port $(node_port "$i") down"
		fi
	done
	brokers_line
	((up > 0))
}

cmd_down() {
	local n i pid
	n=$(nodes)
	# The data goes too, so nothing needs a clean shutdown.
	for ((i = 1; i <= n; i++)); do
		pid=$(node_pid "$i")
		if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	done
	rm -rf "$state"
	say "stopped the cluster and removed $state"
}

case ${1:-} in
up) shift; cmd_up "$@" ;;
stop) signal_node TERM "${2:-}" ;;
kill) signal_node KILL "${2:-}" ;;
start) cmd_start "${2:-}" ;;
status) cmd_status ;;
down) cmd_down ;;
*)
	echo "usage: $0 up [--nodes N] [--owner PID] [--set KEY=VALUE]... | stop NODE | kill NODE | start NODE | status | down" >&2
	exit 2
	;;
esac
