#!/usr/bin/env bash
# t_fuzz: the libFuzzer harnesses of tests/fuzz/ against a clang ASan+UBSan build
# (make fuzz, build-fuzz/).  (a) Replays the regression corpus, which mkcorpus writes
# here (no binary file is committed), through every harness that reads that kind of
# input; (b) fuzzes each harness for FUZZ_TIME seconds (25) from that corpus.  Any crash,
# sanitizer report, leak, timeout or out-of-memory fails, printing the input's path
# (kept under build-fuzz/artifacts/) and the report.
#
# Without clang or libFuzzer's runtime it prints why and passes as a skip
# (tools/deps.sh installs both).  FUZZ_TIME=0 replays only.
set -u
cd "$(dirname "$0")/.." || exit 2
FUZZ_TIME=${FUZZ_TIME:-25}
CLANG=${FUZZ_CC:-clang}
bin=build-fuzz/fuzz
keep=build-fuzz/artifacts
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT

# harness:corpus folders it reads (mkcorpus writes one folder per kind of input)
harnesses="safetensors:safetensors,caffe caffe:caffe,safetensors pth:pth,safetensors ini:ini argv:argv
image:image,tiff tiff_region:tiff,image ckpt:ckpt plan:ini,ckpt"

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "t_fuzz: skipped: no $CLANG (bash tools/deps.sh installs clang)"
	exit 0
fi
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ return 0; }\n' \
	>"$d/probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined -o "$d/probe" "$d/probe.c" \
	>"$d/probe.log" 2>&1; then
	cat "$d/probe.log"
	echo "t_fuzz: skipped: $CLANG cannot link libFuzzer (bash tools/deps.sh installs" \
	     "libclang-rt-dev)"
	exit 0
fi
if ! make -j2 fuzz FUZZ_CC="$CLANG" >"$d/build.log" 2>&1; then
	tail -n 40 "$d/build.log"
	echo "t_fuzz: make fuzz failed"
	exit 1
fi

# every harness built has its line above, so none goes untested
for f in tests/fuzz/fuzz_*.c; do
	n=$(basename "$f" .c)
	n=${n#fuzz_}
	case " $(echo $harnesses) " in
	*" $n:"*) ;;
	*) echo "t_fuzz: tests/fuzz/fuzz_$n.c has no line in t_fuzz.sh's harness list"; exit 1 ;;
	esac
done

mkdir -p "$d/corpus"
"$bin/mkcorpus" "$d/corpus" || { echo "t_fuzz: mkcorpus failed"; exit 1; }

# leaks are errors too; UBSan (built not to recover) stops at its first report
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
fails=0

# report NAME LOG WHAT: print the failing input(s) and the sanitizer's report
report() {
	local name=$1 log=$2 what=$3 a

	fails=$((fails + 1))
	echo "FAIL $name: $what"
	for a in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
		mkdir -p "$keep"
		cp "$a" "$keep/" && echo "  input: $keep/$(basename "$a")" \
			"(reproduce: $bin/fuzz_$name $keep/$(basename "$a"))"
	done
	grep -E '^(Running|Executing): ' "$log" | tail -n 1 | sed 's/^/  last input: /'
	echo "  ---- report (tail of the log) ----"
	grep -v -E '^(Running|Executing): |^Executed .* in [0-9]+ ms$' "$log" | tail -n 60 |
		sed 's/^/  /'
}

# (a) the regression corpus, each file once through every harness that reads its kind
for h in $harnesses; do
	name=${h%%:*}
	dirs=${h#*:}
	files=()
	for k in ${dirs//,/ }; do
		files+=("$d/corpus/$k"/*)
	done
	log="$d/replay_$name.log"
	if "$bin/fuzz_$name" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$d/art_$name-" \
		"${files[@]}" >"$log" 2>&1; then
		echo "ok   replay fuzz_$name: ${#files[@]} inputs"
	else
		report "$name" "$log" "replaying the regression corpus"
	fi
done

# (b) bounded fuzzing from the corpus; new inputs go to a scratch folder
if [ "$FUZZ_TIME" -gt 0 ]; then
	for h in $harnesses; do
		name=${h%%:*}
		dirs=${h#*:}
		seeds=()
		for k in ${dirs//,/ }; do
			seeds+=("$d/corpus/$k")
		done
		mkdir -p "$d/work_$name"
		log="$d/fuzz_$name.log"
		if "$bin/fuzz_$name" -max_total_time="$FUZZ_TIME" -rss_limit_mb=2048 -timeout=10 \
			-print_final_stats=1 -artifact_prefix="$d/art_$name-" \
			"$d/work_$name" "${seeds[@]}" >"$log" 2>&1; then
			echo "ok   fuzz_$name: $(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$log" |
				grep -Eo '[0-9]+') runs in ${FUZZ_TIME}s," \
				"$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -n 1 |
				grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+')"
		else
			report "$name" "$log" "fuzzing found a crash"
		fi
	done
fi

if [ "$fails" -ne 0 ]; then
	echo "t_fuzz: $fails failure(s)"
	exit 1
fi
echo "t_fuzz: all harnesses clean"
