#!/usr/bin/env bash
# Gigapixel practice at small sizes (issue 16): a 4000x3000 tiled content TIFF rendered
# small stays within --plan's memory (peak RSS measured here, +20%); the content
# pyramid is reused on a resume and a changed content file is refused; the output
# TIFF carries resolution tags, an ICC profile and reduced-resolution SubIFDs that
# outside readers (tiffinfo, tiffdump, vipsheader) open; --fit crop|pad|stretch give
# the requested size with the right picture; --deep-zoom from a tiled run.
set -u
T=$(readlink -f "${TESSERA:-./tessera}")
MK=$(readlink -f "${MKDEMO:-build/mkdemo}")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }
for tool in vips vipsheader tiffinfo tiffdump; do
	command -v $tool >/dev/null || { echo "skip: $tool is not installed (tools/deps.sh installs it)"; exit 0; }
done
"$MK" "$d/photo.png" "$d/paint.png" || exit 1
# a 4000x3000 content: the demo photo enlarged, tiled and compressed
w0=$(vipsheader -f width "$d/photo.png") h0=$(vipsheader -f height "$d/photo.png")
vips resize "$d/photo.png" "$d/content.tif[tile,tile-width=256,tile-height=256,compression=deflate]" \
	"$(awk -v w="$w0" 'BEGIN { printf "%.9f", 4000 / w }')" \
	--vscale "$(awk -v h="$h0" 'BEGIN { printf "%.9f", 3000 / h }')" || exit 1
[ "$(vipsheader -f width "$d/content.tif")x$(vipsheader -f height "$d/content.tif")" = 4000x3000 ] ||
	fail "content size"

common=(--style "$d/paint.png" --builtin-width 8 --threads 1 --progress off)
# 1. peak RSS of a small render of the big content against the plan
args=(--content "$d/content.tif" "${common[@]}" --width 192 --tile 128 --overlap 32 --level-iterations 2)
"$T" "${args[@]}" --out "$d/small.tif" --plan >"$d/plan.txt" 2>&1 || { fail "plan"; cat "$d/plan.txt"; }
mib() { # the largest "NAME peak N MiB|GiB" figure of the plan, in KiB
	grep -Eo "$1 peak [0-9.]+ (MiB|GiB)" "$d/plan.txt" |
		awk '{ v = $3 * ($4 == "GiB" ? 1048576 : 1024); if (v > m) m = v } END { print int(m) }'
}
rank=$(mib "rank") asm=$(mib "assembly") pyr=$(grep -Eo "start \(peak [0-9.]+ (MiB|GiB)" "$d/plan.txt" |
	awk '{ v = $3; sub(/\(/, "", v); print int(substr($3,1) * ($4 == "GiB" ? 1048576 : 1024)) }')
planned=$(printf '%s\n' "$rank" "$asm" "$pyr" | sort -n | tail -1)
/usr/bin/time -v -o "$d/time.txt" "$T" "${args[@]}" --out "$d/small.tif" --job-dir "$d/small.job" \
	>"$d/small.log" 2>&1 || { fail "small render"; cat "$d/small.log"; }
rss=$(awk -F: '/Maximum resident/ { gsub(/ /, "", $2); print $2 }' "$d/time.txt")
# the process itself (MPI, OpenBLAS, the program: measured on a 64x64 run) is not in
# the plan's figures
"$MK" "$d/tiny.png" "$d/tinys.png" >/dev/null 2>&1
/usr/bin/time -v -o "$d/time0.txt" "$T" --content "$d/photo.png" "${common[@]}" --width 64 \
	--iterations 0 --out "$d/tiny.png" >/dev/null 2>&1
base=$(awk -F: '/Maximum resident/ { gsub(/ /, "", $2); print $2 }' "$d/time0.txt")
limit=$(( (planned * 12 / 10) + base ))
echo "peak RSS ${rss} KiB; plan ${planned} KiB (+20%) + process ${base} KiB = ${limit} KiB"
[ -n "$rss" ] && [ "$rss" -le "$limit" ] && echo "ok   peak RSS within the plan" ||
	fail "peak RSS $rss KiB over $limit KiB"
# the old path read the whole 4000x3000 content (12 bytes a pixel: 137 MiB) for it
[ -n "$rss" ] && [ "$rss" -lt $((base + 100 * 1024)) ] && echo "ok   the content is never read whole" ||
	fail "RSS $rss KiB suggests a whole read"

# 2. the pyramid: levels halve, each close to the one above shrunk; a resume reuses it
j="$d/small.job/content"
[ -f "$j/pyramid.ini" ] && [ -f "$j/P0.tif" ] && [ -f "$j/P1.tif" ] || fail "pyramid files"
to8() { vips cast "$1" "$2" uchar --shift; } # 8-bit copy (16-bit shifted down, 8-bit kept)
for k in 1 2; do
	[ -f "$j/P$k.tif" ] || continue
	pw=$(vipsheader -f width "$j/P$((k-1)).tif") ph=$(vipsheader -f height "$j/P$((k-1)).tif")
	kw=$(vipsheader -f width "$j/P$k.tif") kh=$(vipsheader -f height "$j/P$k.tif")
	[ "$kw" -eq $(((pw + 1) / 2)) ] && [ "$kh" -eq $(((ph + 1) / 2)) ] || fail "P$k size ${kw}x$kh"
	# vips' own shrink of the level above, compared in 8 bits: mean difference small
	vips resize "$j/P$((k-1)).tif" "$d/ref$k.v" "$(awk -v a="$kw" -v b="$pw" 'BEGIN { printf "%.9f", a / b }')" \
		--vscale "$(awk -v a="$kh" -v b="$ph" 'BEGIN { printf "%.9f", a / b }')" 2>/dev/null
	to8 "$j/P$k.tif" "$d/lv$k.v"
	to8 "$d/ref$k.v" "$d/ref8$k.v"
	diff=$(vips subtract "$d/lv$k.v" "$d/ref8$k.v" "$d/df$k.v" && vips abs "$d/df$k.v" "$d/ad$k.v" && vips avg "$d/ad$k.v")
	awk -v x="$diff" 'BEGIN { exit !(x < 2.0) }' && echo "ok   P$k is the level above shrunk (mean |diff| $diff of 255 against vips)" ||
		fail "P$k differs from vips' shrink by $diff"
done
before=$(stat -c %Y "$j/P0.tif")
sleep 1
"$T" "${args[@]}" --out "$d/small.tif" --job-dir "$d/small.job" >"$d/again.log" 2>&1 || fail "resume"
[ "$(stat -c %Y "$j/P0.tif")" = "$before" ] && echo "ok   a resume reuses the pyramid" || fail "pyramid remade"
vips invert "$d/content.tif" "$d/neg.tif[tile,tile-width=256,tile-height=256]" && mv "$d/neg.tif" "$d/content.tif"
"$T" "${args[@]}" --out "$d/small.tif" --job-dir "$d/small.job" >"$d/changed.log" 2>&1 &&
	fail "a changed content was accepted"
grep -q "content_crc was" "$d/changed.log" && echo "ok   a changed content file is refused" ||
	{ fail "changed content message"; cat "$d/changed.log"; }

# 3. print-ready: resolution, ICC profile, SubIFDs, opened by outside readers
"$T" --content "$d/photo.png" "${common[@]}" --print-size 2x1.5in --dpi 300 --tile 256 --overlap 64 \
	--level-iterations 1 --out "$d/print.tif" --job-dir "$d/print.job" --deep-zoom "$d/dz" --save-every 1 \
	>"$d/print.log" 2>&1 || { fail "print render"; cat "$d/print.log"; }
info=$(tiffinfo "$d/print.tif" 2>&1)
grep -q "Resolution: 300, 300 pixels/inch" <<<"$info" && echo "ok   resolution tags" || fail "resolution: $info"
grep -q "ICC Profile: <present>" <<<"$info" && echo "ok   ICC profile" || fail "no ICC profile"
tiffdump "$d/print.tif" | grep -q "SubIFD (330)" && echo "ok   SubIFDs (tiffdump)" || fail "no SubIFD tag"
[ "$(vipsheader -f width "$d/print.tif")" = 600 ] || fail "print width"
sw=$(vips copy "$d/print.tif[subifd=0]" "$d/sub0.png" && vipsheader -f width "$d/sub0.png")
sw1=$(vips copy "$d/print.tif[subifd=1]" "$d/sub1.png" && vipsheader -f width "$d/sub1.png")
[ "$sw" = 300 ] && [ "$sw1" = 150 ] && echo "ok   vips opens the reduced levels (300, 150 wide)" ||
	fail "reduced levels: '$sw' '$sw1'"
# --save-every in a tiled run: the assembled levels below the output, as frames
nl=$(ls "$d"/print_level*.tif 2>/dev/null | wc -l)
[ "$nl" -ge 1 ] && [ ! -e "$d/print_level$nl.tif" ] && vipsheader "$d/print_level0.tif" >/dev/null &&
	echo "ok   --save-every: $nl level frames" || fail "level frames: $nl"
# 4. Deep Zoom from the tiled run: levels 0..ceil(log2(600)) = 10, the top 3x2 tiles
[ -f "$d/dz/print.dzi" ] && grep -q 'Width="600"' "$d/dz/print.dzi" && echo "ok   Deep Zoom .dzi" || fail "dzi"
[ "$(ls "$d/dz/print_files" | wc -l)" = 11 ] && [ "$(ls "$d/dz/print_files/10" | wc -l)" = 6 ] &&
	echo "ok   Deep Zoom levels and tiles" || fail "dzi levels: $(ls "$d/dz/print_files" | wc -l)"

# 5. --fit on a horizontal ramp (left black, right white) of 400x300, 0 iterations:
# the output is the canvas resampled, so its columns tell what was kept
vips xyz "$d/xy.v" 400 300 && vips extract_band "$d/xy.v" "$d/x.v" 0 &&
	vips linear "$d/x.v" "$d/xs.v" 0.6390977 0 && vips cast "$d/xs.v" "$d/xc.v" uchar &&
	vips bandjoin "$d/xc.v $d/xc.v $d/xc.v" "$d/ramp.png" || fail "ramp"
px() { vips getpoint "$1" "$2" "$3" 2>/dev/null | awk '{ printf "%d", $1 + 0.5 }'; }
for mode in crop pad stretch; do
	"$T" --content "$d/ramp.png" "${common[@]}" --width 200 --height 200 --fit $mode --iterations 0 \
		--out "$d/fit-$mode.png" >"$d/fit-$mode.log" 2>&1 || { fail "fit $mode"; cat "$d/fit-$mode.log"; continue; }
	[ "$(vipsheader -f width "$d/fit-$mode.png")x$(vipsheader -f height "$d/fit-$mode.png")" = 200x200 ] ||
		fail "fit $mode size"
done
l=$(px "$d/fit-crop.png" 0 100) r=$(px "$d/fit-crop.png" 199 100)
[ "$l" -ge 25 ] && [ "$l" -le 40 ] && [ "$r" -ge 215 ] && [ "$r" -le 230 ] &&
	echo "ok   --fit crop keeps the middle (edges $l, $r: 32, 223 expected)" || fail "crop edges $l $r"
l=$(px "$d/fit-stretch.png" 0 100) r=$(px "$d/fit-stretch.png" 199 100)
[ "$l" -le 5 ] && [ "$r" -ge 250 ] && echo "ok   --fit stretch keeps all (edges $l, $r)" || fail "stretch edges $l $r"
t=$(px "$d/fit-pad.png" 100 5) m=$(px "$d/fit-pad.png" 0 100)
[ "$t" -ge 250 ] && [ "$m" -le 5 ] && echo "ok   --fit pad: white above, the full width ($t, $m)" || fail "pad $t $m"
# the plan says what the fit does
"$T" --content "$d/ramp.png" "${common[@]}" --width 2000 --height 2000 --fit crop --plan 2>&1 |
	grep -q "crop: the 400x300 content cut to 300x300 at (50, 0)" && echo "ok   the plan names the crop" ||
	fail "plan does not name the crop"
[ $fails -eq 0 ]
