#!/usr/bin/env bash
# The flush side by side: `make bench-flush` (README, Performance).
#
# Runs flush.BenchmarkFlush for the local warehouse, one partition: 1M
# sealed 82-byte JSON events → Parquet → Iceberg commit, for the event
# schema (raw) and with the events' four fields extracted into typed
# columns (typed4), RUNS times each, alternating which goes first. Prints
# events/s of every run, the medians and typed4 ÷ raw.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
GO=${GO:-go}
bin=$(mktemp -d)/flush.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
$GO test -c -o "$bin" ./flush
run() { # $1: raw or typed4
	(cd flush && "$bin" -test.run '^$' -test.bench "^BenchmarkFlush/local/$1/partitions=1\$" -test.benchtime 3x 2>/dev/null) |
		grep -o '[0-9.]* events/s' | cut -d' ' -f1
}
raw=() typed=()
for i in $(seq 1 "$RUNS"); do
	if ((i % 2)); then order="raw typed4"; else order="typed4 raw"; fi
	for s in $order; do
		v=$(run "$s")
		if [ "$s" = raw ]; then raw+=("$v"); else typed+=("$v"); fi
		printf 'run %d %-6s %12.0f events/s\n' "$i" "$s" "$v"
	done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mr=$(median "${raw[@]}")
mt=$(median "${typed[@]}")
awk -v r="$mr" -v t="$mt" -v n="$RUNS" 'BEGIN {
	printf "\n| flush, local warehouse, 1 partition | median events/s (%d runs) |\n|---|--:|\n", n
	printf "| raw (payload column) | %.2fM |\n| typed4 (4 typed columns extracted) | %.2fM |\n", r / 1e6, t / 1e6
	printf "| typed4 ÷ raw | %.0f %% |\n", 100 * t / r
}'
