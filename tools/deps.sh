#!/usr/bin/env bash
# Install what tessera needs to build and test, from Debian's packages.
# As root: apt-get installs what is missing.  Otherwise: print the apt line and stop.
# clang and libclang-rt-dev (libFuzzer and the sanitizer runtimes of Debian's clang) are
# for make fuzz / tests/t_fuzz.sh.
set -eu
pkgs="build-essential pkg-config libopenblas-dev libopenmpi-dev openmpi-bin libtiff-dev
libtiff-tools libstb-dev libjpeg62-turbo-dev libpng-dev libexif-dev libinih-dev libcjson-dev
zlib1g-dev libcmocka-dev
clang libclang-rt-dev
slurm-wlm munge"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "tessera needs these Debian packages; install them with:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
