#!/usr/bin/env bash
# Segment recycling on and off, side by side: `make bench-recycle` (README,
# The hot tier).
#
# Runs `zombi serve` on 127.0.0.1 (a fresh data directory each run, the
# default settings: the cold tier flushing to the local warehouse) with
# ZOMBI_SEGMENT_RECYCLE=true and =false, alternating which goes first, RUNS
# times each, and loads it with `zombi load --scenario bulk --conns 16`
# (100 × 82 B per request) for DUR seconds after 1 s of warm-up. Prints
# events/s, the server's CPU per request and p99 of every run, then the
# medians and on ÷ off, of the medians and as the median of each pair's
# ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DUR=${DUR:-8}
BIN=${BIN:-bin/zombi}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d "${TMPDIR:-/tmp}/zombi-recycle.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

run() { # $1: true or false; prints events/s, server µs per request, p99
	local dir p out
	dir=$(mktemp -d "$work/run.XXXXXX")
	p=$(port)
	ZOMBI_SEGMENT_RECYCLE=$1 "$BIN" serve --host 127.0.0.1 --port "$p" --data-dir "$dir" >"$dir.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p/health/live" >/dev/null && break; sleep 0.1; done
	out=$("$BIN" load --target "127.0.0.1:$p" --scenario bulk --conns 16 --duration "${DUR}s" --warmup 1s \
		--server-pid "$pid" --progress off 2>&1)
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	rm -rf "$dir" "$dir.log"
	local ev cpu p99
	ev=$(grep -o '[0-9.]*[KM] events/s' <<<"$out" | head -n 1 | awk '{v=$1; m=1; if (v ~ /M$/) m=1e6; else if (v ~ /K$/) m=1e3; sub(/[KM]$/, "", v); print v*m}')
	cpu=$(grep -o 'server [0-9.]* µs' <<<"$out" | head -n 1 | awk '{print $2}')
	p99=$(grep -o 'p99 [0-9.]*[mµ]*s' <<<"$out" | head -n 1 | awk '{print $2}')
	echo "$ev $cpu $p99"
}
declare -A ev cpu last_ev last_cpu
rev= rcpu= # per pair of runs: on ÷ off
for i in $(seq 1 "$RUNS"); do
	if ((i % 2)); then order="true false"; else order="false true"; fi
	for r in $order; do
		read -r e c q <<<"$(run "$r")"
		ev[$r]+="$e " cpu[$r]+="$c " last_ev[$r]=$e last_cpu[$r]=$c
		printf 'run %d recycle=%-5s %10.0f events/s %6.1f µs server CPU per request  p99 %s\n' "$i" "$r" "$e" "$c" "$q"
	done
	rev+="$(awk -v a="${last_ev[true]}" -v b="${last_ev[false]}" 'BEGIN {print a / b}') "
	rcpu+="$(awk -v a="${last_cpu[true]}" -v b="${last_cpu[false]}" 'BEGIN {print a / b}') "
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
awk -v n="$RUNS" -v d="$DUR" -v on="$(median "${ev[true]}")" -v off="$(median "${ev[false]}")" \
	-v con="$(median "${cpu[true]}")" -v coff="$(median "${cpu[false]}")" 'BEGIN {
	printf "\n| bulk 100 × 82 B, 16 conns, cold tier on (medians of %d runs of %d s) | events/s | server CPU per request |\n|---|--:|--:|\n", n, d
	printf "| ZOMBI_SEGMENT_RECYCLE=false | %.2fM | %.1f µs |\n", off / 1e6, coff
	printf "| ZOMBI_SEGMENT_RECYCLE=true (default) | %.2fM | %.1f µs |\n", on / 1e6, con
	printf "| true ÷ false (of the medians) | %.0f %% | %.0f %% |\n", 100 * on / off, 100 * con / coff
}'
# The load of a shared machine drifts from run to run; the two runs of a
# pair are next to each other, so the median of the pairs' ratios is the
# steadier figure.
awk -v r="$(median "$rev")" -v c="$(median "$rcpu")" \
	'BEGIN { printf "| true ÷ false (median of the %s pairs'"'"' ratios) | %.0f %% | %.0f %% |\n", "'"$RUNS"'", 100 * r, 100 * c }'
