#!/usr/bin/env bash
# Set up (packages), build, draw the demo pictures, render the demo and its contact sheet.
#
# The demo's settings were chosen by measurement (README, "The demo"): a 384x256 render
# with the defaults (coarse to fine from 96 px: levels 96, 192 and 384 px wide), 60
# L-BFGS iterations a level (the top level's total loss is within 1% of its value at
# twice as many), and the painting of brush strokes (mkdemo --strokes).  About a
# minute of rendering on 2 cores; OUT (default out/) holds the files.
set -eu
cd "$(dirname "$0")/.."
out=${OUT:-out}
bash tools/deps.sh
make -j2 tessera build/mkdemo
mkdir -p "$out"
build/mkdemo --strokes "$out/demo_photo.png" "$out/demo_painting.png"
./tessera --content "$out/demo_photo.png" --style "$out/demo_painting.png" --size 384 \
	--iterations 60 --report "$out/demo.json" --sheet "$out/demo_sheet.png" --out "$out/demo.png"
cat <<MSG

The picture: $out/demo.png (384x256)
  the demo photo (a landscape: sky, sun, hills, a lake; $out/demo_photo.png) repainted
  in the style of the demo painting (swirling brush strokes in a night-sky palette;
  $out/demo_painting.png).  It should look like this: the photo's layout kept (the
  hill line, the sun, the lake's edge), its colours replaced by the painting's (a
  pale-blue sky of dabs under deep blue and dark patches along the top, a yellow sun,
  the hills in dark green strokes with lighter ones, the lake in blue ripples), a
  texture of short strokes everywhere, no rainbow speckle of single pixels.
  docs/demo_sheet.png in the source tree is this demo's sheet, to compare.  The built-in network is random (no weights are
  downloaded): strokes are short and content soft; a pretrained VGG-19 (--weights)
  gives strokes that follow the shapes.
The contact sheet: $out/demo_sheet.png (photo, painting, result and the loss curve
  of the three levels side by side).  The settings and every iteration's losses:
  $out/demo.json.
MSG
