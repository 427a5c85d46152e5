/* Tests of sheet: the layout's geometry; a sheet drawn from a real report (report.c's
 * tree, raw numbers) has the layout's size and holds each picture, downscaled, in its
 * rectangle; the loss curve is drawn (curve pixels in the plot area, none without
 * losses), for iterations and for a tiled run's levels; the report file gives the
 * same pixels as the tree; bad paths, a missing picture and a non-report are refused
 * with a message naming them, nothing left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/config.h"
#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/report.h"
#include "tessera/sheet.h"

static char dir[64];
static char content_path[128], style_path[128], style2_path[128], out_path[128];

/* A smooth picture of its own kind (a, b, c: frequencies), w x h. */
static ts_image *
picture(int w, int h, double a, double b, double c)
{
	ts_image *im = ts_image_create(w, h);
	size_t plane = (size_t)w * h;

	assert_non_null(im);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			double u = (double)x / w, v = (double)y / h;
			size_t i = (size_t)y * w + x;

			im->px[i] = (float)(0.5 + 0.45 * sin(a * u + 0.3));
			im->px[plane + i] = (float)(0.5 + 0.45 * cos(b * v + 2 * u));
			im->px[2 * plane + i] = (float)(0.5 + 0.45 * sin(c * (u + v)));
		}
	return im;
}

static void
save(ts_image *im, const char *path)
{
	assert_int_equal(ts_image_save(im, path, 8), 0);
	ts_image_destroy(im);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/ts_sheet_XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(content_path, sizeof content_path, "%s/content.png", dir);
	snprintf(style_path, sizeof style_path, "%s/style.png", dir);
	snprintf(style2_path, sizeof style2_path, "%s/style2.jpg", dir);
	snprintf(out_path, sizeof out_path, "%s/out.tif", dir);
	save(picture(300, 200, 6, 3, 2), content_path);
	save(picture(128, 160, 1, 9, 5), style_path);
	save(picture(700, 90, 4, 4, 12), style2_path); /* a panorama: wider than 2:1 */
	/* the output large, so that its thumbnail is box-averaged before the resize */
	save(picture(1800, 1200, 13, 2, 7), out_path);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A report as a single-piece run makes it, with nstyle styles and nit iterations of
 * falling losses. */
static ts_report *
make_report(int nstyle, int nit)
{
	ts_config c;
	ts_report *r;

	ts_config_defaults(&c);
	c.content = content_path;
	c.style[0] = style_path;
	c.style[1] = style2_path;
	c.nstyle = nstyle;
	c.style_blend[0] = nstyle == 1 ? 1 : 0.25;
	c.style_blend[1] = 0.75;
	c.out = out_path;
	c.iterations = nit;
	r = ts_report_create(&c);
	assert_non_null(r);
	for (int i = 0; i < nit; i++)
		assert_int_equal(ts_report_iteration(r, i, 1.0 / (i + 1), 50.0 * exp(-0.1 * i), 0.01,
		                                     1e4 * exp(-0.2 * i) + 30, 0.1 * i), 0);
	ts_report_set(r, "width", 1800);
	ts_report_set(r, "height", 1200);
	ts_report_set(r, "iterations_done", nit);
	ts_report_set(r, "seconds", 12.5);
	return r;
}

/* The sheet written to path, loaded, with its layout. */
static ts_image *
load_sheet(const char *path, int nstyle, ts_sheet_layout *l)
{
	int w[4], h[4], n = 0;
	ts_image *im;

	assert_int_equal(ts_image_probe(content_path, &w[n], &h[n], NULL), 0);
	n++;
	assert_int_equal(ts_image_probe(style_path, &w[n], &h[n], NULL), 0);
	n++;
	if (nstyle > 1) {
		assert_int_equal(ts_image_probe(style2_path, &w[n], &h[n], NULL), 0);
		n++;
	}
	assert_int_equal(ts_image_probe(out_path, &w[n], &h[n], NULL), 0);
	n++;
	assert_int_equal(ts_sheet_layout_for(n, w, h, l), 0);
	im = ts_image_load(path, 0);
	assert_non_null(im);
	assert_int_equal(im->w, l->w);
	assert_int_equal(im->h, l->h);
	return im;
}

/* Mean and largest |difference| between rectangle r of the sheet and pic. */
static void
compare(const ts_image *sheet, const ts_sheet_rect *r, const ts_image *pic, double *mean,
        double *max)
{
	size_t sp = (size_t)sheet->w * sheet->h, pp = (size_t)pic->w * pic->h;
	double sum = 0;

	assert_int_equal(pic->w, r->w);
	assert_int_equal(pic->h, r->h);
	*max = 0;
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < r->h; y++)
			for (int x = 0; x < r->w; x++) {
				double d = fabs(sheet->px[c * sp + (size_t)(r->y + y) * sheet->w + r->x + x] -
				                pic->px[c * pp + (size_t)y * pic->w + x]);

				sum += d;
				*max = fmax(*max, d);
			}
	*mean = sum / (3.0 * r->w * r->h);
}

/* The picture at path resized whole to r's size (the reference thumbnail). */
static ts_image *
reference(const char *path, const ts_sheet_rect *r)
{
	ts_image *src = ts_image_load(path, 0), *out;

	assert_non_null(src);
	out = ts_image_resize(src, r->w, r->h);
	assert_non_null(out);
	ts_image_destroy(src);
	return out;
}

/* Pixels of the curve's colour (a strong blue) inside r. */
static int
curve_pixels(const ts_image *im, const ts_sheet_rect *r)
{
	size_t plane = (size_t)im->w * im->h;
	int n = 0;

	for (int y = r->y; y < r->y + r->h; y++)
		for (int x = r->x; x < r->x + r->w; x++) {
			size_t i = (size_t)y * im->w + x;

			n += im->px[2 * plane + i] > 0.5f && im->px[2 * plane + i] - im->px[i] > 0.3f;
		}
	return n;
}

static void
test_layout(void **state)
{
	int w[4] = { 300, 128, 700, 1800 }, h[4] = { 200, 160, 90, 1200 };
	ts_sheet_layout l;

	(void)state;
	assert_int_equal(ts_sheet_layout_for(4, w, h, &l), 0);
	assert_int_equal(l.npics, 4);
	for (int i = 0; i < 4; i++) {
		const ts_sheet_rect *r = &l.pic[i];

		/* a common height, the aspect kept; the panorama capped at twice the height */
		if (i == 2) {
			assert_int_equal(r->w, 2 * TS_SHEET_PANEL_H);
			assert_true(r->h < TS_SHEET_PANEL_H);
		} else {
			assert_int_equal(r->h, TS_SHEET_PANEL_H);
		}
		assert_true(fabs((double)r->w / r->h - (double)w[i] / h[i]) < 0.02 * w[i] / h[i]);
		assert_true(r->x >= 0 && r->y >= 0 && r->x + r->w <= l.w && r->y + r->h <= l.h);
		if (i > 0) /* side by side, in order, apart */
			assert_true(r->x > l.pic[i - 1].x + l.pic[i - 1].w);
	}
	assert_true(l.plot.x > l.pic[3].x + l.pic[3].w);
	assert_true(l.plot.x + l.plot.w <= l.w && l.plot.w > 200 && l.plot.h == TS_SHEET_PANEL_H);
	/* one picture is not a sheet */
	assert_int_equal(ts_sheet_layout_for(1, w, h, &l), -1);
	assert_non_null(strstr(ts_errmsg(), "sheet"));
	w[1] = 0;
	assert_int_equal(ts_sheet_layout_for(2, w, h, &l), -1);
}

static void
test_single_piece(void **state)
{
	char path[160];
	ts_report *r = make_report(2, 40);
	const char *pics[4] = { content_path, style_path, style2_path, out_path };
	ts_sheet_layout l;
	ts_image *sheet;
	double mean, max;

	(void)state;
	snprintf(path, sizeof path, "%s/sheet.png", dir);
	assert_int_equal(ts_sheet_write(ts_report_json(r), path), 0);
	sheet = load_sheet(path, 2, &l);
	for (int i = 0; i < 4; i++) {
		ts_image *ref = reference(pics[i], &l.pic[i]);

		compare(sheet, &l.pic[i], ref, &mean, &max);
		/* 8-bit rounding, and for the output the box average before the resize */
		assert_true(mean < (i == 3 ? 0.01 : 0.003));
		assert_true(max < (i == 3 ? 0.08 : 0.01));
		/* the check can fail: a picture is not in another's place */
		if (i > 0) {
			ts_image *other = reference(pics[i - 1], &l.pic[i]);

			compare(sheet, &l.pic[i], other, &mean, &max);
			assert_true(mean > 0.05);
			ts_image_destroy(other);
		}
		ts_image_destroy(ref);
	}
	/* the curve: a 1e4..30 total over 40 iterations crosses the plot */
	assert_true(curve_pixels(sheet, &l.plot) > l.plot.w);
	{ /* and it is not in the pictures' colours everywhere: the margin holds none */
		ts_sheet_rect header = { 0, 0, l.w, 10 };

		assert_int_equal(curve_pixels(sheet, &header), 0);
	}
	ts_image_destroy(sheet);

	{ /* the report file draws the same pixels (numbers round-trip) */
		char json[160], path2[160];
		ts_image *a, *b;

		snprintf(json, sizeof json, "%s/run.json", dir);
		snprintf(path2, sizeof path2, "%s/sheet2.png", dir);
		assert_int_equal(ts_report_write(r, json), 0);
		assert_int_equal(ts_sheet_write_file(json, path2), 0);
		a = ts_image_load(path, 0);
		b = ts_image_load(path2, 0);
		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(a->w, b->w);
		assert_int_equal(a->h, b->h);
		assert_memory_equal(a->px, b->px, (size_t)3 * a->w * a->h * sizeof(float));
		ts_image_destroy(a);
		ts_image_destroy(b);
	}
	ts_report_destroy(r);
}

static void
test_no_losses(void **state)
{
	char path[160];
	ts_report *r = make_report(1, 0);
	ts_sheet_layout l;
	ts_image *sheet;

	(void)state;
	snprintf(path, sizeof path, "%s/empty.png", dir);
	assert_int_equal(ts_sheet_write(ts_report_json(r), path), 0);
	sheet = load_sheet(path, 1, &l);
	assert_int_equal(curve_pixels(sheet, &l.plot), 0);
	ts_image_destroy(sheet);
	ts_report_destroy(r);
}

static void
test_tiled(void **state)
{
	char path[160];
	ts_report *r = make_report(1, 0);
	ts_report_tile tiles[4];
	ts_sheet_layout l;
	ts_image *sheet;

	(void)state;
	for (int k = 0; k < 3; k++) {
		ts_report_level lv = { 0 };
		int n = k == 0 ? 1 : 4;

		for (int t = 0; t < n; t++)
			tiles[t] = (ts_report_tile){ t / 2, t % 2, 0, 50, 1, 2, 3,
				                     pow(10, 3 - k) * (1 + 0.3 * t), 1 };
		lv.level = k;
		lv.w = 100 << k;
		lv.h = 70 << k;
		lv.iterations = 50;
		lv.ntiles = lv.ntiles_done = n;
		lv.tiles = tiles;
		assert_int_equal(ts_report_level_add(r, &lv, 1), 0);
	}
	snprintf(path, sizeof path, "%s/tiled.png", dir);
	assert_int_equal(ts_sheet_write(ts_report_json(r), path), 0);
	sheet = load_sheet(path, 1, &l);
	assert_true(curve_pixels(sheet, &l.plot) > l.plot.w / 2);
	ts_image_destroy(sheet);
	ts_report_destroy(r);
}

/* path does not exist, nor path.part */
static void
assert_absent(const char *path)
{
	char part[200];
	struct stat st;

	snprintf(part, sizeof part, "%s.part", path);
	assert_int_not_equal(stat(path, &st), 0);
	assert_int_not_equal(stat(part, &st), 0);
}

static void
test_refused(void **state)
{
	char path[160], json[160];
	ts_report *r = make_report(1, 5);
	cJSON *copy;
	FILE *f;

	(void)state;
	/* a folder that does not exist */
	snprintf(path, sizeof path, "%s/nodir/sheet.png", dir);
	assert_int_equal(ts_sheet_write(ts_report_json(r), path), -1);
	assert_non_null(strstr(ts_errmsg(), "sheet: cannot write the contact sheet"));
	assert_non_null(strstr(ts_errmsg(), path));
	assert_absent(path);
	/* an extension no writer has */
	snprintf(path, sizeof path, "%s/sheet.xyz", dir);
	assert_int_equal(ts_sheet_write(ts_report_json(r), path), -1);
	assert_non_null(strstr(ts_errmsg(), "sheet.xyz"));
	assert_absent(path);
	/* a picture the report names is gone */
	copy = cJSON_Duplicate(ts_report_json(r), 1);
	assert_non_null(copy);
	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItem(copy, "settings"), "out",
	                                       cJSON_CreateString("/nonexistent/out.png"));
	snprintf(path, sizeof path, "%s/gone.png", dir);
	assert_int_equal(ts_sheet_write(copy, path), -1);
	assert_non_null(strstr(ts_errmsg(), "output \"/nonexistent/out.png\""));
	assert_absent(path);
	/* not a report */
	cJSON_DeleteItemFromObject(copy, "settings");
	assert_int_equal(ts_sheet_write(copy, path), -1);
	assert_non_null(strstr(ts_errmsg(), "settings"));
	cJSON_Delete(copy);
	snprintf(json, sizeof json, "%s/bad.json", dir);
	f = fopen(json, "w");
	assert_non_null(f);
	fputs("{\"version\": \"0.1.0\", \"settings\": {", f);
	fclose(f);
	assert_int_equal(ts_sheet_write_file(json, path), -1);
	assert_non_null(strstr(ts_errmsg(), "bad.json"));
	snprintf(json, sizeof json, "%s/nosuch.json", dir);
	assert_int_equal(ts_sheet_write_file(json, path), -1);
	assert_non_null(strstr(ts_errmsg(), "nosuch.json"));
	assert_absent(path);
	ts_report_destroy(r);
}

/* A report names its pictures as the run was given them; the sheet finds relative
 * names from the run's folder (the report's "cwd") wherever it is drawn, and without
 * "cwd" only from the current folder (refused elsewhere, naming the file). */
static void
test_relative_names(void **state)
{
	char here[4096], path[160];
	ts_config c;
	ts_report *r;
	cJSON *copy;

	(void)state;
	assert_non_null(getcwd(here, sizeof here));
	assert_int_equal(chdir(dir), 0);
	ts_config_defaults(&c);
	c.content = "content.png";
	c.style[0] = "style.png";
	c.nstyle = 1;
	c.style_blend[0] = 1;
	c.out = "out.tif";
	r = ts_report_create(&c);
	assert_non_null(r);
	assert_int_equal(chdir("/"), 0);
	snprintf(path, sizeof path, "%s/relative.png", dir);
	assert_int_equal(ts_sheet_write(ts_report_json(r), path), 0);
	assert_int_equal(access(path, F_OK), 0);
	copy = cJSON_Duplicate(ts_report_json(r), 1);
	assert_non_null(copy);
	cJSON_DeleteItemFromObjectCaseSensitive(copy, "cwd");
	assert_int_equal(ts_sheet_write(copy, path), -1);
	assert_non_null(strstr(ts_errmsg(), "\"content.png\""));
	assert_int_equal(chdir(dir), 0); /* as given, from here */
	assert_int_equal(ts_sheet_write(copy, path), 0);
	cJSON_Delete(copy);
	ts_report_destroy(r);
	assert_int_equal(chdir(here), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_single_piece),
		cmocka_unit_test(test_no_losses),
		cmocka_unit_test(test_tiled),
		cmocka_unit_test(test_relative_names),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
