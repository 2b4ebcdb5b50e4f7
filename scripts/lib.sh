# shellcheck shell=bash
# What the scripts in this folder share (sourced, not run): logging, pid
# files, and installing Debian packages. The sourcing script sets LOG_TAG
# (the prefix of its messages) and STOCKFLOW_STATE first.

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2; exit 1; }
now() { date +%s; }

# Meant to run as root (CI and dev machines are); otherwise try sudo -n.
SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); fi

# pid_alive PIDFILE PATTERN: true when the pid in PIDFILE runs a command line
# containing PATTERN (guards against stale pid files whose pid was reused, and
# against zombies, whose command line is empty).
pid_alive() {
  local pidfile=$1 pattern=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(head -n1 "$pidfile" 2>/dev/null | tr -dc '0-9')
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

pid_of() { head -n1 "$1" 2>/dev/null | tr -dc '0-9'; }

# fail_with_log NAME LOGFILE WHY: says what failed, prints the log's tail, exits 1.
fail_with_log() {
  local name=$1 logfile=$2 why=$3
  printf '[%s] ERROR: %s: %s\n' "$LOG_TAG" "$name" "$why" >&2
  if [ -n "$logfile" ] && [ -f "$logfile" ]; then
    printf '[%s] ---- last 40 lines of %s ----\n' "$LOG_TAG" "$logfile" >&2
    tail -n 40 "$logfile" >&2 || true
    printf '[%s] ---- end of %s ----\n' "$LOG_TAG" "$logfile" >&2
  else
    printf '[%s] (no log file at %s)\n' "$LOG_TAG" "$logfile" >&2
  fi
  exit 1
}

# tcp_open HOST PORT
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

apt_lists_present() {
  compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

# apt_install PKG...: installs the packages that are missing, with one
# apt-get call; runs apt-get update only when the lists are empty or the
# install failed (stale lists). apt's output goes to $STOCKFLOW_STATE/apt.log.
apt_install() {
  local missing=() p t0 aptlog="$STOCKFLOW_STATE/apt.log"
  for p in "$@"; do
    [[ " ${missing[*]} " == *" $p "* ]] && continue
    pkg_installed "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
  mkdir -p "$STOCKFLOW_STATE"
  : >"$aptlog"
  local apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q
    -o DPkg::Lock::Timeout=300
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  t0=$(now)
  if ! apt_lists_present; then
    log "apt: package lists are empty, running apt-get update"
    "${apt[@]}" update </dev/null >>"$aptlog" 2>&1 \
      || fail_with_log apt "$aptlog" "apt-get update failed"
  fi
  log "apt: installing ${missing[*]} (log: $aptlog)"
  if ! "${apt[@]}" install --no-install-recommends "${missing[@]}" </dev/null >>"$aptlog" 2>&1; then
    log "apt: install failed, running apt-get update and retrying"
    "${apt[@]}" update </dev/null >>"$aptlog" 2>&1 \
      || fail_with_log apt "$aptlog" "apt-get update failed"
    "${apt[@]}" install --no-install-recommends "${missing[@]}" </dev/null >>"$aptlog" 2>&1 \
      || fail_with_log apt "$aptlog" "apt-get install ${missing[*]} failed"
  fi
  log "apt: installed ${missing[*]} in $(( $(now) - t0 ))s"
}
