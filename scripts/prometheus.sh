#!/usr/bin/env bash
# Prometheus tools for stockflow's rules and dashboard: installs Debian's
# `prometheus` package (promtool for `promtool check/test rules`, and the
# server binary the deploy tests start on a free port of their own), without
# leaving the package's own server running. Run `scripts/prometheus.sh help`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
PROG="scripts/prometheus.sh"

STOCKFLOW_STATE="${STOCKFLOW_STATE:-$HOME/.cache/stockflow/state}"
RULES="deploy/prometheus/rules.yaml"
RULES_TEST="deploy/prometheus/rules_test.yaml"
PACKAGE_ADDR="127.0.0.1:9090"

usage() {
  cat <<EOF
Usage: $PROG <command>

Commands:
  install             install Debian's prometheus package when promtool or
                      prometheus is missing (apt-get, no recommends), make
                      sure the package left no Prometheus server running
                      (it would take $PACKAGE_ADDR), then print promtool's
                      path. A second run is a fast no-op.
  check               install if needed, then run
                        promtool check rules $RULES
                        promtool test rules $RULES_TEST
  help, --help, -h    this text.

The deploy tests (go test ./deploy/...) need promtool and prometheus on PATH:
they skip without them, and fail under CI=true.

Environment (default):
  STOCKFLOW_STATE   where apt's log goes (\$HOME/.cache/stockflow/state/apt.log)
EOF
}

LOG_TAG=prometheus
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

# package_servers: pids of Prometheus servers run by the package's service (its
# binary under the package's own user), one per line. The servers the tests
# start run as the tests' user with their own flags and are left alone.
package_servers() {
  local p exe user
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    [ "$exe" = /usr/bin/prometheus ] || continue
    user=$(stat -c %U "$p" 2>/dev/null) || continue
    [ "$user" = prometheus ] && echo "${p#/proc/}"
  done
  return 0
}

# quiet_package_service: the package's postinst may start its service (under
# systemd, or a sysvinit script where invoke-rc.d allows it; containers
# usually block it with policy-rc.d). Stop it, keep it from starting at boot,
# and check that nothing of it is left.
quiet_package_service() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    if [ -n "$(package_servers)" ]; then
      log "stopping the Prometheus server the package started"
      "${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
      "${SUDO[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
  local pid
  servers_gone 5 && return 0
  for pid in $(package_servers); do
    log "the package's Prometheus server (pid $pid) is still running: TERM"
    "${SUDO[@]}" kill -TERM "$pid" 2>/dev/null || true
  done
  servers_gone 10 && return 0
  die "a Prometheus server of the package is still running: $(package_servers | tr '\n' ' ')"
}

# servers_gone SECONDS: true once no server of the package runs, false if one
# still does after SECONDS.
servers_gone() {
  local deadline=$(( $(date +%s) + $1 ))
  while [ -n "$(package_servers)" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

cmd_install() {
  if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    command -v promtool
    return 0
  fi
  if pkg_installed prometheus; then
    die "the prometheus package is installed but promtool or prometheus is not on PATH (PATH=$PATH)"
  fi
  apt_install prometheus
  quiet_package_service
  command -v promtool >/dev/null 2>&1 || die "promtool not found after installing prometheus"
  log "installed $(prometheus --version 2>&1 | head -n1)"
  command -v promtool
}

cmd_check() {
  local promtool
  promtool=$(cmd_install)
  cd "$ROOT_DIR"
  "$promtool" check rules "$RULES"
  "$promtool" test rules "$RULES_TEST"
}

main() {
  local cmd=${1:-help}
  [ $# -gt 0 ] && shift
  case $cmd in
    install)        cmd_install ;;
    check)          cmd_check ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
