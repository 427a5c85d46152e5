#!/usr/bin/env bash
# OpenBLAS's kernels: without OPENBLAS_CORETYPE, tessera runs kernels of the class its
# CPU supports (restarting itself when OpenBLAS did not recognise the CPU and fell back
# to generic ones); with OPENBLAS_CORETYPE set, it runs what the user chose.
set -u
T=${TESSERA:-./tessera}
fails=0
kernels() { sed -n 's/^OpenBLAS kernels: //p'; }

k=$(env -u OPENBLAS_CORETYPE "$T" --version | kernels)
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
if has avx512f avx512cd avx512bw avx512dq avx512vl; then
	want="SkylakeX|Cooperlake|SapphireRapids|Zen|Haswell"
elif has avx2 fma; then
	want="Haswell|Zen|Excavator|SkylakeX|Cooperlake|SapphireRapids"
else
	want=".+"
fi
if [[ "$k" =~ ^($want)$ ]]; then
	echo "ok   default kernels: $k"
else
	echo "FAIL default kernels: '$k', expected one of $want for this CPU"; fails=$((fails+1))
fi

k=$(OPENBLAS_CORETYPE=Prescott "$T" --version | kernels)
if [ "$k" = Prescott ]; then
	echo "ok   OPENBLAS_CORETYPE=Prescott kept"
else
	echo "FAIL OPENBLAS_CORETYPE=Prescott gave '$k'"; fails=$((fails+1))
fi
exit $fails
