/* Tests of resample: regions are bit-identical to the whole, identity and constants
 * are preserved, and a smooth ramp is reproduced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/resample.h"

static float *
noise_image(int w, int h, uint32_t seed)
{
	float *p = malloc((size_t)3 * w * h * sizeof *p);

	for (size_t i = 0; i < (size_t)3 * w * h; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = (float)(seed >> 8) / 16777216.0f;
	}
	return p;
}

static void
check_regions(int sw, int sh, int dw, int dh)
{
	float *src = noise_image(sw, sh, 7);
	float *whole = malloc((size_t)3 * dw * dh * sizeof *whole);
	int rects[][4] = { { 0, 0, 1, 1 }, { 3, 2, 7, 5 }, { dw / 3, dh / 4, dw / 2, dh / 2 },
	                   { dw - 5, dh - 3, 5, 3 }, { 0, dh - 1, dw, 1 } };

	assert_int_equal(ts_resample_planar(src, sw, sh, dw, dh, 0, 0, dw, dh, whole), 0);
	for (size_t r = 0; r < sizeof rects / sizeof rects[0]; r++) {
		int x = rects[r][0], y = rects[r][1], w = rects[r][2], h = rects[r][3];
		float *part = malloc((size_t)3 * w * h * sizeof *part);

		assert_int_equal(ts_resample_planar(src, sw, sh, dw, dh, x, y, w, h, part), 0);
		for (int c = 0; c < 3; c++)
			for (int i = 0; i < h; i++)
				assert_memory_equal(part + ((size_t)c * h + i) * w,
				                    whole + ((size_t)c * dh + y + i) * dw + x,
				                    (size_t)w * sizeof(float));
		free(part);
	}
	free(src);
	free(whole);
}

static void
test_region_equals_whole_up(void **state)
{
	(void)state;
	check_regions(23, 17, 50, 37);
	check_regions(20, 20, 40, 40);
}

static void
test_region_equals_whole_down(void **state)
{
	(void)state;
	check_regions(90, 61, 31, 20);
	check_regions(64, 64, 13, 29);
}

static void
test_identity(void **state)
{
	float *src = noise_image(19, 11, 3), *out = malloc(3 * 19 * 11 * sizeof(float));

	(void)state;
	assert_int_equal(ts_resample_planar(src, 19, 11, 19, 11, 0, 0, 19, 11, out), 0);
	assert_memory_equal(src, out, 3 * 19 * 11 * sizeof(float));
	free(src);
	free(out);
}

static void
test_constant_and_ramp(void **state)
{
	int sw = 16, sh = 12, dw = 40, dh = 30;
	float *src = malloc((size_t)3 * sw * sh * sizeof *src);
	float *out = malloc((size_t)3 * dw * dh * sizeof *out);

	(void)state;
	for (int i = 0; i < 3 * sw * sh; i++)
		src[i] = 0.25f;
	assert_int_equal(ts_resample_planar(src, sw, sh, dw, dh, 0, 0, dw, dh, out), 0);
	for (int i = 0; i < 3 * dw * dh; i++)
		assert_true(fabsf(out[i] - 0.25f) < 1e-6f);
	/* a horizontal ramp stays a ramp away from the edges (cubic reproduces lines) */
	for (int c = 0; c < 3; c++)
		for (int i = 0; i < sh; i++)
			for (int j = 0; j < sw; j++)
				src[(c * sh + i) * sw + j] = (float)j;
	assert_int_equal(ts_resample_planar(src, sw, sh, dw, dh, 0, 0, dw, dh, out), 0);
	for (int j = 6; j < dw - 6; j++) {
		double expect = (j + 0.5) * sw / dw - 0.5;
		assert_true(fabs(out[5 * dw + j] - expect) < 1e-4);
	}
	free(src);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_region_equals_whole_up),
		cmocka_unit_test(test_region_equals_whole_down),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_constant_and_ramp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
