#!/usr/bin/env bash
# How wide must the overlap be?  Renders one row of three 512-pixel tiles with each
# overlap O (the output is 3 x 512 - 2 x O wide, so the planner keeps exactly O), and
# the same picture in a single pass, then measures the seams of both with build/seams.
#
#   bench/overlap_sweep.sh CONTENT STYLE [OVERLAPS...]     (default: 32 64 128 192)
#   ITERS=30 (per level) THREADS=2 OUT=sweep.out
#
# Prints one line per overlap:
#   disagreement  mean |a - b| of neighbouring tiles over their overlaps (read from the
#                 tile files), in units of the picture's mean neighbour step;
#   softening     the tiled render's ratio at the overlap middles over the single
#                 pass's at the same lines (1: no softening);
#   edges         the same for the tile edges (1: the edges do not stand out).
# A ratio is the mean |step| between neighbouring pixels across those lines over the
# same mean elsewhere (see bench/seams.c).
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
printf '%-8s %-6s %13s %10s %8s %9s\n' overlap width disagreement softening edges tiled_s
ratios() { sed -nE 's/.*ratios ([0-9.]+) and ([0-9.]+).*/\1 \2/p'; }
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
	build/seams "$out/tiled_$o.png" $tile "$o" 2 "$out/tiled_$o.job" >"$out/seams_$o.txt"
	read -r te tm < <(ratios <"$out/seams_$o.txt")
	dis=$(sed -nE 's/.*: ([0-9.]+) steps/\1/p' "$out/seams_$o.txt")
	# the same positions on the single pass (same size, so the same grid)
	read -r se sm < <(build/seams "$out/single_$o.png" $tile "$o" | ratios)
	awk -v o="$o" -v w="$w" -v d="$dis" -v te="$te" -v tm="$tm" -v se="$se" -v sm="$sm" \
		-v a="$t0" -v b="$t1" \
		'BEGIN { printf "%-8s %-6s %13.3f %10.3f %8.3f %9.0f\n", o, w, d, tm / sm, te / se, b - a }'
done
