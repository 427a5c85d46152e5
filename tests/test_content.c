/* Tests of content: the fit geometry of each policy, the streaming readers (rows equal
 * the whole decode bit for bit, a truncated file fails on its rows), and the pyramid
 * (level 0 is the canvas, each level the resampled one above within 1/255, regions
 * read from the right level, reuse by key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define TEST_NAME "content"
#include "image_test_util.h"

#include "tessera/content.h"
#include "tessera/resample.h"

/* A smooth picture with some edges: what the pyramid's filter must keep. */
static ts_image *
scene(int w, int h)
{
	ts_image *im = ts_image_create(w, h);
	size_t n = (size_t)w * h;

	assert_non_null(im);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;

			im->px[i] = (float)x / w;
			im->px[n + i] = (float)y / h;
			im->px[2 * n + i] = ((x / 37 + y / 23) % 2) ? 0.8f : 0.2f;
		}
	return im;
}

static void
test_fit_geometry(void **state)
{
	ts_fit f;
	char d[256];

	(void)state;
	/* same shape: the content, whatever the mode */
	ts_fit_geometry(4000, 3000, 400, 300, TS_FIT_CROP, &f);
	assert_false(f.fitted);
	assert_int_equal(f.w, 4000);
	assert_int_equal(f.h, 3000);
	ts_fit_describe(&f, 4000, 3000, TS_FIT_CROP, d, sizeof d);
	assert_string_equal(d, "");
	/* a 4:3 content on a 2:3 print: crop keeps the full height, centred */
	ts_fit_geometry(4000, 3000, 2400, 3600, TS_FIT_CROP, &f);
	assert_true(f.fitted);
	assert_int_equal(f.w, 2000);
	assert_int_equal(f.h, 3000);
	assert_int_equal(f.ox, 1000);
	assert_int_equal(f.oy, 0);
	ts_fit_describe(&f, 4000, 3000, TS_FIT_CROP, d, sizeof d);
	assert_non_null(strstr(d, "crop"));
	/* pad keeps the full width, white above and below */
	ts_fit_geometry(4000, 3000, 2400, 3600, TS_FIT_PAD, &f);
	assert_int_equal(f.w, 4000);
	assert_int_equal(f.h, 6000);
	assert_int_equal(f.ox, 0);
	assert_int_equal(f.oy, -1500);
	/* a tall content on a wide output */
	ts_fit_geometry(300, 1000, 200, 100, TS_FIT_CROP, &f);
	assert_int_equal(f.w, 300);
	assert_int_equal(f.h, 150);
	assert_int_equal(f.oy, 425);
	ts_fit_geometry(300, 1000, 200, 100, TS_FIT_PAD, &f);
	assert_int_equal(f.w, 2000);
	assert_int_equal(f.h, 1000);
	assert_int_equal(f.ox, -850);
	/* stretch: never a canvas */
	ts_fit_geometry(4000, 3000, 2400, 3600, TS_FIT_STRETCH, &f);
	assert_false(f.fitted);
}

static void
test_fit_image(void **state)
{
	ts_image *c = pattern8(40, 30), *crop, *pad;
	ts_fit f;

	(void)state;
	ts_fit_geometry(40, 30, 20, 30, TS_FIT_CROP, &f);
	assert_non_null(crop = ts_fit_image(c, &f));
	assert_int_equal(crop->w, 20);
	assert_int_equal(crop->h, 30);
	for (int ch = 0; ch < 3; ch++)
		for (int y = 0; y < 30; y++)
			assert_memory_equal(crop->px + ((size_t)ch * 30 + y) * 20,
			                    c->px + ((size_t)ch * 30 + y) * 40 + 10, 20 * sizeof(float));
	ts_fit_geometry(40, 30, 40, 60, TS_FIT_PAD, &f);
	assert_non_null(pad = ts_fit_image(c, &f));
	assert_int_equal(pad->h, 60);
	for (int ch = 0; ch < 3; ch++) {
		for (int x = 0; x < 40; x++) {
			assert_true(pad->px[((size_t)ch * 60 + 0) * 40 + x] == 1.0f);  /* white above */
			assert_true(pad->px[((size_t)ch * 60 + 59) * 40 + x] == 1.0f); /* and below */
		}
		assert_memory_equal(pad->px + ((size_t)ch * 60 + 15) * 40, c->px + (size_t)ch * 30 * 40,
		                    40 * sizeof(float));
	}
	ts_image_destroy(c);
	ts_image_destroy(crop);
	ts_image_destroy(pad);
}

/* The rows of path read n at a time equal ts_image_load's image bit for bit. */
static void
check_stream(const char *path, int n, int expect_streams)
{
	ts_image *whole = ts_image_load(path, 0);
	ts_image_reader *r = ts_image_reader_open(path);
	int w, h, bits;
	float *rows;

	assert_non_null(whole);
	if (!r)
		fail_msg("%s", ts_errmsg());
	ts_image_reader_size(r, &w, &h, &bits);
	assert_int_equal(w, whole->w);
	assert_int_equal(h, whole->h);
	assert_int_equal(bits, whole->bits);
	assert_int_equal(ts_image_reader_streams(r), expect_streams);
	rows = malloc((size_t)3 * n * w * sizeof *rows);
	for (int y = 0; y < h; y += n) {
		int m = h - y < n ? h - y : n;

		assert_int_equal(ts_image_reader_rows(r, m, rows), 0);
		for (int c = 0; c < 3; c++)
			assert_memory_equal(rows + (size_t)c * m * w, whole->px + ((size_t)c * h + y) * w,
			                    (size_t)m * w * sizeof(float));
	}
	/* past the end: an error, not a crash */
	assert_int_equal(ts_image_reader_rows(r, 1, rows), -1);
	free(rows);
	ts_image_reader_close(r);
	ts_image_destroy(whole);
}

static void
test_stream_readers(void **state)
{
	ts_image *a = pattern8(123, 77), *b = pattern16(64, 41);
	char png[PATH_MAX], png16[PATH_MAX], jpg[PATH_MAX], tif[PATH_MAX], bmp[PATH_MAX];

	(void)state;
	tpath(png, "s.png");
	tpath(png16, "s16.png");
	tpath(jpg, "s.jpg");
	tpath(tif, "s.tif");
	tpath(bmp, "s.bmp");
	assert_int_equal(ts_image_save(a, png, 8), 0);
	assert_int_equal(ts_image_save(b, png16, 16), 0);
	assert_int_equal(ts_image_save(a, jpg, 8), 0);
	assert_int_equal(ts_image_save(b, tif, 16), 0);
	assert_int_equal(ts_image_save(a, bmp, 8), 0);
	for (int n = 1; n <= 64; n *= 4) {
		check_stream(png, n, 1);
		check_stream(png16, n, 1);
		check_stream(jpg, n, 1);
		check_stream(tif, n, 1);
		check_stream(bmp, n, 0); /* BMP: decoded whole */
	}
	ts_image_destroy(a);
	ts_image_destroy(b);
}

/* A PNG cut in the middle of its pixels opens (the header is whole) and fails on the
 * rows that are missing, naming the file. */
static void
test_stream_truncated(void **state)
{
	ts_image *a = scene(300, 200);
	char png[PATH_MAX], cut[PATH_MAX];
	ts_image_reader *r;
	float *rows = malloc((size_t)3 * 200 * 300 * sizeof *rows);
	FILE *f;
	long size;
	char *buf;
	int failed = 0;

	(void)state;
	tpath(png, "t.png");
	tpath(cut, "t-cut.png");
	assert_int_equal(ts_image_save(a, png, 8), 0);
	assert_non_null(f = fopen(png, "rb"));
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	buf = malloc((size_t)size);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	write_bytes(cut, buf, (size_t)size / 2);
	assert_non_null(r = ts_image_reader_open(cut));
	for (int y = 0; y < 200 && !failed; y += 10)
		failed = ts_image_reader_rows(r, 10, rows) != 0;
	assert_true(failed);
	assert_err_has("t-cut.png");
	assert_err_has("truncated");
	ts_image_reader_close(r);
	free(buf);
	free(rows);
	ts_image_destroy(a);
}

static ts_image *
load_level(const char *job, int k)
{
	char p[PATH_MAX + 64];
	ts_image *im;

	snprintf(p, sizeof p, "%s/content/P%d.tif", job, k);
	if (!(im = ts_image_load(p, 0)))
		fail_msg("%s", ts_errmsg());
	return im;
}

static void
check_pyramid(const char *src, const ts_fit *fit, const ts_image *canvas, int min_w, int min_h)
{
	char job[PATH_MAX];
	ts_pyramid *p;
	int reused = -1, n;

	tpath(job, "job");
	mkdir(job, 0777);
	if (ts_pyramid_build(job, src, 1, fit, min_w, min_h, "k1", &reused))
		fail_msg("%s", ts_errmsg());
	assert_int_equal(reused, 0);
	assert_non_null(p = ts_pyramid_open(job, "k1"));
	n = ts_pyramid_levels(p);
	assert_true(n >= 2);
	{
		ts_image *l0 = load_level(job, 0);

		assert_same(l0, canvas, 0.5f / 255); /* 8-bit canvas: exact */
		ts_image_destroy(l0);
	}
	for (int k = 1; k < n; k++) {
		ts_image *up = load_level(job, k - 1), *lv = load_level(job, k), *ref;
		int w, h;

		ts_pyramid_size(p, k, &w, &h);
		assert_int_equal(w, (up->w + 1) / 2);
		assert_int_equal(h, (up->h + 1) / 2);
		assert_true(w >= min_w && h >= min_h);
		assert_non_null(ref = ts_image_create(w, h));
		assert_int_equal(ts_resample_planar(up->px, up->w, up->h, w, h, 0, 0, w, h, ref->px), 0);
		ts_image_clamp(ref);
		assert_same(lv, ref, 1.0f / 255);
		ts_image_destroy(up);
		ts_image_destroy(lv);
		ts_image_destroy(ref);
	}
	{
		int w, h;

		/* the last level is the smallest not below the minimum */
		ts_pyramid_size(p, n - 1, &w, &h);
		assert_true((w + 1) / 2 < min_w || (h + 1) / 2 < min_h);
	}
	/* a region reads the smallest level at least as large */
	{
		int w0, h0, w1, h1, dw, dh;
		float *reg, *ref;

		ts_pyramid_size(p, 0, &w0, &h0);
		ts_pyramid_size(p, 1, &w1, &h1);
		dw = w1 - 3, dh = h1 - 2;
		assert_int_equal(ts_pyramid_pick(p, dw, dh), 1);
		assert_int_equal(ts_pyramid_pick(p, w0, h0), 0);
		assert_int_equal(ts_pyramid_pick(p, w1 + 1, h1), 0);
		reg = malloc((size_t)3 * 40 * 30 * sizeof *reg);
		ref = malloc((size_t)3 * 40 * 30 * sizeof *ref);
		assert_int_equal(ts_pyramid_region(p, dw, dh, 17, 11, 40, 30, reg), 0);
		{
			ts_image *l1 = load_level(job, 1);

			assert_int_equal(ts_resample_planar(l1->px, l1->w, l1->h, dw, dh, 17, 11, 40, 30,
			                                    ref), 0);
			assert_memory_equal(reg, ref, (size_t)3 * 40 * 30 * sizeof(float));
			ts_image_destroy(l1);
		}
		free(reg);
		free(ref);
	}
	ts_pyramid_close(p);
	/* the same key: reused; another key: not opened, and rebuilt */
	assert_int_equal(ts_pyramid_build(job, src, 1, fit, min_w, min_h, "k1", &reused), 0);
	assert_int_equal(reused, 1);
	assert_null(ts_pyramid_open(job, "k2"));
	assert_err_has("another job");
	assert_int_equal(ts_pyramid_build(job, src, 1, fit, min_w, min_h, "k2", &reused), 0);
	assert_int_equal(reused, 0);
	assert_non_null(p = ts_pyramid_open(job, "k2"));
	ts_pyramid_close(p);
}

static void
test_pyramid_levels(void **state)
{
	ts_image *a = scene(700, 450), *canvas;
	char png[PATH_MAX], jpg[PATH_MAX];
	ts_fit f;

	(void)state;
	tpath(png, "scene.png");
	tpath(jpg, "scene.jpg");
	for (size_t i = 0; i < (size_t)3 * a->w * a->h; i++) /* exactly 8-bit */
		a->px[i] = roundf(a->px[i] * 255) / 255.0f;
	assert_int_equal(ts_image_save(a, png, 8), 0);
	/* no fit: the canvas is the content */
	ts_fit_geometry(700, 450, 1400, 900, TS_FIT_CROP, &f);
	check_pyramid(png, &f, a, 60, 40);
	/* crop to a square, pad to a tall canvas */
	ts_fit_geometry(700, 450, 500, 500, TS_FIT_CROP, &f);
	assert_non_null(canvas = ts_fit_image(a, &f));
	check_pyramid(png, &f, canvas, 50, 50);
	ts_image_destroy(canvas);
	ts_fit_geometry(700, 450, 300, 600, TS_FIT_PAD, &f);
	assert_non_null(canvas = ts_fit_image(a, &f));
	check_pyramid(png, &f, canvas, 50, 50);
	ts_image_destroy(canvas);
	/* a JPEG streams into the same pyramid as its decoded pixels */
	assert_int_equal(ts_image_save(a, jpg, 8), 0);
	{
		ts_image *dj = ts_image_load(jpg, 0);

		ts_fit_geometry(700, 450, 700, 450, TS_FIT_CROP, &f);
		check_pyramid(jpg, &f, dj, 100, 100);
		ts_image_destroy(dj);
	}
	ts_image_destroy(a);
}

/* A missing or unreadable input: one message naming it, no pyramid.ini. */
/* A JPEG much larger than the output decodes shrunk by libjpeg-turbo's scaled DCT: the
 * largest 1/d still at least the output, and its pixels close to the full decode
 * resized; a PNG never shrinks. */
static void
test_decode_scale(void **state)
{
	ts_image *a = ts_image_create(640, 480), *full, *ref;
	char jpg[PATH_MAX], png[PATH_MAX], job[PATH_MAX];
	ts_fit fit;
	ts_pyramid *p;
	int sw, sh;

	(void)state;
	assert_non_null(a);
	/* a photograph's kind of content: smooth shapes, detail down to ~10 px */
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < 480; y++)
			for (int x = 0; x < 640; x++)
				a->px[((size_t)c * 480 + y) * 640 + x] =
					0.5f + 0.3f * sinf(0.02f * x * (c + 1) + 0.5f * c) * cosf(0.015f * y) +
					0.15f * sinf(0.3f * x + 0.2f * y);
	tpath(jpg, "big.jpg");
	tpath(png, "big.png");
	tpath(job, "job");
	mkdir(job, 0777);
	assert_int_equal(ts_image_save(a, jpg, 8), 0);
	assert_int_equal(ts_image_save(a, png, 8), 0);
	/* 640/8 = 80 >= 80: 1/8; 81 wide needs 1/4 (160x120); 400 needs the whole */
	assert_int_equal(ts_content_decode_scale(jpg, 640, 480, 80, 60, TS_FIT_CROP, &sw, &sh), 8);
	assert_int_equal(sw, 80);
	assert_int_equal(sh, 60);
	assert_int_equal(ts_content_decode_scale(jpg, 640, 480, 81, 61, TS_FIT_CROP, &sw, &sh), 4);
	assert_int_equal(sw, 160);
	assert_int_equal(ts_content_decode_scale(jpg, 640, 480, 400, 300, TS_FIT_CROP, &sw, &sh),
	                 1);
	assert_int_equal(sw, 640);
	/* crop to a square: 1/4 gives a 120x120 canvas, enough for 100x100, 1/8 not */
	assert_int_equal(ts_content_decode_scale(jpg, 640, 480, 100, 100, TS_FIT_CROP, &sw, &sh),
	                 4);
	assert_int_equal(ts_content_decode_scale(png, 640, 480, 80, 60, TS_FIT_CROP, &sw, &sh), 1);
	assert_int_equal(sw, 640);
	/* the pyramid's P0 at 1/4 against the full decode resized: the scaled DCT filters */
	ts_fit_geometry(160, 120, 160, 120, TS_FIT_CROP, &fit);
	if (ts_pyramid_build(job, jpg, 4, &fit, 40, 30, "k4", NULL))
		fail_msg("%s", ts_errmsg());
	assert_non_null(p = ts_pyramid_open(job, "k4"));
	ts_pyramid_size(p, 0, &sw, &sh);
	assert_int_equal(sw, 160);
	assert_int_equal(sh, 120);
	ts_pyramid_close(p);
	{
		ts_image *l0 = load_level(job, 0);
		double d = 0;

		assert_non_null(full = ts_image_load(jpg, 0));
		assert_non_null(ref = ts_image_create(160, 120));
		assert_int_equal(ts_resample_planar(full->px, 640, 480, 160, 120, 0, 0, 160, 120,
		                                    ref->px), 0);
		for (size_t i = 0; i < (size_t)3 * 160 * 120; i++)
			d += fabsf(l0->px[i] - ref->px[i]);
		d /= 3.0 * 160 * 120;
		assert_true(d < 3.0 / 255); /* measured: 1.3/255 */
		ts_image_destroy(l0);
		ts_image_destroy(full);
		ts_image_destroy(ref);
	}
	ts_image_destroy(a);
}

static void
test_pyramid_bad_input(void **state)
{
	char job[PATH_MAX], bad[PATH_MAX], ini[PATH_MAX + 32];
	ts_fit f;

	(void)state;
	tpath(job, "badjob");
	tpath(bad, "garbage.png");
	mkdir(job, 0777);
	write_bytes(bad, "\x89PNG\r\n\x1a\nnot really", 18);
	ts_fit_geometry(100, 100, 100, 100, TS_FIT_CROP, &f);
	assert_int_equal(ts_pyramid_build(job, bad, 1, &f, 10, 10, "k", NULL), -1);
	assert_err_has("garbage.png");
	snprintf(ini, sizeof ini, "%s/content/pyramid.ini", job);
	assert_false(exists(ini));
	assert_null(ts_pyramid_open(job, "k"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fit_geometry),
		cmocka_unit_test(test_fit_image),
		cmocka_unit_test(test_stream_readers),
		cmocka_unit_test(test_stream_truncated),
		cmocka_unit_test(test_pyramid_levels),
		cmocka_unit_test(test_decode_scale),
		cmocka_unit_test(test_pyramid_bad_input),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
