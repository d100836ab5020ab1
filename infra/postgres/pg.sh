#!/usr/bin/env bash
# Throwaway local PostgreSQL cluster for tests (no Docker needed), on 127.0.0.1 at a free port.
#
#   pg.sh up       init (once) and start the cluster; prints postgresql://v2v:v2v@127.0.0.1:PORT/v2v
#   pg.sh down     stop it (pg_ctl stop -m fast)
#   pg.sh status   prints "running" (exit 0) or "stopped" (exit 3)
#   pg.sh dsn      prints the DSN of the running cluster, or exits 1
#
# The server binaries come from PATH or /usr/lib/postgresql/<version>/bin (Debian); when they
# are missing and we are root, the Debian package is installed. PostgreSQL refuses to run as
# root, so as root the cluster runs as the `postgres` OS user. Durability is switched off
# (fsync, synchronous_commit, full_page_writes): this cluster is for tests only.
# Environment: V2V_STATE_DIR (default <repo>/.v2v), V2V_PG_BIN (directory with initdb/pg_ctl).
# Only the result (the DSN) goes to stdout, as its last line; progress goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STATE_BASE="${V2V_STATE_DIR:-$REPO/.v2v}"
[[ "$STATE_BASE" == /* ]] || STATE_BASE="$PWD/$STATE_BASE"
STATE="$STATE_BASE/postgres"
LOCATION_FILE="$STATE/location"  # where the cluster lives (data, socket, log)
PORT_FILE="$STATE/port"
DSN_FILE="$STATE/dsn"
APP_USER=v2v
APP_PASSWORD=v2v
APP_DB=v2v
OS_USER=postgres  # used only when running as root

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
is_root() { [[ "$(id -u)" == 0 ]]; }

# ---------------------------------------------------------------- binaries

find_bin_dir() {  # prints the directory holding initdb and pg_ctl
  local dir candidate
  if [[ -n "${V2V_PG_BIN:-}" ]]; then
    [[ -x "$V2V_PG_BIN/initdb" && -x "$V2V_PG_BIN/pg_ctl" ]] && { echo "$V2V_PG_BIN"; return 0; }
    return 1
  fi
  if candidate="$(command -v initdb)" && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$candidate")"
    return 0
  fi
  while IFS= read -r dir; do
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return 0; }
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
  return 1
}

install_server() {
  local cmd="apt-get update && apt-get install -y postgresql"
  if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
    log "missing: the PostgreSQL server binaries (initdb, pg_ctl) are not on PATH or in /usr/lib/postgresql/*/bin"
    log "install them, e.g. on Debian/Ubuntu: sudo sh -c '$cmd'"
    log "(or set V2V_PG_BIN to their directory, or set V2V_POSTGRES_DSN to an existing server)"
    exit 2
  fi
  log "PostgreSQL server binaries not found; installing the Debian package: $cmd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed"
  apt-get install -y -q postgresql >&2 || die "apt-get install postgresql failed"
}

resolve_bins() {
  if ! BIN="$(find_bin_dir)"; then
    if [[ -n "${V2V_PG_BIN:-}" ]]; then
      log "missing: initdb/pg_ctl in V2V_PG_BIN=$V2V_PG_BIN"
      exit 2
    fi
    install_server
    BIN="$(find_bin_dir)" || die "PostgreSQL server binaries still not found after installing"
  fi
  PSQL="$BIN/psql"
  [[ -x "$PSQL" ]] || PSQL="$(command -v psql)" || die "psql not found"
}

# ---------------------------------------------------------------- running as the right user

as_pg() {  # run a command as the cluster's OS user
  if is_root; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u "$OS_USER" -- "$@"
    else
      su -s /bin/sh "$OS_USER" -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

ensure_os_user() {
  is_root || return 0
  id "$OS_USER" >/dev/null 2>&1 && return 0
  log "creating OS user $OS_USER"
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh "$OS_USER" \
    || die "could not create the $OS_USER OS user"
}

# ---------------------------------------------------------------- locations

path_hash() { printf '%s' "$1" | cksum | awk '{print $1}'; }

cluster_dir_usable() {  # the cluster's user can reach it, and the socket path is short enough
  local dir="$1"
  ((${#dir} + 24 < 100)) || return 1
  mkdir -p "$dir"
  if is_root; then
    chown "$OS_USER:" "$dir"
    chmod 0700 "$dir"
  fi
  as_pg test -x "$dir" -a -w "$dir" 2>/dev/null
}

choose_location() {  # sets ROOT (cluster dir); remembered in $LOCATION_FILE
  mkdir -p "$STATE"
  if [[ -f "$LOCATION_FILE" ]]; then
    ROOT="$(cat "$LOCATION_FILE")"
    if cluster_dir_usable "$ROOT"; then return 0; fi
  fi
  ROOT="$STATE/cluster"
  if ! cluster_dir_usable "$ROOT"; then
    rmdir "$ROOT" 2>/dev/null || true
    ROOT="/tmp/v2v-pg-$(path_hash "$STATE")"
    log "$STATE is not reachable by the $OS_USER user (or too long a path); using $ROOT"
    cluster_dir_usable "$ROOT" || die "cannot prepare a cluster directory at $ROOT"
  fi
  echo "$ROOT" >"$LOCATION_FILE"
}

set_paths() {
  DATA="$ROOT/data"
  SOCK="$ROOT/run"
  PG_LOG="$ROOT/postgres.log"
}

load_location() {  # for down/status/dsn: no side effects
  [[ -f "$LOCATION_FILE" ]] || return 1
  ROOT="$(cat "$LOCATION_FILE")"
  set_paths
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

port_free() {
  local py
  if py="$(python_bin)"; then
    "$py" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the postmaster does
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

free_port() {
  local py port
  if py="$(python_bin)"; then
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  while :; do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" && { echo "$port"; return; }
  done
}

dsn_for() { echo "postgresql://$APP_USER:$APP_PASSWORD@127.0.0.1:$1/$APP_DB"; }

running() {  # needs BIN and paths
  [[ -f "$DATA/PG_VERSION" ]] || return 1
  as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

show_log() {
  log "---- tail of $PG_LOG ----"
  tail -n 30 "$PG_LOG" >&2 2>/dev/null || true
}

take_lock() {
  mkdir -p "$STATE"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "timed out waiting for the lock on $STATE/.lock"
  fi
}

# ---------------------------------------------------------------- setup

init_cluster() {
  log "initialising a new cluster in $DATA"
  rm -rf "$DATA"
  as_pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 --no-instructions >&2 \
    || die "initdb failed"
  echo "include_if_exists = 'v2v.conf'" | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
}

write_settings() {  # write_settings PORT
  as_pg mkdir -p "$SOCK"
  as_pg tee "$DATA/v2v.conf" >/dev/null <<EOF
# Generated by infra/postgres/pg.sh - throwaway test cluster, durability off.
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '$SOCK'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
EOF
}

ensure_app_role_and_db() {  # ensure_app_role_and_db PORT
  as_pg "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$1" -U postgres -d postgres >&2 <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_USER') THEN
    CREATE ROLE $APP_USER LOGIN SUPERUSER PASSWORD '$APP_PASSWORD';
  ELSE
    ALTER ROLE $APP_USER LOGIN SUPERUSER PASSWORD '$APP_PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $APP_DB OWNER $APP_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$APP_DB') \gexec
EOF
}

check_dsn() {  # a real password login over TCP, as a client would do it
  PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -t -c 'SELECT 1' "$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------- commands

cmd_up() {
  take_lock
  resolve_bins
  ensure_os_user
  choose_location
  set_paths
  local port dsn
  if running && [[ -f "$PORT_FILE" ]]; then
    port="$(cat "$PORT_FILE")"
    dsn="$(dsn_for "$port")"
    check_dsn "$dsn" || { ensure_app_role_and_db "$port"; check_dsn "$dsn"; } \
      || die "a cluster is running in $DATA but $dsn does not answer"
    log "already running"
    echo "$dsn" | tee "$DSN_FILE"
    return 0
  fi
  if running; then
    log "a cluster without a recorded port is running; restarting it"
    as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w >&2 9>&- || true
  fi
  [[ -f "$DATA/PG_VERSION" ]] || init_cluster
  port="$(cat "$PORT_FILE" 2>/dev/null || true)"
  if [[ -z "$port" ]] || ! port_free "$port"; then
    port="$(free_port)"
  fi
  write_settings "$port"
  echo "$port" >"$PORT_FILE"
  log "starting PostgreSQL ($("$BIN/pg_ctl" --version)) on 127.0.0.1:$port (log: $PG_LOG)"
  if ! as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$PG_LOG" -w -t 60 >&2 9>&-; then
    show_log
    die "PostgreSQL did not start"
  fi
  ensure_app_role_and_db "$port" || { show_log; die "could not create role/database $APP_DB"; }
  dsn="$(dsn_for "$port")"
  check_dsn "$dsn" || { show_log; die "$dsn does not accept a password login"; }
  echo "$dsn" | tee "$DSN_FILE"
}

cmd_down() {
  take_lock
  if load_location && BIN="$(find_bin_dir)" && running; then
    log "stopping PostgreSQL in $DATA"
    as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >&2 9>&-
  else
    log "not running"
  fi
  rm -f "$DSN_FILE"
}

cmd_status() {
  if load_location && BIN="$(find_bin_dir)" && running; then
    echo running
  else
    echo stopped
    exit 3
  fi
}

cmd_dsn() {
  if load_location && BIN="$(find_bin_dir)" && running && [[ -f "$PORT_FILE" ]]; then
    dsn_for "$(cat "$PORT_FILE")"
  else
    log "not running"
    exit 1
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  dsn) cmd_dsn ;;
  *)
    echo "usage: $0 up|down|status|dsn" >&2
    exit 64
    ;;
esac
