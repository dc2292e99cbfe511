#!/usr/bin/env bash
# bench/h2spec.sh: HTTP/2 conformance of Meridian's TLS listener and of its
# plain listener's h2c (prior knowledge: the fast lane hands the connection
# to net/http behind a write-batching wrapper, proxy/h2batch.go), with a
# stock net/http TLS server (bench/tlsbare) as the baseline. The proxy must
# not fail a case the baseline passes (README "TLS", hardening F10).
#
#   bench/h2spec.sh            # both runs; summary and the failed cases
#
# It installs h2spec v2.2.1 into a temp GOBIN (v2.6.0 is not served by the
# module proxy), writes throwaway certificates with scripts/gencert, starts
# bench/backend, the real meridian binary (cmd/meridian: the proxy handler behind
# proxy.TLSServer) and
# bench/tlsbare on loopback, and runs `h2spec -t -k -o 2` against each.
# Raw output goes to bench/results/h2spec-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

P_BACKEND=${P_BACKEND:-9520} P_MERIDIAN=${P_MERIDIAN:-9521} P_BARE=${P_BARE:-9522} P_ADMIN=${P_ADMIN:-9523} P_H2C=${P_H2C:-9524} P_BARE_H2C=${P_BARE_H2C:-9525}
OUT=${OUT:-bench/results/h2spec-$(date +%Y-%m-%d).txt}
. bench/lib.sh # WORK, PIDS, cleanup on exit

GOBIN=$WORK/bin go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
go build -o "$WORK/backend" ./bench/backend
go build -o "$WORK/tlsbare" ./bench/tlsbare
go build -o "$WORK/meridian" ./cmd/meridian
go run ./scripts/gencert -dir "$WORK/certs" -names localhost,127.0.0.1 >/dev/null

cat >"$WORK/meridian.yaml" <<YAML
listen: {http: 127.0.0.1:$P_H2C, https: 127.0.0.1:$P_MERIDIAN, admin: 127.0.0.1:$P_ADMIN}
log: {level: error}
tls: {certificates: [{cert: $WORK/certs/server.pem, key: $WORK/certs/server.key}]}
pools: {backend: {endpoints: [127.0.0.1:$P_BACKEND]}}
services: {backend: {pools: [backend]}}
routes: [{name: all, service: backend}]
YAML

"$WORK/backend" -addr 127.0.0.1:$P_BACKEND & PIDS+=($!)
"$WORK/meridian" run -config "$WORK/meridian.yaml" -watch=false & PIDS+=($!)
"$WORK/tlsbare" -addr 127.0.0.1:$P_BARE -h2c-addr 127.0.0.1:$P_BARE_H2C -cert "$WORK/certs/server.pem" -key "$WORK/certs/server.key" 2>/dev/null & PIDS+=($!)
for p in $P_BACKEND $P_MERIDIAN $P_BARE $P_H2C $P_BARE_H2C; do
	for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done

: >"$OUT"
run() { # name port [plain]
	local tls=(-t -k)
	[[ ${3:-} == plain ]] && tls=()
	echo "## $1 (h2spec v2.2.1 ${tls[*]} -o 2, $(go version | cut -d' ' -f3))" | tee -a "$OUT"
	"$WORK/bin/h2spec" -h 127.0.0.1 -p "$2" "${tls[@]}" -o 2 -j "$WORK/$1.xml" >"$WORK/$1.txt" 2>&1 || true
	tail -n 1 "$WORK/$1.txt" | tee -a "$OUT"
	# The failed cases as section/case, e.g. 6.5.3/1.
	awk '/^Failures:/{f=1} f && /^ *[0-9]+(\.[0-9]+)*\. /{sec=$1; sub(/\.$/, "", sec)} f && /× [0-9]+:/{n=$0; sub(/^.*× /, "", n); sub(/:.*$/, "", n); print sec "/" n}' "$WORK/$1.txt" | sort -u >"$WORK/$1.failed"
	sed 's/^/  failed: /' "$WORK/$1.failed" | tee -a "$OUT"
}
run baseline $P_BARE
run meridian $P_MERIDIAN
run baseline-h2c $P_BARE_H2C plain
run meridian-h2c $P_H2C plain
bad=0
for m in meridian meridian-h2c; do
	base=baseline
	[[ $m == *-h2c ]] && base=baseline-h2c
	# h2spec -o 2 waits 2 s for an answer: on a busy machine a run (the
	# baseline's too) can fail a timing case; rerun when the lists differ
	# from the usual four (see the raw output).
	extra=$(comm -13 "$WORK/$base.failed" "$WORK/$m.failed")
	if [[ -n $extra ]]; then
		echo "$m fails cases the baseline passes:" | tee -a "$OUT"
		echo "$extra" | tee -a "$OUT"
		bad=1
	fi
done
[[ $bad == 0 ]] || exit 1
echo "ok: no failure beyond the net/http baseline" | tee -a "$OUT"
