#!/usr/bin/env bash
# Local services for stockflow: MariaDB, Redis and a single-node Apache Kafka
# (KRaft, from Maven Central jars). Installs, starts, checks and stops them,
# idempotently, without systemd or docker. Run `scripts/services.sh help`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
PROG="scripts/services.sh"

ALL_SERVICES=(mariadb redis kafka)

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
STOCKFLOW_CACHE="${STOCKFLOW_CACHE:-$HOME/.cache/stockflow}"
STOCKFLOW_STATE="${STOCKFLOW_STATE:-$HOME/.cache/stockflow/state}"
STOCKFLOW_WAIT_SECONDS="${STOCKFLOW_WAIT_SECONDS:-90}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms128m}"
KAFKA_NODES="${KAFKA_NODES:-3}"
KAFKA_NODE_HEAP_OPTS="${KAFKA_NODE_HEAP_OPTS:--Xmx384m -Xms64m}"
MARIADB_MAX_CONNECTIONS="${MARIADB_MAX_CONNECTIONS:-1000}"
MARIADB_SNAPSHOT_ISOLATION="${MARIADB_SNAPSHOT_ISOLATION:-}"

MARIADB_ADDR="127.0.0.1:3306"
REDIS_ADDR="127.0.0.1:6379"
KAFKA_ADDR="127.0.0.1:9092"
KAFKA_CONTROLLER_ADDR="127.0.0.1:9093"
# The single broker's SASL_SSL listener and its known test user (PLAIN and
# SCRAM-SHA-256/512 alike). Test credentials, never for production.
KAFKA_SASL_ADDR="127.0.0.1:9094"
KAFKA_SASL_USER="stockflow"
KAFKA_SASL_PASSWORD="stockflow-test-secret"
MARIADB_CNF="/etc/mysql/mariadb.conf.d/99-stockflow.cnf"
MARIADB_DATADIR="/var/lib/mysql"
# MariaDB's TLS files (copies of 'scripts/certs.sh server mariadb', readable by
# the server's user) and the least-privilege users with their known test
# passwords. Test credentials, never for production.
MARIADB_TLS_DIR="/etc/mysql/stockflow-tls"
MARIADB_MIGRATE_USER="stockflow_migrate"
MARIADB_MIGRATE_PASSWORD="stockflow-migrate-test"
MARIADB_WORKER_USER="stockflow"
MARIADB_WORKER_PASSWORD="stockflow-worker-test"

usage() {
  cat <<EOF
Usage: $PROG <command> [service...]

Commands:
  up [service...]     install (if missing), start (if not answering) and wait
                      until each service answers; no service = all of them.
                      A second run is a fast no-op.
  down [service...]   stop the services this script started (pid files);
                      no error when they are not running.
  status              one line per service: up/down and its address; exits 0
                      when all are up, 3 otherwise.
  node start|stop|kill N
                      node N of the kafka-cluster: start it (and wait until it
                      is registered), stop it (TERM, wait for the exit) or kill
                      it (KILL). For the cluster tests.
  kafka-libs          only fetch the Kafka jars (Maven Central) and print the
                      libs directory (used by scripts/kafka-console-producer.sh).
  help, --help, -h    this text.

Services (fixed addresses):
  mariadb   $MARIADB_ADDR   user root, no password, database stockflow
            DSN root@tcp(127.0.0.1:3306)/stockflow?parseTime=true
            TLS on the same port, optional (plaintext clients keep working):
            the certificate of 'scripts/certs.sh server mariadb', CA
            $MARIADB_TLS_DIR/ca.crt. A server started before TLS was
            configured needs one restart: down mariadb, then up mariadb.
            Least-privilege users (test passwords):
              $MARIADB_MIGRATE_USER, password $MARIADB_MIGRATE_PASSWORD: DDL on stockflow (stockworker migrate)
              $MARIADB_WORKER_USER, password $MARIADB_WORKER_PASSWORD: SELECT, INSERT, UPDATE on stockflow.*
                (the worker; database-wide, as the tables may not exist yet)
            For example:
              MYSQL_DSN='$MARIADB_MIGRATE_USER:$MARIADB_MIGRATE_PASSWORD@tcp(127.0.0.1:3306)/stockflow?parseTime=true' \\
                MYSQL_TLS_CA_FILE=$MARIADB_TLS_DIR/ca.crt bin/stockworker migrate
              MYSQL_DSN='$MARIADB_WORKER_USER:$MARIADB_WORKER_PASSWORD@tcp(127.0.0.1:3306)/stockflow?parseTime=true' \\
                MYSQL_TLS_CA_FILE=$MARIADB_TLS_DIR/ca.crt bin/stockworker
  redis     $REDIS_ADDR   persistence off
  kafka     $KAFKA_ADDR   single KRaft broker+controller (controller on $KAFKA_CONTROLLER_ADDR)
            $KAFKA_SASL_ADDR   the same broker's SASL_SSL listener: TLS with the
                             certificate of 'scripts/certs.sh server kafka' (trust
                             the CA \$(scripts/certs.sh dir)/ca.crt), SASL PLAIN,
                             SCRAM-SHA-256 and SCRAM-SHA-512, each with the test
                             user $KAFKA_SASL_USER, password $KAFKA_SASL_PASSWORD
                             (client certificates from 'scripts/certs.sh client NAME'
                             are checked when given, not required). For example:
              KAFKA_BROKERS=$KAFKA_SASL_ADDR KAFKA_TLS=true \\
              KAFKA_TLS_CA_FILE=\$(scripts/certs.sh dir)/ca.crt \\
              KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USERNAME=$KAFKA_SASL_USER \\
              KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD bin/orderctl watch
  kafka-cluster         KAFKA_NODES KRaft nodes (broker+controller each) beside
            the single broker: node N on 127.0.0.1:19<N-1>92 (controller 19<N-1>93),
            i.e. 127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292 for 3 nodes;
            replication min(3, nodes), min.insync.replicas one less. Not part
            of 'up' without names ('down' without names stops it too); the
            cluster tests start it, 'make test-cluster' stops it afterwards.

Environment (default):
  KAFKA_VERSION               Kafka version from Maven Central (4.1.1; 3.9.1 also works).
                              A state dir formatted for another version is wiped
                              and re-formatted; a running broker of another
                              version (started here) is restarted.
  STOCKFLOW_CACHE             jar cache (\$HOME/.cache/stockflow); Kafka jars
                              go to \$STOCKFLOW_CACHE/kafka-<version>/libs
  STOCKFLOW_STATE             pids, logs, Kafka data, Redis files
                              (\$HOME/.cache/stockflow/state)
  STOCKFLOW_WAIT_SECONDS      how long 'up' waits for each service (90)
  KAFKA_HEAP_OPTS             broker JVM heap (-Xmx512m -Xms128m)
  KAFKA_NODES                 nodes of kafka-cluster, 1 to 9 (3)
  KAFKA_NODE_HEAP_OPTS        JVM heap of each cluster node (-Xmx384m -Xms64m)
  MARIADB_MAX_CONNECTIONS     max_connections, at least 500 (1000)
  MARIADB_SNAPSHOT_ISOLATION  on|off: SET GLOBAL innodb_snapshot_isolation when
                              the server has it (Debian's 10.11.19 does, default
                              OFF; older servers: only reported). Not persisted
                              across restarts. Unset: left alone.
  CI                          true in CI; no stdin is needed either way.

Logs: \$STOCKFLOW_STATE/<service>/<service>.log (printed on a failed wait).
EOF
}

# ---------------------------------------------------------------- helpers ----

LOG_TAG=services
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

# stop_pidfile NAME PIDFILE PATTERN TIMEOUT
stop_pidfile() {
  local name=$1 pidfile=$2 pattern=$3 timeout=$4 pid t0
  if ! pid_alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    log "$name: not running (nothing started by this script)"
    return 0
  fi
  pid=$(pid_of "$pidfile")
  log "$name: stopping pid $pid (TERM, up to ${timeout}s)"
  kill -TERM "$pid" 2>/dev/null || true
  t0=$(now)
  # pid_alive, not kill -0: a process nobody reaps stays a zombie, whose
  # command line is empty.
  while pid_alive "$pidfile" "$pattern"; do
    if [ $(( $(now) - t0 )) -ge "$timeout" ]; then
      log "$name: still running after ${timeout}s, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.3
  done
  rm -f "$pidfile"
  log "$name: stopped"
}

# wait_until NAME WHAT LOGFILE PIDFILE PATTERN CHECK_FN...: polls CHECK_FN
# until it succeeds, for at most STOCKFLOW_WAIT_SECONDS. Fails early when the
# process of PIDFILE (if given) has died. On failure prints the log tail and exits.
wait_until() {
  local name=$1 what=$2 logfile=$3 pidfile=$4 pattern=$5; shift 5
  local t0 elapsed last=-1
  t0=$(now)
  while true; do
    elapsed=$(( $(now) - t0 ))
    if [ $(( elapsed / 10 )) -ne "$last" ]; then
      last=$(( elapsed / 10 ))
      log "$name: waiting for $what ... ${elapsed}s/${STOCKFLOW_WAIT_SECONDS}s"
    fi
    if "$@" >/dev/null 2>&1; then
      log "$name: answering after $(( $(now) - t0 ))s"
      return 0
    fi
    elapsed=$(( $(now) - t0 ))
    if [ -n "$pidfile" ] && ! pid_alive "$pidfile" "$pattern"; then
      # the process may have daemonized or still be writing its pid file
      if [ "$elapsed" -ge 5 ]; then
        fail_with_log "$name" "$logfile" "process exited before answering"
      fi
    fi
    if [ "$elapsed" -ge "$STOCKFLOW_WAIT_SECONDS" ]; then
      fail_with_log "$name" "$logfile" "did not answer within ${STOCKFLOW_WAIT_SECONDS}s"
    fi
    sleep 0.5
  done
}

# ------------------------------------------------------------------ apt ------

packages_for() {
  case $1 in
    mariadb) echo "mariadb-server mariadb-client" ;;
    redis)   echo "redis-server kcat" ;;
    kafka)   echo "kcat openssl" ;;   # openssl: scripts/certs.sh, the SASL_SSL listener's certificate
    kafka_cluster) echo "kcat" ;;
  esac
}

# --------------------------------------------------------------- mariadb -----

MARIADB_DIR="$STOCKFLOW_STATE/mariadb"
MARIADB_PID="$MARIADB_DIR/mariadb.pid"
MARIADB_LOG="$MARIADB_DIR/mariadb.log"

mariadb_tcp() { mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot --connect-timeout=3 "$@" </dev/null; }
mariadb_sock() { "${SUDO[@]}" mariadb --protocol=socket -uroot --connect-timeout=3 "$@" </dev/null; }

mariadb_tcp_ok() { mariadb_tcp -N -e 'select 1' >/dev/null 2>&1; }
# answering at all (socket as OS root, or TCP as root)
mariadb_answers() {
  "${SUDO[@]}" mariadb-admin --protocol=socket -uroot --connect-timeout=2 ping </dev/null >/dev/null 2>&1 \
    || mariadb_tcp_ok
}

mariadb_write_cnf() {
  local want
  want="# Written by scripts/services.sh (stockflow); safe to delete.
[mariadbd]
bind-address = 127.0.0.1
port = 3306
max_connections = $MARIADB_MAX_CONNECTIONS
innodb_lock_wait_timeout = 10
character-set-server = utf8mb4
# TLS offered, not required: plaintext clients keep working.
ssl_cert = $MARIADB_TLS_DIR/mariadb.crt
ssl_key = $MARIADB_TLS_DIR/mariadb.key
ssl_ca = $MARIADB_TLS_DIR/ca.crt
"
  if [ "$(cat "$MARIADB_CNF" 2>/dev/null || true)" != "$(printf '%s' "$want")" ]; then
    log "mariadb: writing $MARIADB_CNF"
    "${SUDO[@]}" mkdir -p "$(dirname "$MARIADB_CNF")"
    printf '%s' "$want" | "${SUDO[@]}" tee "$MARIADB_CNF" >/dev/null
  fi
}

mariadb_start() {
  mkdir -p "$MARIADB_DIR"
  if [ ! -d "$MARIADB_DATADIR/mysql" ]; then
    log "mariadb: initializing data directory $MARIADB_DATADIR"
    "${SUDO[@]}" mariadb-install-db --user=mysql --datadir="$MARIADB_DATADIR" \
      --auth-root-authentication-method=socket </dev/null >>"$MARIADB_LOG" 2>&1 \
      || fail_with_log mariadb "$MARIADB_LOG" "mariadb-install-db failed"
  fi
  "${SUDO[@]}" mkdir -p /run/mysqld
  "${SUDO[@]}" chown mysql:mysql /run/mysqld
  [ -f "$MARIADB_LOG" ] && mv -f "$MARIADB_LOG" "$MARIADB_LOG.1"
  log "mariadb: starting mariadbd (log: $MARIADB_LOG)"
  # stderr is the error log (Debian sets no log_error); opened by us, so the
  # server running as user mysql can still write it.
  setsid nohup "${SUDO[@]}" mariadbd --user=mysql </dev/null >>"$MARIADB_LOG" 2>&1 &
  echo $! >"$MARIADB_PID"
}

# mariadb_prepare_tls: the server certificate (scripts/certs.sh server
# mariadb, made once) copied where the server's user reads it. A running
# server with TLS reloads changed files (FLUSH SSL); one started without TLS
# needs a restart, which is only reported.
mariadb_prepare_tls() {
  local dir f changed=0
  dir=$(STOCKFLOW_STATE="$STOCKFLOW_STATE" "$SCRIPT_DIR/certs.sh" server mariadb) \
    || die "mariadb: 'scripts/certs.sh server mariadb' failed"
  "${SUDO[@]}" mkdir -p "$MARIADB_TLS_DIR"
  for f in mariadb.crt mariadb.key ca.crt; do
    if ! "${SUDO[@]}" cmp -s "$dir/$f" "$MARIADB_TLS_DIR/$f"; then
      "${SUDO[@]}" install -m 0644 "$dir/$f" "$MARIADB_TLS_DIR/$f"
      changed=1
    fi
  done
  "${SUDO[@]}" chown mysql:mysql "$MARIADB_TLS_DIR"/mariadb.key 2>/dev/null || true
  "${SUDO[@]}" chmod 0640 "$MARIADB_TLS_DIR"/mariadb.key
  [ "$changed" = 1 ] && log "mariadb: TLS files in $MARIADB_TLS_DIR (from $dir)"
  MARIADB_TLS_CHANGED=$changed
}

# mariadb_tls_check: after start, TLS must be on; reload changed files.
mariadb_tls_check() {
  local have
  have=$(mariadb_tcp -N -B -e 'select @@have_ssl' 2>/dev/null || true)
  if [ "$have" != YES ]; then
    log "mariadb: WARNING: TLS is off (have_ssl=${have:-?}): the server was started before TLS was configured;"
    log "mariadb:   restart it once: $PROG down mariadb && $PROG up mariadb"
    return 0
  fi
  if [ "${MARIADB_TLS_CHANGED:-0}" = 1 ]; then
    mariadb_tcp -e 'FLUSH SSL' && log "mariadb: TLS files reloaded (FLUSH SSL)"
  fi
}

mariadb_configure() {
  # Fast path: TCP root login works, database exists, settings in place.
  local row
  row=$(mariadb_tcp -N -B -e "select @@max_connections, @@innodb_lock_wait_timeout,
         (select count(*) from information_schema.schemata where schema_name='stockflow'),
         (select count(*) from mysql.global_priv where user='root' and host='127.0.0.1'),
         (select count(*) from mysql.global_priv where user in ('$MARIADB_MIGRATE_USER', '$MARIADB_WORKER_USER') and host='%')" 2>/dev/null || true)
  if [ -n "$row" ]; then
    read -r mc lwt db r127 users <<<"$row"
    if [ "$mc" -ge 500 ] && [ "$lwt" -eq 10 ] && [ "$db" = 1 ] && [ "$r127" = 1 ] && [ "$users" = 2 ]; then
      return 0
    fi
  fi
  log "mariadb: configuring root over TCP without password, database stockflow, users $MARIADB_MIGRATE_USER and $MARIADB_WORKER_USER"
  local sql="
ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS stockflow CHARACTER SET utf8mb4;
SET GLOBAL max_connections = GREATEST(@@max_connections, $MARIADB_MAX_CONNECTIONS);
SET GLOBAL innodb_lock_wait_timeout = 10;
CREATE OR REPLACE USER $MARIADB_MIGRATE_USER@'%' IDENTIFIED BY '$MARIADB_MIGRATE_PASSWORD';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES ON stockflow.* TO $MARIADB_MIGRATE_USER@'%';
CREATE OR REPLACE USER $MARIADB_WORKER_USER@'%' IDENTIFIED BY '$MARIADB_WORKER_PASSWORD';
GRANT SELECT, INSERT, UPDATE ON stockflow.* TO $MARIADB_WORKER_USER@'%';
FLUSH PRIVILEGES;"
  if ! mariadb_sock -e "$sql" 2>>"$MARIADB_LOG"; then
    # socket login refused (not root?) - try TCP, in case it already works
    mariadb_tcp -e "$sql" 2>>"$MARIADB_LOG" \
      || fail_with_log mariadb "$MARIADB_LOG" "could not configure root/stockflow"
  fi
}

mariadb_snapshot_isolation() {
  [ -n "$MARIADB_SNAPSHOT_ISOLATION" ] || return 0
  local want
  case "${MARIADB_SNAPSHOT_ISOLATION,,}" in
    on|1|true) want=ON ;;
    off|0|false) want=OFF ;;
    *) die "MARIADB_SNAPSHOT_ISOLATION must be on or off, not '$MARIADB_SNAPSHOT_ISOLATION'" ;;
  esac
  local have
  have=$(mariadb_tcp -N -B -e "select variable_value from information_schema.global_variables where variable_name='INNODB_SNAPSHOT_ISOLATION'" 2>/dev/null || true)
  if [ -z "$have" ]; then
    log "mariadb: innodb_snapshot_isolation is not supported by $(mariadb_tcp -N -B -e 'select version()' 2>/dev/null); MARIADB_SNAPSHOT_ISOLATION=$MARIADB_SNAPSHOT_ISOLATION ignored"
    return 0
  fi
  mariadb_tcp -e "SET GLOBAL innodb_snapshot_isolation = $want" \
    || die "mariadb: could not set innodb_snapshot_isolation=$want"
  log "mariadb: innodb_snapshot_isolation = $want (was $have; new sessions only)"
}

up_mariadb() {
  mariadb_prepare_tls
  mariadb_write_cnf
  if mariadb_answers; then
    :
  else
    if pid_alive "$MARIADB_PID" mariadbd; then
      log "mariadb: pid $(pid_of "$MARIADB_PID") exists but does not answer yet"
    else
      mariadb_start
    fi
    wait_until mariadb "mariadbd to answer (socket or $MARIADB_ADDR)" \
      "$MARIADB_LOG" "$MARIADB_PID" mariadbd mariadb_answers
  fi
  mariadb_configure
  # verify what the project uses: root without password over TCP
  mariadb_tcp_ok || wait_until mariadb "root login over TCP on $MARIADB_ADDR (select 1)" \
    "$MARIADB_LOG" "" "" mariadb_tcp_ok
  mariadb_snapshot_isolation
  mariadb_tls_check
  log "mariadb: up on $MARIADB_ADDR (database stockflow, root without password; TLS optional; users $MARIADB_MIGRATE_USER, $MARIADB_WORKER_USER)"
}

down_mariadb() { stop_pidfile mariadb "$MARIADB_PID" mariadbd 60; }

status_mariadb() {
  local extra=""
  if mariadb_tcp_ok; then
    extra=$(mariadb_tcp -N -B -e "select concat('version ', version(), ', max_connections ', @@max_connections)" 2>/dev/null || true)
    print_status mariadb up "$MARIADB_ADDR" "$extra$(managed_note "$MARIADB_PID" mariadbd)"
    return 0
  fi
  if mariadb_answers; then
    print_status mariadb up "$MARIADB_ADDR" "socket only: root over TCP not configured yet, run up"
    return 1
  fi
  print_status mariadb down "$MARIADB_ADDR" ""
  return 1
}

# ----------------------------------------------------------------- redis -----

REDIS_DIR="$STOCKFLOW_STATE/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"

redis_answers() {
  [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null </dev/null)" = PONG ]
}

up_redis() {
  if redis_answers; then
    log "redis: up on $REDIS_ADDR"
    return 0
  fi
  mkdir -p "$REDIS_DIR"
  [ -f "$REDIS_LOG" ] && mv -f "$REDIS_LOG" "$REDIS_LOG.1"
  log "redis: starting redis-server (log: $REDIS_LOG)"
  # shellcheck disable=SC2094 # redis appends to its log; we only add stderr
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --protected-mode yes \
    --dir "$REDIS_DIR" --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
    --save '' --appendonly no </dev/null >/dev/null 2>>"$REDIS_LOG" \
    || fail_with_log redis "$REDIS_LOG" "redis-server failed to start"
  wait_until redis "PONG from $REDIS_ADDR" "$REDIS_LOG" "$REDIS_PID" redis-server redis_answers
  log "redis: up on $REDIS_ADDR"
}

down_redis() { stop_pidfile redis "$REDIS_PID" redis-server 30; }

status_redis() {
  if redis_answers; then
    local v
    v=$(redis-cli -h 127.0.0.1 -p 6379 info server 2>/dev/null </dev/null | tr -d '\r' | sed -n 's/^redis_version://p')
    print_status redis up "$REDIS_ADDR" "version $v$(managed_note "$REDIS_PID" redis-server)"
    return 0
  fi
  print_status redis down "$REDIS_ADDR" ""
  return 1
}

# ----------------------------------------------------------------- kafka -----

KAFKA_DIR="$STOCKFLOW_STATE/kafka"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_KEYSTORE="$KAFKA_DIR/keystore.pem"
# What the storage was formatted with (formatted-version): the version and the
# SCRAM users, which only a format adds. A storage formatted otherwise (an
# older script, another version) is wiped and formatted again, once.
KAFKA_FORMAT="$KAFKA_VERSION scram=$KAFKA_SASL_USER"
# The listeners a broker started here has (running-listeners): a broker of an
# older script, without the SASL_SSL listener, is restarted by 'up'.
KAFKA_LISTENERS="PLAINTEXT://$KAFKA_ADDR SASL_SSL://$KAFKA_SASL_ADDR"
KAFKA_POM="$ROOT_DIR/deploy/kafka/pom.xml"

kafka_home() { echo "$STOCKFLOW_CACHE/kafka-$KAFKA_VERSION"; }
kafka_libs() { echo "$(kafka_home)/libs"; }
kafka_major() { echo "${KAFKA_VERSION%%.*}"; }

check_kafka_version() {
  [[ "$KAFKA_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] \
    || die "KAFKA_VERSION must look like 4.1.1, not '$KAFKA_VERSION'"
  [ "$(kafka_major)" -ge 3 ] || die "KAFKA_VERSION $KAFKA_VERSION: only 3.x (KRaft) and later are supported"
}

# Logging configs, for both log4j2 (Kafka 4.x) and log4j 1/reload4j (3.x).
# The broker logs to stdout (redirected to kafka.log); tools log warnings to stderr.
write_kafka_log_configs() {
  local dir=$1
  mkdir -p "$dir"
  cat >"$dir/log4j2-broker.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
EOF
  cat >"$dir/log4j-broker.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
  cat >"$dir/log4j2-tools.properties" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = ERR
EOF
  cat >"$dir/log4j-tools.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# ensure_kafka_libs: copies Kafka + logging jars from Maven Central into the
# cache, once per (version, pom content); a marker is written only on success.
ensure_kafka_libs() {
  check_kafka_version
  local home libs marker want
  home=$(kafka_home); libs=$(kafka_libs); marker="$home/.complete"
  [ -f "$KAFKA_POM" ] || die "missing $KAFKA_POM"
  want="$KAFKA_VERSION $(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && [ -d "$libs" ]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) is needed to fetch the Kafka jars"
  command -v java >/dev/null 2>&1 || die "java (17+) is needed to run Kafka"
  log "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central into $libs"
  rm -rf "$libs" "$marker"
  mkdir -p "$home"
  local profile=()
  [ "$(kafka_major)" -lt 4 ] && profile=(-Dkafka3)
  if ! mvn -B -q -f "$KAFKA_POM" -Dkafka.version="$KAFKA_VERSION" "${profile[@]}" \
        dependency:copy-dependencies -DoutputDirectory="$libs" \
        </dev/null >"$home/mvn.log" 2>&1; then
    fail_with_log kafka "$home/mvn.log" "mvn could not fetch Kafka $KAFKA_VERSION"
  fi
  ls "$libs"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 \
    || fail_with_log kafka "$home/mvn.log" "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
  write_kafka_log_configs "$home/config"
  echo "$want" >"$marker"
}

kafka_java() {
  # kafka_java LOGCFG_KIND CLASS ARGS... (LOGCFG_KIND: broker|tools)
  local kind=$1; shift
  local cfg; cfg="$(kafka_home)/config"
  java -cp "$(kafka_libs)/*" \
    -Dlog4j2.configurationFile="$cfg/log4j2-$kind.properties" \
    -Dlog4j.configuration="file:$cfg/log4j-$kind.properties" \
    "$@"
}

kafka_answers() {
  tcp_open 127.0.0.1 9092 || return 1
  if command -v kcat >/dev/null 2>&1; then
    kcat -b "$KAFKA_ADDR" -L -m 3 </dev/null 2>/dev/null | grep -q "broker 1 at $KAFKA_ADDR"
  else
    kafka_java tools org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_ADDR" --list </dev/null
  fi
}

write_kafka_props() {
  cat >"$KAFKA_PROPS" <<EOF
# Written by scripts/services.sh for Kafka $KAFKA_VERSION (single node, KRaft combined mode)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_CONTROLLER_ADDR
listeners=PLAINTEXT://$KAFKA_ADDR,CONTROLLER://$KAFKA_CONTROLLER_ADDR,SASL_SSL://$KAFKA_SASL_ADDR
advertised.listeners=PLAINTEXT://$KAFKA_ADDR,SASL_SSL://$KAFKA_SASL_ADDR
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
# SASL_SSL on $KAFKA_SASL_ADDR only; the controller and inter-broker traffic
# stay PLAINTEXT. TLS: a PEM keystore (key, certificate, CA) made from
# scripts/certs.sh; a client certificate is checked against the CA when one
# is presented. PLAIN users are in the JAAS line; SCRAM users are in the
# metadata log (StorageTool format --add-scram).
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$KAFKA_KEYSTORE
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$KAFKA_CA_FILE
listener.name.sasl_ssl.ssl.client.auth=requested
log.dirs=$KAFKA_DATA
num.partitions=6
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
EOF
}

# kafka_prepare_tls: the broker's certificate (scripts/certs.sh server kafka,
# made once) and the PEM keystore the SASL_SSL listener reads: key, then
# certificate chain. Sets KAFKA_CA_FILE.
kafka_prepare_tls() {
  local dir
  dir=$(STOCKFLOW_STATE="$STOCKFLOW_STATE" "$SCRIPT_DIR/certs.sh" server kafka) \
    || die "kafka: 'scripts/certs.sh server kafka' failed"
  KAFKA_CA_FILE="$dir/ca.crt"
  mkdir -p "$KAFKA_DIR"
  cat "$dir/kafka.key" "$dir/kafka.crt" "$dir/ca.crt" >"$KAFKA_KEYSTORE.tmp"
  chmod 600 "$KAFKA_KEYSTORE.tmp"
  mv -f "$KAFKA_KEYSTORE.tmp" "$KAFKA_KEYSTORE"
}

# kafka_prepare_storage: (re)formats the KRaft storage when missing or when
# it was formatted otherwise (KAFKA_FORMAT: another KAFKA_VERSION, or without
# the SCRAM users).
kafka_prepare_storage() {
  mkdir -p "$KAFKA_DIR"
  local vfile="$KAFKA_DIR/formatted-version"
  if [ -f "$KAFKA_DATA/meta.properties" ] && [ "$(cat "$vfile" 2>/dev/null)" = "$KAFKA_FORMAT" ]; then
    write_kafka_props
    return 0
  fi
  if [ -d "$KAFKA_DATA" ]; then
    log "kafka: storage was formatted as '$(cat "$vfile" 2>/dev/null || echo '?')', wiping it for '$KAFKA_FORMAT'"
  fi
  rm -rf "$KAFKA_DATA" "$vfile"
  write_kafka_props
  local cid
  cid=$(kafka_java tools kafka.tools.StorageTool random-uuid </dev/null 2>>"$KAFKA_LOG") \
    || fail_with_log kafka "$KAFKA_LOG" "StorageTool random-uuid failed"
  cid=$(printf '%s' "$cid" | tail -n1 | tr -d '[:space:]')
  log "kafka: formatting storage (cluster id $cid, SCRAM user $KAFKA_SASL_USER)"
  # Static controller.quorum.voters: no --standalone/--initial-controllers needed.
  kafka_java tools kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_PROPS" \
      --add-scram "SCRAM-SHA-256=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
      --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
      </dev/null >>"$KAFKA_LOG" 2>&1 \
    || fail_with_log kafka "$KAFKA_LOG" "StorageTool format failed"
  echo "$cid" >"$KAFKA_DIR/cluster.id"
  echo "$KAFKA_FORMAT" >"$vfile"
}

kafka_start() {
  [ -f "$KAFKA_LOG" ] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
  kafka_prepare_tls
  kafka_prepare_storage
  log "kafka: starting Kafka $KAFKA_VERSION broker (log: $KAFKA_LOG)"
  local cfg; cfg="$(kafka_home)/config"
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of JVM options
  setsid nohup java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$cfg/log4j2-broker.properties" \
    -Dlog4j.configuration="file:$cfg/log4j-broker.properties" \
    -cp "$(kafka_libs)/*" kafka.Kafka "$KAFKA_PROPS" \
    </dev/null >>"$KAFKA_LOG" 2>&1 &
  echo $! >"$KAFKA_PID"
  echo "$KAFKA_VERSION" >"$KAFKA_DIR/running-version"
  echo "$KAFKA_LISTENERS" >"$KAFKA_DIR/running-listeners"
}

# kafka_sasl_answers: the SASL_SSL listener accepts connections.
kafka_sasl_answers() { tcp_open 127.0.0.1 "${KAFKA_SASL_ADDR##*:}"; }

up_kafka() {
  check_kafka_version
  ensure_kafka_libs
  mkdir -p "$KAFKA_DIR"
  if pid_alive "$KAFKA_PID" kafka.Kafka; then
    local running; running=$(cat "$KAFKA_DIR/running-version" 2>/dev/null || echo '?')
    if [ "$running" != "$KAFKA_VERSION" ]; then
      log "kafka: broker $running is running, KAFKA_VERSION=$KAFKA_VERSION: restarting"
      down_kafka
    elif [ "$(cat "$KAFKA_DIR/running-listeners" 2>/dev/null)" != "$KAFKA_LISTENERS" ]; then
      log "kafka: the running broker was started without the SASL_SSL listener on $KAFKA_SASL_ADDR: restarting"
      down_kafka
    fi
  fi
  if kafka_answers; then
    if ! pid_alive "$KAFKA_PID" kafka.Kafka; then
      log "kafka: a broker not started by this script answers on $KAFKA_ADDR; using it (version not checked)"
    fi
  else
    if pid_alive "$KAFKA_PID" kafka.Kafka; then
      log "kafka: pid $(pid_of "$KAFKA_PID") exists but does not answer yet"
    else
      kafka_start
    fi
    wait_until kafka "a metadata answer from $KAFKA_ADDR" \
      "$KAFKA_LOG" "$KAFKA_PID" kafka.Kafka kafka_answers
  fi
  local sasl=""
  if pid_alive "$KAFKA_PID" kafka.Kafka; then
    kafka_sasl_answers || wait_until kafka "the SASL_SSL listener on $KAFKA_SASL_ADDR" \
      "$KAFKA_LOG" "$KAFKA_PID" kafka.Kafka kafka_sasl_answers
  fi
  kafka_sasl_answers && sasl=", SASL_SSL on $KAFKA_SASL_ADDR"
  log "kafka: up on $KAFKA_ADDR$sasl (Kafka $(cat "$KAFKA_DIR/running-version" 2>/dev/null || echo '?'))"
}

down_kafka() { stop_pidfile kafka "$KAFKA_PID" kafka.Kafka 60; }

status_kafka() {
  if kafka_answers; then
    local note=""
    if pid_alive "$KAFKA_PID" kafka.Kafka; then
      note="version $(cat "$KAFKA_DIR/running-version" 2>/dev/null || echo '?')"
    fi
    if kafka_sasl_answers; then
      note="${note:+$note, }SASL_SSL on $KAFKA_SASL_ADDR"
    fi
    print_status kafka up "$KAFKA_ADDR" "$note$(managed_note "$KAFKA_PID" kafka.Kafka)"
    return 0
  fi
  print_status kafka down "$KAFKA_ADDR" ""
  return 1
}

# --------------------------------------------------------- kafka cluster -----
# A KRaft cluster of KAFKA_NODES nodes on loopback, each a broker and a
# controller, from the same jars, beside (not instead of) the single broker:
# the cluster tests start it, kill and restart its nodes, and stop it. Node i
# listens on 127.0.0.1:19<i-1>92 (broker) and 19<i-1>93 (controller), below
# the ephemeral port range. Topics get replication min(3, nodes) and
# min.insync.replicas one less (at least 1) by default.

CLUSTER_DIR="$STOCKFLOW_STATE/kafka-cluster"

check_kafka_nodes() {
  [[ "$KAFKA_NODES" =~ ^[1-9]$ ]] || die "KAFKA_NODES must be a number from 1 to 9, not '$KAFKA_NODES'"
}
node_port()  { echo $(( 19092 + ($1 - 1) * 100 )); }
node_addr()  { echo "127.0.0.1:$(node_port "$1")"; }
node_ctrl()  { echo "127.0.0.1:$(( 19093 + ($1 - 1) * 100 ))"; }
node_dir()   { echo "$CLUSTER_DIR/node-$1"; }
node_pid()   { echo "$CLUSTER_DIR/node-$1/kafka.pid"; }
node_log()   { echo "$CLUSTER_DIR/node-$1/kafka.log"; }
cluster_nodes() { seq 1 "$KAFKA_NODES"; }
cluster_brokers() {
  local i out=()
  for i in $(cluster_nodes); do out+=("$(node_addr "$i")"); done
  (IFS=,; echo "${out[*]}")
}
cluster_replication() { echo $(( KAFKA_NODES < 3 ? KAFKA_NODES : 3 )); }
cluster_min_isr() { local r; r=$(cluster_replication); echo $(( r > 1 ? r - 1 : 1 )); }

write_node_props() {
  local i=$1 voters="" j r m
  for j in $(cluster_nodes); do voters+="${voters:+,}$j@$(node_ctrl "$j")"; done
  r=$(cluster_replication); m=$(cluster_min_isr)
  mkdir -p "$(node_dir "$i")"
  cat >"$(node_dir "$i")/server.properties" <<PROPS
# Written by scripts/services.sh for Kafka $KAFKA_VERSION (node $i of $KAFKA_NODES, KRaft combined mode)
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://$(node_addr "$i"),CONTROLLER://$(node_ctrl "$i")
advertised.listeners=PLAINTEXT://$(node_addr "$i")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$(node_dir "$i")/data
num.partitions=6
default.replication.factor=$r
min.insync.replicas=$m
offsets.topic.replication.factor=$r
transaction.state.log.replication.factor=$r
transaction.state.log.min.isr=$m
share.coordinator.state.topic.replication.factor=$r
share.coordinator.state.topic.min.isr=$m
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.hours=24
PROPS
}

# cluster_prepare_storage: formats every node with one cluster id; again, all
# of them, when a node lacks its storage or the version or node count changed.
cluster_prepare_storage() {
  local want="$KAFKA_VERSION nodes=$KAFKA_NODES elr=off" i ok=1 cid
  for i in $(cluster_nodes); do
    [ -f "$(node_dir "$i")/data/meta.properties" ] || ok=0
  done
  if [ "$ok" = 1 ] && [ "$(cat "$CLUSTER_DIR/formatted" 2>/dev/null)" = "$want" ]; then
    for i in $(cluster_nodes); do write_node_props "$i"; done
    return 0
  fi
  cluster_down_all
  log "kafka-cluster: formatting $KAFKA_NODES nodes for Kafka $KAFKA_VERSION"
  rm -rf "$CLUSTER_DIR"
  mkdir -p "$CLUSTER_DIR"
  for i in $(cluster_nodes); do write_node_props "$i"; done
  cid=$(kafka_java tools kafka.tools.StorageTool random-uuid </dev/null 2>>"$CLUSTER_DIR/format.log") \
    || fail_with_log kafka-cluster "$CLUSTER_DIR/format.log" "StorageTool random-uuid failed"
  cid=$(printf '%s' "$cid" | tail -n1 | tr -d '[:space:]')
  # Eligible leader replicas (on by default since 4.1) stay off: with them, a
  # topic deleted while a node was away left the controllers failing every
  # registration of that node ("Topic ID ... existed in isrMembers, but not in
  # the topics map"), so it could never rejoin.
  local features=()
  [ "$(kafka_major)" -ge 4 ] && features=(--feature eligible.leader.replicas.version=0)
  for i in $(cluster_nodes); do
    kafka_java tools kafka.tools.StorageTool format -t "$cid" -c "$(node_dir "$i")/server.properties" "${features[@]}" \
        </dev/null >>"$CLUSTER_DIR/format.log" 2>&1 \
      || fail_with_log kafka-cluster "$CLUSTER_DIR/format.log" "StorageTool format of node $i failed"
  done
  echo "$cid" >"$CLUSTER_DIR/cluster.id"
  echo "$want" >"$CLUSTER_DIR/formatted"
}

node_start() {
  local i=$1 cfg logfile
  cfg="$(kafka_home)/config"; logfile=$(node_log "$i")
  [ -f "$logfile" ] && mv -f "$logfile" "$logfile.1"
  log "kafka-cluster: starting node $i on $(node_addr "$i") (log: $logfile)"
  # shellcheck disable=SC2086 # KAFKA_NODE_HEAP_OPTS is a list of JVM options
  setsid nohup java $KAFKA_NODE_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$cfg/log4j2-broker.properties" \
    -Dlog4j.configuration="file:$cfg/log4j-broker.properties" \
    -cp "$(kafka_libs)/*" kafka.Kafka "$(node_dir "$i")/server.properties" \
    </dev/null >>"$logfile" 2>&1 &
  echo $! >"$(node_pid "$i")"
}

# brokers_registered BOOTSTRAP: one "host:port (id: N" line per broker the
# cluster's metadata lists (a broker is listed once it is registered).
brokers_registered() {
  if command -v kcat >/dev/null 2>&1; then
    kcat -b "$1" -L -m 3 </dev/null 2>/dev/null \
      | sed -n 's/^ *broker \([0-9]*\) at \([0-9.]*:[0-9]*\).*/\2 (id: \1/p'
    return
  fi
  kafka_java tools org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$1" </dev/null 2>/dev/null \
    | grep -o '^[0-9.]*:[0-9]* (id: [0-9]*'
}
# node_answers I: node I serves and is registered.
node_answers() {
  tcp_open 127.0.0.1 "$(node_port "$1")" || return 1
  brokers_registered "$(node_addr "$1")" | grep -qF "$(node_addr "$1") (id: $1"
}
# cluster_answers: every node serves and is registered.
cluster_answers() {
  local i n
  for i in $(cluster_nodes); do
    pid_alive "$(node_pid "$i")" kafka.Kafka \
      || fail_with_log "kafka-cluster node $i" "$(node_log "$i")" "the process exited before the cluster answered"
  done
  for i in $(cluster_nodes); do tcp_open 127.0.0.1 "$(node_port "$i")" || return 1; done
  n=$(brokers_registered "$(cluster_brokers)" | sort -u | wc -l)
  [ "$n" -eq "$KAFKA_NODES" ]
}

up_kafka_cluster() {
  check_kafka_version
  check_kafka_nodes
  ensure_kafka_libs
  cluster_prepare_storage
  local i
  for i in $(cluster_nodes); do
    pid_alive "$(node_pid "$i")" kafka.Kafka || node_start "$i"
  done
  wait_until kafka-cluster "all $KAFKA_NODES nodes registered ($(cluster_brokers))" \
    "$(node_log 1)" "" "" cluster_answers
  log "kafka-cluster: up on $(cluster_brokers) (Kafka $KAFKA_VERSION, replication $(cluster_replication), min.insync.replicas $(cluster_min_isr))"
}

cluster_down_all() {
  local d pid t0 running=()
  [ -d "$CLUSTER_DIR" ] || return 0
  # TERM to every node at once: stopped one by one, the last node has lost
  # its controller quorum and its controlled shutdown waits in vain.
  for d in "$CLUSTER_DIR"/node-*; do
    [ -d "$d" ] || continue
    if pid_alive "$d/kafka.pid" kafka.Kafka; then
      pid=$(pid_of "$d/kafka.pid")
      log "kafka-cluster node ${d##*-}: stopping pid $pid (TERM)"
      kill -TERM "$pid" 2>/dev/null || true
      running+=("$d")
    else
      rm -f "$d/kafka.pid"
    fi
  done
  t0=$(now)
  for d in "${running[@]}"; do
    while pid_alive "$d/kafka.pid" kafka.Kafka; do
      if [ $(( $(now) - t0 )) -ge 60 ]; then
        log "kafka-cluster node ${d##*-}: still running after 60s, sending KILL"
        kill -KILL "$(pid_of "$d/kafka.pid")" 2>/dev/null || true
        sleep 1
        break
      fi
      sleep 0.3
    done
    rm -f "$d/kafka.pid"
  done
  [ ${#running[@]} -eq 0 ] || log "kafka-cluster: stopped in $(( $(now) - t0 ))s"
}
down_kafka_cluster() { cluster_down_all; }

status_kafka_cluster() {
  local i up=0 state=down
  for i in $(cluster_nodes); do
    if pid_alive "$(node_pid "$i")" kafka.Kafka; then up=$(( up + 1 )); fi
  done
  [ "$up" -gt 0 ] && state=up
  print_status kafka-cluster "$state" "$(cluster_brokers)" "$up of $KAFKA_NODES nodes running"
  [ "$up" -eq "$KAFKA_NODES" ]
}

# cmd_node ACTION I: start, stop (TERM, wait for the exit) or kill (KILL)
# node I of the cluster; start waits until the node is registered again.
cmd_node() {
  local action=${1:-} i=${2:-} pid
  check_kafka_nodes
  if ! [[ "$i" =~ ^[1-9]$ ]] || [ "$i" -gt "$KAFKA_NODES" ]; then
    die "node: give a node number from 1 to $KAFKA_NODES (e.g. '$PROG node kill 2')"
  fi
  [ -f "$(node_dir "$i")/data/meta.properties" ] \
    || die "node $i has no storage: run '$PROG up kafka-cluster' first"
  case $action in
    start)
      ensure_kafka_libs
      pid_alive "$(node_pid "$i")" kafka.Kafka || node_start "$i"
      wait_until "kafka-cluster node $i" "node $i registered on $(node_addr "$i")" \
        "$(node_log "$i")" "$(node_pid "$i")" kafka.Kafka node_answers "$i"
      ;;
    stop)
      stop_pidfile "kafka-cluster node $i" "$(node_pid "$i")" kafka.Kafka 60
      ;;
    kill)
      if pid_alive "$(node_pid "$i")" kafka.Kafka; then
        pid=$(pid_of "$(node_pid "$i")")
        kill -KILL "$pid"
        local t0; t0=$(now)
        while pid_alive "$(node_pid "$i")" kafka.Kafka; do
          [ $(( $(now) - t0 )) -lt 30 ] || die "node $i: pid $pid still runs 30s after KILL"
          sleep 0.1
        done
        rm -f "$(node_pid "$i")"
        log "kafka-cluster node $i: killed pid $pid (KILL)"
      else
        log "kafka-cluster node $i: not running"
      fi
      ;;
    *) die "node: unknown action '$action' (start, stop or kill)" ;;
  esac
}

# ---------------------------------------------------------------- status -----

managed_note() {
  if pid_alive "$1" "$2"; then
    printf ', pid %s' "$(pid_of "$1")"
  else
    printf ', not started by this script'
  fi
}

print_status() {
  local name=$1 state=$2 addr=$3 extra=${4#, }
  if [ -n "$extra" ]; then
    printf '%-8s %-5s %-16s (%s)\n' "$name" "$state" "$addr" "$extra"
  else
    printf '%-8s %-5s %s\n' "$name" "$state" "$addr"
  fi
}

# ------------------------------------------------------------------ main -----

# select_services NAME...: sets SERVICES (all when no name is given)
select_services() {
  local s
  SERVICES=()
  if [ $# -eq 0 ]; then
    SERVICES=("${ALL_SERVICES[@]}")
    return
  fi
  for s in "$@"; do
    case $s in
      mariadb|redis|kafka) SERVICES+=("$s") ;;
      kafka-cluster) SERVICES+=(kafka_cluster) ;;
      mysql) SERVICES+=(mariadb) ;;
      *) die "unknown service '$s' (mariadb, redis, kafka, kafka-cluster)" ;;
    esac
  done
}

cmd_up() {
  local pkgs=() s t0
  t0=$(now)
  select_services "$@"
  for s in "${SERVICES[@]}"; do
    # shellcheck disable=SC2207
    pkgs+=($(packages_for "$s"))
  done
  apt_install "${pkgs[@]}"
  mkdir -p "$STOCKFLOW_STATE"
  for s in "${SERVICES[@]}"; do
    "up_$s"
  done
  log "up: ${SERVICES[*]//_/-} ready in $(( $(now) - t0 ))s"
}

cmd_down() {
  local s i
  # No names: everything this script started, the test cluster included.
  if [ $# -eq 0 ]; then cluster_down_all; fi
  select_services "$@"
  # stop in reverse order of start
  for (( i=${#SERVICES[@]}-1; i>=0; i-- )); do
    s=${SERVICES[$i]}
    "down_$s"
  done
}

cmd_status() {
  local rc=0 s
  for s in "${ALL_SERVICES[@]}"; do
    if command -v "$(status_tool "$s")" >/dev/null 2>&1; then
      "status_$s" || rc=3
    else
      print_status "$s" down "$(addr_of "$s")" "not installed"
      rc=3
    fi
  done
  # The cluster is for tests: shown once formatted, not counted in the status.
  if [ -f "$CLUSTER_DIR/formatted" ]; then status_kafka_cluster || true; fi
  return $rc
}

status_tool() {
  case $1 in mariadb) echo mariadb ;; redis) echo redis-cli ;; kafka) echo java ;; esac
}
addr_of() {
  case $1 in mariadb) echo "$MARIADB_ADDR" ;; redis) echo "$REDIS_ADDR" ;; kafka) echo "$KAFKA_ADDR" ;; esac
}

main() {
  local cmd=${1:-help}
  [ $# -gt 0 ] && shift
  case $cmd in
    up)          cmd_up "$@" ;;
    down|stop)   cmd_down "$@" ;;
    status)      cmd_status ;;
    node)        cmd_node "$@" ;;
    kafka-libs)  ensure_kafka_libs; kafka_libs ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
