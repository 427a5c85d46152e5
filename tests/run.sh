#!/usr/bin/env bash
# Run every test binary and script; print a closing "N passed, N failed".
# Usage: tests/run.sh [BUILD_DIR [TESSERA_BINARY]]
set -u
build=${1:-build}
bin=${2:-./tessera}
cd "$(dirname "$0")/.." || exit 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2}
pass=0 fail=0 failed_names=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	"$t" >"$tmp/$name.log" 2>&1
	rc=$?
	p=$(grep -Eo '\[  PASSED  \] [0-9]+' "$tmp/$name.log" | awk '{s+=$NF} END{print s+0}')
	f=$(grep -Eo '\[  FAILED  \] [0-9]+ test' "$tmp/$name.log" | awk '{s+=$3} END{print s+0}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	pass=$((pass + p)) fail=$((fail + f))
	if [ "$f" -ne 0 ]; then
		failed_names+=("$name")
		cat "$tmp/$name.log"
	fi
	echo "$name: $p passed, $f failed"
done

for s in tests/t_*.sh; do
	[ -f "$s" ] || continue
	name=$(basename "$s" .sh)
	if TESSERA=$bin MKDEMO=$build/mkdemo bash "$s" >"$tmp/$name.log" 2>&1; then
		pass=$((pass + 1)); echo "$name: ok"
	else
		fail=$((fail + 1)); failed_names+=("$name")
		cat "$tmp/$name.log"; echo "$name: FAILED"
	fi
done

[ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
