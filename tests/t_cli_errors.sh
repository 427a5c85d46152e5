#!/usr/bin/env bash
# Bad input through the command line: each case exits non-zero, prints one message
# naming the file or option, and leaves no output file behind.
set -u
T=${TESSERA:-./tessera}
MK=${MKDEMO:-build/mkdemo}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fails=0
"$MK" "$d/photo.png" "$d/paint.png" || { echo "mkdemo failed"; exit 1; }
ok_args=(--content "$d/photo.png" --style "$d/paint.png" --size 32 --builtin-width 8 --iterations 2)

# expect_fail NAME PATTERN ARGS... : non-zero exit, stderr matches PATTERN, no out.png
expect_fail() {
	local name=$1 pat=$2
	shift 2
	rm -f "$d/out.png"
	"$T" "$@" >"$d/stdout" 2>"$d/stderr"
	local rc=$?
	if [ $rc -eq 0 ]; then echo "FAIL $name: exit 0"; fails=$((fails+1)); return; fi
	if ! grep -Eq -- "$pat" "$d/stderr"; then
		echo "FAIL $name: stderr lacks /$pat/:"; cat "$d/stderr"; fails=$((fails+1)); return
	fi
	if ls "$d"/out.png* >/dev/null 2>&1; then echo "FAIL $name: output left"; fails=$((fails+1)); return; fi
	echo "ok   $name (exit $rc): $(head -n1 "$d/stderr")"
}

expect_fail "missing content" "nosuch\.png" --content "$d/nosuch.png" --style "$d/paint.png" --out "$d/out.png"
printf '\x89PNG\r\n\x1a\ngarbage garbage garbage' >"$d/bad.png"
expect_fail "corrupt png" "bad\.png" --content "$d/bad.png" --style "$d/paint.png" --size 32 --out "$d/out.png"
printf 'GIF89a\x01\x00\x01\x00' >"$d/x.gif"
expect_fail "gif refused" "x\.gif" --content "$d/x.gif" --style "$d/paint.png" --out "$d/out.png"
: >"$d/empty.png"
expect_fail "empty file" "empty\.png" --content "$d/empty.png" --style "$d/paint.png" --out "$d/out.png"
expect_fail "unknown option" "--bogus" "${ok_args[@]}" --bogus 3 --out "$d/out.png"
expect_fail "unknown layer" "relu9_9" "${ok_args[@]}" --style-layers relu1_1,relu9_9 --out "$d/out.png"
expect_fail "bad number" "--iterations" --content "$d/photo.png" --style "$d/paint.png" --iterations 12x --out "$d/out.png"
expect_fail "negative weight" "--style-weight" "${ok_args[@]}" --style-weight -1 --out "$d/out.png"
expect_fail "zero size" "--width" "${ok_args[@]}" --width 0 --out "$d/out.png"
expect_fail "start size too small" "--start-size: 8 is not 0" "${ok_args[@]}" --start-size 8 --out "$d/out.png"
expect_fail "start size not a number" "--start-size" "${ok_args[@]}" --start-size big --out "$d/out.png"
expect_fail "blend mismatch" "--style-blend" "${ok_args[@]}" --style-blend 0.5,0.5 --out "$d/out.png"
expect_fail "unwritable output" "nodir" "${ok_args[@]}" --out "$d/nodir/out.png"
expect_fail "unknown extension" "out\.xyz" "${ok_args[@]}" --out "$d/out.xyz"
expect_fail "missing weights" "weights.*nope\.safetensors|nope\.safetensors" "${ok_args[@]}" --weights "$d/nope.safetensors" --out "$d/out.png"
head -c 100 tests/fixtures/narrow_vgg.safetensors >"$d/trunc.safetensors"
expect_fail "truncated weights" "trunc\.safetensors" "${ok_args[@]}" --weights "$d/trunc.safetensors" --out "$d/out.png"
printf '[tessera]\ncontent = %s\nstyle = %s\nnot_a_key = 3\n' "$d/photo.png" "$d/paint.png" >"$d/bad.ini"
expect_fail "unknown ini key" "bad\.ini:4" --config "$d/bad.ini" --out "$d/out.png"
expect_fail "too small for relu5_1" "small|too small" "${ok_args[@]}" --size 8 --out "$d/out.png"
# every output path is checked before any work (issue 15): the option and the path
# named, nothing written
expect_fail "out under /proc" "--out: .*\"/proc\"" "${ok_args[@]}" --out /proc/out.png
expect_fail "report in a missing directory" "--report: .*nodir" "${ok_args[@]}" --report "$d/nodir/r.json" --out "$d/out.png"
expect_fail "report under /proc" "--report: .*\"/proc\"" "${ok_args[@]}" --report /proc/r.json --out "$d/out.png"
expect_fail "report is a directory" "--report: .*is a directory" "${ok_args[@]}" --report "$d" --out "$d/out.png"
expect_fail "job dir under /proc" "--job-dir: .*\"/proc\"" "${ok_args[@]}" --job-dir /proc/tessera.job --out "$d/out.png"
: >"$d/plainfile"
expect_fail "job dir is a file" "--job-dir: .*plainfile.* is not a directory" "${ok_args[@]}" --job-dir "$d/plainfile" --out "$d/out.png"
if [ "$(id -u)" -ne 0 ]; then # root writes anywhere: a read-only directory only for others
	mkdir "$d/ro" && chmod 555 "$d/ro"
	expect_fail "report in a read-only directory" "--report: .*ro\"" "${ok_args[@]}" --report "$d/ro/r.json" --out "$d/out.png"
	expect_fail "out in a read-only directory" "--out: .*ro\"" "${ok_args[@]}" --out "$d/ro/out.png"
	chmod 755 "$d/ro"
fi
[ -e "$d/r.json" ] && { echo "FAIL a report was written by a refused run"; fails=$((fails+1)); }
# a non-finite weight file (weights that test_weights.c does not write: the fixture's
# conv1_1 set to NaN) is refused at load, naming the file and the tensor
if command -v python3 >/dev/null; then
	python3 - "$d/nan.safetensors" <<'PY'
import json, struct, sys
b = bytearray(open("tests/fixtures/narrow_vgg.safetensors", "rb").read())
n = struct.unpack("<Q", b[:8])[0]
a, z = json.loads(b[8:8 + n])["features.0.weight"]["data_offsets"]
for i in range(8 + n + a, 8 + n + z, 4):
    b[i:i + 4] = struct.pack("<f", float("nan"))
open(sys.argv[1], "wb").write(b)
PY
	expect_fail "NaN weights" "nan\.safetensors.*features\.0\.weight.*non-finite" "${ok_args[@]}" --weights "$d/nan.safetensors" --iterations 20 --out "$d/out.png"
fi
# one problem is one line, even when it holds "; "
expect_fail "overflowing blend is fine, a bad layer is one line" "relu1_1.* given 3 times" "${ok_args[@]}" --style "$d/paint.png,$d/paint.png" --style-blend 1e308,1e308 --style-layers relu1_1,relu1_1,relu1_1 --out "$d/out.png"
if [ "$(grep -c 'relu1_1' "$d/stderr")" -ne 1 ] || grep -q "must not all be zero" "$d/stderr"; then
	echo "FAIL blend/layers messages:"; cat "$d/stderr"; fails=$((fails+1))
fi

# several problems are reported at once
expect_fail "all at once" "--iterations" --content "$d/nosuch.png" --style "$d/paint.png" --iterations -3 --out "$d/out.png"
if ! grep -q "nosuch" "$d/stderr"; then echo "FAIL all at once: only one problem reported"; fails=$((fails+1)); fi

# and a good run succeeds and writes the file
if "$T" "${ok_args[@]}" --out "$d/out.png" 2>"$d/stderr" && [ -s "$d/out.png" ]; then
	echo "ok   good run"
else
	echo "FAIL good run:"; cat "$d/stderr"; fails=$((fails+1))
fi
[ $fails -eq 0 ]
