#!/usr/bin/env bash
# A local fleet: three Meridian instances in two regions over the in-repo
# Consul API test server (a test stand-in, not Consul), and a region failing
# over without waiting for DNS TTLs.
#
#   eu-1  meridian demo -consul: the stand-in on 127.0.0.1:8500, the demo
#         upstreams (eu :9101 in dc1, us :9102 in dc2) and their control
#         API on :9100; HTTP :8080, DNS :5353, admin :9090
#   eu-2  HTTP :8081, DNS :5354, admin :9091     (region eu)
#   us-1  HTTP :8082, DNS :5355, admin :9092     (region us)
#
# All three serve examples/fleet.yaml (copies with their ports and region).
# The script waits for the fleet, stops the eu upstream, shows the eu edges
# forwarding web to the us edge within about a second (the www record's TTL
# is 30 s), brings eu back, stops datacenter dc2 to show its last known
# endpoints kept and flagged stale, and stops everything on exit (Ctrl-C
# while it waits at the end). Needs curl; jq is used when present.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

echo "building meridian…"
go build -o "$dir/meridian" ./cmd/meridian

"$dir/meridian" demo -consul >"$dir/eu-1.out" 2>"$dir/eu-1.log" &
pids+=($!)
for i in $(seq 1 100); do curl -sf http://127.0.0.1:9090/readyz >/dev/null && break; sleep 0.1; done

instance() { # name region http dns admin
  sed -e "s/^region: eu /region: $2 /" -e "s/127.0.0.1:8080/127.0.0.1:$3/" -e "s/127.0.0.1:5353/127.0.0.1:$4/" \
      -e "s/127.0.0.1:9090/127.0.0.1:$5/" examples/fleet.yaml >"$dir/$1.yaml"
  "$dir/meridian" run -config "$dir/$1.yaml" 2>"$dir/$1.log" &
  pids+=($!)
}
instance eu-2 eu 8081 5354 9091
instance us-1 us 8082 5355 9092

members() { curl -sf "http://127.0.0.1:$1/api/v1/fleet" | grep -o '"id"' | wc -l; }
echo "waiting for the three instances to see each other in Consul…"
for i in $(seq 1 150); do
  [ "$(members 9090)" = 3 ] && [ "$(members 9091)" = 3 ] && [ "$(members 9092)" = 3 ] && break
  sleep 0.2
done
show() {
  if command -v jq >/dev/null; then
    curl -sf http://127.0.0.1:9090/api/v1/fleet | jq -c '{members: [.members[] | "\(.id) \(.region) \(.address)"], stale_dcs: [.datacenters[] | select(.stale) | .name], forwarding: [.forwarding[] | .decision]}'
  else
    curl -sf http://127.0.0.1:9090/api/v1/fleet | head -c 600; echo
  fi
}
web() { curl -s -D - -o "$dir/body" "http://127.0.0.1:$1/" | tr -d '\r' | grep -i '^meridian-forwarded-to' || true; cat "$dir/body"; }
show
echo; echo "== web from each edge, all regions up"
for p in 8080 8081 8082; do printf ':%s  ' "$p"; web $p; done

echo; echo "== the eu upstream stops: POST /upstreams/eu/stop"
curl -s -X POST http://127.0.0.1:9100/upstreams/eu/stop
start=$(date +%s%N)
until web 8080 | grep -q 'from us'; do sleep 0.05; done
echo "eu-1 serves web from region us after $(( ($(date +%s%N) - start) / 1000000 )) ms (the www record's TTL is 30 s)"
until web 8081 | grep -q 'from us'; do sleep 0.05; done
for p in 8080 8081 8082; do printf ':%s  ' "$p"; web $p; done
show
"$dir/meridian" explain -dns www.example.test -admin http://127.0.0.1:9091 | head -8 || true

echo; echo "== eu comes back: POST /upstreams/eu/start"
curl -s -X POST http://127.0.0.1:9100/upstreams/eu/start
until web 8080 | grep -q 'from eu' && web 8081 | grep -q 'from eu'; do sleep 0.1; done
for p in 8080 8081 8082; do printf ':%s  ' "$p"; web $p; done

echo; echo "== datacenter dc2 stops answering: POST /consul/datacenters/dc2/stop"
curl -s -X POST http://127.0.0.1:9100/consul/datacenters/dc2/stop
sleep 1.5
show
curl -s http://127.0.0.1:9090/metrics | grep '^meridian_consul_datacenter_stale' || true
curl -s -X POST http://127.0.0.1:9100/consul/datacenters/dc2/start

echo; echo "The fleet keeps running: console http://127.0.0.1:9090/#fleet (logs in $dir). Ctrl-C stops it."
wait
