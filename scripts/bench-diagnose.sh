#!/usr/bin/env bash
# Benchmarks the offline diagnosis against `zcat | grep -c kms.amazonaws.com`
# on the same generated CloudTrail files (AMIGATE_BENCH_MB uncompressed
# megabytes, default 1024), with farm-bench: medians of wall time, the
# ratio, and amigate's peak memory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mb=${AMIGATE_BENCH_MB:-1024}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/amigate" "$root/cmd/amigate"
(cd "$root" && go run ./internal/trail/trailtest/trailgen -dir "$work/logs" -mb "$mb")
find "$work/logs" -name '*.json.gz' | sort >"$work/files"
du -sh "$work/logs"
# diagnose exits 1 when it finds denials (it does here): wrap it so that
# the expected exit is not counted as a failure.
farm-bench -n 5 --timeout 1800 --vs "sh -c 'xargs zcat <$work/files | grep -c kms.amazonaws.com'" -- \
  sh -c "$work/amigate diagnose --cloudtrail $work/logs >/dev/null; test \$? -eq 1"
