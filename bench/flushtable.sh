#!/usr/bin/env bash
# The flush side by side: `make bench-flush` (README, Performance).
#
# Runs flush.BenchmarkFlush for the local warehouse, one partition: 1M
# sealed 82-byte JSON events → Parquet → Iceberg commit, for the event
# schema (raw) and with the events' four fields extracted into typed
# columns (typed4), RUNS times each, alternating which goes first. Prints
# events/s of every run and events per CPU-second of the process (all its
# threads: the flush per core, whoever shares the machine), the medians
# and typed4 ÷ raw.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
GO=${GO:-go}
bin=$(mktemp -d)/flush.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
$GO test -c -o "$bin" ./flush
run() { # $1: raw or typed4; prints events/s and events per CPU-second
	out=$(cd flush && "$bin" -test.run '^$' -test.bench "^BenchmarkFlush/local/$1/partitions=1\$" -test.benchtime 3x 2>/dev/null)
	echo "$(grep -o '[0-9.]* events/s' <<<"$out" | cut -d' ' -f1) $(grep -o '[0-9.]* events/cpu-s' <<<"$out" | cut -d' ' -f1)"
}
raw=() typed=() rawc=() typedc=()
for i in $(seq 1 "$RUNS"); do
	if ((i % 2)); then order="raw typed4"; else order="typed4 raw"; fi
	for s in $order; do
		read -r v c <<<"$(run "$s")"
		if [ "$s" = raw ]; then raw+=("$v") rawc+=("$c"); else typed+=("$v") typedc+=("$c"); fi
		printf 'run %d %-6s %12.0f events/s %12.0f events per CPU-second\n' "$i" "$s" "$v" "$c"
	done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mr=$(median "${raw[@]}") mt=$(median "${typed[@]}")
mrc=$(median "${rawc[@]}") mtc=$(median "${typedc[@]}")
awk -v r="$mr" -v t="$mt" -v rc="$mrc" -v tc="$mtc" -v n="$RUNS" 'BEGIN {
	printf "\n| flush, local warehouse, 1 partition (medians of %d runs) | events/s | events per CPU-second |\n|---|--:|--:|\n", n
	printf "| raw (payload column) | %.2fM | %.2fM |\n", r / 1e6, rc / 1e6
	printf "| typed4 (4 typed columns extracted) | %.2fM | %.2fM |\n", t / 1e6, tc / 1e6
	printf "| typed4 ÷ raw | %.0f %% | %.0f %% |\n", 100 * t / r, 100 * tc / rc
}'
