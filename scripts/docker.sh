#!/usr/bin/env bash
# A local Docker engine for stockflow's image tests: installs Debian's docker.io,
# starts dockerd in the background (no systemd; vfs storage, no iptables, no
# bridge: containers use --network host) and waits until it answers.
# Idempotent. Run `scripts/docker.sh help`.
set -euo pipefail

PROG="scripts/docker.sh"

STOCKFLOW_STATE="${STOCKFLOW_STATE:-$HOME/.cache/stockflow/state}"
STOCKFLOW_DOCKER_WAIT_SECONDS="${STOCKFLOW_DOCKER_WAIT_SECONDS:-${STOCKFLOW_WAIT_SECONDS:-90}}"
DOCKER="${DOCKER:-docker}"
DOCKERD_FLAGS="${DOCKERD_FLAGS:---storage-driver=vfs --iptables=false --bridge=none}"

DOCKER_DIR="$STOCKFLOW_STATE/docker"
DOCKER_PID="$DOCKER_DIR/dockerd.pid"
DOCKER_LOG="$DOCKER_DIR/dockerd.log"

usage() {
  cat <<EOF
Usage: $PROG <command>

Commands:
  up                  install docker.io (apt) when dockerd is missing, start
                      dockerd in the background when the engine does not answer,
                      and wait until 'docker info' answers. A second run is a
                      fast no-op; an engine not started here is used as it is.
  down, stop          stop the dockerd this script started (pid file), and with
                      it its containers; no error when it is not running.
  status              client and engine versions; exits 0 when the engine
                      answers, 3 otherwise.
  help, --help, -h    this text.

The engine: dockerd $DOCKERD_FLAGS
  No registry is reachable from the development machines and CI, so nothing can
  be pulled: images are built FROM scratch (scripts/image.sh) and containers
  run with --network host.

Environment (default):
  STOCKFLOW_STATE                pid file and log: \$STOCKFLOW_STATE/docker/
                                 (\$HOME/.cache/stockflow/state)
  STOCKFLOW_DOCKER_WAIT_SECONDS  how long 'up' waits for the engine
                                 (\$STOCKFLOW_WAIT_SECONDS, else 90)
  DOCKER                         the client to use (docker from PATH)
  DOCKERD_FLAGS                  dockerd's flags ($DOCKERD_FLAGS)
  DOCKER_HOST                    as for the docker client; 'up' only starts a
                                 daemon for the default socket.

Exit status of 'up': 0 when the engine answers; 1 when it could not be
installed or started (the reason, and the log tail, on stderr).
Log: $DOCKER_LOG (printed on a failed wait).
EOF
}

# ---------------------------------------------------------------- helpers ----

LOG_TAG=docker
# shellcheck source=scripts/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# engine_failed WHY: dockerd could not be started; its log's tail follows.
engine_failed() { fail_with_log dockerd "$DOCKER_LOG" "$1"; }

engine_answers() { "$DOCKER" info --format '{{.ServerVersion}}' </dev/null >/dev/null 2>&1; }

# ------------------------------------------------------------------ apt ------

# install_engine: docker.io (dockerd, containerd, runc and a client) when there
# is no dockerd. Debian's policy-rc.d, where present, keeps apt from starting
# the service with its default flags; we start it ourselves below.
install_engine() {
  command -v dockerd >/dev/null 2>&1 && return 0
  apt_install docker.io
}

# check_client: a client must exist; when several are on PATH, say which one
# is used (a newer client talks to an older engine by negotiating its API).
check_client() {
  command -v "$DOCKER" >/dev/null 2>&1 || die "no docker client ($DOCKER) on PATH; docker.io provides /usr/bin/docker"
}

# ------------------------------------------------------------------ up -------

start_engine() {
  # dockerd runs as root; started through sudo, its pid would be sudo's and
  # this script could neither watch nor stop it, nor reach its socket.
  [ "$(id -u)" -eq 0 ] || die "starting dockerd needs root (run as root, or start the engine yourself and add your user to the docker group)"
  mkdir -p "$DOCKER_DIR"
  [ -f "$DOCKER_LOG" ] && mv -f "$DOCKER_LOG" "$DOCKER_LOG.1"
  log "starting dockerd $DOCKERD_FLAGS (log: $DOCKER_LOG)"
  # shellcheck disable=SC2086 # DOCKERD_FLAGS is a list of flags
  setsid nohup dockerd $DOCKERD_FLAGS </dev/null >>"$DOCKER_LOG" 2>&1 &
  echo $! >"$DOCKER_PID"
}

wait_engine() {
  local t0 elapsed last=-1
  t0=$(now)
  while true; do
    elapsed=$(( $(now) - t0 ))
    if [ $(( elapsed / 10 )) -ne "$last" ]; then
      last=$(( elapsed / 10 ))
      log "waiting for 'docker info' to answer ... ${elapsed}s/${STOCKFLOW_DOCKER_WAIT_SECONDS}s"
    fi
    if engine_answers; then
      log "engine answering after ${elapsed}s"
      return 0
    fi
    elapsed=$(( $(now) - t0 ))
    if ! pid_alive "$DOCKER_PID" dockerd && [ "$elapsed" -ge 2 ]; then
      engine_failed "dockerd exited before answering (a kernel without the needed cgroups or namespaces, or another daemon holding its socket or data root?)"
    fi
    if [ "$elapsed" -ge "$STOCKFLOW_DOCKER_WAIT_SECONDS" ]; then
      engine_failed "dockerd did not answer within ${STOCKFLOW_DOCKER_WAIT_SECONDS}s (STOCKFLOW_DOCKER_WAIT_SECONDS)"
    fi
    sleep 0.5
  done
}

cmd_up() {
  local t0; t0=$(now)
  if command -v "$DOCKER" >/dev/null 2>&1 && engine_answers; then
    pid_alive "$DOCKER_PID" dockerd || log "an engine not started by this script answers; using it"
    log "up: $(server_line)"
    return 0
  fi
  if [ -n "${DOCKER_HOST:-}" ]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer; this script only starts a local daemon on the default socket"
  fi
  install_engine
  check_client
  if pid_alive "$DOCKER_PID" dockerd; then
    log "dockerd pid $(pid_of "$DOCKER_PID") exists but does not answer yet"
  else
    start_engine
  fi
  wait_engine
  log "up: $(server_line) in $(( $(now) - t0 ))s"
}

server_line() {
  "$DOCKER" info --format 'engine {{.ServerVersion}}, storage {{.Driver}}, {{.NCPU}} cpus' </dev/null 2>/dev/null \
    || echo "engine (no answer)"
}

# ---------------------------------------------------------------- down -------

cmd_down() {
  local pid t0
  if ! pid_alive "$DOCKER_PID" dockerd; then
    rm -f "$DOCKER_PID"
    log "dockerd: not running (nothing started by this script)"
    return 0
  fi
  pid=$(pid_of "$DOCKER_PID")
  log "dockerd: stopping pid $pid (TERM, up to 60s; it stops its containers first)"
  kill -TERM "$pid" 2>/dev/null || true
  t0=$(now)
  while kill -0 "$pid" 2>/dev/null; do
    if [ $(( $(now) - t0 )) -ge 60 ]; then
      log "dockerd: still running after 60s, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.3
  done
  rm -f "$DOCKER_PID"
  log "dockerd: stopped"
}

# -------------------------------------------------------------- status -------

cmd_status() {
  local client
  if ! command -v "$DOCKER" >/dev/null 2>&1; then
    echo "docker   down  (no client: run $PROG up)"
    return 3
  fi
  # `docker version` prints the client's part and fails when the engine is away.
  client=$("$DOCKER" version --format '{{.Client.Version}} (API {{.Client.APIVersion}})' 2>/dev/null </dev/null || true)
  [ -n "$client" ] || client=$("$DOCKER" --version 2>/dev/null || echo '?')
  if engine_answers; then
    local server note=", not started by this script"
    server=$("$DOCKER" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null </dev/null || echo '?')
    pid_alive "$DOCKER_PID" dockerd && note=", pid $(pid_of "$DOCKER_PID")"
    echo "docker   up    client $client at $(command -v "$DOCKER"), $(server_line | sed 's/^engine //')$note; engine $server"
    return 0
  fi
  echo "docker   down  client $client at $(command -v "$DOCKER"); the engine does not answer"
  return 3
}

# ------------------------------------------------------------------ main -----

main() {
  local cmd=${1:-help}
  [ $# -gt 0 ] && shift
  [ $# -eq 0 ] || die "$cmd takes no arguments (see $PROG help)"
  case $cmd in
    up)             cmd_up ;;
    down|stop)      cmd_down ;;
    status)         cmd_status ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
