#!/usr/bin/env bash
# Does the cold tier keep up? `make bench-cold` (README, Performance).
#
# Runs `zombi serve` on 127.0.0.1 with its cold tier flushing to the local
# warehouse (STORE=local) or to a MinIO started here (STORE=minio, the
# binary from $ZOMBI_TEST_MINIO or ~/.cache/zombi-bin/minio, as .ci/run
# builds it), sends bulk load at a fixed rate (RATE requests/s of 100 × 82 B
# fresh random events, for DUR seconds), and samples the unflushed backlog
# (zombi_unflushed_events) and the server's RssAnon every 10 s. It prints
# the samples and a verdict: the backlog is bounded when its peak over the
# last third of the run is at most 1.5 × its peak over the first third,
# and it drains to 0 within 60 s after the load. Exit status 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-local}
RATE=${RATE:-2000}
DUR=${DUR:-180}
BIN=${BIN:-bin/zombi}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d "${TMPDIR:-/tmp}/zombi-cold.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

env=()
if [ "$STORE" = minio ]; then
	minio=${ZOMBI_TEST_MINIO:-$HOME/.cache/zombi-bin/minio}
	[ -x "$minio" ] || { echo "no MinIO binary at $minio (set ZOMBI_TEST_MINIO)" >&2; exit 2; }
	mport=$(port)
	MINIO_ROOT_USER=zombibench MINIO_ROOT_PASSWORD=zombibench-secret MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
		"$minio" server --quiet --address "127.0.0.1:$mport" --console-address "127.0.0.1:$(port)" "$work/minio" >"$work/minio.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do curl -fs "http://127.0.0.1:$mport/minio/health/ready" >/dev/null && break; sleep 0.2; done
	curl -fsS -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user zombibench:zombibench-secret "http://127.0.0.1:$mport/zombi" >/dev/null
	env=(ZOMBI_S3_BUCKET=zombi ZOMBI_S3_ENDPOINT="http://127.0.0.1:$mport"
		AWS_ACCESS_KEY_ID=zombibench AWS_SECRET_ACCESS_KEY=zombibench-secret)
fi

zport=$(port)
env "${env[@]}" "$BIN" serve --host 127.0.0.1 --port "$zport" --data-dir "$work/data" >"$work/serve.log" 2>&1 &
zpid=$!
pids+=($zpid)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$zport/health/live" >/dev/null && break; sleep 0.1; done

backlog() { curl -fs "http://127.0.0.1:$zport/metrics" | awk '/^zombi_unflushed_events/ {s += $2} END {print s + 0}'; }
rss() { awk '/^RssAnon/ {print int($2 / 1024)}' "/proc/$zpid/status"; }

echo "cold tier: $STORE, bulk 100 × 82 B at $RATE req/s for ${DUR}s"
"$BIN" load --target "127.0.0.1:$zport" --scenario bulk --batch 100 --rate "$RATE" --duration "${DUR}s" \
	--conns 16 --fresh-payloads --progress off >"$work/load.txt" 2>&1 &
lpid=$!
pids+=($lpid)
samples=()
t=0
printf '%6s %12s %10s\n' "t (s)" "backlog" "RssAnon MiB"
while kill -0 "$lpid" 2>/dev/null; do
	sleep 10
	t=$((t + 10))
	b=$(backlog)
	[ "$t" -le "$DUR" ] && samples+=("$b")
	printf '%6d %12d %10d\n' "$t" "$b" "$(rss)"
done
wait "$lpid" || { cat "$work/load.txt"; exit 1; }
drained=no
for _ in $(seq 6); do
	sleep 10
	t=$((t + 10))
	b=$(backlog)
	printf '%6d %12d %10d\n' "$t" "$b" "$(rss)"
	[ "$b" -eq 0 ] && { drained=yes; break; }
done
grep -v '^$' "$work/load.txt" | tail -n 4
n=${#samples[@]}
third=$((n / 3 > 0 ? n / 3 : 1))
first=0 last=0
for ((i = 0; i < third; i++)); do ((samples[i] > first)) && first=${samples[i]}; done
for ((i = n - third; i < n; i++)); do ((samples[i] > last)) && last=${samples[i]}; done
echo "backlog peak: first third $first, last third $last; drained after the load: $drained"
if [ "$drained" = yes ] && [ "$((2 * last))" -le "$((3 * first))" ]; then
	echo "verdict: the cold tier keeps up"
else
	echo "verdict: the cold tier falls behind"
	exit 1
fi
