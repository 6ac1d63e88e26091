#!/usr/bin/env bash
# The flush side by side: `make bench-flush` (README, Performance).
#
# Runs flush.BenchmarkFlush, one partition: 1M sealed 82-byte JSON events
# → Parquet → Iceberg commit, to the local warehouse for the event schema
# (raw) and with the events' four fields extracted into typed columns
# (typed4), and to MinIO (raw; skipped when no minio binary is found),
# RUNS times each, alternating which goes first; and
# flush.BenchmarkZstdFloor, the flusher's ZSTD codec alone on the payload
# column: no flush can beat it per core. Prints events/s of every run,
# events per CPU-second of the process (all its threads: the flush per
# core, whoever shares the machine) and Parquet bytes per event, then the
# medians.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
GO=${GO:-go}
bin=$(mktemp -d)/flush.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
$GO test -c -o "$bin" ./flush
metric() { grep -o "[0-9.]* $1" <<<"$2" | head -n 1 | cut -d' ' -f1; }
run() { # $1: local/raw, local/typed4 or minio/raw; prints events/s, events per CPU-second, B/event
	out=$(cd flush && "$bin" -test.run '^$' -test.bench "^BenchmarkFlush/$1/partitions=1\$" -test.benchtime 3x 2>/dev/null) || true
	echo "$(metric events/s "$out") $(metric events/cpu-s "$out") $(metric parquet-B/event "$out")"
}
floor() {
	out=$(cd flush && "$bin" -test.run '^$' -test.bench '^BenchmarkZstdFloor$' -test.benchtime 2s 2>/dev/null)
	echo "$(metric events/s "$out") $(metric B/event "$out")"
}
kinds=(local/raw local/typed4)
if [ -n "${ZOMBI_TEST_MINIO:-}" ] || [ -x "${XDG_CACHE_HOME:-$HOME/.cache}/zombi-bin/minio" ]; then
	kinds+=(minio/raw)
fi
declare -A rate cpu size
for i in $(seq 1 "$RUNS"); do
	order=("${kinds[@]}")
	if ((i % 2 == 0)); then order=($(printf '%s\n' "${kinds[@]}" | tac)); fi
	for k in "${order[@]}"; do
		read -r v c s <<<"$(run "$k")"
		if [ -z "$v" ]; then
			echo "run $i $k: no result (see: cd flush && go test -run '^\$' -bench 'BenchmarkFlush/$k/partitions=1')" >&2
			exit 1
		fi
		rate[$k]+="$v " cpu[$k]+="$c " size[$k]+="$s "
		printf 'run %d %-13s %12.0f events/s %12.0f events per CPU-second %6.2f B/event\n' "$i" "$k" "$v" "$c" "$s"
	done
	read -r fv fs <<<"$(floor)"
	rate[floor]+="$fv " size[floor]+="$fs "
	printf 'run %d %-13s %12.0f events/s on one core %6.2f B/event\n' "$i" "zstd floor" "$fv" "$fs"
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '\n| flush, 1 partition, 82 B events (medians of %d runs) | events/s | events per CPU-second | Parquet B/event | goal per core |\n|---|--:|--:|--:|---|\n' "$RUNS"
for k in "${kinds[@]}"; do
	goal="—"
	case $k in local/raw) goal="≥ 8M" ;; minio/raw) goal="≥ 4M" ;; esac
	awk -v k="$k" -v r="$(median "${rate[$k]}")" -v c="$(median "${cpu[$k]}")" -v s="$(median "${size[$k]}")" -v g="$goal" \
		'BEGIN { printf "| %s | %.2fM | %.2fM | %.2f | %s |\n", k, r / 1e6, c / 1e6, s, g }'
done
awk -v r="$(median "${rate[floor]}")" -v s="$(median "${size[floor]}")" \
	'BEGIN { printf "| ZSTD alone on the payload column (flush.BenchmarkZstdFloor) | | %.2fM | %.2f | the floor |\n", r / 1e6, s }'
