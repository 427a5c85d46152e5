#!/usr/bin/env bash
# The tiled renderer under MPI: bit-identical output for 1, 2 and 3 ranks; a job
# killed mid-level (SIGKILL of a rank; SIGTERM) resumes to the same output without
# recomputing finished tiles; a corrupt tile is redone; a changed config is refused;
# an outside reader (tiffinfo, tiffcp) agrees with the BigTIFF.
set -u
T=$(readlink -f "${TESSERA:-./tessera}")
MK=$(readlink -f "${MKDEMO:-build/mkdemo}")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
d=$(mktemp -d)
trap 'pkill -9 -f "$d" 2>/dev/null; rm -rf "$d"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }
"$MK" "$d/photo.png" "$d/paint.png" || exit 1
common=(--content "$d/photo.png" --style "$d/paint.png" --width 208 --tile 64 --overlap 16
	--builtin-width 8 --level-iterations 6,4,3 --threads 1 --progress off)
run() { # run NP OUT JOBDIR [extra...]
	local np=$1 out=$2 job=$3
	shift 3
	mpirun -np "$np" --oversubscribe "$T" "${common[@]}" --out "$out" --job-dir "$job" "$@"
}
# the same, replacing the (background) subshell, so that $! is mpirun itself
run_exec() {
	local np=$1 out=$2 job=$3
	shift 3
	exec mpirun -np "$np" --oversubscribe "$T" "${common[@]}" --out "$out" --job-dir "$job" "$@"
}
tiles_in_log() { wc -l <"$1/log.jsonl"; }
dups_in_log() { sed -E 's/.*"level":([0-9]+).*"row":([0-9]+).*"col":([0-9]+).*/\1 \2 \3/' "$1/log.jsonl" | sort | uniq -d | wc -l; }

# 1. the same picture with 1, 2 and 3 ranks
# (3 ranks with progress on: the ranks of the node share one copy of the weights)
for np in 1 2 3; do
	extra=()
	[ $np -eq 3 ] && extra=(--progress on)
	run $np "$d/np$np.tif" "$d/job$np" "${extra[@]}" >"$d/np$np.log" 2>&1 || { fail "np=$np run"; cat "$d/np$np.log"; }
done
grep -q "prepared weights: .* one copy for the 3 ranks of this node" "$d/np3.log" &&
	echo "ok   3 ranks share the prepared weights" || { fail "weights not shared"; cat "$d/np3.log"; }
total=$(tiles_in_log "$d/job1")
echo "tiles in the job: $total"
for np in 2 3; do
	cmp -s "$d/np1.tif" "$d/np$np.tif" && echo "ok   np=1 and np=$np identical" || fail "np=1 vs np=$np differ"
done
[ "$(dups_in_log "$d/job1")" -eq 0 ] || fail "a tile was logged twice in a clean run"
# every log line has the time breakdown, and its parts fit in the tile's seconds
awk -F'[:,}]' '{ for (i = 1; i < NF; i++) v[$i] = $(i + 1);
	s = v["\"seconds\""]; c = v["\"conv_seconds\""]; l = v["\"loss_seconds\""]; o = v["\"optim_seconds\""];
	n = v["\"layers_seconds\""];
	if (c == "" || l == "" || o == "" || n == "" || c <= 0 || l <= 0 || o < 0 || n <= 0 || c + l + o + n > s) bad++ }
	END { exit bad > 0 }' "$d/job1/log.jsonl" && echo "ok   log.jsonl time breakdown" || { fail "log.jsonl breakdown"; head -2 "$d/job1/log.jsonl"; }

# 2. an outside reader agrees
if tiffinfo "$d/np1.tif" >"$d/info" 2>&1; then
	grep -q "Image Width: 208 Image Length: 1" "$d/info" || grep -q "Image Width: 208" "$d/info" || fail "tiffinfo width"
	grep -q "Tile Width" "$d/info" || fail "not tiled"
	grep -qi "Compression Scheme: AdobeDeflate\|Compression Scheme: Deflate" "$d/info" || fail "not deflate"
	tiffdump "$d/np1.tif" 2>/dev/null | head -2 | grep -qi "bigtiff\|version 43\|<BigTIFF>" || fail "not BigTIFF"
	tiffcp "$d/np1.tif" "$d/copy.tif" || fail "tiffcp cannot read it"
	echo "ok   tiffinfo/tiffdump/tiffcp"
else
	fail "tiffinfo"; cat "$d/info"
fi

# 3. SIGKILL of a rank mid-level, then resume.  A slower last level leaves time to
# interrupt it; its own uninterrupted run is the reference.
heavy=(--level-iterations 6,4,150)
run 2 "$d/h.tif" "$d/jobh" "${heavy[@]}" >"$d/h.log" 2>&1 || { fail "heavy run"; cat "$d/h.log"; }
wait_tiles() { # JOBDIR N: until the log has N lines (at most 60 s)
	for _ in $(seq 1 600); do
		[ -f "$1/log.jsonl" ] && [ "$(tiles_in_log "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
run_exec 2 "$d/k.tif" "$d/jobk" "${heavy[@]}" >"$d/k1.log" 2>&1 &
pid=$!
wait_tiles "$d/jobk" 8
victim=$(pgrep -f "^$T .*$d/jobk" | tail -n 1)
[ -n "$victim" ] && kill -9 "$victim"
wait $pid
before=$(tiles_in_log "$d/jobk")
[ "$before" -lt "$total" ] || fail "SIGKILL came after the end ($before tiles)"
[ -f "$d/k.tif" ] && fail "SIGKILL: output exists after the killed run"
run 2 "$d/k.tif" "$d/jobk" "${heavy[@]}" >"$d/k2.log" 2>&1 || { fail "resume after SIGKILL"; cat "$d/k2.log"; }
cmp -s "$d/h.tif" "$d/k.tif" && echo "ok   SIGKILL + resume identical ($before tiles kept)" || fail "SIGKILL resume differs"
[ "$(dups_in_log "$d/jobk")" -eq 0 ] || fail "SIGKILL: finished tiles were recomputed"

# 4. A stop signal: a clean stop with status 75, then resume with another rank count.
# Open MPI 4.1's mpirun forwards SIGUSR1 to the ranks and returns their 75; SIGTERM to
# the ranks (srun, Slurm's step signal) gives 75 too.  SIGTERM to mpirun itself makes
# mpirun end the ranks and exit 1 whatever they return (its own handler sets the
# status first; see main.c): the ranks still stop cleanly and keep their tiles.
stop_run() { # SIGNAL TARGET(mpirun|ranks) JOB NP: stop after 8 tiles; sets rc, before
	run_exec "$4" "$d/$3.tif" "$d/$3" "${heavy[@]}" >"$d/$3.log" 2>&1 &
	local pid=$!
	wait_tiles "$d/$3" 8
	if [ "$2" = mpirun ]; then
		kill -"$1" $pid
	else
		for r in $(pgrep -f "^$T .*$d/$3"); do kill -"$1" "$r"; done
	fi
	wait $pid
	rc=$?
	before=$(tiles_in_log "$d/$3")
	[ "$before" -lt "$total" ] || fail "$1 to $2 came after the end"
	grep -q "stopped by a signal" "$d/$3.log" || { fail "$1 to $2: no clean stop"; cat "$d/$3.log"; }
	[ -f "$d/$3.tif" ] && fail "$1 to $2: output exists after a stopped run"
}
stop_run USR1 mpirun jobt 3
[ $rc -eq 75 ] && echo "ok   SIGUSR1 to mpirun: exit 75" || fail "SIGUSR1 to mpirun: exit $rc, expected 75"
run 1 "$d/jobt.tif" "$d/jobt" "${heavy[@]}" >"$d/t2.log" 2>&1 || { fail "resume after SIGUSR1"; cat "$d/t2.log"; }
cmp -s "$d/h.tif" "$d/jobt.tif" && echo "ok   stop (clean, $before tiles kept) + resume on 1 rank identical" || fail "resume after a stop differs"
[ "$(dups_in_log "$d/jobt")" -eq 0 ] || fail "stop: finished tiles were recomputed"
stop_run TERM ranks jobr 2
[ $rc -eq 75 ] && echo "ok   SIGTERM to the ranks: exit 75" || fail "SIGTERM to the ranks: exit $rc, expected 75"
stop_run TERM mpirun jobm 2
[ $rc -ne 0 ] && echo "ok   SIGTERM to mpirun: clean stop, $before tiles kept (mpirun's status $rc)" || fail "SIGTERM to mpirun: exit 0"

# 5. a corrupt tile is redone, the output is unchanged
tile=$(ls "$d"/job1/L2/*.tile | head -n 1)
printf '\xff' | dd of="$tile" bs=1 seek=200 conv=notrunc 2>/dev/null
lines=$(tiles_in_log "$d/job1")
run 1 "$d/np1b.tif" "$d/job1" >"$d/c.log" 2>&1 || { fail "run with a corrupt tile"; cat "$d/c.log"; }
[ "$(tiles_in_log "$d/job1")" -eq $((lines + 1)) ] && echo "ok   corrupt tile redone (only it)" || fail "corrupt tile: expected exactly one tile redone"
cmp -s "$d/np1.tif" "$d/np1b.tif" || fail "output after redoing a tile differs"

# 6. a changed configuration is refused; --fresh starts afresh
if run 1 "$d/x.tif" "$d/job1" --style-weight 5 >"$d/r.log" 2>&1; then
	fail "a changed config was not refused"
else
	# the refusal names what changed, in one line with the way out
	grep -q "different plan: style_weight was 1, is now 5\. Use --fresh" "$d/r.log" &&
		[ "$(grep -c 'tessera' "$d/r.log")" -eq 1 ] && ! grep -q "sched:" "$d/r.log" &&
		echo "ok   changed config refused, naming the option" || { fail "refusal message"; cat "$d/r.log"; }
fi
[ -f "$d/x.tif" ] && fail "refused run wrote output"

# 7. --plan runs nothing
run 1 "$d/p.tif" "$d/jobp" --plan >"$d/plan.txt" 2>&1 || fail "--plan"
grep -qi "level" "$d/plan.txt" && grep -qi "memory" "$d/plan.txt" || { fail "--plan output"; cat "$d/plan.txt"; }
[ -f "$d/p.tif" ] && fail "--plan wrote output"
[ -e "$d/jobp" ] && fail "--plan created the job directory"
grep -q "(new)" "$d/plan.txt" || fail "--plan: a new job directory not reported"
run 1 "$d/p.tif" "$d/job1" --style-weight 5 --plan >"$d/plan2.txt" 2>&1 || fail "--plan of a changed config"
grep -q "another plan" "$d/plan2.txt" || { fail "--plan: the other plan not reported"; cat "$d/plan2.txt"; }
run 1 "$d/p.tif" "$d/job1" --plan >"$d/plan3.txt" 2>&1 || fail "--plan of the same config"
grep -q "a run resumes it" "$d/plan3.txt" || { fail "--plan: resume not reported"; cat "$d/plan3.txt"; }
[ $fails -eq 0 ]
