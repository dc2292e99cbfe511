#!/usr/bin/env bash
# bench/routes.sh: how Meridian's CPU per request grows with the route
# table. The real binary (`meridian run`) serves a generated config of N
# routes, all to one Go backend (bench/backend) on loopback, and wrk sends
# every request to the LAST route: the worst case for a matcher that scans
# routes in order.
#
#   bench/routes.sh                        # 3 rounds, 3/2000/10000 path and host routes, 10 s each
#   ROUNDS=1 DURATION=5 bench/routes.sh    # quick look
#   BASE=HEAD bench/routes.sh              # also the committed code, for before/after
#
# Shapes: "path" routes match only a path prefix (/api/<i>), "host" routes
# only a host (h<i>.example.test). With BASE set, the binary is also built
# from `git archive $BASE` and the two builds alternate within each round.
# Per run it reports requests/s and the CPU µs per request of the Meridian
# process (utime+stime from /proc/<pid>/stat over the run, divided by the
# requests wrk counted). Layout as bench/http.sh: wrk and the backend on
# CPU $CLIENT_CPU, Meridian on CPU $PROXY_CPU. Before each run the script
# waits (up to a minute) for the machine to be idle and records how busy it
# was (busy_before); during the run it measures the task time of anything
# but wrk, the backend and Meridian (others, in % of the machine) and
# repeats a run where that exceeds $MAX_OTHERS% (up to 3 times, the last
# kept and marked). The summary quotes medians. Raw output goes to
# bench/results/routes-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-3 2000 10000}
SHAPES=${SHAPES:-path host}
CLIENT_CPU=${CLIENT_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
CONNS=${CONNS:-64}
MAX_OTHERS=${MAX_OTHERS:-5}
BASE=${BASE:-}
OUT=${OUT:-bench/results/routes-$(date +%Y-%m-%d).txt}
P_BACKEND=9520 P_MERIDIAN=9521
HZ=$(getconf CLK_TCK)

log() { echo "$@" | tee -a "$OUT"; }

missing=()
for t in wrk:wrk taskset:util-linux curl:curl; do
	command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t##*:}")
done
if ((${#missing[@]})); then
	echo "installing ${missing[*]}" >&2
	apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

. bench/lib.sh # WORK, PIDS, cleanup on exit
: >"$OUT"

log "# bench/routes.sh $(date -u +%FT%TZ) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
log "# wrk -t1 -c$CONNS -d${DURATION}s on CPU $CLIENT_CPU with the backend; meridian on CPU $PROXY_CPU; $ROUNDS rounds; $(go version)"

go build -o "$WORK/backend" ./bench/backend
BUILDS=(work)
go build -o "$WORK/meridian-work" ./cmd/meridian
log "# work: the working tree ($(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+changes'))"
if [[ -n $BASE ]]; then
	mkdir "$WORK/base"
	git archive "$BASE" | tar -x -C "$WORK/base"
	(cd "$WORK/base" && go build -o "$WORK/meridian-base" ./cmd/meridian)
	BUILDS=(base work)
	log "# base: git archive $BASE ($(git rev-parse --short "$BASE"))"
fi

# config SHAPE N: a config of N routes of SHAPE, all to the backend.
config() {
	local shape=$1 n=$2 i
	cat <<EOF
listen: {http: 127.0.0.1:$P_MERIDIAN}
log: {level: warn}
pools:
  backend: {endpoints: [127.0.0.1:$P_BACKEND]}
services:
  web: {pools: [backend]}
routes:
EOF
	for ((i = 0; i < n; i++)); do
		if [[ $shape == path ]]; then
			echo "  - {name: r$i, match: {path_prefix: /api/$i}, service: web}"
		else
			echo "  - {name: r$i, match: {host: h$i.example.test}, service: web}"
		fi
	done
}

# ticks PID: utime+stime of PID, in clock ticks.
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# machine: jiffies of all CPUs spent in tasks (user, nice, system, steal)
# and in all.
machine() {
	local a b c d e f g h
	read -r _ a b c d e f g h _ </proc/stat
	echo "$((a + b + c + h)) $((a + b + c + d + e + f + g + h))"
}

busy() { # share of all CPUs' time spent busy over one second, in percent
	local a b c d e f g h b0 t0
	read -r _ a b c d e f g h _ </proc/stat
	b0=$((a + b + c + f + g + h)) t0=$((a + b + c + d + e + f + g + h))
	sleep 1
	read -r _ a b c d e f g h _ </proc/stat
	echo $((100 * (a + b + c + f + g + h - b0) / (a + b + c + d + e + f + g + h - t0)))
}

wait_quiet() { # waits up to a minute for an idle machine; prints the busy % it saw
	local b
	for _ in $(seq 60); do
		b=$(busy)
		((b < 10)) && break
	done
	echo "$b"
}

taskset -c "$CLIENT_CPU" "$WORK/backend" -addr 127.0.0.1:$P_BACKEND >"$WORK/backend.log" 2>&1 &
BACKEND=$!
PIDS+=($BACKEND)

# run BUILD SHAPE N ROUND: one load run; appends a RESULT line.
run() {
	local build=$1 shape=$2 n=$3 round=$4 pid url host quiet t0 t1 b0 b1 m0 m1 tot0 tot1 cl others try reqs rps mark=""
	config "$shape" "$n" >"$WORK/meridian.yaml"
	taskset -c "$PROXY_CPU" "$WORK/meridian-$build" run -config "$WORK/meridian.yaml" >"$WORK/meridian.log" 2>&1 &
	pid=$!
	PIDS+=($pid)
	url="http://127.0.0.1:$P_MERIDIAN/api/$((n - 1))/items/42" host="www.example.test"
	[[ $shape == host ]] && url="http://127.0.0.1:$P_MERIDIAN/items/42" host="h$((n - 1)).example.test"
	for _ in $(seq 200); do
		curl -fs -o /dev/null -H "Host: $host" "$url" && break
		sleep 0.1
	done
	curl -fs -o /dev/null -H "Host: $host" "$url" || { log "# $build $shape $n does not answer"; tail "$WORK"/meridian.log; exit 1; }
	taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d1s -H "Host: $host" "$url" >/dev/null 2>&1 # warm up
	for try in 1 2 3; do
		quiet=$(wait_quiet)
		t0=$(ticks "$pid") b0=$(ticks "$BACKEND")
		read -r m0 tot0 < <(machine)
		cl=$( { TIMEFORMAT='%U %S'; time taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Host: $host" "$url" >"$WORK/wrk.out" 2>&1; } 2>&1)
		t1=$(ticks "$pid") b1=$(ticks "$BACKEND")
		read -r m1 tot1 < <(machine)
		others=$(awk -v m=$((m1 - m0)) -v tot=$((tot1 - tot0)) -v known=$((t1 - t0 + b1 - b0)) -v c="$cl" -v hz="$HZ" \
			'BEGIN{split(c, x, " "); o = m - known - (x[1] + x[2]) * hz; if (o < 0) o = 0; printf "%.1f", 100 * o / tot}')
		mark=$(awk -v o="$others" -v max="$MAX_OTHERS" 'BEGIN{if (o > max) print " disturbed"}')
		[[ -z $mark || $try == 3 ]] && break
		log "# $build $shape $n round $round: others $others%, repeating"
	done
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
	rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
	if grep -q "Non-2xx" "$WORK/wrk.out"; then
		log "# $build $shape $n: non-2xx answers"
		cat "$WORK/wrk.out" >>"$OUT"
	fi
	awk -v b="$build" -v s="$shape" -v n="$n" -v r="$round" -v reqs="$reqs" -v rps="$rps" -v t=$((t1 - t0)) -v hz="$HZ" -v q="$quiet" -v o="$others" -v mark="$mark" \
		'BEGIN{printf "RESULT build=%s shape=%s routes=%d round=%d rps=%.0f cpu_us=%.1f busy_before=%d%% others=%s%%%s\n", b, s, n, r, rps, t*1e6/hz/reqs, q, o, mark}' | tee -a "$OUT"
}

for ((round = 1; round <= ROUNDS; round++)); do
	for shape in $SHAPES; do
		for n in $SIZES; do
			# Alternate which build goes first from round to round.
			order=("${BUILDS[@]}")
			((round % 2 == 0 && ${#BUILDS[@]} == 2)) && order=("${BUILDS[1]}" "${BUILDS[0]}")
			for build in "${order[@]}"; do
				run "$build" "$shape" "$n" "$round"
			done
		done
	done
done

log ""
log "# medians over rounds: CPU µs per request (requests/s)"
grep '^RESULT' "$OUT" | awk '
{
	for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
	k = f["build"] " " f["shape"] " " f["routes"]
	cpu[k] = cpu[k] " " f["cpu_us"]; rps[k] = rps[k] " " f["rps"]
}
function median(s,   a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END { for (k in cpu) printf "%-22s %8.1f µs  (%.0f req/s)\n", k, median(cpu[k]), median(rps[k]) }' | sort | tee -a "$OUT"
