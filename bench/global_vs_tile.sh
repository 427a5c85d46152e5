#!/usr/bin/env bash
# global_vs_tile: --gram tile against --gram global on the same job: wall time per
# level (from the progress lines), peak RSS, and build/seams at the tile grid.
#   bench/global_vs_tile.sh CONTENT STYLE WIDTH HEIGHT ITERS [NP] [OUTDIR]
# e.g. bench/global_vs_tile.sh tubingen.jpg starry_night.jpg 1536 1024 20,10,8 1
set -eu
content=$1 style=$2 w=$3 h=$4 iters=$5 np=${6:-1} out=${7:-/tmp/tessera-gvt}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${TESSERA:-$here/tessera}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for mode in tile global; do
	rm -rf "$out/$mode.job"
	launch=""
	[ "$np" -gt 1 ] && launch="mpirun -np $np --oversubscribe"
	/usr/bin/time -f "$mode: %e s wall, peak RSS %M KiB (one rank)" $launch "$bin" \
		--content "$content" --style "$style" --width "$w" --height "$h" \
		--tile 512 --overlap 128 --level-iterations "$iters" --gram $mode \
		--threads $((2 / np > 0 ? 2 / np : 1)) --progress on \
		--out "$out/$mode.png" --job-dir "$out/$mode.job" 2>&1 |
		grep -E "^(level [0-9]+: [0-9]+ (tiles|blocks)|$mode:)" || true
	"${SEAMS:-$here/build/seams}" "$out/$mode.png" 512 128 2 | sed "s/^/  $mode seams: /"
done
cmp -s "$out/tile.png" "$out/global.png" && echo "the two outputs are equal (unexpected)"
exit 0
