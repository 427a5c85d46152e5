#!/usr/bin/env bash
# --gram global under MPI: bit-identical output for 1, 2 and 3 ranks (3 ranks: more
# ranks than a level's blocks) and for 2 threads; different from --gram tile; a rank
# killed during a global level, and a SIGTERM, then the same command, give the same
# bits, resumed from the optimizer's state saved at an iteration (finished levels are
# kept); a corrupt state file falls back to the older state; a corrupt block file is
# refused and its level redone; the plan of a global job is another plan than a tile
# job's; --margin's blocks and border tiles: the same bits on 1 and 2 ranks, the
# output's own size, the margin in the plan.
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
# 400 x 300: levels 100 (one tile), 200 (2 x 2 blocks of 112), 400 (4 x 3 blocks)
common=(--content "$d/photo.png" --style "$d/paint.png" --width 400 --height 300 --tile 128
	--overlap 32 --builtin-width 8 --level-iterations 4,3,3 --threads 1 --progress off
	--gram global)
run() { # run NP OUT JOBDIR [extra...]
	local np=$1 out=$2 job=$3
	shift 3
	mpirun -np "$np" --oversubscribe "$T" "${common[@]}" --out "$out" --job-dir "$job" "$@"
}
run_exec() {
	local np=$1 out=$2 job=$3
	shift 3
	exec mpirun -np "$np" --oversubscribe "$T" "${common[@]}" --out "$out" --job-dir "$job" "$@"
}

# 1. 1, 2, 3 ranks and 2 threads: the same bits
for np in 1 2 3; do
	run $np "$d/np$np.tif" "$d/job$np" >"$d/np$np.log" 2>&1 || { fail "np=$np run"; cat "$d/np$np.log"; }
done
for np in 2 3; do
	cmp -s "$d/np1.tif" "$d/np$np.tif" && echo "ok   np=1 and np=$np identical" || fail "np=1 vs np=$np differ"
done
"$T" "${common[@]}" --threads 2 --out "$d/th2.tif" --job-dir "$d/jobth" >"$d/th.log" 2>&1 || { fail "threads 2"; cat "$d/th.log"; }
cmp -s "$d/np1.tif" "$d/th2.tif" && echo "ok   2 threads identical" || fail "2 threads differ"
ls "$d"/job1/L2/*.tile >/dev/null 2>&1 && [ "$(ls "$d"/job1/L2/*.tile | wc -l)" -eq 12 ] &&
	echo "ok   12 block files at the last level" || fail "block files: $(ls "$d"/job1/L2 2>&1)"
grep -c '"level":2' "$d/job1/log.jsonl" | grep -qx 12 || fail "log.jsonl: 12 lines for level 2 expected"

# the 16-bit history and Adam are spread over the ranks the same way
for opt in "--lbfgs-precision half" "--optimizer adam"; do
	tag=$(echo "$opt" | tr -dc 'a-z')
	# shellcheck disable=SC2086
	run 1 "$d/${tag}1.tif" "$d/job${tag}1" $opt >"$d/$tag.log" 2>&1 &&
		run 2 "$d/${tag}2.tif" "$d/job${tag}2" $opt >>"$d/$tag.log" 2>&1 || { fail "$opt runs"; cat "$d/$tag.log"; }
	cmp -s "$d/${tag}1.tif" "$d/${tag}2.tif" && echo "ok   $opt: np=1 and np=2 identical" || fail "$opt: np=1 vs np=2 differ"
	cmp -s "$d/np1.tif" "$d/${tag}1.tif" && fail "$opt gave the default's bits"
done

# --margin (16, the default, above; 32 here): the blocks cover the level and its
# mirrored margin, the same bits on 1 and 2 ranks, in the plan; tiles touching a border
# too; --margin 0 is another render, and another plan
for mode in global tile; do
	run 1 "$d/m${mode}1.tif" "$d/jobm${mode}1" --margin 32 --gram $mode >"$d/m$mode.log" 2>&1 &&
		run 2 "$d/m${mode}2.tif" "$d/jobm${mode}2" --margin 32 --gram $mode >>"$d/m$mode.log" 2>&1 ||
		{ fail "--margin 32 --gram $mode runs"; cat "$d/m$mode.log"; }
	cmp -s "$d/m${mode}1.tif" "$d/m${mode}2.tif" && echo "ok   --margin 32 --gram $mode: np=1 and np=2 identical" ||
		fail "--margin 32 --gram $mode: np=1 vs np=2 differ"
	grep -q "^margin = 32" "$d/jobm${mode}1/plan.ini" || fail "--gram $mode: plan.ini lacks margin = 32"
done
grep -q "^margin = 16" "$d/job1/plan.ini" || fail "plan.ini lacks the default margin = 16"
cmp -s "$d/np1.tif" "$d/mglobal1.tif" && fail "--margin 32 gave the bits of 16"
run 1 "$d/m0.tif" "$d/jobm0" --margin 0 >"$d/m0.log" 2>&1 || { fail "--margin 0 run"; cat "$d/m0.log"; }
cmp -s "$d/np1.tif" "$d/m0.tif" && fail "--margin 0 gave the bits of 16"
grep -q "^margin" "$d/jobm0/plan.ini" && fail "--margin 0: the plan names a margin"
for mode in global tile; do # the margin cut off: the output's own size
	sz=$(vipsheader -f width "$d/m${mode}1.tif")x$(vipsheader -f height "$d/m${mode}1.tif")
	[ "$sz" = 400x300 ] && echo "ok   --margin --gram $mode: the output is 400x300" ||
		fail "--margin --gram $mode: output $sz"
done

# 2. tile mode is another render (and another plan)
run 1 "$d/tile.tif" "$d/jobtile" --gram tile >"$d/tile.log" 2>&1 || { fail "tile run"; cat "$d/tile.log"; }
cmp -s "$d/np1.tif" "$d/tile.tif" && fail "tile and global gave the same bits"
grep -q "gram = global" "$d/job1/plan.ini" || fail "plan.ini lacks gram = global"
grep -q "gram" "$d/jobtile/plan.ini" && fail "a tile plan names gram (older plans keep their hash)"
if run 1 "$d/x.tif" "$d/job1" --gram tile >"$d/r.log" 2>&1; then
	fail "a tile run in a global job directory was not refused"
else
	echo "ok   tile and global are different plans"
fi

# 3. SIGKILL of a rank during the last level, then the same command on another rank
# count: it goes on from the last saved state (every 5 iterations), the same bits
heavy=(--level-iterations 4,3,40 --checkpoint-every 5)
run 2 "$d/h.tif" "$d/jobh" "${heavy[@]}" >"$d/h.log" 2>&1 || { fail "heavy run"; cat "$d/h.log"; }
wait_line() { # FILE PATTERN: until the file has the line (at most 60 s)
	for _ in $(seq 1 600); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
run_exec 2 "$d/k.tif" "$d/jobk" "${heavy[@]}" --progress on >"$d/k1.log" 2>&1 &
pid=$!
wait_line "$d/k1.log" "level 2: state of iteration 10 saved" || fail "no state saved at iteration 10"
wait_line "$d/k1.log" "level 2: iteration 12/" || fail "never reached iteration 12"
victim=$(pgrep -f "^$T .*$d/jobk" | tail -n 1)
[ -n "$victim" ] && kill -9 "$victim"
wait $pid
[ -f "$d/k.tif" ] && fail "SIGKILL: output exists after the killed run"
[ -f "$d/jobk/L1.tif" ] || fail "SIGKILL: the finished level is gone"
run 3 "$d/k.tif" "$d/jobk" "${heavy[@]}" --progress on >"$d/k2.log" 2>&1 || { fail "resume after SIGKILL"; cat "$d/k2.log"; }
grep -q "level 2: resumed at iteration 1[05] of 40" "$d/k2.log" || { fail "SIGKILL: not resumed from the saved state"; cat "$d/k2.log"; }
cmp -s "$d/h.tif" "$d/k.tif" && echo "ok   SIGKILL at an iteration + resume on 3 ranks identical" || fail "SIGKILL resume differs"
[ "$(grep -c '"level":1' "$d/jobk/log.jsonl")" -eq 4 ] || fail "SIGKILL: level 1 was redone"
ls "$d"/jobk/L2/optim.* >/dev/null 2>&1 && fail "the states of a finished level were left behind"

# 4. SIGTERM: every rank saves the state of its iteration and stops; the resume on
# 1 rank gives the same bits.  Then a corrupt state file: the older state is used.
run_exec 2 "$d/t.tif" "$d/jobt" "${heavy[@]}" --progress on >"$d/t1.log" 2>&1 &
pid=$!
wait_line "$d/t1.log" "level 2: iteration 7/" || fail "never reached iteration 7 (SIGTERM)"
kill -TERM $pid
wait $pid
rc=$?
[ $rc -ne 0 ] || fail "SIGTERM: exit status 0"
grep -q "stopped by a signal" "$d/t1.log" || { fail "SIGTERM: no clean stop"; cat "$d/t1.log"; }
[ -f "$d/t.tif" ] && fail "SIGTERM: output exists after a stopped run"
it=$(grep -o "level 2: state of iteration [0-9]* saved" "$d/t1.log" | tail -n 1 | grep -o "[0-9]* saved" | cut -d' ' -f1)
[ -n "$it" ] && [ "$it" -ge 7 ] || { fail "SIGTERM: the stop saved no state"; cat "$d/t1.log"; }
run 1 "$d/t.tif" "$d/jobt" "${heavy[@]}" --progress on >"$d/t2.log" 2>&1 || { fail "resume after SIGTERM"; cat "$d/t2.log"; }
grep -q "level 2: resumed at iteration $it of 40" "$d/t2.log" || { fail "SIGTERM: not resumed at iteration $it"; cat "$d/t2.log"; }
cmp -s "$d/h.tif" "$d/t.tif" && echo "ok   SIGTERM (state of iteration $it) + resume on 1 rank identical" || fail "SIGTERM resume differs"
# the newest state's block file corrupt: refused, the previous state used
run_exec 2 "$d/q.tif" "$d/jobq" "${heavy[@]}" --progress on >"$d/q1.log" 2>&1 &
pid=$!
wait_line "$d/q1.log" "level 2: state of iteration 10 saved" || fail "no state at 10 (corrupt test)"
kill -TERM $pid
wait $pid
last=$(grep -o "level 2: state of iteration [0-9]* saved" "$d/q1.log" | tail -n 1 | grep -o "[0-9]* saved" | cut -d' ' -f1)
newest=$(ls -t "$d"/jobq/L2/s0_0.* | head -n 1)
printf '\xff\xff' | dd of="$newest" bs=1 seek=300 conv=notrunc 2>/dev/null
run 1 "$d/q.tif" "$d/jobq" "${heavy[@]}" --progress on >"$d/q2.log" 2>&1 || { fail "resume with a corrupt state"; cat "$d/q2.log"; }
grep -q "older state is used" "$d/q2.log" || { fail "corrupt state not reported"; cat "$d/q2.log"; }
grep -q "level 2: resumed at iteration $last of 40" "$d/q2.log" && fail "the corrupt state (iteration $last) was used"
grep -q "level 2: resumed at iteration" "$d/q2.log" || { fail "the older state was not used"; cat "$d/q2.log"; }
cmp -s "$d/h.tif" "$d/q.tif" && echo "ok   corrupt state refused, the older one used, identical" || fail "corrupt state resume differs"

# 5. a corrupt block is reported, the level redone, the output unchanged
blk=$(ls "$d"/job1/L2/*.tile | head -n 1)
printf '\xff' | dd of="$blk" bs=1 seek=200 conv=notrunc 2>/dev/null
run 1 "$d/np1b.tif" "$d/job1" >"$d/c.log" 2>&1 || { fail "run with a corrupt block"; cat "$d/c.log"; }
grep -q "level will be redone" "$d/c.log" && echo "ok   corrupt block reported" || { fail "corrupt block not reported"; cat "$d/c.log"; }
cmp -s "$d/np1.tif" "$d/np1b.tif" && echo "ok   output after redoing the level identical" || fail "output after redoing the level differs"

# 6. --init FILE is resampled as a level is upsampled to the next: the last level's
# start (0 iterations) equals a single-piece render started from the level below
run 1 "$d/z.png" "$d/jobz" --level-iterations 4,3,0 >"$d/z.log" 2>&1 || { fail "0-iteration level"; cat "$d/z.log"; }
"$T" --content "$d/photo.png" --style "$d/paint.png" --width 400 --height 300 --tile 512 \
	--builtin-width 8 --iterations 0 --init "$d/jobz/L1.tif" --progress off --out "$d/zs.png" \
	>"$d/zs.log" 2>&1 || { fail "single-piece render from --init"; cat "$d/zs.log"; }
cmp -s "$d/z.png" "$d/zs.png" && echo "ok   --init FILE resampled as a level is upsampled" || fail "--init FILE and the level's start differ"

# 7. --plan of a global job names the blocks and the halo
run 1 "$d/p.tif" "$d/jobp" --plan >"$d/plan.txt" 2>&1 || fail "--plan"
grep -q "blocks" "$d/plan.txt" && grep -q "halo" "$d/plan.txt" || { fail "--plan: blocks and halo"; cat "$d/plan.txt"; }

# 8. more --level-iterations values than levels: refused, naming the levels
if run 1 "$d/li.tif" "$d/jobli" --level-iterations 4,3,3,2 >"$d/li.log" 2>&1; then
	fail "4 values for 3 levels accepted"
else
	grep -q "4 values, but a 400x300 output .* has 3 levels" "$d/li.log" &&
		echo "ok   too many --level-iterations values refused" || { fail "level-iterations message"; cat "$d/li.log"; }
fi
[ -e "$d/li.tif" ] && fail "refused run wrote output"

# 9. --report in a tiled run: settings, plan, every level with its tiles or blocks,
# ranks, totals (after each level; here the end)
run 2 "$d/rp.tif" "$d/jobrp" --gram tile --report "$d/rt.json" >"$d/rp.log" 2>&1 &&
	run 2 "$d/rq.tif" "$d/jobrq" --report "$d/rg.json" >>"$d/rp.log" 2>&1 || { fail "report runs"; cat "$d/rp.log"; }
if command -v python3 >/dev/null 2>&1; then
	python3 - "$d/rt.json" "$d/rg.json" <<'PYEOF' && echo "ok   job report: levels, tiles and blocks, ranks" || fail "job report contents"
import json, sys
t, g = (json.load(open(p)) for p in sys.argv[1:3])
assert t["settings"]["gram"] == "tile" and g["settings"]["gram"] == "global"
assert [l["level"] for l in t["levels"]] == [0, 1, 2] and t["levels_in_plan"] == 3
assert len(t["levels"][2]["tile_list"]) == t["levels"][2]["tiles"] > 1
assert g["levels"][2]["gram"] == "global" and len(g["levels"][2]["block_list"]) == 12
assert [r["rank"] for r in t["ranks"]] == [0, 1] and sum(r["tiles"] for r in t["ranks"]) == t["tiles_rendered"]
assert all(x["total"] > 0 and x["iterations"] == 3 for x in t["levels"][2]["tile_list"])
assert t["job_seconds"] > 0 and t["plan_hash"] and t["width"] == 400 and t["height"] == 300
PYEOF
fi

# 10. a batch log (--progress auto, no terminal): level and job ETA lines, and the last
# line names the output and its size
"$T" "${common[@]}" --progress auto --progress-every 1 --out "$d/b.tif" --job-dir "$d/jobb" \
	>"$d/b.log" 2>&1 </dev/null || { fail "batch-log run"; cat "$d/b.log"; }
grep -q "^level 0: 1/1 tiles .* ETA .*, job " "$d/b.log" && grep -q "^level 2: iteration 3/3" "$d/b.log" &&
	grep -q "^wrote $d/b.tif (400x300, .* MiB)" "$d/b.log" && echo "ok   batch log: ETA lines and the output named" ||
	{ fail "batch log"; cat "$d/b.log"; }

[ $fails -eq 0 ]
