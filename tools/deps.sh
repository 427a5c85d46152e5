#!/usr/bin/env bash
# Install what tessera needs to build and test, from Debian's packages.
# As root: apt-get installs what is missing.  Otherwise: print the apt line and stop.
# clang and libclang-rt-dev (libFuzzer and the sanitizer runtimes of Debian's clang) are
# for make fuzz / tests/t_fuzz.sh; chromium and time for tests/t_dzi.sh.  cairo draws
# the contact sheet (--sheet, tessera-sheet), its text in DejaVu Sans (fonts-dejavu-core).
# Then OpenSeadragon, the --deep-zoom viewer page's script, from npm into build-npm/
# (where the Makefile points TS_OPENSEADRAGON_DIR), once; without npm a message says so
# and --deep-zoom still writes its tiles.  tessera itself never runs npm.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
pkgs="build-essential pkg-config libopenblas-dev libopenmpi-dev openmpi-bin libtiff-dev
libtiff-tools libstb-dev libjpeg62-turbo-dev libpng-dev libexif-dev libinih-dev libcjson-dev
zlib1g-dev libzip-dev libcmocka-dev
clang libclang-rt-dev
slurm-wlm munge liblcms2-dev libvips-tools imagemagick libcairo2-dev fonts-dejavu-core
chromium time"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done

openseadragon() {
	local dir="$root/build-npm/node_modules/openseadragon/build/openseadragon"

	[ -f "$dir/openseadragon.min.js" ] && return 0
	if ! command -v npm >/dev/null 2>&1; then
		echo "deps: no npm: OpenSeadragon not installed (the --deep-zoom page needs it;" \
			"install npm and run tools/deps.sh again)" >&2
		return 0
	fi
	npm install --no-save --no-audit --no-fund --prefix "$root/build-npm" openseadragon@4 >&2 ||
		echo "deps: npm install openseadragon@4 failed: the --deep-zoom page will lack" \
			"its viewer" >&2
}

status=0
if [ -n "$missing" ] && [ "$(id -u)" -ne 0 ]; then
	echo "tessera needs these Debian packages; install them with:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	status=1
elif [ -n "$missing" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || true
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
fi
openseadragon
exit $status
