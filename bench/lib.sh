# bench/lib.sh: the start every bench script shares, sourced from the
# repository root once the script has set OUT: a temporary directory WORK,
# the array PIDS of the processes the script starts (all killed on exit,
# and WORK removed), and the results file's directory.
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$(dirname "$OUT")"
