#!/usr/bin/env bash
# Set up (packages), build, make the demo pictures, and render the demo.
set -eu
cd "$(dirname "$0")/.."
bash tools/deps.sh
make -j2 tessera build/mkdemo
mkdir -p out
build/mkdemo out/demo_photo.png out/demo_painting.png
./tessera --content out/demo_photo.png --style out/demo_painting.png --size 256 \
	--iterations 200 --progress on --report out/demo.json --out out/demo.png
echo "wrote out/demo.png (report: out/demo.json)"
