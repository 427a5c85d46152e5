#!/usr/bin/env bash
# Picture quality of issue 17, before and after, side by side in one run.
#   bench/quality.sh [LABEL=BINARY[,OPTION,...]]...
# Each argument is one column: a tessera binary and options added to each of its
# renders (e.g. before=/tmp/old/tessera after=build/tessera
# 'chroma=build/tessera,--tv-chroma-weight,1').  Default: after=./tessera.
# For each pair of sample pictures (IMAGES, default /work/shared/data/images) a
# single-piece render at SIZE px (384) with the defaults and ITER iterations (60),
# and a tiled one (--tile 256 --overlap 64, TILED_ITER iterations a level, 20) for
# the 2-px column figure (TILED=0: none; the figure is then the single piece's over the
# content's); bench/quality.py prints the figures.  SEEDS (e.g. "0 1 2"): each render
# once per --builtin-seed, and the table prints the mean over them with the spread
# (a side's frame moves 10-25 levels from one network to the next, so one render's
# frame is no measure of a fix).  OUT (a temporary folder) keeps the renders.  About
# a minute a pair, column and seed on 2 cores.
set -eu
cd "$(dirname "$0")/.."
images=${IMAGES:-/work/shared/data/images}
size=${SIZE:-384}
iter=${ITER:-60}
titer=${TILED_ITER:-20}
out=${OUT:-$(mktemp -d /tmp/tessera-quality.XXXXXX)}
py=/usr/bin/python3
pairs=(${PAIRS:-tubingen:starry_night golden_gate:the_scream seated-nude:woman-with-hat-matisse})
cols=("$@")
[ ${#cols[@]} -gt 0 ] || cols=(after=./tessera)
mkdir -p "$out"
: >"$out/figures.jsonl"
for p in "${pairs[@]}"; do
	c=$(ls "$images/${p%%:*}".* | head -n 1)
	s=$(ls "$images/${p##*:}".* | head -n 1)
	for col in "${cols[@]}"; do
	for seed in ${SEEDS:--}; do
		label=${col%%=*}
		IFS=, read -r -a spec <<<"${col#*=}"
		bin=${spec[0]}
		extra=("${spec[@]:1}")
		base="$out/${p/:/_}.$label"
		if [ "$seed" != - ]; then
			extra+=(--builtin-seed "$seed")
			base="$base.seed$seed"
		fi
		"$bin" --content "$c" --style "$s" --size "$size" --iterations "$iter" \
			--quiet --report "$base.json" --out "$base.png" ${extra[@]+"${extra[@]}"}
		tiled=
		if [ "${TILED:-1}" != 0 ]; then
			"$bin" --content "$c" --style "$s" --size "$size" --iterations "$titer" \
				--tile 256 --overlap 64 --quiet --fresh --job-dir "$base.job" \
				--out "$base.tiled.png" ${extra[@]+"${extra[@]}"}
			rm -rf "$base.job"
			tiled="$base.tiled.png"
		fi
		SEED=$seed "$py" bench/quality.py measure "$label" "$p" "$c" "$s" "$base.png" \
			"$base.json" $tiled >>"$out/figures.jsonl"
	done
	done
done
"$py" bench/quality.py table "$out/figures.jsonl"
echo "renders and figures in $out"
