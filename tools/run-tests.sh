#!/usr/bin/env bash
# Set up (packages), build, and run the whole test suite.  Ends with "N passed, N failed".
set -eu
cd "$(dirname "$0")/.."
bash tools/deps.sh
make -j2 tests
bash tests/run.sh build
