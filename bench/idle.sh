#!/usr/bin/env bash
# bench/idle.sh: memory per idle keep-alive client connection, plain and
# TLS, of Meridian (http.engine fast and std), nginx, HAProxy and the bare
# Go proxy, each the real server in front of bench/backend on loopback.
#
#   bench/idle.sh                  # N=2000 connections, 3 rounds
#   N=500 ROUNDS=1 bench/idle.sh   # quick look
#   PROTOS=tls TARGETS="meridian nginx" bench/idle.sh   # narrow a run
#   BASELINE=/tmp/meridian-old bench/idle.sh   # adds target mbase: that
#                                  # binary, engine fast, for before/after
#   SETTLE=20 bench/idle.sh        # also VmRSS 20 s after Go's collection
#
# Each measurement starts the server afresh, sends it a warm-up request,
# reads its resident memory (VmRSS of the process that holds the
# connections: nginx's worker), opens N connections with
# bench/idleconns (one request and response on each, then idle; TLS with
# ALPN http/1.1), waits 3 s (Meridian's fast lane parks a connection after
# 1 s idle), reads VmRSS again, and reports the difference over N in KiB.
# For Meridian it also reports the Go heap and stacks in use after a
# garbage collection (go_memstats from /metrics, the heap profile's ?gc=1):
# what the runtime holds for the connections, without the free memory the
# burst of N first requests left and the runtime has not yet returned.
# With SETTLE=s it reads VmRSS once more s seconds after that collection
# (the same wait for nginx and HAProxy): what the Go runtime's background
# scavenger returns once a collection has lowered its heap goal, as the
# periodic one (at most 2 minutes apart) does in service. Rounds rotate the target order; the summary
# quotes medians. Raw output: bench/results/idle-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-2000}
ROUNDS=${ROUNDS:-3}
read -r -a TARGETS <<<"${TARGETS:-meridian mstd goproxy nginx haproxy}"
read -r -a PROTOS <<<"${PROTOS:-plain tls}"
BASELINE=${BASELINE:-}
SETTLE=${SETTLE:-0}
if [[ -n $BASELINE && " ${TARGETS[*]} " != *" mbase "* ]]; then
	TARGETS=(mbase "${TARGETS[@]}")
fi
OUT=${OUT:-bench/results/idle-$(date +%Y-%m-%d).txt}
P_BACKEND=9530 P=9531 P_TLS=9532 P_ADMIN=9533
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
for t in nginx haproxy curl; do
	command -v $t >/dev/null || { echo "idle.sh: $t is needed (see bench/http.sh)" >&2; exit 1; }
done

. bench/lib.sh # WORK, PIDS, cleanup on exit
: >"$OUT"
log() { echo "$@" | tee -a "$OUT"; }

go build -o "$WORK/backend" ./bench/backend
go build -o "$WORK/goproxy" ./bench/goproxy
go build -o "$WORK/meridian" ./cmd/meridian
go build -o "$WORK/idleconns" ./bench/idleconns
go run ./scripts/gencert -dir "$WORK/certs" -names localhost,127.0.0.1 >/dev/null
cat "$WORK/certs/server.pem" "$WORK/certs/server.key" >"$WORK/certs/haproxy.pem"
log "# bench/idle.sh $(date -u +%FT%TZ): $N idle connections per measurement, $ROUNDS rounds; $(go version)"
log "# meridian built from ./cmd/meridian ($(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+changes'))"
[[ -n $BASELINE ]] && log "# mbase: $BASELINE (engine fast)"

"$WORK/backend" -addr 127.0.0.1:$P_BACKEND >/dev/null 2>&1 &
PIDS+=($!)

for engine in fast std; do
	cat >"$WORK/meridian-$engine.yaml" <<EOF
listen: {http: 127.0.0.1:$P, https: 127.0.0.1:$P_TLS, admin: 127.0.0.1:$P_ADMIN}
tls: {certificates: [{cert: $WORK/certs/server.pem, key: $WORK/certs/server.key}]}
log: {level: warn}
http: {engine: $engine}
pools: {backend: {endpoints: [127.0.0.1:$P_BACKEND]}}
services: {web: {pools: [backend]}}
routes: [{name: www, match: {path_prefix: /}, service: web}]
EOF
done
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 10000; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream be { server 127.0.0.1:$P_BACKEND; keepalive 64; }
    server {
        listen 127.0.0.1:$P;
        listen 127.0.0.1:$P_TLS ssl;
        ssl_certificate $WORK/certs/server.pem;
        ssl_certificate_key $WORK/certs/server.key;
        location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 60s
    option http-keep-alive
frontend fe
    bind 127.0.0.1:$P
    bind 127.0.0.1:$P_TLS ssl crt $WORK/certs/haproxy.pem alpn http/1.1
    default_backend be
backend be
    server s1 127.0.0.1:$P_BACKEND
EOF

# start TARGET: runs the server; prints the pid that holds connections.
start() {
	case $1 in
	meridian) "$WORK/meridian" run -config "$WORK/meridian-fast.yaml" >"$WORK/s.log" 2>&1 & ;;
	mstd) "$WORK/meridian" run -config "$WORK/meridian-std.yaml" >"$WORK/s.log" 2>&1 & ;;
	mbase) "$BASELINE" run -config "$WORK/meridian-fast.yaml" >"$WORK/s.log" 2>&1 & ;;
	goproxy) "$WORK/goproxy" -addr 127.0.0.1:$P -upstream http://127.0.0.1:$P_BACKEND \
		-tls-addr 127.0.0.1:$P_TLS -cert "$WORK/certs/server.pem" -key "$WORK/certs/server.key" >"$WORK/s.log" 2>&1 & ;;
	nginx) nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" >"$WORK/s.log" 2>&1 & ;;
	haproxy) haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/s.log" 2>&1 & ;;
	esac
	local pid=$!
	for _ in $(seq 100); do
		curl -fs -o /dev/null "http://127.0.0.1:$P/" && curl -fsk -o /dev/null "https://127.0.0.1:$P_TLS/" && break
		sleep 0.1
	done
	if [[ $1 == nginx ]]; then
		pid=$(pgrep -P "$pid" | head -1)
	fi
	echo "$pid"
}
stop() { # PID of what start ran (the parent for nginx)
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
# gomem: Meridian's Go heap in use plus stacks, in bytes, after a GC.
gomem() {
	curl -fs -o /dev/null "http://127.0.0.1:$P_ADMIN/debug/pprof/heap?gc=1"
	curl -fs "http://127.0.0.1:$P_ADMIN/metrics" |
		awk '/^go_memstats_heap_alloc_bytes /{h=$2} /^go_memstats_stack_inuse_bytes /{s=$2} END{printf "%.0f", h+s}'
}

measure() { # TARGET PROTO ROUND
	local t=$1 proto=$2 r=$3 pid top before after flag=""
	pid=$(start "$t")
	top=$pid
	[[ $t == nginx ]] && top=$(ps -o ppid= -p "$pid" | xargs)
	local port=$P
	[[ $proto == tls ]] && { port=$P_TLS; flag=-tls; }
	sleep 1
	if [[ ! -r /proc/$pid/status ]]; then
		log "RESULT $proto $t round=$r failed: the server did not start ($(tail -1 "$WORK/s.log"))"
		stop "$top"
		return
	fi
	before=$(rss "$pid")
	local gobefore=0
	[[ $t == meridian || $t == mstd || $t == mbase ]] && gobefore=$(gomem)
	coproc CL { "$WORK/idleconns" -addr 127.0.0.1:$port -n "$N" $flag; }
	local line
	read -r line <&"${CL[0]}" || true
	if [[ $line != ready ]]; then
		log "RESULT $proto $t round=$r failed"
	else
		sleep 3
		after=$(rss "$pid")
		local live=-
		if [[ $t == meridian || $t == mstd || $t == mbase ]]; then
			live=$(awk -v a="$(gomem)" -v b="$gobefore" -v n="$N" 'BEGIN{printf "%.2f", (a-b)/1024/n}')
		fi
		local settled=-
		if ((SETTLE > 0)); then
			sleep "$SETTLE"
			settled=$(awk -v a="$(rss "$pid")" -v b="$before" -v n="$N" 'BEGIN{printf "%.2f", (a-b)/n}')
		fi
		log "$(printf 'RESULT %-5s %-9s round=%d rss_before_kib=%s rss_after_kib=%s kib_per_conn=%s go_live_kib_per_conn=%s settled_kib_per_conn=%s' "$proto" "$t" "$r" "$before" "$after" \
			"$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN{printf "%.2f", (a-b)/n}')" "$live" "$settled")"
	fi
	eval "exec ${CL[1]}>&-"
	wait "$CL_PID" 2>/dev/null || true
	stop "$top"
	sleep 0.5
}

for ((r = 1; r <= ROUNDS; r++)); do
	k=$(((r - 1) % ${#TARGETS[@]}))
	order=("${TARGETS[@]:k}" "${TARGETS[@]:0:k}")
	for proto in "${PROTOS[@]}"; do
		for t in "${order[@]}"; do measure "$t" "$proto" "$r"; done
	done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
log ""
log "# KiB per idle connection (VmRSS difference over $N connections), medians of $ROUNDS rounds"
log "# (Go live: heap in use plus stacks after a GC, Meridian only; settled: VmRSS ${SETTLE} s after that GC, with SETTLE)"
log "$(printf '%-9s %8s %8s %13s %13s %13s %13s' target plain tls 'plain Go live' 'tls Go live' 'plain settled' 'tls settled')"
for t in "${TARGETS[@]}"; do
	row=()
	for key in kib_per_conn go_live_kib_per_conn settled_kib_per_conn; do
		for proto in plain tls; do
			row+=("$(awk -v p="$proto" -v t="$t" -v k="$key" '$1=="RESULT" && $2==p && $3==t {for (i=4; i<=NF; i++) if (index($i, k"=")==1) print substr($i, length(k)+2)}' "$OUT" | { grep -E '^[0-9.]+$' || true; } | median)")
		done
	done
	log "$(printf '%-9s %8s %8s %13s %13s %13s %13s' "$t" "${row[@]}")"
done
