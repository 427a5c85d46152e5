#!/usr/bin/env bash
# Deep Zoom output as a browser sees it, through tests/dzi_demo (the dzi module on its
# own; the renderer's --deep-zoom calls the same three functions): bad folders and
# sizes fail with one line naming DIR and leave nothing; the memory of a 36000-pixel
# wide picture stays bounded and does not grow with the height; a missing viewer is
# said on stderr and in index.html; and headless chromium, opening index.html from a
# local http server and from file://, draws the picture: dzi_demo check finds the
# gradient's colours where they belong in the screenshot (and refuses a shot of a page
# without tiles).  The browser part prints "skip: ..." when chromium or OpenSeadragon
# (tools/deps.sh) is absent.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
MK=$(readlink -f "${MKDEMO:-build/mkdemo}")
DEMO=$(readlink -f "${DZI_DEMO:-$(dirname "$MK")/dzi_demo}")
OSD=${TESSERA_OPENSEADRAGON:-$root/build-npm/node_modules/openseadragon/build/openseadragon}
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
d=$(mktemp -d)
server=
m=$d/small
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	mountpoint -q "$m" 2>/dev/null && umount "$m"
	rm -rf "$d"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }
[ -x "$DEMO" ] || { echo "FAIL no $DEMO (make tests builds it)"; exit 1; }
export TESSERA_OPENSEADRAGON=$OSD

# 1. refused: one line naming DIR, nothing left behind
refused() { # DIR W H WHY [kept]: kept, DIR is a folder of the user's that must stay
	if "$DEMO" write "$1" poster "$2" "$3" 0 >"$d/err" 2>&1; then
		fail "$1 ${2}x$3 was accepted"
	elif [ "$(wc -l <"$d/err")" -ne 1 ] || ! grep -qF "\"$1\"" "$d/err" || ! grep -q "$4" "$d/err"; then
		fail "$1 ${2}x$3: message"; cat "$d/err"
	elif { [ $# -lt 5 ] && [ -e "$1" ]; } || [ -e "$1.part" ]; then
		fail "$1 ${2}x$3 left files"
	else
		echo "ok   refused: $(cat "$d/err")"
	fi
}
refused "$d/no/such/dz" 10 10 "No such file or directory"
refused "$d/dz0" 0 10 "not positive"
refused "$d/dz1" 10 -5 "not positive"
mkdir "$d/mine" && touch "$d/mine/notes.txt"
refused "$d/mine" 10 10 "not a Deep Zoom folder" kept
[ -f "$d/mine/notes.txt" ] || fail "a user's folder was touched"

# a full disk (a 300 KiB tmpfs; skipped with the reason where mount is refused), also
# over an earlier run's DIR, which must survive whole
mkdir -p "$m"
if why=$(mount -t tmpfs -o size=300k tmpfs "$m" 2>&1); then
	# (without the viewer files: 200 KiB of the 300)
	TESSERA_OPENSEADRAGON=$d/none "$DEMO" write "$m/old" poster 40 30 0 2>/dev/null || fail "small write on the tmpfs"
	for out in "$m/dz" "$m/old"; do
		if "$DEMO" write "$out" poster 3000 2000 64 >"$d/err" 2>&1; then
			fail "full disk: $out accepted"
		elif [ "$(wc -l <"$d/err")" -ne 1 ] || ! grep -qF "\"$out\"" "$d/err" ||
			! grep -q "No space left on device" "$d/err"; then
			fail "full disk: message"; cat "$d/err"
		elif [ -e "$out.part" ]; then
			fail "full disk: $out.part left"
		else
			echo "ok   full disk: $(cat "$d/err")"
		fi
	done
	[ ! -e "$m/dz" ] || fail "full disk: a half-written DIR"
	[ -f "$m/old/poster.dzi" ] && [ -f "$m/old/poster_files/6/0_0.jpg" ] ||
		fail "full disk: the earlier run's DIR was damaged"
	umount "$m"
else
	echo "skip full-disk check: cannot mount a tmpfs: ${why:-mount failed}"
fi

# 2. memory: a 36000-pixel wide picture, 600 and 1800 rows (rows 16 at a time)
if [ -x /usr/bin/time ]; then
	rss() { # H: peak resident KiB of writing a 36000 x H picture
		/usr/bin/time -f %M -o "$d/rss" "$DEMO" write "$d/wide" wide 36000 "$1" 16 >/dev/null 2>&1 ||
			{ fail "36000x$1"; echo 0; return; }
		cat "$d/rss"
	}
	r1=$(rss 600) r2=$(rss 1800)
	# the module's bound is 1600 * w bytes (55 MiB), the demo's band 7 MiB, libraries;
	# the lower levels' buffers are touched as they fill: a few MiB more at 1800 rows
	# (a copy of the picture would be 185 MiB more)
	if [ "$r1" -gt 0 ] && [ "$r2" -lt 120000 ] && [ "$r2" -lt $((r1 + 8000)) ]; then
		echo "ok   36000 wide: peak ${r1} KiB at 600 rows, ${r2} KiB at 1800 rows"
	else
		fail "memory: ${r1} KiB at 600 rows, ${r2} KiB at 1800 rows"
	fi
	[ "$(ls "$d/wide/wide_files/16" | wc -l)" -eq $((142 * 8)) ] || fail "36000x1800: tiles of the full level"
	rm -rf "$d/wide"
else
	echo "skip: memory check (no /usr/bin/time)"
fi

# 3. no viewer: the tiles, a warning naming the variable, a page that says so
TESSERA_OPENSEADRAGON=$d/none "$DEMO" write "$d/bare" poster 300 200 50 2>"$d/warn" || fail "write without viewer"
[ "$(wc -l <"$d/warn")" -eq 1 ] && grep -q "warning: OpenSeadragon not found (set TESSERA_OPENSEADRAGON" "$d/warn" ||
	{ fail "no-viewer warning"; cat "$d/warn"; }
grep -q "was not found" "$d/bare/index.html" && [ -f "$d/bare/poster.dzi" ] && [ -f "$d/bare/poster_files/9/0_0.jpg" ] &&
	[ ! -e "$d/bare/openseadragon.min.js" ] && echo "ok   without OpenSeadragon: tiles, .dzi, a page that says so" ||
	fail "no-viewer output"

# 4. the browser
if ! command -v chromium >/dev/null 2>&1; then
	echo "skip: chromium not found (tools/deps.sh installs it)"
	[ $fails -eq 0 ]; exit
fi
if [ ! -f "$OSD/openseadragon.min.js" ]; then
	echo "skip: OpenSeadragon not found in $OSD (tools/deps.sh installs it through npm)"
	[ $fails -eq 0 ]; exit
fi
"$DEMO" write "$d/site" poster 1600 1200 37 2>"$d/w.log" || { fail "write"; cat "$d/w.log"; }
[ -s "$d/w.log" ] && { fail "warnings with the viewer present"; cat "$d/w.log"; }
[ -f "$d/site/openseadragon.min.js" ] && [ -f "$d/site/images/home_rest.png" ] || fail "viewer files not copied"
shot() { # URL PNG: a headless screenshot, at most 90 s
	timeout -k 5 90 chromium --headless=new --no-sandbox --disable-gpu --no-first-run \
		--user-data-dir="$d/profile" --screenshot="$2" --window-size=800,600 \
		--virtual-time-budget=10000 "$1" >"$d/chromium.log" 2>&1
	[ -s "$2" ] || { fail "no screenshot of $1"; tail -5 "$d/chromium.log"; return 1; }
}
drawn() { # URL NAME: the screenshot shows the picture
	shot "$1" "$d/$2.png" || return
	if "$DEMO" check "$d/$2.png" >"$d/$2.check" 2>&1; then
		echo "ok   $2: the picture drawn ($(head -1 "$d/$2.check"))"
	else
		fail "$2: the screenshot does not show the picture"; cat "$d/$2.check"
	fi
}
$PY -u -m http.server 0 --bind 127.0.0.1 --directory "$d/site" >"$d/http.log" 2>&1 &
server=$!
port=
for _ in $(seq 1 100); do
	port=$(sed -n 's/.*port \([0-9][0-9]*\).*/\1/p' "$d/http.log" 2>/dev/null | head -1)
	[ -n "$port" ] && break
	sleep 0.1
done
if [ -n "$port" ]; then
	drawn "http://127.0.0.1:$port/index.html" http
	# 800x600 shows the 1600x1200 picture at level 10 (800x600) or 11 (full)
	grep -q "GET /poster_files/1[01]/" "$d/http.log" || { fail "http: no tile of level 10 or 11 was fetched"; cat "$d/http.log"; }
else
	fail "http.server did not start"; cat "$d/http.log"
fi
kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
server=
drawn "file://$d/site/index.html" file
# the checker refuses a page without the picture
if shot "file://$d/bare/index.html" "$d/bare.png"; then
	"$DEMO" check "$d/bare.png" >/dev/null 2>&1 && fail "check accepted a page without tiles" ||
		echo "ok   check refuses a page without tiles"
fi
[ $fails -eq 0 ]
