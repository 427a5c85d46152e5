#!/usr/bin/env bash
# The contact sheet through the command line: --sheet in a single-piece and a tiled run
# (a PNG of the layout's size holding the output), tessera-sheet from the run's report
# drawing the same pixels, and bad sheet paths refused: by tessera before any work,
# by tessera-sheet with a message and nothing left behind.
set -u
T=${TESSERA:-./tessera}
S=${TESSERA_SHEET:-$(dirname "$T")/tessera-sheet}
MK=${MKDEMO:-build/mkdemo}
py=/usr/bin/python3
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
"$MK" "$d/photo.png" "$d/paint.png" || { echo "mkdemo failed"; exit 1; }
run=(--content "$d/photo.png" --style "$d/paint.png" --builtin-width 8 --quiet)

# the size of a picture: "W H"
size() { "$py" -c 'from PIL import Image; import sys; print(*Image.open(sys.argv[1]).size)' "$1"; }

# single piece: --sheet with and without --report
if "$T" "${run[@]}" --size 96 --iterations 6 --report "$d/one.json" --sheet "$d/one_sheet.png" \
	--out "$d/one.png" 2>"$d/err"; then
	read -r w h <<<"$(size "$d/one_sheet.png")"
	# content 96x64 -> 384x256, style 256x256, output 384x256, the curve 440: 16+384+16+256+
	# 16+384+16+440+16 = 1544 wide; 34+22+256+44+16 = 372 high
	if [ "$w" = 1544 ] && [ "$h" = 372 ]; then
		echo "ok   single-piece sheet ${w}x$h"
	else
		fail "single sheet is ${w}x$h, not 1544x372"
	fi
	"$S" "$d/one.json" "$d/again.png" || fail "tessera-sheet on the run's report"
	"$py" - "$d/one_sheet.png" "$d/again.png" <<'PY' || fail "tessera-sheet differs from --sheet"
import sys
from PIL import Image
a, b = (Image.open(p).convert("RGB") for p in sys.argv[1:])
sys.exit(0 if a.size == b.size and a.tobytes() == b.tobytes() else 1)
PY
	echo "ok   tessera-sheet from the report draws the same sheet"
else
	fail "single-piece run with --sheet: $(cat "$d/err")"
fi
"$T" "${run[@]}" --size 96 --iterations 3 --sheet "$d/alone.png" --out "$d/alone_out.png" \
	2>"$d/err" || fail "--sheet without --report: $(cat "$d/err")"
[ -s "$d/alone.png" ] && echo "ok   --sheet without --report" || fail "no sheet without --report"

# tiled: the levels' curve; the sheet's output panel equals the output downscaled
if "$T" "${run[@]}" --size 160 --tile 64 --overlap 16 --iterations 3 --fresh \
	--job-dir "$d/job" --sheet "$d/tiled_sheet.png" --out "$d/tiled.png" 2>"$d/err"; then
	"$py" - "$d/tiled_sheet.png" "$d/tiled.png" <<'PY' || fail "tiled sheet's output panel"
import sys
import numpy as np
from PIL import Image
sheet = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(float)
out = Image.open(sys.argv[2]).convert("RGB")
h = 256
w = round(out.size[0] * h / out.size[1])
ref = np.asarray(out.resize((w, h), Image.BICUBIC)).astype(float)
# the output is the third panel: 16 + slot(content) + 16 + slot(style) + 16
cw = round(out.size[0] * h / out.size[1])
x = 16 + cw + 16 + 256 + 16
y = 34 + 22
panel = sheet[y:y + h, x:x + w]
err = np.abs(panel - ref).mean()
print("tiled sheet: output panel mean |diff| %.2f grey levels" % err)
sys.exit(0 if err < 3 else 1)
PY
	echo "ok   tiled sheet"
else
	fail "tiled run with --sheet: $(cat "$d/err")"
fi

# refused before any work: nothing written, the option and the path named
expect_refused() {
	local name=$1 pat=$2
	shift 2
	rm -f "$d/r.png"
	if "$T" "${run[@]}" --size 64 --iterations 2 "$@" --out "$d/r.png" 2>"$d/err"; then
		fail "$name: exit 0"
	elif ! grep -Eq -- "$pat" "$d/err"; then
		fail "$name: stderr lacks /$pat/: $(cat "$d/err")"
	elif ls "$d"/r.png* >/dev/null 2>&1; then
		fail "$name: output left"
	else
		echo "ok   $name: $(head -n 1 "$d/err")"
	fi
}
expect_refused "sheet in a missing folder" "--sheet.*nodir" --sheet "$d/nodir/s.png"
expect_refused "sheet of an unknown format" "--sheet.*s\.gif" --sheet "$d/s.gif"
expect_refused "sheet over the output" "--sheet.*--out" --sheet "$d/r.png"

# tessera-sheet: a bad path, a missing report, a report whose output is gone
expect_tool_fail() {
	local name=$1 pat=$2 out=$3
	shift 3
	if "$S" "$@" 2>"$d/err"; then
		fail "$name: exit 0"
	elif ! grep -Eq -- "$pat" "$d/err"; then
		fail "$name: stderr lacks /$pat/: $(cat "$d/err")"
	elif ls "$out"* >/dev/null 2>&1; then
		fail "$name: $out left"
	else
		echo "ok   $name: $(head -n 1 "$d/err")"
	fi
}
expect_tool_fail "tool: missing folder" "nodir/s\.png" "$d/nodir/s.png" "$d/one.json" "$d/nodir/s.png"
expect_tool_fail "tool: missing report" "nosuch\.json" "$d/t.png" "$d/nosuch.json" "$d/t.png"
rm -f "$d/one.png"
expect_tool_fail "tool: output gone" "output.*one\.png" "$d/t.png" "$d/one.json" "$d/t.png"
"$S" >/dev/null 2>&1
[ $? = 2 ] && echo "ok   tool: usage" || fail "tessera-sheet without arguments does not exit 2"

[ "$fails" -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all ok"
