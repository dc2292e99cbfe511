#!/usr/bin/env bash
# bench/dns.sh: Meridian's DNS server against NSD, gdnsd, Knot, a bare
# miekg/dns responder and (COREDNS=1) CoreDNS's file plugin, all serving the
# same small zone on loopback, measured with dnsperf -c 8 in one run.
#
#   bench/dns.sh                         # 3 rounds of 10 s per server and name
#   ROUNDS=1 DURATION=5 bench/dns.sh     # quick look
#   COREDNS=1 bench/dns.sh               # CoreDNS too (a go install: minutes)
#   SERVERS="meridian nsd" bench/dns.sh  # only some of them
#   BASE=/tmp/old/meridian bench/dns.sh  # and another Meridian build as "base"
#
# Per server and query it reports queries/s, average and p99 latency (p99
# computed from dnsperf -v's per-query latencies), lost queries, and the
# server's CPU µs per query (utime+stime from /proc/<pid>/stat over the run,
# summed over the server's processes: NSD answers from a forked child).
# Two queries: "static" (www.example.test A, no EDNS) and "steered"
# (geo.example.test A with ECS 198.51.100.0/24; a geo-steered record under
# Meridian, a static one elsewhere, so the others get their best case).
# dnsperf runs on CPU $CLIENT_CPU, every server on CPU $SERVER_CPU. Rounds
# rotate the server order; the summary quotes medians. Meridian is the real
# binary (cmd/meridian run: health engine, metrics and admin API included),
# profiled through its admin API's /debug/pprof during a last steered run.
# NSD runs with its per-source rate limit off (Debian's build turns it on),
# gdnsd in the foreground (gdnsd -c DIR start), both on 127.0.0.1 only.
# Before each run the script waits (up to QUIET_WAIT seconds, 120 by
# default) for the machine to be idle and records how busy it was
# (busy_before). Raw output goes to bench/results/dns-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.1}
QUIET_WAIT=${QUIET_WAIT:-120}
OUT=${OUT:-bench/results/dns-$(date +%Y-%m-%d).txt}
P_MERIDIAN=5301 P_COREDNS=5302 P_KNOT=5303 P_BARE=5304 P_ADMIN=5305 P_GDNSD=5306 P_NSD=5307 P_BASE=5308 P_BASE_ADMIN=5309
WANT=${SERVERS:-meridian nsd gdnsd knot bare coredns}
wanted() { [[ " $WANT " == *" $1 "* ]]; }

log() { echo "$@" | tee -a "$OUT"; }

missing=()
for t in dnsperf:dnsperf knotd:knot kdig:knot-dnsutils dig:dnsutils taskset:util-linux nsd:nsd gdnsd:gdnsd; do
	command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t##*:}")
done
if ((${#missing[@]})); then
	echo "installing ${missing[*]}" >&2
	apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

. bench/lib.sh # WORK, PIDS, cleanup on exit
: >"$OUT"

log "# bench/dns.sh $(date -u +%FT%TZ) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
log "# dnsperf -c 8 -l $DURATION on CPU $CLIENT_CPU, servers on CPU $SERVER_CPU, $ROUNDS rounds; $(go version)"

go build -o "$WORK/meridian" ./cmd/meridian
go build -o "$WORK/dnsbare" ./bench/dnsbare
COREDNS_BIN=""
if [[ ${COREDNS:-0} != 1 ]] || ! wanted coredns; then
	log "# CoreDNS skipped (COREDNS=1 to include it)"
elif GOBIN="$WORK/gobin" go install "github.com/coredns/coredns@$COREDNS_VERSION" >"$WORK/coredns-install.log" 2>&1; then
	COREDNS_BIN="$WORK/gobin/coredns"
else
	log "# CoreDNS $COREDNS_VERSION could not be installed; skipping it:"
	tail -3 "$WORK/coredns-install.log" | sed 's/^/#   /' | tee -a "$OUT"
fi

cat >"$WORK/example.test.zone" <<'EOF'
$ORIGIN example.test.
$TTL 300
@    3600 IN SOA ns1.example.test. hostmaster.example.test. 1 3600 900 604800 300
@    3600 IN NS  ns1.example.test.
ns1       IN A   192.0.2.53
www       IN A   192.0.2.1
geo       IN A   192.0.2.1
EOF

cat >"$WORK/meridian.yaml" <<EOF
listen: {dns: 127.0.0.1:$P_MERIDIAN, admin: 127.0.0.1:$P_ADMIN}
log: {level: warn}
geo:
  nets: {127.0.0.0/8: eu, 198.51.100.0/24: us}
  default_region: eu
pools:
  eu: {region: eu, endpoints: [192.0.2.1:443, 192.0.2.2:443]}
  us: {region: us, endpoints: [198.51.100.1:443, 198.51.100.2:443]}
services:
  geo: {policy: geo, pools: [eu, us]}
zones:
  - origin: example.test.
    soa: {ns: ns1.example.test., mbox: hostmaster.example.test., ttl: 3600, minimum: 300}
    ns: [ns1.example.test.]
    records:
      - {name: ns1, type: A, values: [192.0.2.53]}
      - {name: www, type: A, values: [192.0.2.1]}
      - {name: geo, type: A, service: geo, ttl: 30}
EOF

cat >"$WORK/Corefile" <<EOF
example.test:$P_COREDNS {
    bind 127.0.0.1
    file $WORK/example.test.zone
}
EOF

mkdir -p "$WORK/knot"
cat >"$WORK/knot.conf" <<EOF
server:
    rundir: "$WORK/knot"
    listen: 127.0.0.1@$P_KNOT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$WORK/knot"
log:
  - target: stderr
    any: warning
zone:
  - domain: example.test
    storage: "$WORK"
    file: "example.test.zone"
EOF

# gdnsd: a config directory with the zone under zones/, its run and state
# directories in $WORK, one UDP and one TCP thread.
mkdir -p "$WORK/gdnsd/zones"
cp "$WORK/example.test.zone" "$WORK/gdnsd/zones/example.test"
cat >"$WORK/gdnsd/config" <<EOF
options => {
  listen => [ 127.0.0.1:$P_GDNSD ]
  udp_threads => 1
  tcp_threads => 1
  run_dir => $WORK/gdnsd/run
  state_dir => $WORK/gdnsd/state
}
EOF

# NSD: one server process, no chroot, no privilege drop, no control
# socket, files in $WORK, and rrl-ratelimit: 0 (Debian's build limits each
# source to 200 qps by default, which would measure the limiter).
mkdir -p "$WORK/nsd"
cat >"$WORK/nsd/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$P_NSD
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$WORK"
    database: ""
    pidfile: "$WORK/nsd/nsd.pid"
    xfrdfile: "$WORK/nsd/xfrd.state"
    zonelistfile: "$WORK/nsd/zone.list"
    xfrdir: "$WORK/nsd"
    logfile: "$WORK/nsd/nsd.log"
    rrl-ratelimit: 0
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: example.test
    zonefile: "$WORK/example.test.zone"
EOF

echo "www.example.test A" >"$WORK/static.txt"
echo "geo.example.test A" >"$WORK/steered.txt"
ECS_OPT="8:00011800c63364" # family 1, source /24, scope 0, 198.51.100

declare -A PID PORT
start() { # name port cmd...
	local name=$1 port=$2
	shift 2
	taskset -c "$SERVER_CPU" "$@" >"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
	PORT[$name]=$port
	PIDS+=("$!")
	for _ in $(seq 100); do
		if dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 ns1.example.test A 2>/dev/null | grep -q '^192\.0\.2\.'; then
			return 0
		fi
		sleep 0.1
	done
	log "# $name did not start:"
	sed 's/^/#   /' "$WORK/$name.log" | tee -a "$OUT"
	return 1
}

SERVERS=()
wanted meridian && start meridian $P_MERIDIAN "$WORK/meridian" run -config "$WORK/meridian.yaml" -watch=false && SERVERS+=(meridian)
if [[ -n ${BASE:-} ]]; then
	# The same config on the base build's own ports: a before figure from
	# the same run.
	sed "s/127.0.0.1:$P_MERIDIAN/127.0.0.1:$P_BASE/; s/127.0.0.1:$P_ADMIN/127.0.0.1:$P_BASE_ADMIN/" "$WORK/meridian.yaml" >"$WORK/base.yaml"
	start base $P_BASE "$BASE" run -config "$WORK/base.yaml" -watch=false && SERVERS+=(base)
fi
wanted nsd && start nsd $P_NSD nsd -d -c "$WORK/nsd/nsd.conf" && SERVERS+=(nsd)
wanted gdnsd && start gdnsd $P_GDNSD gdnsd -c "$WORK/gdnsd" start && SERVERS+=(gdnsd)
if [[ -n $COREDNS_BIN ]]; then
	start coredns $P_COREDNS "$COREDNS_BIN" -conf "$WORK/Corefile" -quiet && SERVERS+=(coredns)
fi
wanted knot && start knot $P_KNOT knotd -c "$WORK/knot.conf" && SERVERS+=(knot)
wanted bare && start bare $P_BARE "$WORK/dnsbare" -addr "127.0.0.1:$P_BARE" && SERVERS+=(bare)

ticks() { # utime and stime of a pid and its descendants, in clock ticks
	local i p kids all=("$1")
	for ((i = 0; i < ${#all[@]}; i++)); do
		kids=$(cat "/proc/${all[i]}/task/"*/children 2>/dev/null || true)
		for p in $kids; do all+=("$p"); done
	done
	for p in "${all[@]}"; do
		sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true
	done | awk '{u += $12; s += $13} END {print u + 0, s + 0}'
}
HZ=$(getconf CLK_TCK)

busy() { # share of all CPUs' time spent busy over one second, in percent
	local a b c d e f g h t0 i0 t1 i1
	read -r _ a b c d e f g h _ </proc/stat
	t0=$((a + b + c + d + e + f + g + h)) i0=$((d + e))
	sleep 1
	read -r _ a b c d e f g h _ </proc/stat
	t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
	echo $((100 * ((t1 - t0) - (i1 - i0)) / (t1 - t0)))
}

# wait_quiet waits (up to 2 minutes) for the machine to be idle, so other
# work does not steal the cores under test; it prints the busy % it saw.
wait_quiet() {
	local b
	for _ in $(seq "$QUIET_WAIT"); do
		b=$(busy)
		((b < 10)) && break
	done
	echo "$b"
}

# measure server query round: one dnsperf run; appends a result line.
measure() {
	local s=$1 q=$2 round=$3 args=()
	[[ $q == steered ]] && args=(-E "$ECS_OPT")
	local u0 s0 u1 s1 quiet out="$WORK/dnsperf.out"
	quiet=$(wait_quiet)
	read -r u0 s0 < <(ticks "${PID[$s]}")
	taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/$q.txt" -c 8 -l "$DURATION" -v "${args[@]}" >"$out" 2>&1
	read -r u1 s1 < <(ticks "${PID[$s]}")
	local done lost qps avg p99 cpu usr sys
	done=$(awk '/Queries completed:/ {print $3}' "$out")
	lost=$(awk '/Queries lost:/ {print $3}' "$out")
	qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$out")
	avg=$(awk '/Average Latency/ {printf "%.0f", $4 * 1e6}' "$out")
	p99=$(grep '^>' "$out" | awk '{print $5}' | sort -g | awk '{a[NR]=$1} END {if (NR) printf "%.0f", a[int(NR*0.99)] * 1e6}')
	per() { awk -v d="$1" -v hz="$HZ" -v n="$done" 'BEGIN {if (n > 0) printf "%.2f", d / hz * 1e6 / n}'; }
	cpu=$(per $((u1 - u0 + s1 - s0)))
	usr=$(per $((u1 - u0)))
	sys=$(per $((s1 - s0)))
	grep -vE '^>' "$out" | grep -E 'Queries|Latency|Response codes' | sed "s/^/#   $s $q: /" >>"$OUT"
	printf 'RESULT %-9s %-8s round=%d qps=%s avg_us=%s p99_us=%s lost=%s cpu_us_per_query=%s user_us=%s sys_us=%s busy_before=%s%%\n' \
		"$s" "$q" "$round" "$qps" "$avg" "$p99" "$lost" "$cpu" "$usr" "$sys" "$quiet" | tee -a "$OUT"
	rm -f "$out"
}

for round in $(seq "$ROUNDS"); do
	n=${#SERVERS[@]}
	for i in $(seq 0 $((n - 1))); do
		s=${SERVERS[$(((i + round - 1) % n))]}
		for q in static steered; do
			measure "$s" "$q" "$round"
		done
	done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
log ""
log "Summary (medians over $ROUNDS rounds)"
printf '%-9s %-8s %9s %7s %7s %6s %9s %7s %7s\n' server query qps avg_us p99_us lost cpu_us/q user sys | tee -a "$OUT"
declare -A QPS CPU
for s in "${SERVERS[@]}"; do
	for q in static steered; do
		row=()
		for f in qps avg_us p99_us lost cpu_us_per_query user_us sys_us; do
			row+=("$(grep "^RESULT $s " "$OUT" | grep " $q " | grep -o "$f=[0-9.]*" | cut -d= -f2 | median)")
		done
		QPS[$s.$q]=${row[0]} CPU[$s.$q]=${row[4]}
		printf '%-9s %-8s %9s %7s %7s %6s %9s %7s %7s\n' "$s" "$q" "${row[@]}" | tee -a "$OUT"
	done
done
if [[ -z ${QPS[meridian.static]:-} ]]; then
	log ""
	log "raw output: $OUT"
	exit 0
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }
log ""
for q in static steered; do
	line="meridian/$q:"
	[[ -n ${QPS[coredns.$q]:-} ]] && line+=" $(ratio "${QPS[meridian.$q]}" "${QPS[coredns.$q]}")x CoreDNS (floor 1.5),"
	[[ -n ${QPS[bare.$q]:-} ]] && line+=" $(ratio "${QPS[meridian.$q]}" "${QPS[bare.$q]}")x bare (floor 0.8),"
	[[ -n ${QPS[knot.$q]:-} ]] && line+=" $(ratio "${QPS[meridian.$q]}" "${QPS[knot.$q]}")x Knot,"
	[[ -n ${QPS[nsd.$q]:-} ]] && line+=" $(ratio "${QPS[meridian.$q]}" "${QPS[nsd.$q]}")x NSD,"
	[[ -n ${QPS[gdnsd.$q]:-} ]] && line+=" $(ratio "${QPS[meridian.$q]}" "${QPS[gdnsd.$q]}")x gdnsd"
	log "${line%,}"
done
log ""
log "CPU µs per query, Meridian / peer (below 1: Meridian spends less):"
for q in static steered; do
	line="meridian/$q:"
	for p in base nsd gdnsd knot bare coredns; do
		[[ -n ${CPU[$p.$q]:-} ]] && line+=" $(ratio "${CPU[meridian.$q]}" "${CPU[$p.$q]}") $p,"
	done
	log "${line%,}"
done

# Profile Meridian's answer path on the steered query.
log ""
log "Profile: meridian, steered query, ${DURATION}s"
curl -s -o "$WORK/cpu.prof" "http://127.0.0.1:$P_ADMIN/debug/pprof/profile?seconds=$DURATION" &
CURLPID=$!
taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p $P_MERIDIAN -d "$WORK/steered.txt" -c 8 -l "$DURATION" -E "$ECS_OPT" >/dev/null 2>&1
wait "$CURLPID" || true
go tool pprof -top -nodecount=30 "$WORK/meridian" "$WORK/cpu.prof" 2>/dev/null | sed 's/^/  /' | tee -a "$OUT"
log ""
log "cumulative, by area:"
go tool pprof -top -cum -nodecount=40 "$WORK/meridian" "$WORK/cpu.prof" 2>/dev/null |
	grep -E 'dns\.\(\*Server\)\.(serve|datagram|slowDatagram|fastPath|udpBatchWorker|udpMmsgWorker)$|dns\.answer$|ReadBatch|WriteBatch|FD\)\.Raw(Read|Write)$|Msg\)\.(Unpack|PackBuffer)$|mallocgc$|gcBgMarkWorker|findRunnable|netpoll$|prometheus' |
	sed 's/^/  /' | tee -a "$OUT"
log ""
log "raw output: $OUT"
