#!/usr/bin/env bash
# Runs pebble, Let's Encrypt's ACME test CA, on 127.0.0.1 so tls.acme can be
# tried on one machine (examples/acme.yaml). Pebble listens on :14000 (ACME
# directory https://127.0.0.1:14000/dir) and :15000 (management: its root at
# /roots/0), validates HTTP-01 on port 5002 and TLS-ALPN-01 on port 5001, and
# resolves names through $DNS (default 127.0.0.1:5353: Meridian's own DNS in
# examples/acme.yaml). Files go to $PEBBLE_DIR (default .pebble): ca.pem
# verifies pebble's HTTPS (tls.acme.ca), root.pem is written once pebble is up
# and verifies the certificates it issues.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${PEBBLE_DIR:-.pebble}
dns=${DNS:-127.0.0.1:5353}
mkdir -p "$dir"

bin=${MERIDIAN_PEBBLE:-$PWD/bin/pebble}
if [ ! -x "$bin" ]; then
  echo "installing pebble into ./bin" >&2
  GOBIN="$PWD/bin" go install github.com/letsencrypt/pebble/v2/cmd/pebble@latest
fi
[ -f "$dir/ca.pem" ] || go run ./scripts/gencert -dir "$dir" -names localhost,127.0.0.1 >/dev/null
cat >"$dir/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:14000",
  "managementListenAddress": "127.0.0.1:15000",
  "certificate": "$dir/server.pem",
  "privateKey": "$dir/server.key",
  "httpPort": 5002,
  "tlsPort": 5001,
  "keyAlgorithm": "ecdsa",
  "retryAfter": {"authz": 1, "order": 1}
}}
JSON

PEBBLE_VA_NOSLEEP=1 "$bin" -config "$dir/pebble.json" -dnsserver "$dns" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do
  if curl -sf --cacert "$dir/ca.pem" https://127.0.0.1:15000/roots/0 -o "$dir/root.pem" 2>/dev/null; then
    echo "pebble is up: directory https://127.0.0.1:14000/dir, issuing root in $dir/root.pem" >&2
    break
  fi
  sleep 0.1
done
wait $pid
