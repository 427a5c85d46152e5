#!/usr/bin/env bash
# Faults under MPI (issue 15 items 6, 7): a rank SIGKILLed at moments from the very
# start (while the node's shared weights are being made) to mid-level, a few times in
# a row on one job directory.  After each kill nothing of the job is left in /dev/shm;
# after the resume that finishes the job, log.jsonl has exactly one line per tile
# checkpoint (none lost by a kill, none twice) and the output equals an unbroken run.
set -u
T=$(readlink -f "${TESSERA:-./tessera}")
MK=$(readlink -f "${MKDEMO:-build/mkdemo}")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
d=$(mktemp -d)
trap 'for p in $(pgrep -f "^$T .*$d/"); do kill -9 "$p"; done 2>/dev/null; rm -rf "$d"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }
"$MK" "$d/photo.png" "$d/paint.png" || exit 1
common=(--content "$d/photo.png" --style "$d/paint.png" --width 208 --tile 64 --overlap 16
	--builtin-width 4 --level-iterations 6,4,60 --threads 1 --progress off)
run() { mpirun -np 2 --oversubscribe "$T" "${common[@]}" --out "$d/$1.tif" --job-dir "$d/$1"; }
# names of shared weights: tessera-weights-<16 hex> (the job's) or -<pid> (older builds)
shm_names() { ls /dev/shm 2>/dev/null | grep '^tessera-weights-' | sort; }

run ref >"$d/ref.log" 2>&1 || { fail "reference run"; cat "$d/ref.log"; }
shm_before=$(shm_names)
pids_seen=()
# check_shm WHEN: nothing of ours is left in /dev/shm (removed if so, for the next try)
check_shm() {
	local left n p
	sleep 0.3 # the launcher's kill of the other rank
	left=$(comm -13 <(echo "$shm_before") <(shm_names))
	for p in "${pids_seen[@]}"; do
		[ -e "/dev/shm/tessera-weights-$p" ] && left="$left tessera-weights-$p"
	done
	left=$(echo $left | tr ' ' '\n' | sort -u)
	if [ -n "$left" ]; then
		fail "SIGKILL $1 left in /dev/shm: $left"
		for n in $left; do rm -f "/dev/shm/$n"; done
	fi
}
# start NAME [options]: a 2-rank run in the background (mp: mpirun's pid)
start() {
	local name=$1
	shift
	( exec mpirun -np 2 --oversubscribe "$T" "${common[@]}" --out "$d/$name.tif" \
		--job-dir "$d/$name" "$@" ) >"$d/$name.kill.log" 2>&1 &
	mp=$!
}
# kill_rank NAME first|last: SIGKILL rank 0 (the first started) or the other
kill_rank() {
	local ranks victim
	ranks=$(pgrep -f "^$T .*$d/$1\.tif")
	pids_seen+=($ranks)
	if [ "$2" = first ]; then victim=$(echo "$ranks" | head -n 1); else victim=$(echo "$ranks" | tail -n 1); fi
	[ -n "$victim" ] && kill -9 "$victim" 2>/dev/null
}

# 1. while the node's shared weights are made: full width, so that making them takes
# a while (about 0.6 s to 2 s after the start on the 2-core development machine)
f0=$fails
for delay in 0.1 0.4 0.7 1.0 1.3 1.6 2.0; do
	start s --builtin-width 1 --level-iterations 1,1,1
	sleep "$delay"
	kill_rank s last
	wait $mp
	check_shm "${delay}s after the start"
done
[ $fails -eq $f0 ] && echo "ok   SIGKILL at 7 moments of the start: nothing left in /dev/shm"

# 2. a tile finished by the worker and not yet reported: rank 0 killed the moment a
# checkpoint exists without its log line (or, failing that, mid-level), three times
for try in 1 2 3; do
	start k
	for _ in $(seq 1 1500); do
		t=$(ls "$d"/k/L*/*.tile 2>/dev/null | wc -l)
		l=$(cat "$d/k/log.jsonl" 2>/dev/null | wc -l)
		[ "$t" -gt "$l" ] && break
		[ "$t" -ge $((try * 4)) ] && break
		sleep 0.01
	done
	kill_rank k first
	wait $mp
	check_shm "of rank 0 mid-level"
	[ -f "$d/k.tif" ] && break
done
echo "ok   $(ls "$d"/k/L*/*.tile 2>/dev/null | wc -l) tiles kept after the kills"
run k >"$d/resume.log" 2>&1 || { fail "resume after the kills"; cat "$d/resume.log"; }
[ -z "$(comm -13 <(echo "$shm_before") <(shm_names))" ] || fail "the resume left shared memory"
cmp -s "$d/ref.tif" "$d/k.tif" && echo "ok   resume after the kills identical" || fail "resume differs"
# one line per checkpoint, none twice
tiles=$(ls "$d"/k/L*/*.tile | wc -l)
keys=$(sed -E 's/.*"level":([0-9]+).*"row":([0-9]+).*"col":([0-9]+).*/\1 \2 \3/' "$d/k/log.jsonl")
lines=$(echo "$keys" | wc -l)
dups=$(echo "$keys" | sort | uniq -d | wc -l)
files=$(cd "$d/k" && ls L*/*.tile | sed -E 's/L([0-9]+)\/([0-9]+)_([0-9]+)\.tile/\1 \2 \3/' | sort)
[ "$dups" -eq 0 ] || fail "$dups tiles logged twice"
[ "$(echo "$keys" | sort -u)" = "$files" ] && [ "$lines" -eq "$tiles" ] &&
	echo "ok   log.jsonl: one line for each of the $tiles checkpoints" ||
	{ fail "log.jsonl has $lines lines for $tiles checkpoints"; diff <(echo "$keys" | sort -u) <(echo "$files"); }
[ $fails -eq 0 ]
