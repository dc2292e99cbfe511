#!/usr/bin/env bash
# bench/http.sh: Meridian's HTTP proxy (the real binary, `meridian run`)
# against nginx, HAProxy and a bare Go httputil.ReverseProxy (bench/goproxy,
# the Go floor), all in front of the same Go backend (bench/backend, 13-byte
# body) on loopback, measured in one run.
#
#   bench/http.sh                      # 3 rounds of 10 s per target and protocol
#   ROUNDS=1 DURATION=5 bench/http.sh  # quick look
#   TARGETS="meridian mstd" PROTOS=h1 ROUNDS=3 DURATION=5 bench/http.sh
#                                      # a subset: targets among direct meridian
#                                      # mstd goproxy nginx haproxy; protos h1 h1tls
#                                      # h2c h2tls
#
# meridian is http.engine fast (the default) and mstd the same binary and
# config with http.engine std (net/http's server), to compare the engines.
#
# HTTP/1.1: wrk -t1 -c64 -d${DURATION}s --latency. h2c: h2load -t1 -c8 -m8
# (64 streams) for ${DURATION}s, with a per-request log from which p50 and
# p99 are computed. h1tls and h2tls: the same wrk and h2load runs over TLS
# (certificates from scripts/gencert; wrk offers no ALPN, so HTTP/1.1) to
# each proxy's TLS listener; the backend has none, so direct is not run and
# the ratio column is empty. Per target and run it reports requests/s, p50 and p99
# latency, the CPU µs per request of the process under test (utime+stime
# from /proc/<pid>/stat, children included, over the run; for "direct" that
# is the backend), and requests/s as a ratio to direct (medians of the same
# run). Layout: load generator and backend on CPU $CLIENT_CPU, the proxy on
# CPU $PROXY_CPU. Rounds rotate the target order; the summary quotes medians.
#
# Noise: before each run the script waits (up to 2 minutes) for the machine
# to be idle (busy under 10% over a second) and records how busy it was
# (busy_before). During the run it measures the CPU time taken by anything
# other than the client, backend and target (others); a run where that
# exceeds $MAX_OTHERS% of the machine is repeated (up to 3 times, the last
# kept and marked).
#
# Meridian is built from ./cmd/meridian and run with a generated config:
# three routes (two decoys), a service and a pool per route target, access
# log off (the default), metrics on (always), admin on loopback without a
# token. A last h1 run takes a CPU profile and an allocation profile from
# the admin listener (/debug/pprof/profile, /debug/pprof/allocs). Raw output
# goes to bench/results/http-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENT_CPU=${CLIENT_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
CONNS=${CONNS:-64}
MAX_OTHERS=${MAX_OTHERS:-5}
OUT=${OUT:-bench/results/http-$(date +%Y-%m-%d).txt}
P_BACKEND=9500 P_GOPROXY=9501 P_MERIDIAN=9502 P_NGINX=9503 P_NGINX_H2=9504
P_HAPROXY=9505 P_HAPROXY_H2=9506 P_ADMIN=9510
P_MERIDIAN_TLS=9512 P_GOPROXY_TLS=9513 P_NGINX_TLS=9514 P_HAPROXY_TLS=9515
P_MSTD=9516 P_MSTD_TLS=9517 P_MSTD_ADMIN=9518
HZ=$(getconf CLK_TCK)

log() { echo "$@" | tee -a "$OUT"; }

missing=()
for t in wrk:wrk h2load:nghttp2-client nginx:nginx-light haproxy:haproxy taskset:util-linux curl:curl; do
	command -v "${t%%:*}" >/dev/null 2>&1 || [[ -x /usr/sbin/${t%%:*} ]] || missing+=("${t##*:}")
done
if ((${#missing[@]})); then
	echo "installing ${missing[*]}" >&2
	apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
command -v haproxy >/dev/null || PATH=$PATH:/usr/sbin

. bench/lib.sh # WORK, PIDS, cleanup on exit
: >"$OUT"
RAW="$WORK/raw.txt"
: >"$RAW"

log "# bench/http.sh $(date -u +%FT%TZ) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
log "# wrk -t1 -c$CONNS -d${DURATION}s and h2load -t1 -c8 -m8 -D $DURATION on CPU $CLIENT_CPU with the backend; proxies on CPU $PROXY_CPU; $ROUNDS rounds"
log "# $(go version); $(nginx -v 2>&1); $(haproxy -v | head -1)"

go build -o "$WORK/backend" ./bench/backend
go build -o "$WORK/goproxy" ./bench/goproxy
go build -o "$WORK/meridian" ./cmd/meridian
log "# meridian: $("$WORK/meridian" version) built from ./cmd/meridian ($(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+changes'))"

go run ./scripts/gencert -dir "$WORK/certs" -names localhost,127.0.0.1 >/dev/null
cat "$WORK/certs/server.pem" "$WORK/certs/server.key" >"$WORK/certs/haproxy.pem"

# meridian: http.engine fast (the plain listener's own HTTP/1.1 loop);
# meridian-std: the same binary and config with http.engine std (net/http).
cat >"$WORK/meridian.yaml" <<EOF
listen: {http: 127.0.0.1:$P_MERIDIAN, https: 127.0.0.1:$P_MERIDIAN_TLS, admin: 127.0.0.1:$P_ADMIN}
tls: {certificates: [{cert: $WORK/certs/server.pem, key: $WORK/certs/server.key}]}
log: {level: warn}
http: {access_log: false, engine: fast}
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
"$WORK/meridian" validate -config "$WORK/meridian.yaml" >/dev/null
sed -e "s/:$P_MERIDIAN,/:$P_MSTD,/; s/:$P_MERIDIAN_TLS,/:$P_MSTD_TLS,/; s/:$P_ADMIN}/:$P_MSTD_ADMIN}/; s/engine: fast/engine: std/" \
	"$WORK/meridian.yaml" >"$WORK/meridian-std.yaml"
"$WORK/meridian" validate -config "$WORK/meridian-std.yaml" >/dev/null

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
        listen 127.0.0.1:$P_NGINX_TLS ssl http2;
        ssl_certificate $WORK/certs/server.pem;
        ssl_certificate_key $WORK/certs/server.key;
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
    bind 127.0.0.1:$P_HAPROXY_TLS ssl crt $WORK/certs/haproxy.pem alpn h2,http/1.1
    default_backend be
backend be
    option forwardfor
    server s1 127.0.0.1:$P_BACKEND
EOF

declare -A PID
start() { # name cpu cmd...
	local name=$1 cpu=$2
	shift 2
	taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	PID[$name]=$!
}
start backend "$CLIENT_CPU" "$WORK/backend" -addr 127.0.0.1:$P_BACKEND
start goproxy "$PROXY_CPU" "$WORK/goproxy" -addr 127.0.0.1:$P_GOPROXY -upstream http://127.0.0.1:$P_BACKEND \
	-tls-addr 127.0.0.1:$P_GOPROXY_TLS -cert "$WORK/certs/server.pem" -key "$WORK/certs/server.key"
start meridian "$PROXY_CPU" "$WORK/meridian" run -config "$WORK/meridian.yaml"
start mstd "$PROXY_CPU" "$WORK/meridian" run -config "$WORK/meridian-std.yaml"
start nginx "$PROXY_CPU" nginx -c "$WORK/nginx.conf" -p "$WORK/nginx"
start haproxy "$PROXY_CPU" haproxy -f "$WORK/haproxy.cfg" -db

for p in $P_BACKEND $P_GOPROXY $P_MERIDIAN $P_MSTD $P_NGINX $P_HAPROXY; do
	for _ in $(seq 100); do
		curl -fs -o /dev/null "http://127.0.0.1:$p/" && break
		sleep 0.1
	done
	curl -fs -o /dev/null "http://127.0.0.1:$p/" || { log "# port $p does not answer"; tail "$WORK"/*.log; exit 1; }
done
curl -fs -o /dev/null "http://127.0.0.1:$P_ADMIN/readyz" || { log "# meridian admin does not answer"; exit 1; }
for p in $P_GOPROXY_TLS $P_MERIDIAN_TLS $P_MSTD_TLS $P_NGINX_TLS $P_HAPROXY_TLS; do
	curl -fsk --http2 -o /dev/null "https://127.0.0.1:$p/" || { log "# TLS port $p does not answer"; tail "$WORK"/*.log; exit 1; }
done

declare -A PORT_H1=([direct]=$P_BACKEND [meridian]=$P_MERIDIAN [mstd]=$P_MSTD [goproxy]=$P_GOPROXY [nginx]=$P_NGINX [haproxy]=$P_HAPROXY)
declare -A PORT_H2=([direct]=$P_BACKEND [meridian]=$P_MERIDIAN [mstd]=$P_MSTD [goproxy]=$P_GOPROXY [nginx]=$P_NGINX_H2 [haproxy]=$P_HAPROXY_H2)
declare -A PORT_TLS=([meridian]=$P_MERIDIAN_TLS [mstd]=$P_MSTD_TLS [goproxy]=$P_GOPROXY_TLS [nginx]=$P_NGINX_TLS [haproxy]=$P_HAPROXY_TLS)
declare -A PROC=([direct]=backend [meridian]=meridian [mstd]=mstd [goproxy]=goproxy [nginx]=nginx [haproxy]=haproxy)

# ticks PID: utime and stime of PID and its children, in clock ticks.
ticks() {
	local u=0 s=0 p a b
	for p in "$1" $(pgrep -P "$1" || true); do
		[[ -r /proc/$p/stat ]] || continue
		read -r a b < <(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12, $13}')
		u=$((u + a)) s=$((s + b))
	done
	echo "$u $s"
}

# machine: jiffies of all CPUs: busy, busy in tasks (user, nice, system,
# and steal: time the hypervisor gave away, which disturbs a run as much as
# a process would; not interrupts, which serve the traffic under test and
# are charged to no task), and total.
machine() {
	local a b c d e f g h
	read -r _ a b c d e f g h _ </proc/stat
	echo "$((a + b + c + f + g + h)) $((a + b + c + h)) $((a + b + c + d + e + f + g + h))"
}

busy() { # share of all CPUs' time spent busy over one second, in percent
	local b0 t0 b1 t1
	read -r b0 _ t0 < <(machine)
	sleep 1
	read -r b1 _ t1 < <(machine)
	echo $((100 * (b1 - b0) / (t1 - t0)))
}

# wait_quiet waits (up to 2 minutes) for the machine to be idle, so other
# work does not steal the cores under test; it prints the busy % it saw.
wait_quiet() {
	local b
	for _ in $(seq 120); do
		b=$(busy)
		((b < 10)) && break
	done
	echo "$b"
}

# to_us VALUE: wrk latency (850.00us, 1.23ms, 2.00s) in µs.
to_us() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n}'; }

# measure PROTO TARGET ROUND: one load run, repeated while others disturbed
# it; appends a RESULT line.
measure() {
	local proto=$1 t=$2 round=$3 try quiet pid bpid out="$WORK/load.out" lat="$WORK/h2load.log"
	pid=${PID[${PROC[$t]}]} bpid=${PID[backend]}
	local u0 s0 u1 s1 bu0 bs0 bu1 bs1 m0 tot0 m1 tot1 cl reqs rps p50 p99 errs others
	for try in 1 2 3; do
		quiet=$(wait_quiet)
		read -r u0 s0 < <(ticks "$pid")
		read -r bu0 bs0 < <(ticks "$bpid")
		read -r _ m0 tot0 < <(machine)
		local t0=$SECONDS
		if [[ $proto == h1 || $proto == h1tls ]]; then
			local url="http://127.0.0.1:${PORT_H1[$t]}/"
			[[ $proto == h1tls ]] && url="https://127.0.0.1:${PORT_TLS[$t]}/"
			cl=$( { TIMEFORMAT='%U %S'; time taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$out" 2>&1; } 2>&1)
		else
			local url="http://127.0.0.1:${PORT_H2[$t]}/"
			[[ $proto == h2tls ]] && url="https://127.0.0.1:${PORT_TLS[$t]}/"
			rm -f "$lat"
			cl=$( { TIMEFORMAT='%U %S'; time taskset -c "$CLIENT_CPU" h2load -t1 -c8 -m8 -D "$DURATION" --log-file="$lat" "$url" >"$out" 2>&1; } 2>&1)
		fi
		read -r u1 s1 < <(ticks "$pid")
		read -r bu1 bs1 < <(ticks "$bpid")
		read -r _ m1 tot1 < <(machine)
		# others: task time not spent by the target, the backend or the
		# client, as a share of the whole machine over the run.
		others=$(awk -v m=$((m1 - m0)) -v tot=$((tot1 - tot0)) -v p=$((u1 - u0 + s1 - s0)) -v b=$((bu1 - bu0 + bs1 - bs0)) \
			-v c="$cl" -v hz="$HZ" -v same="$([[ $t == direct ]] && echo 1 || echo 0)" \
			'BEGIN{split(c, x, " "); cj=(x[1]+x[2])*hz; o=m-p-cj-(same?0:b); if (o<0) o=0; printf "%.0f", (tot>0)?100*o/tot:0}')
		((others <= MAX_OTHERS)) && break
		echo "# $proto $t round $round: others took $others% of the machine; repeating" | tee -a "$OUT" >&2
	done
	{
		echo "## $proto $t round $round"
		cat "$out"
	} >>"$RAW"
	if [[ $proto == h1 || $proto == h1tls ]]; then
		rps=$(awk '/^Requests\/sec/{printf "%.0f", $2}' "$out")
		reqs=$(awk '/requests in/{print $1}' "$out")
		p50=$(to_us "$(awk '$1=="50%"{print $2}' "$out")")
		p99=$(to_us "$(awk '$1=="99%"{print $2}' "$out")")
		errs=$(awk '/Non-2xx/{n+=$NF} /Socket errors/{gsub(",",""); n+=$4+$6+$8+$10} END{print n+0}' "$out")
	else
		rps=$(awk '/^finished in/{gsub(",","",$4); printf "%.0f", $4}' "$out")
		reqs=$(awk '/^requests:/{print $8}' "$out")
		errs=$(awk '/^requests:/{print $10 + $12}' "$out")
		if [[ -s $lat ]]; then
			read -r p50 p99 < <(awk '{print $3}' "$lat" | sort -n | awk '{a[NR]=$1} END{printf "%d %d\n", a[int(NR*0.5)+1], a[int(NR*0.99)+1]}')
		else
			p50=- p99=-
		fi
	fi
	if [[ -z $reqs || $reqs == 0 ]]; then
		log "RESULT $proto $t round=$round failed: $(tail -2 "$out" | tr '\n' ' ')"
		return
	fi
	per() { awk -v d="$1" -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}'; }
	printf 'RESULT %-3s %-8s round=%d rps=%s p50_us=%s p99_us=%s cpu_us=%s user_us=%s sys_us=%s errors=%s busy_before=%s%% others=%s%%%s\n' \
		"$proto" "$t" "$round" "$rps" "$p50" "$p99" "$(per $((u1 - u0 + s1 - s0)))" "$(per $((u1 - u0)))" "$(per $((s1 - s0)))" \
		"$errs" "$quiet" "$others" "$( ((others > MAX_OTHERS)) && echo ' DISTURBED')" | tee -a "$OUT"
}

# TARGETS and PROTOS narrow a run (TARGETS="meridian mstd" PROTOS=h1).
read -r -a TARGETS <<<"${TARGETS:-direct meridian mstd goproxy nginx haproxy}"
read -r -a PROTOS <<<"${PROTOS:-h1 h1tls h2c h2tls}"
for ((r = 1; r <= ROUNDS; r++)); do
	k=$(((r - 1) % ${#TARGETS[@]}))
	order=("${TARGETS[@]:k}" "${TARGETS[@]:0:k}")
	for proto in "${PROTOS[@]}"; do
		for t in "${order[@]}"; do [[ $proto == *tls && $t == direct ]] || measure "$proto" "$t" "$r"; done
	done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
field() { # PROTO TARGET KEY: the median of KEY over the target's runs
	awk -v p="$1" -v t="$2" -v k="$3" '$1=="RESULT" && $2==p && $3==t {for (i=4; i<=NF; i++) if (index($i, k"=")==1) print substr($i, length(k)+2)}' "$OUT" | grep -E '^[0-9.]+$' | median || true
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-"}'; }
log ""
log "# medians over $ROUNDS rounds; ratio: req/s over direct's median, same protocol"
log "$(printf '%-5s %-9s %8s %8s %8s %8s %7s %7s %6s' proto target req/s p50_µs p99_µs CPU_µs/req user sys ratio)"
for proto in "${PROTOS[@]}"; do
	direct=$(field $proto direct rps)
	for t in "${TARGETS[@]}"; do
		[[ $proto == *tls && $t == direct ]] && continue
		rps=$(field $proto "$t" rps)
		log "$(printf '%-5s %-9s %8s %8s %8s %8s %7s %7s %6s' $proto "$t" "$rps" "$(field $proto "$t" p50_us)" "$(field $proto "$t" p99_us)" \
			"$(field $proto "$t" cpu_us)" "$(field $proto "$t" user_us)" "$(field $proto "$t" sys_us)" "$(ratio "$rps" "$direct")")"
	done
done

log ""
log "# floor: Meridian no slower than the bare Go proxy (CPU µs/req ≤, req/s ≥); stretch: ≥ 0.8x nginx's req/s, p99 ≤ 1.5x nginx's"
log "# goal (h1): Meridian's CPU µs/req ≤ 1.3x nginx's"
for proto in "${PROTOS[@]}"; do
	mc=$(field $proto meridian cpu_us) gc=$(field $proto goproxy cpu_us)
	mr=$(field $proto meridian rps) gr=$(field $proto goproxy rps) nr=$(field $proto nginx rps)
	mp=$(field $proto meridian p99_us) np=$(field $proto nginx p99_us)
	floor=$(awk -v a="$mc" -v b="$gc" -v c="$mr" -v d="$gr" 'BEGIN{print (a <= b && c >= d) ? "met" : "NOT met"}')
	log "$(printf '%-4s floor %s: CPU %s vs %s µs/req (%sx), req/s %sx bare; stretch: req/s %sx nginx, p99 %sx nginx' \
		$proto "$floor" "$mc" "$gc" "$(ratio "$mc" "$gc")" "$(ratio "$mr" "$gr")" "$(ratio "$mr" "$nr")" "$(ratio "$mp" "$np")")"
	nc=$(field $proto nginx cpu_us) hc=$(field $proto haproxy cpu_us) sc=$(field $proto mstd cpu_us)
	log "$(printf '%-4s CPU per request: %sx nginx, %sx haproxy; engine std %s µs (fast/std %sx)' \
		$proto "$(ratio "$mc" "$nc")" "$(ratio "$mc" "$hc")" "$sc" "$(ratio "$mc" "$sc")")"
done

# Profiles of Meridian under the h1 load, from the admin listener.
log ""
log "# pprof: Meridian CPU profile over a $((DURATION - 2))s h1 run (top 30, flat)"
wait_quiet >/dev/null
taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$P_MERIDIAN/" >"$WORK/prof-wrk.out" &
wrk_pid=$!
sleep 1
curl -fs -o "$WORK/cpu.pprof" "http://127.0.0.1:$P_ADMIN/debug/pprof/profile?seconds=$((DURATION - 2))"
wait $wrk_pid
go tool pprof -top -nodecount=30 "$WORK/meridian" "$WORK/cpu.pprof" 2>/dev/null | tee -a "$OUT" >/dev/null
log ""
log "# pprof: cumulative, proxy, routing and upstream frames"
go tool pprof -top -cum -nodecount=80 "$WORK/meridian" "$WORK/cpu.pprof" 2>/dev/null |
	grep -E 'meridian|httputil|net/http\.\(\*conn\)\.serve|Transport|persistConn|ReadResponse|Request\)\.write|zap|prometheus|gcBgMarkWorker|mallocgc$' | head -40 | tee -a "$OUT" >/dev/null
log ""
log "# pprof: allocations over a $((DURATION - 2))s h1 run (top 25 by objects; requests in the window: see the wrk line)"
wait_quiet >/dev/null
taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$P_MERIDIAN/" >"$WORK/alloc-wrk.out" &
wrk_pid=$!
sleep 1
curl -fs -o "$WORK/allocs.pprof" "http://127.0.0.1:$P_ADMIN/debug/pprof/allocs?seconds=$((DURATION - 2))"
wait $wrk_pid
log "# wrk: $(grep -E 'requests in' "$WORK/alloc-wrk.out" | xargs) (the profile covers $((DURATION - 2)) of those ${DURATION}s)"
go tool pprof -sample_index=alloc_objects -top -nodecount=25 "$WORK/meridian" "$WORK/allocs.pprof" 2>/dev/null | tee -a "$OUT" >/dev/null
{
	echo ""
	echo "# raw wrk and h2load output, in run order"
	cat "$RAW"
} >>"$OUT"
