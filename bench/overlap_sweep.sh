#!/usr/bin/env bash
# How wide must the overlap be?  Renders one row of three 512-pixel tiles with each
# overlap O (the output is 3 x 512 - 2 x O wide, so the planner keeps exactly O), and
# the same picture in a single pass, then measures the seams of both with build/seams.
#
#   bench/overlap_sweep.sh CONTENT STYLE [OVERLAPS...]     (default: 32 64 128 192)
#   ITERS=30 (per level) THREADS=2 OUT=sweep.out
#
# Prints one line per overlap: the tiled render's ratios (edges, overlap middles) and
# the single pass's ratios at the same positions.  A ratio is the mean |step| between
# neighbouring pixels across those lines over the same mean elsewhere; the tiled
# ratio approaching the single-pass one means the borders do not show.
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/overlap_sweep.sh CONTENT STYLE [OVERLAPS...]" >&2; exit 2; }
content=$1 style=$2
shift 2
overlaps=("$@")
[ ${#overlaps[@]} -gt 0 ] || overlaps=(32 64 128 192)
iters=${ITERS:-30}
threads=${THREADS:-2}
out=${OUT:-sweep.out}
tile=512
mkdir -p "$out"
make -s tessera build/seams >/dev/null
printf '%-8s %-6s %10s %10s %12s %12s %8s\n' overlap width tiled_edge tiled_mid single_edge \
	single_mid tiled_s
for o in "${overlaps[@]}"; do
	w=$((3 * tile - 2 * o)) h=$tile
	common=(--content "$content" --style "$style" --width "$w" --height "$h"
		--threads "$threads" --progress off)
	t0=$(date +%s.%N)
	./tessera "${common[@]}" --tile $tile --overlap "$o" \
		--level-iterations "$iters,$iters,$iters" --out "$out/tiled_$o.png" \
		--job-dir "$out/tiled_$o.job" --fresh
	t1=$(date +%s.%N)
	# a single tile as large as the picture: no pyramid, no tiles
	./tessera "${common[@]}" --tile $(((w + 15) / 16 * 16)) --overlap 0 \
		--iterations "$iters" --out "$out/single_$o.png" --job-dir "$out/single_$o.job" --fresh
	read -r te tm < <(build/seams "$out/tiled_$o.png" $tile "$o" |
		sed -E 's/.*ratios ([0-9.]+) and ([0-9.]+).*/\1 \2/')
	# the same positions on the single pass (same size, so the same grid)
	read -r se sm < <(build/seams "$out/single_$o.png" $tile "$o" |
		sed -E 's/.*ratios ([0-9.]+) and ([0-9.]+).*/\1 \2/')
	printf '%-8s %-6s %10s %10s %12s %12s %8.0f\n' "$o" "$w" "$te" "$tm" "$se" "$sm" \
		"$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')"
done
