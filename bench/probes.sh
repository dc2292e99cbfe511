#!/usr/bin/env bash
# bench/probes.sh: CPU cost of 5,000 health checks a second, Meridian's
# prober (health.BenchmarkProbe5000TCP/HTTP/HTTPFresh: the engine and
# NetProber in the benchmark process, the checked listeners in a helper
# process) and HAProxy 2.6 (nbthread 1, `check inter 1s` on 5,000 servers:
# the same 100 listeners × 50), side by side: CPU ms per wall second of the
# checking process, ROUNDS rounds alternating, medians. Three kinds: tcp
# (connect checks), http (Meridian keeps each target's connection between
# probes, its default; HAProxy's checks open one per check, HTTP/1.0) and
# http-fresh (Meridian with NetProber.FreshConnections: a connection per
# probe, like HAProxy; HAProxy's side is the same http run again). Raw
# output: bench/results/probes-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
WINDOW=${WINDOW:-5}
OUT=${OUT:-bench/results/probes-$(date +%Y-%m-%d).txt}
command -v haproxy >/dev/null || PATH=$PATH:/usr/sbin
. bench/lib.sh # WORK, PIDS, cleanup on exit
: >"$OUT"
log() { echo "$@" | tee -a "$OUT"; }
HZ=$(getconf CLK_TCK)
go test -c -o "$WORK/health.test" ./health
log "# bench/probes.sh $(date -u +%FT%TZ): 5,000 checks at 1 s, ${WINDOW}s windows, $ROUNDS rounds; $(go version); $(haproxy -v | head -1)"

# haproxy KIND: HAProxy checking 5,000 servers of a helper's listeners;
# prints CPU ms per second over WINDOW.
haproxy_run() {
	local kind=$1 addrs i=0 pid u0 s0 u1 s1
	coproc H { MERIDIAN_PROBE_TARGETS=$kind "$WORK/health.test" -test.run '^TestProbeTargetsHelper$'; }
	read -r addrs <&"${H[0]}"
	{
		echo "global"
		echo "    nbthread 1"
		echo "    maxconn 4000"
		echo "defaults"
		echo "    mode $([[ $kind == http ]] && echo http || echo tcp)"
		echo "    timeout connect 500ms"
		echo "    timeout check 500ms"
		echo "    timeout client 5s"
		echo "    timeout server 5s"
		echo "    default-server check inter 1s fall 2 rise 2"
		echo "frontend fe"
		echo "    bind 127.0.0.1:9549"
		echo "    default_backend b1"
		for c in $(seq 50); do
			echo "backend b$c"
			[[ $kind == http ]] && echo "    option httpchk GET /healthz"
			for a in $addrs; do
				i=$((i + 1))
				echo "    server s$i $a"
			done
		done
	} >"$WORK/haproxy.cfg"
	haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
	pid=$!
	sleep 3
	[[ -r /proc/$pid/stat ]] || { cat "$WORK/haproxy.log" >&2; echo -; return; }
	read -r u0 s0 < <(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12, $13}')
	sleep "$WINDOW"
	read -r u1 s1 < <(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12, $13}')
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	eval "exec ${H[1]}>&-"
	wait "$H_PID" 2>/dev/null || true
	awk -v d=$((u1 - u0 + s1 - s0)) -v hz="$HZ" -v w="$WINDOW" 'BEGIN{printf "%.1f", d / hz * 1000 / w}'
}

for ((r = 1; r <= ROUNDS; r++)); do
	for kind in tcp http http-fresh; do
		case $kind in
		tcp) K=TCP ;;
		http) K=HTTP ;;
		http-fresh) K=HTTPFresh ;;
		esac
		m=$(cd health && "$WORK/health.test" -test.run xxx -test.bench "Probe5000$K\$" -test.benchtime 1x | awk '/^Benchmark/{for (i=1;i<=NF;i++) if ($(i+1)=="cpu-ms/s") print $i}')
		h=$(haproxy_run "${kind%-fresh}")
		log "RESULT $kind round=$r meridian_cpu_ms_s=$m haproxy_cpu_ms_s=$h"
	done
done
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
log ""
log "# CPU ms per second (a core is 1000), medians of $ROUNDS rounds"
for kind in tcp http http-fresh; do
	m=$(awk -v k=$kind '$2==k {split($4,a,"="); print a[2]}' "$OUT" | median)
	h=$(awk -v k=$kind '$2==k {split($5,a,"="); print a[2]}' "$OUT" | median)
	log "$kind: meridian $m, haproxy $h"
done
