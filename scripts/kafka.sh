#!/usr/bin/env bash
# scripts/kafka.sh — a real, throwaway Apache Kafka broker for sluice's tests and CI.
#
# Single-node KRaft (combined broker + controller) on 127.0.0.1 with free ports,
# Apache Kafka 3.9.1 jars from Maven Central (scripts/kafka/pom.xml), cached
# outside the repo. Nothing the runtime imports lives here.
#
# Commands (run from any directory):
#   scripts/kafka.sh provision        fetch the broker jars with mvn (second run is instant)
#   scripts/kafka.sh start            fresh data dir, free ports, start, wait until it answers;
#                                     last stdout line is KAFKA_BROKERS=127.0.0.1:PORT.
#                                     If a broker is already running in that data dir, it just
#                                     prints its KAFKA_BROKERS line again.
#   scripts/kafka.sh stop [--keep]    SIGTERM, wait, SIGKILL after a bound; removes the data dir
#                                     unless --keep
#   scripts/kafka.sh restart-broker   stop the process (data kept), start it again on the SAME
#                                     port with the same data; works after `stop --keep` too,
#                                     so `stop --keep` ... `restart-broker` is an outage window
#   scripts/kafka.sh status           prints state as '# ...' lines, plus the KAFKA_BROKERS line
#                                     when running (so it is eval-safe); exit 0 running, 1 not
#
# Typical use (e.g. in .ci/run):
#   eval "$(bash scripts/kafka.sh start)" && export KAFKA_BROKERS
#   trap 'bash scripts/kafka.sh stop' EXIT
#   deno test -A ...
#
# From a Deno test ("broker restart mid-stream"); stdout's last line is the KAFKA_BROKERS line:
#   const out = await new Deno.Command("bash", {
#     args: ["scripts/kafka.sh", "restart-broker"], stdout: "piped", stderr: "inherit",
#   }).output();
#   if (!out.success) throw new Error("broker restart failed");
# The broker comes back on the same address, so clients only see a transient outage.
#
# Environment:
#   SLUICE_KAFKA_HOME   jar cache and default data parent (default ~/.cache/sluice-kafka)
#   SLUICE_KAFKA_DATA   data dir of this broker (default $SLUICE_KAFKA_HOME/data); use one per
#                       broker if several run at once
#   SLUICE_KAFKA_PORT / SLUICE_KAFKA_CONTROLLER_PORT   fixed ports instead of free ones
#   SLUICE_KAFKA_HEAP   JVM heap options (default "-Xms128m -Xmx512m")
#   SLUICE_KAFKA_READY_TIMEOUT  seconds to wait for the broker to answer (default 90)
#   SLUICE_KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 30)
#   CI=true or SLUICE_INSTALL=1  apt-get install kcat when it is missing
#   JAVA_HOME           picks the java to use (else java on PATH)
#
# State: $DATA/broker.env (KEY=value lines: KAFKA_BROKERS, KAFKA_PORT, KAFKA_CONTROLLER_PORT,
# KAFKA_CLUSTER_ID, KAFKA_PID, KAFKA_DATA, KAFKA_LOG), $DATA/broker.pid, $DATA/kafka.log.
# Exit codes: 0 ok, 1 failure, 2 usage, 3 java or mvn missing.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_HOME_DIR="${SLUICE_KAFKA_HOME:-${HOME:-/tmp}/.cache/sluice-kafka}"
DATA="${SLUICE_KAFKA_DATA:-$KAFKA_HOME_DIR/data}"
# Absolute, because the pid check matches it against the JVM's command line.
[[ "$DATA" == /* ]] || DATA="$PWD/$DATA"
[[ "$KAFKA_HOME_DIR" == /* ]] || KAFKA_HOME_DIR="$PWD/$KAFKA_HOME_DIR"
READY_TIMEOUT="${SLUICE_KAFKA_READY_TIMEOUT:-90}"
STOP_TIMEOUT="${SLUICE_KAFKA_STOP_TIMEOUT:-30}"
HEAP="${SLUICE_KAFKA_HEAP:--Xms128m -Xmx512m}"
HOST=127.0.0.1
# Present in every data dir this script made; the only dirs it will ever delete.
MARKER=".sluice-kafka-data"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

missing_tool() {
  # Loud on purpose: this is the first thing someone sees on a bare CI machine.
  {
    printf '\n'
    printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
    printf '!!  kafka.sh: %s is required but was not found.\n' "$1"
    printf '!!  %s\n' "$2"
    printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
    printf '\n'
  } >&2
  exit 3
}

have() { command -v "$1" >/dev/null 2>&1; }

find_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  elif have java; then
    JAVA="$(command -v java)"
  else
    missing_tool "java (JDK/JRE 11+)" \
      "Install one, e.g. 'apt-get install -y openjdk-17-jre-headless', or set JAVA_HOME."
  fi
}

require_mvn() {
  have mvn || missing_tool "mvn (Apache Maven)" \
    "Install it, e.g. 'apt-get install -y maven'; it fetches the Kafka jars from Maven Central."
}

file_hash() {
  if have sha256sum; then
    sha256sum "$1" | cut -c1-12
  else
    cksum "$1" | cut -d' ' -f1
  fi
}

# The jar dir is keyed by the pom's hash so a version bump provisions beside the old one.
libs_dir() { printf '%s/libs-%s' "$KAFKA_HOME_DIR" "$(file_hash "$POM")"; }

# ---------------------------------------------------------------- kcat

run_root() {
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif have sudo; then
    sudo -n "$@"
  else
    return 1
  fi
}

KCAT_TRIED=0
maybe_install_kcat() {
  have kcat && return 0
  [[ "${CI:-}" == "true" || "${SLUICE_INSTALL:-}" == "1" ]] || return 0
  ((KCAT_TRIED == 0)) || return 0
  KCAT_TRIED=1
  have apt-get || {
    log "kcat missing and no apt-get; using the Java readiness probe"
    return 0
  }
  log "installing kcat with apt-get (CI=${CI:-} SLUICE_INSTALL=${SLUICE_INSTALL:-})"
  local apt_log="${TMPDIR:-/tmp}/sluice-kafka-apt.log"
  if run_root apt-get update -qq >"$apt_log" 2>&1 &&
    run_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >>"$apt_log" 2>&1; then
    log "kcat installed: $(command -v kcat)"
  else
    tail -n 20 "$apt_log" >&2 || true
    log "WARNING: could not install kcat (see $apt_log); using the Java readiness probe"
  fi
}

# ---------------------------------------------------------------- provision

fetch_jars() {
  local libs="$1" tmp mvn_log
  tmp="$(mktemp -d "$KAFKA_HOME_DIR/.provision.XXXXXX")"
  mvn_log="$KAFKA_HOME_DIR/provision.log"
  log "fetching Kafka jars with mvn (log: $mvn_log)"
  # Fully qualified goal: Maven 3.8's default maven-dependency-plugin is too old.
  if ! mvn -B -ntp -Dstyle.color=never -f "$POM" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    tail -n 40 "$mvn_log" >&2 || true
    rm -rf "$tmp"
    die "mvn could not fetch the Kafka jars (see $mvn_log)"
  fi
  if ! ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1; then
    rm -rf "$tmp"
    die "mvn finished but the kafka_2.13 jar is missing (see $mvn_log)"
  fi
  date -u +%FT%TZ >"$tmp/.complete"
  rm -rf "$libs"
  mv "$tmp" "$libs"
  log "provisioned $(find "$libs" -name '*.jar' | wc -l) jars into $libs"
}

cmd_provision() {
  [[ -f "$POM" ]] || die "missing $POM"
  local libs
  libs="$(libs_dir)"
  if [[ -f "$libs/.complete" ]]; then
    log "already provisioned: $libs"
    maybe_install_kcat
    return 0
  fi
  require_mvn
  mkdir -p "$KAFKA_HOME_DIR"
  # Serialised on a lock file (parallel CI steps); a subshell so the lock fd never
  # leaks into the broker JVM that `start` launches afterwards.
  (
    if have flock; then
      flock 9
      if [[ -f "$libs/.complete" ]]; then
        log "already provisioned (by a concurrent run): $libs"
        exit 0
      fi
    fi
    fetch_jars "$libs"
  ) 9>"$KAFKA_HOME_DIR/.provision.lock"
  maybe_install_kcat
}

# ---------------------------------------------------------------- state helpers

state_file() { printf '%s/broker.env' "$DATA"; }

state_get() {
  local f
  f="$(state_file)"
  [[ -f "$f" ]] || return 1
  grep -E "^$1=" "$f" | tail -n 1 | cut -d= -f2-
}

write_state() {
  local f tmp
  f="$(state_file)"
  tmp="$f.tmp"
  {
    printf 'KAFKA_BROKERS=%s:%s\n' "$HOST" "$PORT"
    printf 'KAFKA_PORT=%s\n' "$PORT"
    printf 'KAFKA_CONTROLLER_PORT=%s\n' "$CPORT"
    printf 'KAFKA_CLUSTER_ID=%s\n' "$CLUSTER_ID"
    printf 'KAFKA_PID=%s\n' "${1:-}"
    printf 'KAFKA_DATA=%s\n' "$DATA"
    printf 'KAFKA_LOG=%s\n' "$DATA/kafka.log"
  } >"$tmp"
  mv "$tmp" "$f"
}

# True only for a live (non-zombie) Kafka JVM of THIS data dir: guards against pid reuse.
is_our_broker() {
  local pid="$1" stat cmdline
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != "Z" ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$DATA/server.properties"* ]] || return 1
  fi
  return 0
}

running_pid() {
  local pid
  pid="$(cat "$DATA/broker.pid" 2>/dev/null)" || return 1
  is_our_broker "$pid" || return 1
  printf '%s' "$pid"
}

port_open() {
  # A connect to a closed loopback port is refused at once; timeout guards odd setups.
  if have timeout; then
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
  fi
}

pick_ports() {
  PORT="${SLUICE_KAFKA_PORT:-}"
  CPORT="${SLUICE_KAFKA_CONTROLLER_PORT:-}"
  if [[ -z "$PORT" || -z "$CPORT" ]]; then
    local pair=""
    if have python3; then
      # Both sockets bound at once so the two ports differ; the OS picks free ones.
      pair="$(python3 -c 'import socket
a=socket.socket(); a.bind(("127.0.0.1",0))
b=socket.socket(); b.bind(("127.0.0.1",0))
print(a.getsockname()[1], b.getsockname()[1])' 2>/dev/null)" || pair=""
    fi
    if [[ -z "$pair" ]]; then
      local p q tries=0
      while :; do
        p=$((20000 + RANDOM % 40000))
        q=$((20000 + RANDOM % 40000))
        if [[ "$p" != "$q" ]] && ! port_open "$p" && ! port_open "$q"; then break; fi
        tries=$((tries + 1))
        ((tries < 50)) || die "could not find two free ports"
      done
      pair="$p $q"
    fi
    [[ -n "$PORT" ]] || PORT="${pair%% *}"
    [[ -n "$CPORT" ]] || CPORT="${pair##* }"
  fi
  [[ "$PORT" != "$CPORT" ]] || die "broker and controller ports must differ (both $PORT)"
}

new_cluster_id() {
  # 16 random bytes, URL-safe base64 without padding: what Kafka's Uuid.toString gives.
  # A leading '-' would be read as an option by the formatter, so draw again.
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* && ${#id} -eq 22 ]] && break
  done
  printf '%s' "$id"
}

write_configs() {
  cat >"$DATA/server.properties" <<EOF
# Generated by scripts/kafka.sh: single-node KRaft for tests. Do not edit; start regenerates it.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/kraft
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=4194304
log.cleaner.threads=1
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
EOF
  cat >"$DATA/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
EOF
  # The formatter and the Java probe only need to say something when it goes wrong.
  cat >"$DATA/log4j-tools.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# $1: name of the array to fill; $2: log4j file name in $DATA.
java_common_opts() {
  local -n _opts="$1"
  _opts=(
    -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$DATA/${2:-log4j.properties}"
    "-Dkafka.logs.dir=$DATA"
    -cp "$LIBS/*"
  )
}

tail_log() {
  local f="$DATA/kafka.log"
  [[ -f "$f" ]] || return 0
  log "last lines of $f:"
  tail -n 60 "$f" >&2 || true
}

# One metadata round trip: kcat if present, else Kafka's own BrokerApiVersionsCommand.
metadata_ok() {
  local out
  if have kcat; then
    out="$(kcat -b "$HOST:$PORT" -L -m 5 2>/dev/null)" || return 1
    [[ "$out" == *"broker 1 at $HOST:$PORT"* ]]
  else
    local opts=()
    java_common_opts opts log4j-tools.properties
    out="$("$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 "${opts[@]}" \
      kafka.admin.BrokerApiVersionsCommand --bootstrap-server "$HOST:$PORT" 2>/dev/null)" || return 1
    [[ "$out" == *"$HOST:$PORT (id: 1"* ]]
  fi
}

# The first consumer group on a fresh cluster otherwise races the creation of
# __consumer_offsets, and kafkajs logs "group coordinator is not available" as an ERROR.
# A metadata request for the topic makes the broker create it; wait for its leaders.
warm_up_group_coordinator() {
  local deadline="$1" out
  if ! have kcat; then
    log "kcat not installed: __consumer_offsets is created by the first consumer group"
    return 0
  fi
  while ((SECONDS < deadline)); do
    out="$(kcat -b "$HOST:$PORT" -L -t __consumer_offsets -m 5 2>/dev/null)" || out=""
    if [[ "$out" =~ with\ [1-9][0-9]*\ partitions && "$out" != *"leader -1"* ]]; then
      return 0
    fi
    sleep 0.3
  done
  log "WARNING: __consumer_offsets not ready yet; the first consumer group may retry"
}

ensure_libs() {
  LIBS="$(libs_dir)"
  [[ -f "$LIBS/.complete" ]] || cmd_provision
  [[ -f "$LIBS/.complete" ]] || die "provisioning did not complete"
}

# Launch the JVM on the config already in $DATA and wait until it answers metadata.
ports_free() {
  if port_open "$PORT"; then die "port $HOST:$PORT is already in use by another process"; fi
  if port_open "$CPORT"; then die "port $HOST:$CPORT is already in use by another process"; fi
}

launch_and_wait() {
  ports_free
  local heap=() opts=()
  read -r -a heap <<<"$HEAP"
  java_common_opts opts
  printf '\n===== kafka.sh launch %s =====\n' "$(date -u +%FT%TZ)" >>"$DATA/kafka.log"
  local t0=$SECONDS
  # stdin/stdout/stderr detached so a caller capturing our stdout gets EOF when we exit.
  nohup "$JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    "${opts[@]}" kafka.Kafka "$DATA/server.properties" \
    </dev/null >>"$DATA/kafka.log" 2>&1 &
  local pid=$!
  printf '%s\n' "$pid" >"$DATA/broker.pid"
  write_state "$pid"
  log "broker pid $pid, log $DATA/kafka.log; waiting up to ${READY_TIMEOUT}s for $HOST:$PORT"
  local deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    if ! is_our_broker "$pid"; then
      tail_log
      die "broker process $pid exited during start-up"
    fi
    if port_open "$PORT" && metadata_ok; then break; fi
    if ((SECONDS >= deadline)); then
      tail_log
      stop_process "$pid"
      die "broker did not answer on $HOST:$PORT within ${READY_TIMEOUT}s"
    fi
    sleep 0.5
  done
  warm_up_group_coordinator "$deadline"
  log "broker ready on $HOST:$PORT after $((SECONDS - t0))s (probe: $(have kcat && echo kcat || echo java))"
  printf 'KAFKA_BROKERS=%s:%s\n' "$HOST" "$PORT"
}

# SIGTERM (controlled shutdown), bounded wait, then SIGKILL.
stop_process() {
  local pid="$1" deadline
  is_our_broker "$pid" || return 0
  log "stopping broker pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while is_our_broker "$pid"; do
    if ((SECONDS >= deadline)); then
      log "broker pid $pid still alive after ${STOP_TIMEOUT}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
}

remove_data_dir() {
  [[ -d "$DATA" ]] || return 0
  if [[ -f "$DATA/$MARKER" ]]; then
    rm -rf -- "$DATA"
  elif [[ -z "$(ls -A "$DATA")" ]]; then
    rmdir -- "$DATA"
  else
    die "refusing to delete $DATA: not made by kafka.sh (no $MARKER file)"
  fi
}

# ---------------------------------------------------------------- commands

cmd_start() {
  find_java
  ensure_libs
  maybe_install_kcat
  local pid
  if pid="$(running_pid)"; then
    PORT="$(state_get KAFKA_PORT)"
    log "already running (pid $pid) in $DATA"
    printf 'KAFKA_BROKERS=%s:%s\n' "$HOST" "$PORT"
    return 0
  fi
  remove_data_dir
  mkdir -p "$DATA/kraft"
  : >"$DATA/$MARKER"
  pick_ports
  ports_free
  CLUSTER_ID="$(new_cluster_id)"
  write_configs
  write_state ""
  local opts=()
  java_common_opts opts log4j-tools.properties
  log "formatting KRaft storage in $DATA/kraft (cluster $CLUSTER_ID)"
  if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 "${opts[@]}" kafka.tools.StorageTool format \
    -t "$CLUSTER_ID" -c "$DATA/server.properties" >"$DATA/format.log" 2>&1; then
    cat "$DATA/format.log" >&2
    die "kafka.tools.StorageTool format failed"
  fi
  launch_and_wait
}

cmd_restart_broker() {
  find_java
  ensure_libs
  [[ -f "$(state_file)" && -f "$DATA/server.properties" && -d "$DATA/kraft" ]] ||
    die "no broker state in $DATA to restart; run 'scripts/kafka.sh start' first"
  PORT="$(state_get KAFKA_PORT)"
  CPORT="$(state_get KAFKA_CONTROLLER_PORT)"
  CLUSTER_ID="$(state_get KAFKA_CLUSTER_ID)"
  local pid
  if pid="$(running_pid)"; then
    stop_process "$pid"
  else
    log "broker was not running; starting it on the kept data"
  fi
  # A killed broker may leave its ports in TIME_WAIT only; Kafka binds with SO_REUSEADDR.
  launch_and_wait
}

cmd_stop() {
  local keep=0
  case "${1:-}" in
    --keep) keep=1 ;;
    "") ;;
    *)
      log "unknown option for stop: $1"
      exit 2
      ;;
  esac
  local pid
  if pid="$(running_pid)"; then
    stop_process "$pid"
    log "stopped"
  else
    log "no broker running in $DATA"
  fi
  if ((keep)); then
    [[ -f "$(state_file)" ]] && write_state_pid_cleared
    log "data kept in $DATA ('restart-broker' brings it back on the same port)"
  else
    remove_data_dir
  fi
}

write_state_pid_cleared() {
  PORT="$(state_get KAFKA_PORT)"
  CPORT="$(state_get KAFKA_CONTROLLER_PORT)"
  CLUSTER_ID="$(state_get KAFKA_CLUSTER_ID)"
  write_state ""
  rm -f "$DATA/broker.pid"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    PORT="$(state_get KAFKA_PORT)"
    printf '# running pid=%s data=%s log=%s\n' "$pid" "$DATA" "$DATA/kafka.log"
    printf 'KAFKA_BROKERS=%s:%s\n' "$HOST" "$PORT"
    return 0
  fi
  if [[ -f "$(state_file)" ]]; then
    printf '# stopped (data kept in %s; last address %s)\n' "$DATA" "$(state_get KAFKA_BROKERS)"
  else
    printf '# stopped (no data in %s)\n' "$DATA"
  fi
  local libs
  libs="$(libs_dir)"
  if [[ -f "$libs/.complete" ]]; then
    printf '# provisioned: %s\n' "$libs"
  else
    printf '# not provisioned\n'
  fi
  return 1
}

usage() {
  sed -n '2,/^# Exit codes/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    provision) cmd_provision ;;
    start) cmd_start ;;
    stop) cmd_stop "$@" ;;
    restart-broker) cmd_restart_broker ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *)
      usage
      exit 2
      ;;
  esac
}

main "$@"
