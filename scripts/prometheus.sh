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

log() { printf '[prometheus] %s\n' "$*" >&2; }
die() { printf '[prometheus] ERROR: %s\n' "$*" >&2; exit 1; }

# Meant to run as root (CI and dev machines are); otherwise try sudo -n.
SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); fi

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

apt_lists_present() {
  compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

fail_with_log() {
  local logfile=$1 why=$2
  printf '[prometheus] ERROR: %s\n' "$why" >&2
  if [ -f "$logfile" ]; then
    printf '[prometheus] ---- last 40 lines of %s ----\n' "$logfile" >&2
    tail -n 40 "$logfile" >&2 || true
  fi
  exit 1
}

# apt_install PKG: one apt-get install; apt-get update only when the lists are
# empty or the install failed (stale lists).
apt_install() {
  local pkg=$1 aptlog="$STOCKFLOW_STATE/apt.log"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $pkg by hand (promtool and prometheus on PATH)"
  mkdir -p "$STOCKFLOW_STATE"
  : >"$aptlog"
  local apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q
    -o DPkg::Lock::Timeout=300
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if ! apt_lists_present; then
    log "apt: package lists are empty, running apt-get update"
    "${apt[@]}" update </dev/null >>"$aptlog" 2>&1 || fail_with_log "$aptlog" "apt-get update failed"
  fi
  log "apt: installing $pkg (log: $aptlog)"
  if ! "${apt[@]}" install --no-install-recommends "$pkg" </dev/null >>"$aptlog" 2>&1; then
    log "apt: install failed, running apt-get update and retrying"
    "${apt[@]}" update </dev/null >>"$aptlog" 2>&1 || fail_with_log "$aptlog" "apt-get update failed"
    "${apt[@]}" install --no-install-recommends "$pkg" </dev/null >>"$aptlog" 2>&1 \
      || fail_with_log "$aptlog" "apt-get install $pkg failed"
  fi
}

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
