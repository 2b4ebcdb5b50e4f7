#!/usr/bin/env bash
# Test certificates for the local services (Kafka SASL_SSL, MariaDB TLS, Redis
# TLS): one local CA and server certificates it signs, made with openssl,
# idempotently. Never for production. Run `scripts/certs.sh help`.
set -euo pipefail

PROG="scripts/certs.sh"
STOCKFLOW_STATE="${STOCKFLOW_STATE:-$HOME/.cache/stockflow/state}"
CERTS_DIR="${CERTS_DIR:-$STOCKFLOW_STATE/tls}"
CERT_DAYS="${CERT_DAYS:-825}"

usage() {
  cat <<EOF
Usage: $PROG <command> [args]

Commands:
  ca                  make the local CA once; prints its certificate's path
  server NAME [SAN...]
                      make a server key and certificate NAME signed by the CA
                      (once; again when the CA changed or it expires within a
                      day); SANs such as IP:127.0.0.1 DNS:localhost (those two
                      when none are given). Prints the directory holding
                      NAME.crt, NAME.key and ca.crt.
  client NAME         a client key and certificate signed by the CA (for TLS
                      client authentication); prints the directory.
  other-ca            a second CA nobody trusts, with a server certificate
                      'untrusted' it signs (tests of a rejected certificate);
                      prints its directory.
  dir                 print the directory (CERTS_DIR).
  help                this text.

Environment (default):
  STOCKFLOW_STATE   state directory (\$HOME/.cache/stockflow/state)
  CERTS_DIR         where the files go (\$STOCKFLOW_STATE/tls)
  CERT_DAYS         validity of new certificates (825)
EOF
}

log() { printf '[certs] %s\n' "$*" >&2; }
die() { printf '[certs] ERROR: %s\n' "$*" >&2; exit 1; }

need_openssl() { command -v openssl >/dev/null 2>&1 || die "openssl is needed (apt-get install openssl)"; }

# make_ca DIR SUBJECT: a CA key and self-signed certificate in DIR, once.
make_ca() {
  local dir=$1 subject=$2
  mkdir -p "$dir"
  if [ -s "$dir/ca.crt" ] && [ -s "$dir/ca.key" ] && openssl x509 -checkend 86400 -noout -in "$dir/ca.crt" >/dev/null 2>&1; then
    return 0
  fi
  log "making a CA in $dir"
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$CERT_DAYS" \
    -subj "$subject" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    >/dev/null 2>&1 || die "openssl could not make the CA in $dir"
  chmod 600 "$dir/ca.key"
}

# sign DIR NAME USAGE SAN...: a key and a certificate NAME in DIR signed by
# DIR's CA, once; again when the CA is newer or it expires within a day.
sign() {
  local dir=$1 name=$2 usage=$3; shift 3
  local san="" s
  for s in "$@"; do san+="${san:+,}$s"; done
  if [ -s "$dir/$name.crt" ] && [ -s "$dir/$name.key" ] && [ "$dir/$name.crt" -nt "$dir/ca.crt" ] \
     && openssl x509 -checkend 86400 -noout -in "$dir/$name.crt" >/dev/null 2>&1 \
     && [ "$(cat "$dir/$name.san" 2>/dev/null)" = "$san" ]; then
    return 0
  fi
  log "making $usage certificate '$name' in $dir ($san)"
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$name" \
      -keyout "$dir/$name.key" -out "$dir/$name.csr" >/dev/null 2>&1 \
    && openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
      -CAcreateserial -days "$CERT_DAYS" -sha256 -extfile "$ext" -out "$dir/$name.crt" >/dev/null 2>&1 \
    || { rm -f "$ext"; die "openssl could not sign '$name' in $dir"; }
  rm -f "$ext" "$dir/$name.csr"
  # Servers run as other users (mysql, redis) read their key: the test CA is
  # throwaway, so the files are readable.
  chmod 644 "$dir/$name.key"
  echo "$san" >"$dir/$name.san"
}

main() {
  local cmd=${1:-help}
  [ $# -gt 0 ] && shift
  case $cmd in
    ca)
      need_openssl
      make_ca "$CERTS_DIR" "/CN=stockflow local test CA"
      echo "$CERTS_DIR/ca.crt"
      ;;
    server)
      need_openssl
      [ $# -ge 1 ] || die "server: give a name (e.g. '$PROG server kafka')"
      local name=$1; shift
      [[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || die "server: name '$name' must be letters, digits, - or _"
      [ $# -gt 0 ] || set -- IP:127.0.0.1 DNS:localhost
      make_ca "$CERTS_DIR" "/CN=stockflow local test CA"
      sign "$CERTS_DIR" "$name" serverAuth "$@"
      echo "$CERTS_DIR"
      ;;
    client)
      need_openssl
      [ $# -eq 1 ] || die "client: give a name (e.g. '$PROG client worker')"
      [[ "$1" =~ ^[A-Za-z0-9_-]+$ ]] || die "client: name '$1' must be letters, digits, - or _"
      make_ca "$CERTS_DIR" "/CN=stockflow local test CA"
      sign "$CERTS_DIR" "$1" clientAuth
      echo "$CERTS_DIR"
      ;;
    other-ca)
      need_openssl
      make_ca "$CERTS_DIR/other" "/CN=an untrusted CA"
      sign "$CERTS_DIR/other" untrusted serverAuth IP:127.0.0.1 DNS:localhost
      echo "$CERTS_DIR/other"
      ;;
    dir) echo "$CERTS_DIR" ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
