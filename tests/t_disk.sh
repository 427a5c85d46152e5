#!/usr/bin/env bash
# A full disk (issue 15, fault tests): a 300 KiB tmpfs as the job directory, and
# separately as the folder of --out (filled up to a few KiB), at np 1 and np 2.  The
# run must fail with one message naming the file and "No space left" (at np 2 both
# ranks may hit it at once: one message each), leave no .part,
# and a resume once there is space again (the tmpfs remounted bigger, the filler
# removed) must finish with the bits of a run that never lacked space.  Mounting needs
# root (CI runs as root): where mount is refused the reason is printed and the test
# is skipped.  Nothing may be left in /dev/shm named tessera-*.
set -u
T=$(readlink -f "${TESSERA:-./tessera}")
MK=$(readlink -f "${MKDEMO:-build/mkdemo}")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
d=$(mktemp -d)
m=$d/m
cleanup() {
	for p in $(pgrep -f "^$T .*$d/"); do kill -9 "$p"; done 2>/dev/null
	mountpoint -q "$m" && umount "$m"
	rm -rf "$d"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }
mkdir "$m"
if ! why=$(mount -t tmpfs -o size=300k tmpfs "$m" 2>&1); then
	echo "skip full-disk tests: cannot mount a tmpfs: ${why:-mount failed}"
	exit 0
fi
umount "$m"
"$MK" "$d/photo.png" "$d/paint.png" || exit 1
common=(--content "$d/photo.png" --style "$d/paint.png" --width 208 --tile 64 --overlap 16
	--builtin-width 8 --level-iterations 6,4,10 --threads 1 --progress off)
shm_names() { ls /dev/shm 2>/dev/null | grep '^tessera-' | sort; }
shm_before=$(shm_names)
launch() { # launch NP OUT JOB
	if [ "$1" = 1 ]; then
		"$T" "${common[@]}" --out "$2" --job-dir "$3"
	else
		mpirun -np "$1" --oversubscribe "$T" "${common[@]}" --out "$2" --job-dir "$3"
	fi
}
launch 1 "$d/ref.tif" "$d/ref" >"$d/ref.log" 2>&1 || { fail "reference run"; cat "$d/ref.log"; exit 1; }

# check_fail NP WHAT LOG RC FILE_PREFIX: failed with one message (at np 2, one per
# rank at most: two workers can hit the full disk at the same moment, each with its
# own tile), each naming a file under FILE_PREFIX and saying "No space left"
check_fail() {
	local np=$1 lines
	shift
	lines=$(grep '^tessera' "$2")
	if [ "$3" -eq 0 ]; then
		fail "$1: the run succeeded on a full disk"
	elif [ -z "$lines" ] || [ "$(echo "$lines" | wc -l)" -gt "$np" ]; then
		fail "$1: expected one message, got: $lines"
	elif echo "$lines" | grep -v "No space left" | grep -q . ||
		echo "$lines" | grep -v "$4" | grep -q .; then
		fail "$1: the message does not name a file under $4 and \"No space left\": $lines"
	elif echo "$lines" | grep -q '\.part'; then
		fail "$1: the message names the .part: $lines"
	else
		echo "ok   $1: $lines"
	fi
}
no_part() { # no_part WHAT DIR...
	local parts
	parts=$(find "${@:2}" -name '*.part' 2>/dev/null)
	[ -z "$parts" ] || fail "$1: .part files left: $parts"
}

for np in 1 2; do
	# 1. the job directory on a full disk
	mount -t tmpfs -o size=300k tmpfs "$m" || { fail "mount"; break; }
	launch "$np" "$d/j$np.tif" "$m/job" >"$d/j$np.log" 2>&1
	check_fail "$np" "np $np, job directory full" "$d/j$np.log" $? "$m/job/"
	no_part "np $np, job directory full" "$m" "$d"
	[ -e "$d/j$np.tif" ] && fail "np $np: --out written although the job failed"
	mount -o remount,size=8m "$m"
	launch "$np" "$d/j$np.tif" "$m/job" >"$d/j$np.resume.log" 2>&1 ||
		{ fail "np $np: resume with space again"; cat "$d/j$np.resume.log"; }
	cmp -s "$d/ref.tif" "$d/j$np.tif" && echo "ok   np $np: resumed with space again, identical bits" ||
		fail "np $np: the resumed output differs"
	no_part "np $np, after the resume" "$m" "$d"
	umount "$m"

	# 2. --out on a full disk (the job directory has room)
	mount -t tmpfs -o size=300k tmpfs "$m" || { fail "mount"; break; }
	head -c 290000 /dev/zero >"$m/filler" 2>/dev/null
	launch "$np" "$m/out.tif" "$d/o$np" >"$d/o$np.log" 2>&1
	check_fail "$np" "np $np, --out full" "$d/o$np.log" $? "$m/out.tif"
	no_part "np $np, --out full" "$m" "$d"
	[ -e "$m/out.tif" ] && fail "np $np: a partial --out under its real name"
	rm -f "$m/filler"
	launch "$np" "$m/out.tif" "$d/o$np" >"$d/o$np.resume.log" 2>&1 ||
		{ fail "np $np: --out resume with space again"; cat "$d/o$np.resume.log"; }
	cmp -s "$d/ref.tif" "$m/out.tif" && echo "ok   np $np: --out resumed with space again, identical bits" ||
		fail "np $np: the resumed --out differs"
	no_part "np $np, after the --out resume" "$m" "$d"
	umount "$m"
done
left=$(comm -13 <(echo "$shm_before") <(shm_names))
[ -z "$left" ] && echo "ok   nothing left in /dev/shm" || fail "left in /dev/shm: $left"
[ $fails -eq 0 ]
