/* blas: OpenBLAS's kernel choice checked against the CPU (see blas.h). */
#include "tessera/blas.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Set in the restarted process: the core OpenBLAS chose before the restart. */
#define REEXEC_ENV "TESSERA_BLAS_RESTARTED"

static char note[256];

int
ts_blas_class(const char *corename)
{
	static const char *const avx512[] = { "skylakex", "cooperlake", "sapphirerapids" };
	static const char *const avx2[] = { "haswell", "zen", "excavator" };

	if (!corename)
		return TS_BLAS_GENERIC;
	for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++)
		if (!strcasecmp(corename, avx512[i]))
			return TS_BLAS_AVX512;
	for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++)
		if (!strcasecmp(corename, avx2[i]))
			return TS_BLAS_AVX2;
	return TS_BLAS_GENERIC;
}

int
ts_blas_cpu_class(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
	    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512vl"))
		return TS_BLAS_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return TS_BLAS_AVX2;
#endif
	return TS_BLAS_GENERIC;
}

const char *
ts_blas_better_core(const char *corename, int cpu_class)
{
	/* OpenBLAS recognised the CPU (an AVX2 choice on an AVX-512 CPU may be deliberate,
	 * as for some AMD models): leave it */
	if (ts_blas_class(corename) != TS_BLAS_GENERIC)
		return NULL;
	switch (cpu_class) {
	case TS_BLAS_AVX512:
		return "SkylakeX";
	case TS_BLAS_AVX2:
		return "Haswell";
	default:
		return NULL;
	}
}

const char *
ts_blas_core(void)
{
	return openblas_get_corename();
}

const char *
ts_blas_note(void)
{
	return note[0] ? note : NULL;
}

void
ts_blas_init(char **argv)
{
	const char *before = getenv(REEXEC_ENV);
	const char *want;
	char was[48];

	if (before) {
		/* the restarted process */
		snprintf(was, sizeof was, "%s", before);
		unsetenv(REEXEC_ENV);
		if (ts_blas_class(ts_blas_core()) == TS_BLAS_GENERIC)
			snprintf(note, sizeof note, "OpenBLAS chose %s kernels for this CPU and "
			         "ignored OPENBLAS_CORETYPE=%s: BLAS runs slowly", was,
			         getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "?");
		else
			snprintf(note, sizeof note, "OpenBLAS chose %s kernels for this CPU; "
			         "restarted with OPENBLAS_CORETYPE=%s", was, ts_blas_core());
		return;
	}
	if (getenv("OPENBLAS_CORETYPE") || !argv || !argv[0])
		return;
	if (!(want = ts_blas_better_core(ts_blas_core(), ts_blas_cpu_class())))
		return;
	snprintf(was, sizeof was, "%s", ts_blas_core());
	if (setenv("OPENBLAS_CORETYPE", want, 1) || setenv(REEXEC_ENV, was, 1))
		return;
	fflush(NULL);
	execv("/proc/self/exe", argv);
	/* still here: run on the kernels OpenBLAS chose */
	snprintf(note, sizeof note, "OpenBLAS chose %s kernels for this CPU and the restart "
	         "with OPENBLAS_CORETYPE=%s failed (%s): BLAS runs slowly", was, want,
	         strerror(errno));
	unsetenv("OPENBLAS_CORETYPE");
	unsetenv(REEXEC_ENV);
}
