#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) for tests and the demo,
# run from Apache Kafka's released jars resolved from Maven Central (no Docker needed).
#
#   kafka.sh fetch      resolve the broker jars into the cache (needs Java 17+ and Maven)
#   kafka.sh up         start the broker (fetching/formatting as needed); prints 127.0.0.1:PORT
#   kafka.sh down       stop it (SIGTERM, then SIGKILL after 30 s)
#   kafka.sh status     prints "running" (exit 0) or "stopped" (exit 3)
#   kafka.sh bootstrap  prints the bootstrap address of the running broker, or exits 1
#
# Environment: V2V_CACHE_DIR (default ~/.cache/v2v), V2V_STATE_DIR (default <repo>/.v2v),
# V2V_KAFKA_START_TIMEOUT (seconds, default 60), JAVA_HOME, V2V_PYTHON (python with kafka-python
# used for the readiness probe; default <repo>/.venv/bin/python).
# Only the result (the bootstrap address) goes to stdout, as its last line; progress goes to stderr.
#
# The broker listens in PLAINTEXT on loopback, unless V2V_KAFKA_TLS_DIR is set (an authenticated,
# encrypted broker, as in deployment; one integration test uses it):
#   V2V_KAFKA_TLS_DIR         a directory with broker.pem (PKCS#8 key + certificate chain) and
#                             ca.crt, as `python -m v2v_platform.kafka_broker tls` writes them
#   V2V_KAFKA_ADMIN_PASSWORD  the SCRAM-SHA-512 password of the super user "admin" (A-Z a-z 0-9 _ -)
# Clients then authenticate with SASL_SSL + SCRAM-SHA-512 on the one client listener (also the
# inter-broker listener); the controller listener is TLS with client certificates (the broker's
# own, principal "kafka-broker"); StandardAuthorizer denies what no ACL allows, "admin" and
# "kafka-broker" are super users. The state directory remembers the mode it was formatted in.
set -euo pipefail

KAFKA_VERSION=4.3.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
LOG4J_CONFIG="$HERE/log4j2.xml"
CACHE_DIR="${V2V_CACHE_DIR:-$HOME/.cache/v2v}/kafka-$KAFKA_VERSION"
LIBS="$CACHE_DIR/libs"
MARKER="$CACHE_DIR/.complete"
STATE_BASE="${V2V_STATE_DIR:-$REPO/.v2v}"
[[ "$STATE_BASE" == /* ]] || STATE_BASE="$PWD/$STATE_BASE"
STATE="$STATE_BASE/kafka"
DATA="$STATE/data"
PROPS="$STATE/server.properties"
PORTS_FILE="$STATE/ports.env"
PID_FILE="$STATE/broker.pid"
BOOTSTRAP_FILE="$STATE/bootstrap"
BROKER_LOG="$STATE/broker.log"
BROKER_OUT="$STATE/broker.out"
START_TIMEOUT="${V2V_KAFKA_START_TIMEOUT:-60}"
TLS_DIR="${V2V_KAFKA_TLS_DIR:-}"
if [[ -n "$TLS_DIR" ]]; then
  [[ "$TLS_DIR" == /* ]] || TLS_DIR="$PWD/$TLS_DIR"
  SECURITY=sasl_ssl
else
  SECURITY=plaintext
fi
ADMIN_USER=admin
BROKER_PRINCIPAL=kafka-broker
STOP_TIMEOUT=30
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- prerequisites

java_major() {
  local version
  version="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  case "$version" in
    1.*) version="${version#1.}" ;;
  esac
  printf '%s\n' "${version%%[.+-]*}"
}

check_prereqs() {  # $1 = "with-maven" when the jars still have to be fetched
  local problems=() major
  if ! command -v "$JAVA" >/dev/null 2>&1; then
    problems+=("java (Java 17 or newer) is not installed")
  else
    major="$(java_major)"
    if ! [[ "$major" =~ ^[0-9]+$ ]] || ((major < 17)); then
      problems+=("java is version '${major:-unknown}', Java 17 or newer is needed")
    fi
  fi
  if [[ "${1:-}" == with-maven ]] && ! command -v mvn >/dev/null 2>&1; then
    problems+=("mvn (Apache Maven) is not installed; it resolves the Kafka jars")
  fi
  if ((${#problems[@]})); then
    local p
    for p in "${problems[@]}"; do log "missing: $p"; done
    log "install on Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless maven"
    log "(or set JAVA_HOME to a JDK 17+, or set V2V_KAFKA_BOOTSTRAP to an existing broker)"
    exit 2
  fi
}

fetched() { [[ -f "$MARKER" && -d "$LIBS" ]] && [[ "$(cat "$MARKER")" == "$(pom_digest)" ]]; }

pom_digest() { cksum <"$POM" | awk '{print $1 "-" $2}'; }

cmd_fetch() {
  if fetched; then
    log "jars already in $LIBS"
    return 0
  fi
  check_prereqs with-maven
  local tmp="$CACHE_DIR/libs.partial"
  mkdir -p "$CACHE_DIR"
  rm -rf "$tmp" "$MARKER"
  log "resolving Apache Kafka $KAFKA_VERSION jars with Maven into $LIBS ..."
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >&2; then
    die "maven could not resolve the Kafka jars (is Maven Central reachable?)"
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "kafka_2.13 jar missing after fetch"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  pom_digest >"$MARKER"
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars"
}

# ---------------------------------------------------------------- helpers

python_bin() {
  local candidate
  for candidate in "${V2V_PYTHON:-}" "$REPO/.venv/bin/python" python3 python; do
    if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

port_free() {  # port_free PORT -> 0 when 127.0.0.1:PORT can be bound
  local py
  if py="$(python_bin)"; then
    "$py" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM does for server sockets
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 1; fi  # something listens
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

two_free_ports() {  # prints "BROKER CONTROLLER"
  local py a b
  if py="$(python_bin)"; then
    "$py" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
    return
  fi
  while :; do
    a=$((20000 + RANDOM % 40000)); b=$((a + 1))
    port_free "$a" && port_free "$b" && { echo "$a $b"; return; }
  done
}

new_cluster_id() {
  local py
  if py="$(python_bin)"; then
    "$py" - <<'EOF'
import base64, uuid
while True:
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not cid.startswith("-"):
        print(cid)
        break
EOF
  else
    "$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1
  fi
}

pid_alive() {  # our broker, not a recycled pid
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $PROPS"
}

find_broker_pid() {  # a broker on our server.properties whose pid file got lost
  local dir
  for dir in /proc/[0-9]*; do
    if tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $PROPS"; then
      echo "${dir#/proc/}"
      return 0
    fi
  done
  return 1
}

adopt_orphan() {
  local pid
  pid_alive && return 0
  pid="$(find_broker_pid)" || return 0
  log "found a broker without a pid file (pid $pid); adopting it"
  echo "$pid" >"$PID_FILE"
  load_ports
  [[ -n "$BROKER_PORT" ]] && echo "127.0.0.1:$BROKER_PORT" >"$BOOTSTRAP_FILE"
  return 0
}

broker_answers() {  # broker_answers HOST:PORT -> metadata round trip through a real client
  local py
  port_open "${1##*:}" || return 1
  grep -q "Kafka Server started" "$BROKER_LOG" 2>/dev/null || return 1
  py="$(python_bin)" || return 0
  "$py" -c 'import kafka' 2>/dev/null || return 0
  V2V_PROBE_TLS_DIR="$TLS_DIR" V2V_PROBE_ADMIN="$ADMIN_USER" "$py" - "$1" <<'EOF' 2>/dev/null
import os, sys
from kafka import KafkaAdminClient
security = {}
if os.environ.get("V2V_PROBE_TLS_DIR"):
    security = {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": os.path.join(os.environ["V2V_PROBE_TLS_DIR"], "ca.crt"),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": os.environ["V2V_PROBE_ADMIN"],
        "sasl_plain_password": os.environ["V2V_KAFKA_ADMIN_PASSWORD"],
    }
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000,
                         client_id="v2v-kafka-sh-probe", **security)
try:
    admin.list_topics()
    if not admin.describe_cluster().get("brokers"):
        sys.exit(1)
finally:
    admin.close()
EOF
}

show_logs() {
  log "---- tail of $BROKER_LOG ----"
  tail -n 40 "$BROKER_LOG" >&2 2>/dev/null || true
  if [[ -s "$BROKER_OUT" ]]; then
    log "---- tail of $BROKER_OUT ----"
    tail -n 20 "$BROKER_OUT" >&2 || true
  fi
}

take_lock() {
  mkdir -p "$STATE"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "timed out waiting for the lock on $STATE/.lock"
  fi
}

# ---------------------------------------------------------------- configuration

check_secure_prereqs() {
  [[ "$SECURITY" == sasl_ssl ]] || return 0
  local file
  for file in broker.pem ca.crt; do
    [[ -r "$TLS_DIR/$file" ]] || die "V2V_KAFKA_TLS_DIR: $TLS_DIR/$file is missing or unreadable"
  done
  [[ -n "${V2V_KAFKA_ADMIN_PASSWORD:-}" ]] \
    || die "V2V_KAFKA_ADMIN_PASSWORD is not set (the super user's password, with V2V_KAFKA_TLS_DIR)"
  [[ "$V2V_KAFKA_ADMIN_PASSWORD" =~ ^[A-Za-z0-9_-]{12,}$ ]] \
    || die "V2V_KAFKA_ADMIN_PASSWORD: 12 or more of A-Z a-z 0-9 _ - (it goes into JAAS and --add-scram)"
}

listener_properties() {  # listener_properties BROKER_PORT CONTROLLER_PORT
  if [[ "$SECURITY" == plaintext ]]; then
    cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2
advertised.listeners=PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
    return
  fi
  # The listeners and authorizer of the docker-compose broker (deploy/compose/kafka-broker.sh).
  cat <<EOF
listeners=SASL_SSL://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2
advertised.listeners=SASL_SSL://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2
inter.broker.listener.name=SASL_SSL
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$ADMIN_USER" password="$V2V_KAFKA_ADMIN_PASSWORD";
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.crt
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^(.*,)?CN=([^,]+)(,.*)?\$/\$2/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:$BROKER_PRINCIPAL;User:$ADMIN_USER
EOF
}

write_properties() {  # write_properties BROKER_PORT CONTROLLER_PORT (0600: it may hold a password)
  (umask 077 && cat >"$PROPS" <<EOF
# Generated by infra/kafka/kafka.sh - single-node KRaft (combined broker + controller), loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$2
$(listener_properties "$1" "$2")
log.dirs=$DATA
num.network.threads=2
num.io.threads=4
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=6
group.initial.rebalance.delay.ms=0
log.retention.hours=168
log.segment.bytes=104857600
EOF
  )
}

load_ports() {
  BROKER_PORT="" CONTROLLER_PORT="" CLUSTER_ID="" FORMATTED_SECURITY=plaintext
  # shellcheck disable=SC1090
  [[ -f "$PORTS_FILE" ]] && . "$PORTS_FILE"
  return 0
}

prepare_storage() {  # reuse formatted storage when its ports are still free, else format afresh
  load_ports
  if [[ -f "$DATA/meta.properties" && -n "$BROKER_PORT" && -n "$CONTROLLER_PORT" ]] \
      && [[ "$FORMATTED_SECURITY" == "$SECURITY" ]] \
      && port_free "$BROKER_PORT" && port_free "$CONTROLLER_PORT"; then
    write_properties "$BROKER_PORT" "$CONTROLLER_PORT"
    log "reusing formatted storage in $DATA (ports $BROKER_PORT/$CONTROLLER_PORT)"
    return 0
  fi
  # The controller's own endpoint is recorded in the KRaft voter set at format time
  # (--standalone dynamic quorum), so a port change means formatting fresh storage.
  rm -rf "$DATA"
  read -r BROKER_PORT CONTROLLER_PORT < <(two_free_ports)
  CLUSTER_ID="$(new_cluster_id)"
  write_properties "$BROKER_PORT" "$CONTROLLER_PORT"
  log "formatting storage in $DATA (cluster $CLUSTER_ID, ports $BROKER_PORT/$CONTROLLER_PORT, $SECURITY)"
  local scram=()
  if [[ "$SECURITY" == sasl_ssl ]]; then  # the super user's credential, there before the start
    scram=(--add-scram "SCRAM-SHA-512=[name=$ADMIN_USER,password=$V2V_KAFKA_ADMIN_PASSWORD]")
  fi
  if ! "$JAVA" -Dlog4j2.configurationFile="$LOG4J_CONFIG" -Dkafka.logs.dir="$STATE" \
      -cp "$LIBS/*" kafka.tools.StorageTool format --standalone \
      -t "$CLUSTER_ID" -c "$PROPS" "${scram[@]}" >&2; then
    die "formatting the KRaft storage failed"
  fi
  printf 'BROKER_PORT=%s\nCONTROLLER_PORT=%s\nCLUSTER_ID=%s\nFORMATTED_SECURITY=%s\n' \
    "$BROKER_PORT" "$CONTROLLER_PORT" "$CLUSTER_ID" "$SECURITY" >"$PORTS_FILE"
}

# ---------------------------------------------------------------- lifecycle

start_broker() {
  [[ -f "$BROKER_LOG" ]] && mv -f "$BROKER_LOG" "$BROKER_LOG.prev"
  : >"$BROKER_OUT"
  log "starting broker (log: $BROKER_LOG)"
  setsid nohup "$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONFIG" -Dkafka.logs.dir="$STATE" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" \
    </dev/null >>"$BROKER_OUT" 2>&1 9>&- &
  echo $! >"$PID_FILE"
}

wait_ready() {  # wait_ready ADDRESS
  local deadline=$((SECONDS + START_TIMEOUT))
  local pid
  pid="$(cat "$PID_FILE")"
  while ((SECONDS < deadline)); do
    # kill -0, not pid_alive: right after the fork the cmdline is not yet java's
    if ! kill -0 "$pid" 2>/dev/null; then
      show_logs
      rm -f "$PID_FILE"
      die "the broker process exited during startup"
    fi
    broker_answers "$1" && return 0
    sleep 0.5
  done
  show_logs
  log "the broker did not become ready within ${START_TIMEOUT}s; stopping it (pid $pid)"
  stop_broker
  rm -f "$PID_FILE"
  exit 1
}

cmd_up() {
  take_lock
  adopt_orphan
  if pid_alive && [[ -f "$BOOTSTRAP_FILE" ]]; then
    local address
    load_ports
    [[ "$FORMATTED_SECURITY" == "$SECURITY" ]] \
      || die "the broker in $STATE runs in $FORMATTED_SECURITY mode, not $SECURITY: kafka.sh down first"
    address="$(cat "$BOOTSTRAP_FILE")"
    wait_ready "$address"
    log "already running"
    echo "$address"
    return 0
  fi
  if pid_alive; then
    log "a broker without a recorded address is running; stopping it"
    stop_broker
  fi
  rm -f "$PID_FILE" "$BOOTSTRAP_FILE"
  check_prereqs
  check_secure_prereqs
  fetched || cmd_fetch
  prepare_storage
  local address="127.0.0.1:$BROKER_PORT" started=$SECONDS
  start_broker
  wait_ready "$address"
  echo "$address" >"$BOOTSTRAP_FILE"
  log "ready in $((SECONDS - started))s"
  echo "$address"
}

stop_broker() {
  local pid deadline
  pid="$(cat "$PID_FILE")"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker did not stop within ${STOP_TIMEOUT}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
}

cmd_down() {
  take_lock
  adopt_orphan
  if pid_alive; then
    log "stopping broker (pid $(cat "$PID_FILE"))"
    stop_broker
  else
    log "not running"
  fi
  rm -f "$PID_FILE" "$BOOTSTRAP_FILE"
}

cmd_status() {
  if pid_alive || find_broker_pid >/dev/null; then
    echo running
  else
    echo stopped
    exit 3
  fi
}

cmd_bootstrap() {
  if ! pid_alive || [[ ! -f "$BOOTSTRAP_FILE" ]]; then
    log "not running"
    exit 1
  fi
  cat "$BOOTSTRAP_FILE"
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  bootstrap) cmd_bootstrap ;;
  *)
    echo "usage: $0 fetch|up|down|status|bootstrap" >&2
    exit 64
    ;;
esac
