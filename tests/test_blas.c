/* Tests of blas: the class of OpenBLAS core names, the choice of the core to restart
 * with, and ts_blas_init's two no-restart paths (the user's OPENBLAS_CORETYPE, and the
 * restarted process reporting what happened).  The restart itself is tested through
 * the tessera binary by tests/t_blas.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tessera/blas.h"

static void
test_class(void **state)
{
	(void)state;
	assert_int_equal(ts_blas_class("SkylakeX"), TS_BLAS_AVX512);
	assert_int_equal(ts_blas_class("COOPERLAKE"), TS_BLAS_AVX512);
	assert_int_equal(ts_blas_class("SapphireRapids"), TS_BLAS_AVX512);
	assert_int_equal(ts_blas_class("Haswell"), TS_BLAS_AVX2);
	assert_int_equal(ts_blas_class("zen"), TS_BLAS_AVX2);
	assert_int_equal(ts_blas_class("Prescott"), TS_BLAS_GENERIC);
	assert_int_equal(ts_blas_class("Sandybridge"), TS_BLAS_GENERIC);
	assert_int_equal(ts_blas_class("Skylake"), TS_BLAS_GENERIC); /* not a prefix match */
	assert_int_equal(ts_blas_class(""), TS_BLAS_GENERIC);
	assert_int_equal(ts_blas_class(NULL), TS_BLAS_GENERIC);
}

static void
test_better_core(void **state)
{
	(void)state;
	/* OpenBLAS fell back to generic kernels: the CPU's class decides */
	assert_string_equal(ts_blas_better_core("Prescott", TS_BLAS_AVX512), "SkylakeX");
	assert_string_equal(ts_blas_better_core("Core2", TS_BLAS_AVX2), "Haswell");
	assert_null(ts_blas_better_core("Prescott", TS_BLAS_GENERIC));
	/* OpenBLAS recognised the CPU: never overruled, not even an AVX2 choice on an
	 * AVX-512 CPU */
	assert_null(ts_blas_better_core("SkylakeX", TS_BLAS_AVX512));
	assert_null(ts_blas_better_core("Zen", TS_BLAS_AVX512));
	assert_null(ts_blas_better_core("Haswell", TS_BLAS_AVX2));
}

static void
test_cpu_class_consistent(void **state)
{
	int c = ts_blas_cpu_class();

	(void)state;
	assert_true(c == TS_BLAS_GENERIC || c == TS_BLAS_AVX2 || c == TS_BLAS_AVX512);
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
	defined(__AVX512VL__) && defined(__AVX512CD__)
	/* built with -march=native on an AVX-512 machine and running there */
	assert_int_equal(c, TS_BLAS_AVX512);
#elif defined(__AVX2__) && defined(__FMA__)
	assert_true(c >= TS_BLAS_AVX2);
#endif
}

/* The user's OPENBLAS_CORETYPE is left alone: ts_blas_init returns at once (were it to
 * exec, this test binary would start again from the top and never report). */
static void
test_init_respects_user(void **state)
{
	char *argv[] = { "test_blas", NULL };

	(void)state;
	setenv("OPENBLAS_CORETYPE", "Prescott", 1);
	unsetenv("TESSERA_BLAS_RESTARTED");
	ts_blas_init(argv);
	assert_null(ts_blas_note());
	assert_string_equal(getenv("OPENBLAS_CORETYPE"), "Prescott");
	unsetenv("OPENBLAS_CORETYPE");
}

/* In the restarted process, ts_blas_init says what happened and clears its marker. */
static void
test_init_after_restart(void **state)
{
	char *argv[] = { "test_blas", NULL };
	const char *n;

	(void)state;
	setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
	setenv("TESSERA_BLAS_RESTARTED", "Prescott", 1);
	ts_blas_init(argv);
	assert_null(getenv("TESSERA_BLAS_RESTARTED"));
	n = ts_blas_note();
	assert_non_null(n);
	assert_non_null(strstr(n, "OpenBLAS chose Prescott kernels"));
	/* this process's OpenBLAS was loaded before the setenv: if it runs generic
	 * kernels, the note says BLAS is slow; otherwise it names the kernels in use */
	if (ts_blas_class(ts_blas_core()) == TS_BLAS_GENERIC)
		assert_non_null(strstr(n, "runs slowly"));
	else
		assert_non_null(strstr(n, ts_blas_core()));
	unsetenv("OPENBLAS_CORETYPE");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_class),
		cmocka_unit_test(test_better_core),
		cmocka_unit_test(test_cpu_class_consistent),
		cmocka_unit_test(test_init_respects_user),
		cmocka_unit_test(test_init_after_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
