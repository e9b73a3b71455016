#!/usr/bin/env bash
# Times the offline diagnosis against `zcat FILES | grep -c kms.amazonaws.com`
# on the same generated CloudTrail files: AMIGATE_BENCH_MB uncompressed
# megabytes (default 1024) of .json.gz in CloudTrail's S3 layout, mostly
# S3/EC2/STS events, some KMS calls, one Auto Scaling denial in 1000
# records. Each command runs AMIGATE_BENCH_RUNS times (default 3), in
# turn, after one warm-up; prints the median wall times, amigate's speed
# relative to zcat | grep, and amigate's peak resident memory, against the
# goals (at least 0.5x, at most 100 MB). Needs /usr/bin/time (GNU time).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mb=${AMIGATE_BENCH_MB:-1024}
runs=${AMIGATE_BENCH_RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/amigate" "$root/cmd/amigate"
(cd "$root" && go run ./internal/trail/trailtest/trailgen -dir "$work/logs" -mb "$mb")
find "$work/logs" -name '*.json.gz' | sort >"$work/files"
echo "$(wc -l <"$work/files") files, $(du -sh "$work/logs" | cut -f1) compressed, ${mb} MB uncompressed; $(nproc) CPUs"

# timed NAME WANT CMD...: one run that must exit WANT; appends
# "wall_seconds max_rss_kb" to $work/NAME.
timed() {
	local name=$1 want=$2
	shift 2
	/usr/bin/time -f '%e %M %x' -o "$work/$name.one" "$@" >/dev/null || true
	# GNU time puts "Command exited with non-zero status N" first
	read -r wall rss code < <(tail -n 1 "$work/$name.one")
	if [ "$code" != "$want" ]; then
		echo "$* exited $code, want $want" >&2
		exit 1
	fi
	echo "$wall $rss" >>"$work/$name"
}
# diagnose exits 1: it finds the generated denials.
a=("$work/amigate" diagnose --cloudtrail "$work/logs")
b=(sh -c "xargs zcat <'$work/files' | grep -c kms.amazonaws.com")

: >"$work/a"
: >"$work/b"
timed warmup 1 "${a[@]}" # also warms the page cache
timed warmup 0 "${b[@]}"
for _ in $(seq "$runs"); do
	timed a 1 "${a[@]}"
	timed b 0 "${b[@]}"
done

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
a_wall=$(cut -d' ' -f1 "$work/a" | median)
b_wall=$(cut -d' ' -f1 "$work/b" | median)
a_rss=$(cut -d' ' -f2 "$work/a" | sort -n | tail -1)
awk -v a="$a_wall" -v b="$b_wall" -v rss="$a_rss" -v mb="$mb" -v runs="$runs" 'BEGIN {
	speed = (a > 0) ? b / a : 0
	printf "amigate diagnose:  %.2f s median of %d (%.0f MB/s), peak RSS %.1f MiB\n", a, runs, (a > 0) ? mb / a : 0, rss / 1024
	printf "zcat | grep -c:    %.2f s median of %d (%.0f MB/s)\n", b, runs, (b > 0) ? mb / b : 0
	printf "speed ratio:       %.2fx zcat | grep (goal >= 0.5x): %s\n", speed, (speed >= 0.5) ? "met" : "NOT met"
	printf "peak memory:       %.1f MiB (goal <= 100 MB): %s\n", rss / 1024, (rss / 1024 <= 100) ? "met" : "NOT met"
}'
