/* Tests of tile: feathered weights sum to one (per axis and in 2-D, also where three
 * tiles overlap), blending is lossless bit for bit and independent of the band split,
 * and the blend of disagreeing tiles is continuous across tile borders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/plan.h"
#include "tessera/tile.h"

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

/* Per-axis sums: for every position of the axis, the weights of the covering tiles. */
static void
check_axis_sums(const ts_level *lv, int axis, int expect_max_cover)
{
	int n = axis ? lv->nrows : lv->ncols, t = axis ? lv->th : lv->tw;
	int len = axis ? lv->h : lv->w;
	const int *pos = axis ? lv->ys : lv->xs;
	double *sum = calloc((size_t)len, sizeof *sum);
	int *cover = calloc((size_t)len, sizeof *cover);
	float *wt = malloc((size_t)t * sizeof *wt);
	int max_cover = 0;

	for (int i = 0; i < n; i++) {
		ts_tile_weights_axis(lv, axis, i, wt);
		for (int d = 0; d < t; d++) {
			assert_true(wt[d] > 0.0f && wt[d] <= 1.0f + 1e-6f);
			sum[pos[i] + d] += wt[d];
			cover[pos[i] + d]++;
		}
		/* the middle of a tile with wide enough overlaps is its own */
		if (n == 1)
			for (int d = 0; d < t; d++)
				assert_true(wt[d] == 1.0f);
	}
	for (int p = 0; p < len; p++) {
		assert_true(fabs(sum[p] - 1.0) < 1e-6);
		if (cover[p] > max_cover)
			max_cover = cover[p];
	}
	assert_int_equal(max_cover, expect_max_cover);
	free(sum);
	free(cover);
	free(wt);
}

static void
check_2d_sums(const ts_level *lv)
{
	double *sum = calloc((size_t)lv->w * lv->h, sizeof *sum);
	float *wx = malloc((size_t)lv->tw * sizeof *wx), *wy = malloc((size_t)lv->th * sizeof *wy);

	for (int r = 0; r < lv->nrows; r++) {
		ts_tile_weights_axis(lv, 1, r, wy);
		for (int c = 0; c < lv->ncols; c++) {
			ts_tile_weights_axis(lv, 0, c, wx);
			for (int y = 0; y < lv->th; y++)
				for (int x = 0; x < lv->tw; x++)
					sum[(size_t)(lv->ys[r] + y) * lv->w + lv->xs[c] + x] +=
						(double)wx[x] * wy[y];
		}
	}
	for (size_t i = 0; i < (size_t)lv->w * lv->h; i++)
		assert_true(fabs(sum[i] - 1.0) < 1e-6);
	free(sum);
	free(wx);
	free(wy);
}

static void
test_weights_sum_to_one(void **state)
{
	ts_plan *p;
	const ts_level *lv;

	(void)state;
	/* two tiles per axis */
	p = ts_plan_create(800, 896, 512, 128, 2.0);
	assert_non_null(p);
	lv = &p->level[1];
	assert_int_equal(lv->ncols, 2);
	check_axis_sums(lv, 0, 2);
	check_axis_sums(lv, 1, 2);
	check_2d_sums(lv);
	check_axis_sums(&p->level[0], 0, 1);
	ts_plan_destroy(p);

	/* many tiles */
	p = ts_plan_create(1000, 700, 128, 32, 2.0);
	assert_non_null(p);
	lv = &p->level[p->nlevels - 1];
	assert_true(lv->ncols >= 8 && lv->nrows >= 6);
	check_axis_sums(lv, 0, 2);
	check_axis_sums(lv, 1, 2);
	check_2d_sums(lv);
	ts_plan_destroy(p);

	/* slightly larger than two tiles: three tiles, all three overlap in the middle */
	p = ts_plan_create(120, 121, 64, 16, 2.0);
	assert_non_null(p);
	lv = &p->level[1];
	assert_int_equal(lv->ncols, 3);
	assert_int_equal(lv->nrows, 3);
	check_axis_sums(lv, 0, 3);
	check_axis_sums(lv, 1, 3);
	check_2d_sums(lv);
	ts_plan_destroy(p);

	/* zero overlap: tiles abut, weights are 0/1 */
	p = ts_plan_create(128, 64, 64, 0, 2.0);
	assert_non_null(p);
	lv = &p->level[1];
	assert_int_equal(lv->ncols, 2);
	check_axis_sums(lv, 0, 1);
	ts_plan_destroy(p);
}

/* The ramp: 1 in the interior, raised cosine over the overlap, symmetric. */
static void
test_weights_shape(void **state)
{
	ts_plan *p = ts_plan_create(1000, 64, 128, 32, 2.0);
	const ts_level *lv;
	float w[128];
	int c, ol, orr;

	(void)state;
	assert_non_null(p);
	lv = &p->level[p->nlevels - 1];
	c = 2; /* an inner column */
	ts_tile_weights_axis(lv, 0, c, w);
	ol = lv->xs[c - 1] + lv->tw - lv->xs[c];
	orr = lv->xs[c] + lv->tw - lv->xs[c + 1];
	assert_true(ol >= 32 && orr >= 32);
	for (int d = ol; d < lv->tw - orr; d++)
		assert_true(w[d] == 1.0f);
	for (int d = 1; d < ol; d++)
		assert_true(w[d] > w[d - 1]); /* rising across the left overlap */
	assert_true(w[0] < 0.01f);
	/* in a two-tile overlap the pair is r(d) and r(o - 1 - d), which sum to one */
	assert_true(fabsf(w[0] - (float)(0.5 - 0.5 * cos(M_PI * 0.5 / ol))) < 1e-6f);
	/* the first column is not ramped at the picture's edge */
	ts_tile_weights_axis(lv, 0, 0, w);
	assert_true(w[0] == 1.0f);
	ts_plan_destroy(p);
}

typedef struct tiles_ctx {
	const ts_level *lv;
	const float *img; /* [3, h, w] the level image the tiles are cropped from */
	float *buf;       /* [3, th, tw] */
	int calls, fail_at;
	float *consts;    /* [nrows, ncols] or NULL: constant tiles */
	int perturb;      /* add 0.01 * tile index to every crop */
} tiles_ctx;

static const float *
get_tile(void *user, int row, int col)
{
	tiles_ctx *t = user;
	const ts_level *lv = t->lv;

	if (t->calls++ == t->fail_at) {
		ts_error("test", "tile %d_%d unavailable", row, col);
		return NULL;
	}
	if (t->consts) {
		for (size_t i = 0; i < (size_t)3 * lv->tw * lv->th; i++)
			t->buf[i] = t->consts[row * lv->ncols + col];
	} else {
		ts_tile_crop(t->img, lv->w, lv->h, lv->xs[col], lv->ys[row], lv->tw, lv->th,
		             t->buf);
		if (t->perturb)
			for (size_t i = 0; i < (size_t)3 * lv->tw * lv->th; i++)
				t->buf[i] += 0.01f * (float)(row * lv->ncols + col);
	}
	return t->buf;
}

/* Blend a whole level in bands of band rows into out [3, h, w]. */
static int
blend_level(tiles_ctx *t, int band, float *out)
{
	const ts_level *lv = t->lv;
	float *b = malloc((size_t)3 * band * lv->w * sizeof *b);
	int ret = 0;

	for (int y0 = 0; y0 < lv->h && !ret; y0 += band) {
		int y1 = y0 + band < lv->h ? y0 + band : lv->h;

		ret = ts_blend_band(lv, y0, y1, get_tile, t, b);
		for (int c = 0; c < 3 && !ret; c++)
			memcpy(out + ((size_t)c * lv->h + y0) * lv->w, b + (size_t)c * (y1 - y0) * lv->w,
			       (size_t)(y1 - y0) * lv->w * sizeof *out);
	}
	free(b);
	return ret;
}

static void
check_lossless(int w, int h, int tile, int overlap)
{
	ts_plan *p = ts_plan_create(w, h, tile, overlap, 2.0);
	const ts_level *lv;
	tiles_ctx t = { 0 };
	float *img, *out, *out2;
	const int bands[] = { 1, 7, 37, 1000 };

	assert_non_null(p);
	lv = &p->level[p->nlevels - 1];
	img = noise_image(w, h, (uint32_t)(w * 31 + h));
	out = malloc((size_t)3 * w * h * sizeof *out);
	out2 = malloc((size_t)3 * w * h * sizeof *out2);
	t.lv = lv;
	t.img = img;
	t.buf = malloc((size_t)3 * lv->tw * lv->th * sizeof *t.buf);
	t.fail_at = -1;
	for (size_t b = 0; b < sizeof bands / sizeof bands[0]; b++) {
		assert_int_equal(blend_level(&t, bands[b], out), 0);
		assert_memory_equal(out, img, (size_t)3 * w * h * sizeof *out);
	}
	/* disagreeing tiles (each crop perturbed by its index) give the same blend
	 * whatever the band split */
	t.perturb = 1;
	assert_int_equal(blend_level(&t, 13, out), 0);
	assert_int_equal(blend_level(&t, h, out2), 0);
	assert_memory_equal(out, out2, (size_t)3 * w * h * sizeof *out);
	if (lv->ncols * lv->nrows > 1)
		assert_memory_not_equal(out, img, (size_t)3 * w * h * sizeof *out);
	free(t.buf);
	free(img);
	free(out);
	free(out2);
	ts_plan_destroy(p);
}

static void
test_lossless(void **state)
{
	(void)state;
	check_lossless(300, 200, 128, 32); /* 3x2 grid */
	check_lossless(120, 121, 64, 16);  /* three tiles overlapping */
	check_lossless(500, 90, 64, 24);   /* many columns */
	check_lossless(50, 40, 64, 16);    /* one tile */
}

/* Constant tiles with different values: the blend stays between them and has no jump
 * at any tile border. */
static void
test_continuous(void **state)
{
	ts_plan *p = ts_plan_create(400, 300, 128, 48, 2.0);
	const ts_level *lv;
	tiles_ctx t = { 0 };
	float *out;
	double maxstep = 0.0;

	(void)state;
	assert_non_null(p);
	lv = &p->level[p->nlevels - 1];
	t.lv = lv;
	t.fail_at = -1;
	t.buf = malloc((size_t)3 * lv->tw * lv->th * sizeof *t.buf);
	t.consts = malloc((size_t)lv->nrows * lv->ncols * sizeof *t.consts);
	for (int i = 0; i < lv->nrows * lv->ncols; i++)
		t.consts[i] = (float)((i / lv->ncols + i % lv->ncols) % 2); /* checkerboard */
	out = malloc((size_t)3 * lv->w * lv->h * sizeof *out);
	assert_int_equal(blend_level(&t, 50, out), 0);
	for (int y = 0; y < lv->h; y++)
		for (int x = 0; x < lv->w; x++) {
			float v = out[(size_t)y * lv->w + x];

			assert_true(v >= 0.0f && v <= 1.0f);
			if (x > 0 && fabs(v - out[(size_t)y * lv->w + x - 1]) > maxstep)
				maxstep = fabs(v - out[(size_t)y * lv->w + x - 1]);
			if (y > 0 && fabs(v - out[(size_t)(y - 1) * lv->w + x]) > maxstep)
				maxstep = fabs(v - out[(size_t)(y - 1) * lv->w + x]);
		}
	/* a hard border would jump by 1; the raised cosine over >= 48 px rises at most
	 * pi / (2 * 48) ~ 0.033 per pixel */
	assert_true(maxstep < 0.05);
	assert_true(maxstep > 0.0);
	/* tile interiors keep their value */
	assert_true(out[(size_t)10 * lv->w + 10] == t.consts[0]);
	free(out);
	free(t.buf);
	free(t.consts);
	ts_plan_destroy(p);
}

static void
test_band_rows_and_errors(void **state)
{
	ts_plan *p = ts_plan_create(300, 300, 128, 32, 2.0);
	const ts_level *lv;
	tiles_ctx t = { 0 };
	float *img, *out;
	int r0, r1;

	(void)state;
	assert_non_null(p);
	lv = &p->level[p->nlevels - 1];
	assert_int_equal(lv->nrows, 3);
	ts_tile_band_rows(lv, 0, 1, &r0, &r1);
	assert_int_equal(r0, 0);
	assert_int_equal(r1, 1);
	ts_tile_band_rows(lv, lv->ys[1], lv->ys[1] + 1, &r0, &r1);
	assert_int_equal(r0, 0);
	assert_int_equal(r1, 2);
	ts_tile_band_rows(lv, 0, lv->h, &r0, &r1);
	assert_int_equal(r0, 0);
	assert_int_equal(r1, 3);
	ts_tile_band_rows(lv, lv->h - 1, lv->h, &r0, &r1);
	assert_int_equal(r0, 2);
	assert_int_equal(r1, 3);

	/* a failing tile source fails the band, keeping its message */
	img = noise_image(lv->w, lv->h, 5);
	out = malloc((size_t)3 * lv->w * lv->h * sizeof *out);
	t.lv = lv;
	t.img = img;
	t.buf = malloc((size_t)3 * lv->tw * lv->th * sizeof *t.buf);
	t.fail_at = 4;
	assert_int_equal(ts_blend_band(lv, 0, lv->h, get_tile, &t, out), -1);
	assert_non_null(strstr(ts_errmsg(), "unavailable"));
	/* get is called once per tile meeting the band */
	t.fail_at = -1;
	t.calls = 0;
	assert_int_equal(ts_blend_band(lv, 0, 10, get_tile, &t, out), 0);
	assert_int_equal(t.calls, lv->ncols);
	free(t.buf);
	free(img);
	free(out);
	ts_plan_destroy(p);
}

static void
test_crop(void **state)
{
	float *img = noise_image(20, 10, 3), out[3 * 4 * 5];

	(void)state;
	ts_tile_crop(img, 20, 10, 15, 6, 5, 4, out);
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < 4; y++)
			for (int x = 0; x < 5; x++)
				assert_true(out[(c * 4 + y) * 5 + x] ==
				            img[(c * 10 + 6 + y) * 20 + 15 + x]);
	free(img);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weights_sum_to_one),
		cmocka_unit_test(test_weights_shape),
		cmocka_unit_test(test_lossless),
		cmocka_unit_test(test_continuous),
		cmocka_unit_test(test_band_rows_and_errors),
		cmocka_unit_test(test_crop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
