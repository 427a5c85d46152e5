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

/* ts_mirror_index against the definition: the row mirrored with its edge repeated,
 * periodic with period 2n */
static void
test_mirror_index(void **state)
{
	(void)state;
	for (int n = 1; n <= 5; n++)
		for (int i = -3 * n; i < 4 * n; i++) {
			int m = ((i % (2 * n)) + 2 * n) % (2 * n), want = m < n ? m : 2 * n - 1 - m;

			assert_int_equal(ts_mirror_index(i, n), want);
		}
	assert_int_equal(ts_mirror_index(-1, 7), 0);
	assert_int_equal(ts_mirror_index(7, 7), 6);
	assert_int_equal(ts_mirror_index(-2, 7), 1);
}

static int read_calls;

static int
read_planar(void *user, int x, int y, int w, int h, float *out)
{
	const float *p = user; /* a 9 x 6 picture */

	read_calls++;
	assert_true(x >= 0 && y >= 0 && x + w <= 9 && y + h <= 6 && w > 0 && h > 0);
	for (int c = 0; c < 3; c++)
		for (int i = 0; i < h; i++)
			memcpy(out + ((size_t)c * h + i) * w, p + ((size_t)c * 6 + y + i) * 9 + x,
			       (size_t)w * sizeof *out);
	return 0;
}

/* A margin extended, then cut, gives the picture back bit for bit; a mirrored region
 * read is the extended picture's rectangle, whatever side or corner it reaches past,
 * with one read inside the picture; a margin wider than the picture folds again. */
static void
test_margins(void **state)
{
	int w = 9, h = 6, l = 4, t = 3, r = 11, b = 2, ew = w + l + r, eh = h + t + b;
	float *src = noise_image(w, h, 11), *ext = malloc((size_t)3 * ew * eh * sizeof *ext);
	float *back = malloc((size_t)3 * w * h * sizeof *back);
	int rects[][4] = { { -4, -3, 24, 11 }, { -2, 1, 5, 4 }, { 6, -3, 12, 2 },
	                   { 8, 5, 12, 3 },    { 1, 1, 3, 3 },  { -4, 6, 4, 2 } };

	(void)state;
	ts_margin_extend(src, w, h, l, t, r, b, ext);
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < eh; y++)
			for (int x = 0; x < ew; x++)
				assert_true(ext[((size_t)c * eh + y) * ew + x] ==
				            src[((size_t)c * h + ts_mirror_index(y - t, h)) * w +
				                ts_mirror_index(x - l, w)]);
	/* the first column left of the border repeats the edge (x[-1] = x[0]) */
	assert_true(ext[(size_t)t * ew + l - 1] == src[0]);
	ts_margin_cut(ext, w, h, l, t, r, b, back);
	assert_memory_equal(back, src, (size_t)3 * w * h * sizeof *src);
	for (size_t k = 0; k < sizeof rects / sizeof rects[0]; k++) {
		int x = rects[k][0], y = rects[k][1], rw = rects[k][2], rh = rects[k][3];
		float *part = malloc((size_t)3 * rw * rh * sizeof *part);

		read_calls = 0;
		assert_int_equal(ts_region_mirrored(read_planar, src, w, h, x, y, rw, rh, part), 0);
		assert_int_equal(read_calls, 1);
		for (int c = 0; c < 3; c++)
			for (int i = 0; i < rh; i++)
				assert_memory_equal(part + ((size_t)c * rh + i) * rw,
				                    ext + ((size_t)c * eh + y + t + i) * ew + x + l,
				                    (size_t)rw * sizeof *part);
		free(part);
	}
	free(src);
	free(ext);
	free(back);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_region_equals_whole_up),
		cmocka_unit_test(test_region_equals_whole_down),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_constant_and_ramp),
		cmocka_unit_test(test_mirror_index),
		cmocka_unit_test(test_margins),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
