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
expect_fail "blend mismatch" "--style-blend" "${ok_args[@]}" --style-blend 0.5,0.5 --out "$d/out.png"
expect_fail "unwritable output" "nodir" "${ok_args[@]}" --out "$d/nodir/out.png"
expect_fail "unknown extension" "out\.xyz" "${ok_args[@]}" --out "$d/out.xyz"
expect_fail "missing weights" "weights.*nope\.safetensors|nope\.safetensors" "${ok_args[@]}" --weights "$d/nope.safetensors" --out "$d/out.png"
head -c 100 tests/fixtures/narrow_vgg.safetensors >"$d/trunc.safetensors"
expect_fail "truncated weights" "trunc\.safetensors" "${ok_args[@]}" --weights "$d/trunc.safetensors" --out "$d/out.png"
printf '[tessera]\ncontent = %s\nstyle = %s\nnot_a_key = 3\n' "$d/photo.png" "$d/paint.png" >"$d/bad.ini"
expect_fail "unknown ini key" "bad\.ini:4" --config "$d/bad.ini" --out "$d/out.png"
expect_fail "too small for relu5_1" "small|too small" "${ok_args[@]}" --size 8 --out "$d/out.png"
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
