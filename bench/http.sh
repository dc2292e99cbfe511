#!/usr/bin/env bash
# bench/http.sh: Meridian's HTTP proxy against nginx, HAProxy and a bare Go
# httputil.ReverseProxy (the Go floor), all in front of the same Go backend
# (bench/backend, 13-byte body) on loopback, measured in one run.
#
#   bench/http.sh                      # 3 rounds of 10 s per target and protocol
#   ROUNDS=1 DURATION=5 bench/http.sh  # quick look
#
# HTTP/1.1: wrk -t1 -c64 -d${DURATION}s --latency; h2c: h2load -t1 -c8 -m8
# (64 streams) for ${DURATION}s. Per target it reports requests/s, p50 and
# p99 latency (h2load prints no percentiles: its mean is shown as p50),
# the CPU µs per request of the process under test (utime+stime from
# /proc/<pid>/stat, children included, over the run; for "direct" that is
# the backend), and requests/s as a ratio to direct in the same round.
# Layout (docs/performance notes): load generator and backend on CPU
# $CLIENT_CPU, the proxy on CPU $PROXY_CPU. Rounds rotate the target order;
# the summary quotes medians. Meridian runs as bench/httpmeridian
# (config.Load + routing.Compile + proxy.Handler + proxy.Server, metrics on,
# access log off) and is profiled with pprof in a last run. Raw output goes
# to bench/results/http-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENT_CPU=${CLIENT_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
CONNS=${CONNS:-64}
OUT=${OUT:-bench/results/http-$(date +%Y-%m-%d).txt}
P_BACKEND=9500 P_GOPROXY=9501 P_MERIDIAN=9502 P_NGINX=9503 P_NGINX_H2=9504
P_HAPROXY=9505 P_HAPROXY_H2=9506 P_PPROF=9509 P_ADMIN=9510
TICK=$(getconf CLK_TCK)

log() { echo "$@" | tee -a "$OUT"; }

missing=()
for t in wrk:wrk h2load:nghttp2-client nginx:nginx-light haproxy:haproxy taskset:util-linux curl:curl; do
	command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t##*:}")
done
if ((${#missing[@]})); then
	echo "installing ${missing[*]}" >&2
	apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
command -v haproxy >/dev/null || PATH=$PATH:/usr/sbin

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$(dirname "$OUT")"
: >"$OUT"

log "# bench/http.sh $(date -u +%FT%TZ) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
log "# wrk -t1 -c$CONNS -d${DURATION}s and h2load -t1 -c8 -m8 -D $DURATION on CPU $CLIENT_CPU with the backend; proxies on CPU $PROXY_CPU; $ROUNDS rounds"
log "# $(go version); $(nginx -v 2>&1); $(haproxy -v | head -1)"

go build -o "$WORK/backend" ./bench/backend
go build -o "$WORK/goproxy" ./bench/goproxy
go build -o "$WORK/meridian" ./bench/httpmeridian

cat >"$WORK/meridian.yaml" <<EOF
listen: {http: 127.0.0.1:$P_MERIDIAN, admin: 127.0.0.1:$P_ADMIN}
log: {level: warn}
http: {access_log: false, max_idle_conns_per_host: 128}
pools:
  backend: {endpoints: [127.0.0.1:$P_BACKEND]}
  other: {endpoints: [127.0.0.1:9]}
services:
  web: {pools: [backend]}
  other: {pools: [other]}
routes:
  - {name: api, match: {host: api.example.test, path_prefix: /v1}, service: other}
  - {name: admin, match: {host: "*.internal.test"}, service: other}
  - {name: www, match: {path_prefix: /}, service: web}
EOF

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream be { server 127.0.0.1:$P_BACKEND; keepalive 64; keepalive_requests 100000000; }
    server {
        listen 127.0.0.1:$P_NGINX;
        listen 127.0.0.1:$P_NGINX_H2 http2;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
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
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$P_HAPROXY
    bind 127.0.0.1:$P_HAPROXY_H2 proto h2
    default_backend be
backend be
    option forwardfor
    server s1 127.0.0.1:$P_BACKEND
EOF

start() { # name cpu cmd...
	local name=$1 cpu=$2
	shift 2
	taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	eval "PID_$name=$!"
}
start backend "$CLIENT_CPU" "$WORK/backend" -addr 127.0.0.1:$P_BACKEND
start goproxy "$PROXY_CPU" "$WORK/goproxy" -addr 127.0.0.1:$P_GOPROXY -upstream http://127.0.0.1:$P_BACKEND
start meridian "$PROXY_CPU" "$WORK/meridian" -config "$WORK/meridian.yaml" -pprof 127.0.0.1:$P_PPROF
start nginx "$PROXY_CPU" nginx -c "$WORK/nginx.conf" -p "$WORK/nginx"
start haproxy "$PROXY_CPU" haproxy -f "$WORK/haproxy.cfg" -db

for p in $P_BACKEND $P_GOPROXY $P_MERIDIAN $P_NGINX $P_HAPROXY; do
	for _ in $(seq 100); do
		curl -fs -o /dev/null "http://127.0.0.1:$p/" && break
		sleep 0.1
	done
	curl -fs -o /dev/null "http://127.0.0.1:$p/" || { log "# port $p does not answer"; tail "$WORK"/*.log; exit 1; }
done

declare -A PORT_H1=([direct]=$P_BACKEND [meridian]=$P_MERIDIAN [goproxy]=$P_GOPROXY [nginx]=$P_NGINX [haproxy]=$P_HAPROXY)
declare -A PORT_H2=([direct]=$P_BACKEND [meridian]=$P_MERIDIAN [goproxy]=$P_GOPROXY [nginx]=$P_NGINX_H2 [haproxy]=$P_HAPROXY_H2)
declare -A PROC=([direct]=backend [meridian]=meridian [goproxy]=goproxy [nginx]=nginx [haproxy]=haproxy)

# ticks PID: utime+stime of PID and its children, in clock ticks.
ticks() {
	local total=0 p
	for p in "$1" $(pgrep -P "$1" || true); do
		[[ -r /proc/$p/stat ]] || continue
		total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
	done
	echo "$total"
}

busy() { # % of CPU busy over 1 s, machine-wide
	local a b
	a=($(head -1 /proc/stat))
	sleep 1
	b=($(head -1 /proc/stat))
	local idle=$((b[4] + b[5] - a[4] - a[5])) total=0 i
	for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
	echo $((100 - 100 * idle / total))
}

# to_us VALUE: wrk latency (850.00us, 1.23ms, 2.00s) in µs.
to_us() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n}'; }

RESULTS="$WORK/results"
: >"$RESULTS"

run_h1() { # target round
	local t=$1 pid t0 t1 out
	eval "pid=\$PID_${PROC[$t]}"
	t0=$(ticks "$pid")
	out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:${PORT_H1[$t]}/")
	t1=$(ticks "$pid")
	echo "$out" >>"$OUT.raw"
	local rps reqs p50 p99 errs cpu
	rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
	reqs=$(awk '/requests in/{print $1}' <<<"$out")
	p50=$(to_us "$(awk '$1=="50%"{print $2}' <<<"$out")")
	p99=$(to_us "$(awk '$1=="99%"{print $2}' <<<"$out")")
	errs=$(awk '/Non-2xx/{print $NF} /Socket errors/{print}' <<<"$out" | tr '\n' ' ')
	cpu=$(awk -v d=$((t1 - t0)) -v n="$reqs" -v hz="$TICK" 'BEGIN{printf "%.1f", d*1e6/hz/n}')
	echo "h1 $t $rps $p50 $p99 $cpu" >>"$RESULTS"
	log "$(printf 'round %d  h1   %-9s %9.0f req/s  p50 %7.0f µs  p99 %7.0f µs  %6.1f CPU µs/req %s' "$2" "$t" "$rps" "$p50" "$p99" "$cpu" "$errs")"
}

run_h2() { # target round
	local t=$1 pid t0 t1 out
	eval "pid=\$PID_${PROC[$t]}"
	t0=$(ticks "$pid")
	out=$(taskset -c "$CLIENT_CPU" h2load -t1 -c8 -m8 -D "$DURATION" --warm-up-time=1 "http://127.0.0.1:${PORT_H2[$t]}/" 2>&1)
	t1=$(ticks "$pid")
	echo "$out" >>"$OUT.raw"
	local rps reqs mean failed cpu
	rps=$(awk '/^finished in/{gsub(",","",$4); print $4}' <<<"$out")
	reqs=$(awk '/^requests:/{print $8}' <<<"$out")
	failed=$(awk '/^requests:/{print $10 + $12}' <<<"$out")
	mean=$(to_us "$(awk '/^time for request:/{print $6}' <<<"$out")")
	if [[ -z "$reqs" || "$reqs" == 0 ]]; then
		log "round $2  h2c  $t failed: $(tail -2 <<<"$out" | tr '\n' ' ')"
		return
	fi
	cpu=$(awk -v d=$((t1 - t0)) -v n="$reqs" -v hz="$TICK" 'BEGIN{printf "%.1f", d*1e6/hz/n}')
	echo "h2c $t $rps $mean - $cpu" >>"$RESULTS"
	log "$(printf 'round %d  h2c  %-9s %9.0f req/s  mean %6.0f µs               %6.1f CPU µs/req  failed %s' "$2" "$t" "$rps" "$mean" "$cpu" "$failed")"
}

TARGETS=(direct meridian goproxy nginx haproxy)
: >"$OUT.raw"
for ((r = 1; r <= ROUNDS; r++)); do
	log "# round $r: machine busy $(busy)% before"
	order=("${TARGETS[@]:r-1}" "${TARGETS[@]:0:r-1}")
	for t in "${order[@]}"; do run_h1 "$t" "$r"; done
	for t in "${order[@]}"; do run_h2 "$t" "$r"; done
done

log ""
log "# medians over $ROUNDS rounds (ratio: req/s over direct's median, same protocol)"
log "$(printf '%-5s %-9s %10s %9s %9s %12s %8s' proto target req/s p50_µs p99_µs CPU_µs/req ratio)"
for proto in h1 h2c; do
	direct=$(awk -v p=$proto '$1==p && $2=="direct"{print $3}' "$RESULTS" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
	for t in "${TARGETS[@]}"; do
		med() { awk -v p=$proto -v t="$t" -v c="$1" '$1==p && $2==t{print $c}' "$RESULTS" | sort -g | awk '{a[NR]=$1} END{if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
		rps=$(med 3)
		[[ "$rps" == "-" ]] && continue
		log "$(printf '%-5s %-9s %10.0f %9s %9s %12s %8.2f' $proto "$t" "$rps" "$(med 4)" "$(med 5)" "$(med 6)" "$(awk -v a="$rps" -v b="$direct" 'BEGIN{print a/b}')")"
	done
done

log ""
log "# pprof: Meridian CPU profile over a ${DURATION}s h1 run (top 30, flat)"
taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$P_MERIDIAN/" >/dev/null &
wrk_pid=$!
sleep 1
curl -fs -o "$WORK/cpu.pprof" "http://127.0.0.1:$P_PPROF/debug/pprof/profile?seconds=$((DURATION - 2))"
wait $wrk_pid
go tool pprof -top -nodecount=30 "$WORK/meridian" "$WORK/cpu.pprof" 2>/dev/null | tee -a "$OUT" >/dev/null
log ""
log "# pprof: cumulative, proxy and routing frames"
go tool pprof -top -cum -nodecount=60 "$WORK/meridian" "$WORK/cpu.pprof" 2>/dev/null | grep -E 'meridian|httputil|net/http\.\(\*conn\)|Transport|zap|prometheus' | head -30 | tee -a "$OUT" >/dev/null
{
	echo ""
	echo "# raw wrk and h2load output, in run order"
	cat "$OUT.raw"
} >>"$OUT"
rm -f "$OUT.raw"
