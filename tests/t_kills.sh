#!/usr/bin/env bash
# SIGKILL at random moments (issue 15, fault tests): for np 1 and np 2, KILLS jobs
# are each started and killed (the process, or one rank chosen at random) at a random
# delay within an unbroken run's time, then resumed; every resume must finish with the
# same bits as the unbroken run.  After every kill nothing of the job is left in
# /dev/shm; after every resume no *.part is left in the job directory.  The random seed is printed (SEED=... reproduces a run).
set -u
T=$(readlink -f "${TESSERA:-./tessera}")
MK=$(readlink -f "${MKDEMO:-build/mkdemo}")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
KILLS=${KILLS:-6}
SEED=${SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
d=$(mktemp -d)
trap 'for p in $(pgrep -f "^$T .*$d/"); do kill -9 "$p"; done 2>/dev/null; rm -rf "$d"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }
echo "seed $SEED"
"$MK" "$d/photo.png" "$d/paint.png" || exit 1
common=(--content "$d/photo.png" --style "$d/paint.png" --width 208 --tile 64 --overlap 16
	--builtin-width 8 --level-iterations 6,4,30 --threads 1 --progress off)
shm_names() { ls /dev/shm 2>/dev/null | grep '^tessera-' | sort; }
shm_before=$(shm_names)
launch() { # launch NP NAME: in the foreground
	if [ "$1" = 1 ]; then
		"$T" "${common[@]}" --out "$d/$2.tif" --job-dir "$d/$2"
	else
		mpirun -np "$1" --oversubscribe "$T" "${common[@]}" --out "$d/$2.tif" --job-dir "$d/$2"
	fi
}

t0=$(date +%s.%N)
launch 1 ref >"$d/ref.log" 2>&1 || { fail "reference run"; cat "$d/ref.log"; exit 1; }
t1=$(date +%s.%N)
# delays up to the reference's run time (in ms), so that kills land anywhere in a run
span=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1000 }')
[ "$span" -ge 200 ] || span=200

for np in 1 2; do
	f0=$fails
	killed=0
	for i in $(seq 1 "$KILLS"); do
		name=k$np.$i
		ms=$(( RANDOM % span + 20 ))
		( launch "$np" "$name" ) >"$d/$name.log" 2>&1 &
		bg=$!
		sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
		ranks=$(pgrep -f "^$T .*$d/$name\.tif")
		if [ -n "$ranks" ]; then
			n=$(echo "$ranks" | wc -l)
			victim=$(echo "$ranks" | sed -n "$(( RANDOM % n + 1 ))p")
			kill -9 "$victim" 2>/dev/null && killed=$((killed+1))
		fi
		wait $bg
		rc=$?
		sleep 0.3 # the launcher's kill of the other rank
		left=$(comm -13 <(echo "$shm_before") <(shm_names))
		if [ -n "$left" ]; then
			fail "np $np: kill $i at ${ms} ms left in /dev/shm: $left"
			for x in $left; do rm -f "/dev/shm/$x"; done
		fi
		# a run the kill missed (it had ended) must have ended well
		[ -z "$ranks" ] && [ "$rc" -ne 0 ] && { fail "np $np: run $i exited $rc"; cat "$d/$name.log"; }
		tiles=$(ls "$d/$name"/L*/*.tile 2>/dev/null | wc -l)
		launch "$np" "$name" >"$d/$name.resume.log" 2>&1 ||
			{ fail "np $np: the resume after kill $i"; cat "$d/$name.resume.log"; }
		cmp -s "$d/ref.tif" "$d/$name.tif" ||
			fail "np $np: kill $i at $ms ms: the resumed output differs from the unbroken run"
		parts=$(find "$d/$name" -name '*.part')
		[ -z "$parts" ] || fail "np $np: kill $i: .part files left: $parts"
		[ -z "$(comm -13 <(echo "$shm_before") <(shm_names))" ] ||
			fail "np $np: the resume after kill $i left shared memory"
		echo "     np $np: SIGKILL $i at $ms ms (exit $rc, $tiles tiles kept), resumed"
	done
	[ $fails -eq $f0 ] &&
		echo "ok   np $np: $killed of $KILLS SIGKILLs hit a run; each resumed to identical bits, no .part, /dev/shm clean"
done
[ $fails -eq 0 ]
