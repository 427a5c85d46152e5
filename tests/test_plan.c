/* Tests of plan: pyramid sizes, tile grids (start at 0, end at the level size, overlap
 * at least O, cover every pixel), rejection of bad numbers, the plan hash and text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/plan.h"

/* Check one axis of a grid: start 0, end n, increasing, overlaps >= o (if > 1 tile),
 * tile length min(n, t), count as specified. */
static void
check_axis(const int *pos, int count, int len, int n, int t, int o)
{
	assert_true(count >= 1);
	assert_int_equal(len, n <= t ? n : t);
	assert_int_equal(pos[0], 0);
	assert_int_equal(pos[count - 1] + len, n);
	if (n <= t) {
		assert_int_equal(count, 1);
		return;
	}
	assert_int_equal(count, (n - o + (t - o) - 1) / (t - o));
	for (int i = 1; i < count; i++) {
		assert_true(pos[i] > pos[i - 1]);
		assert_true(pos[i - 1] + len - pos[i] >= o); /* overlap, hence no gap */
	}
}

static void
check_plan(const ts_plan *p, int w, int h, int t, int o, double f)
{
	const ts_level *last = &p->level[p->nlevels - 1];

	assert_true(p->nlevels >= 1 && p->nlevels <= TS_MAX_LEVELS);
	assert_int_equal(last->w, w);
	assert_int_equal(last->h, h);
	assert_true(p->level[0].w <= t && p->level[0].h <= t);
	assert_int_equal(ts_plan_ntiles(p, 0), 1);
	for (int k = 0; k < p->nlevels; k++) {
		const ts_level *lv = &p->level[k];

		if (k > 0) {
			const ts_level *up = lv;
			const ts_level *dn = &p->level[k - 1];
			int ew = (int)floor(up->w / f + 0.5), eh = (int)floor(up->h / f + 0.5);

			/* level k-1 is level k divided by f; only level 0 fits in one tile */
			assert_int_equal(dn->w, ew < 1 ? 1 : ew);
			assert_int_equal(dn->h, eh < 1 ? 1 : eh);
			assert_true(lv->w > t || lv->h > t);
		}
		check_axis(lv->xs, lv->ncols, lv->tw, lv->w, t, o);
		check_axis(lv->ys, lv->nrows, lv->th, lv->h, t, o);
		assert_int_equal(ts_plan_ntiles(p, k), lv->ncols * lv->nrows);
	}
}

static void
test_one_tile(void **state)
{
	ts_plan *p = ts_plan_create(300, 200, 512, 128, 2.0);
	int x, y, w, h;

	(void)state;
	assert_non_null(p);
	assert_int_equal(p->nlevels, 1);
	assert_int_equal(p->level[0].ncols, 1);
	assert_int_equal(p->level[0].nrows, 1);
	ts_plan_tile_rect(p, 0, 0, 0, &x, &y, &w, &h);
	assert_int_equal(x, 0);
	assert_int_equal(y, 0);
	assert_int_equal(w, 300);
	assert_int_equal(h, 200);
	check_plan(p, 300, 200, 512, 128, 2.0);
	ts_plan_destroy(p);

	/* exactly the tile side is still one tile */
	p = ts_plan_create(512, 512, 512, 128, 2.0);
	assert_non_null(p);
	assert_int_equal(p->nlevels, 1);
	assert_int_equal(ts_plan_total_tiles(p), 1);
	ts_plan_destroy(p);
}

static void
test_two_tiles(void **state)
{
	ts_plan *p;
	int ox, oy;

	(void)state;
	/* 896 = 2T - O: two tiles overlapping by exactly O */
	p = ts_plan_create(896, 400, 512, 128, 2.0);
	assert_non_null(p);
	assert_int_equal(p->nlevels, 2);
	assert_int_equal(p->level[0].w, 448);
	assert_int_equal(p->level[0].h, 200);
	assert_int_equal(p->level[1].ncols, 2);
	assert_int_equal(p->level[1].nrows, 1);
	assert_int_equal(p->level[1].xs[0], 0);
	assert_int_equal(p->level[1].xs[1], 384);
	ts_plan_min_overlap(p, 1, &ox, &oy);
	assert_int_equal(ox, 128);
	check_plan(p, 896, 400, 512, 128, 2.0);
	ts_plan_destroy(p);

	/* 800: two tiles overlapping by more */
	p = ts_plan_create(800, 800, 512, 128, 2.0);
	assert_non_null(p);
	assert_int_equal(p->level[1].ncols, 2);
	assert_int_equal(p->level[1].nrows, 2);
	assert_int_equal(p->level[1].xs[1], 288);
	assert_int_equal(p->level[1].ys[1], 288);
	check_plan(p, 800, 800, 512, 128, 2.0);
	ts_plan_destroy(p);

	/* one pixel more than 2T - O needs a third tile */
	p = ts_plan_create(897, 10, 512, 128, 2.0);
	assert_non_null(p);
	assert_int_equal(p->level[1].ncols, 3);
	check_plan(p, 897, 10, 512, 128, 2.0);
	ts_plan_destroy(p);
}

static void
test_4096(void **state)
{
	ts_plan *p = ts_plan_create(4096, 4096, 512, 128, 2.0);
	const int sizes[] = { 512, 1024, 2048, 4096 }, grids[] = { 1, 3, 5, 11 };

	(void)state;
	assert_non_null(p);
	assert_int_equal(p->nlevels, 4);
	for (int k = 0; k < 4; k++) {
		assert_int_equal(p->level[k].w, sizes[k]);
		assert_int_equal(p->level[k].h, sizes[k]);
		assert_int_equal(p->level[k].ncols, grids[k]);
		assert_int_equal(p->level[k].nrows, grids[k]);
		assert_int_equal(p->level[k].tw, 512);
	}
	assert_int_equal(ts_plan_total_tiles(p), 1 + 9 + 25 + 121);
	check_plan(p, 4096, 4096, 512, 128, 2.0);
	ts_plan_destroy(p);
}

/* Every pixel of every level is covered; a sweep of shapes, tiles and factors. */
static void
test_sweep(void **state)
{
	const int ts[] = { 16, 64, 100, 512 };
	const double fs[] = { 2.0, 1.5, 3.0, 1.25 };
	uint32_t seed = 12345;

	(void)state;
	for (int it = 0; it < 400; it++) {
		int w, h, t, o;
		double f;
		ts_plan *p;

		seed = seed * 1664525u + 1013904223u;
		t = ts[(seed >> 8) % 4];
		f = fs[(seed >> 12) % 4];
		o = (int)((seed >> 16) % (uint32_t)t);
		seed = seed * 1664525u + 1013904223u;
		w = 1 + (int)((seed >> 8) % 5000);
		h = 1 + (int)((seed >> 20) % 3000);
		p = ts_plan_create(w, h, t, o, f);
		if (!p) {
			/* only when the pyramid is too deep */
			assert_non_null(strstr(ts_errmsg(), "levels"));
			continue;
		}
		check_plan(p, w, h, t, o, f);
		for (int k = 0; k < p->nlevels; k++) {
			const ts_level *lv = &p->level[k];
			char *cov = calloc((size_t)lv->w, 1);

			for (int c = 0; c < lv->ncols; c++)
				for (int x = 0; x < lv->tw; x++)
					cov[lv->xs[c] + x] = 1;
			for (int x = 0; x < lv->w; x++)
				assert_int_equal(cov[x], 1);
			free(cov);
		}
		ts_plan_destroy(p);
	}
}

static void
test_bad_numbers(void **state)
{
	(void)state;
	assert_null(ts_plan_create(0, 100, 512, 128, 2.0));
	assert_non_null(strstr(ts_errmsg(), "0x100"));
	assert_null(ts_plan_create(100, -3, 512, 128, 2.0));
	assert_null(ts_plan_create(100, 100, 0, 0, 2.0));
	assert_non_null(strstr(ts_errmsg(), "tile"));
	assert_null(ts_plan_create(100, 100, 512, -1, 2.0));
	assert_non_null(strstr(ts_errmsg(), "overlap -1"));
	assert_null(ts_plan_create(100, 100, 512, 512, 2.0));
	assert_null(ts_plan_create(100, 100, 512, 600, 2.0));
	assert_null(ts_plan_create(100, 100, 512, 128, 1.0));
	assert_non_null(strstr(ts_errmsg(), "level factor"));
	assert_null(ts_plan_create(100, 100, 512, 128, 0.5));
	assert_null(ts_plan_create(100, 100, 512, 128, NAN));
	assert_null(ts_plan_create(100, 100, 512, 128, INFINITY));
	/* several problems are all reported */
	assert_null(ts_plan_create(0, 0, 0, 0, 0.0));
	assert_non_null(strstr(ts_errmsg(), "size"));
	assert_non_null(strstr(ts_errmsg(), "tile side"));
	assert_non_null(strstr(ts_errmsg(), "level factor"));
	/* a factor so close to 1 that the pyramid is too deep or does not shrink */
	assert_null(ts_plan_create(100000, 100000, 16, 4, 1.01));
	assert_null(ts_plan_create(1000, 1000, 16, 4, 1.0001));
	assert_non_null(strstr(ts_errmsg(), "level factor"));
}

static void
test_hash_text(void **state)
{
	char buf[64];
	size_t len = 0;

	(void)state;
	/* FNV-1a 64 reference values */
	assert_true(ts_plan_hash("") == 0xcbf29ce484222325ULL);
	assert_true(ts_plan_hash("a") == 0xaf63dc4c8601ec8cULL);
	assert_true(ts_plan_hash("foobar") == 0x85944171f73967e8ULL);
	assert_true(ts_plan_hash("tile = 512\n") != ts_plan_hash("tile = 513\n"));

	buf[0] = '\0';
	assert_int_equal(ts_plan_text_add(buf, sizeof buf, &len, "tile", "%d", 512), 0);
	assert_int_equal(ts_plan_text_add(buf, sizeof buf, &len, "factor", "%.17g", 2.0), 0);
	assert_string_equal(buf, "tile = 512\nfactor = 2\n");
	assert_int_equal(len, strlen(buf));
	/* overflow keeps the text as it was */
	assert_int_equal(ts_plan_text_add(buf, sizeof buf, &len, "content",
	                                  "%s", "a-very-long-file-name-that-does-not-fit.jpg"),
	                 -1);
	assert_non_null(strstr(ts_errmsg(), "content"));
	assert_string_equal(buf, "tile = 512\nfactor = 2\n");
	assert_int_equal(len, strlen(buf));
}

static void
test_print(void **state)
{
	ts_plan *p = ts_plan_create(4096, 2048, 512, 128, 2.0);
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	(void)state;
	assert_non_null(p);
	assert_non_null(f);
	ts_plan_print(p, f);
	fclose(f);
	assert_non_null(strstr(text, "4 levels"));
	assert_non_null(strstr(text, "level 3"));
	assert_non_null(strstr(text, "11x5"));
	assert_non_null(strstr(text, "55 tiles"));
	assert_non_null(strstr(text, "total: 74 tiles"));
	free(text);
	ts_plan_destroy(p);
	ts_plan_destroy(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_tile),    cmocka_unit_test(test_two_tiles),
		cmocka_unit_test(test_4096),        cmocka_unit_test(test_sweep),
		cmocka_unit_test(test_bad_numbers), cmocka_unit_test(test_hash_text),
		cmocka_unit_test(test_print),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
