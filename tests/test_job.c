/* Tests of the tiled job without MPI: the plumbing is lossless (zero iterations at
 * the tiled levels reproduce the upsampled warm start exactly), tiles are plain
 * function calls whose result does not depend on the order they are rendered in,
 * checkpoints are reused, a different plan is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/config.h"
#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/job.h"
#include "tessera/resample.h"

static char dir[64], content_path[128], style_path[128];

static int
setup(void **state)
{
	ts_image *a = ts_image_create(100, 80), *b = ts_image_create(40, 40);

	(void)state;
	snprintf(dir, sizeof dir, "/tmp/ts_job_XXXXXX");
	if (!mkdtemp(dir) || !a || !b)
		return -1;
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < 80; y++)
			for (int x = 0; x < 100; x++)
				a->px[(c * 80 + y) * 100 + x] =
				    (float)(0.5 + 0.4 * sin(0.1 * x * (c + 1) + 0.07 * y));
	for (int i = 0; i < 3 * 40 * 40; i++)
		b->px[i] = (float)((i * 37) % 101) / 100.0f;
	snprintf(content_path, sizeof content_path, "%s/content.png", dir);
	snprintf(style_path, sizeof style_path, "%s/style.png", dir);
	if (ts_image_save(a, content_path, 8) || ts_image_save(b, style_path, 8))
		return -1;
	ts_image_destroy(a);
	ts_image_destroy(b);
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

static void
job_config(ts_config *c, const char *out, const char *job, int it0)
{
	ts_config_defaults(c);
	c->content = strdup(content_path);
	c->style[0] = strdup(style_path);
	c->nstyle = 1;
	c->style_blend[0] = 1;
	c->out = strdup(out);
	c->job_dir = strdup(job);
	c->width = 200; /* 200x160: levels 50x40, 100x80, 200x160 */
	c->tile = 64;
	c->overlap = 16;
	c->builtin_width = 16;
	c->level_iterations[0] = it0;
	c->level_iterations[1] = 0;
	c->nlevel_iterations = 2;
	c->progress = TS_PROGRESS_OFF;
}

/* Render every level in the given tile order (reverse when rev), one process. */
static void
render_all(ts_job *j, int rev)
{
	const ts_plan *p = ts_job_plan(j);

	for (int k = 0; k < p->nlevels; k++) {
		int n = p->level[k].ncols * p->level[k].nrows;

		assert_non_null(ts_job_targets(j, k, 1));
		for (int i = 0; i < n; i++) {
			ts_tile_result r;
			int idx = rev ? n - 1 - i : i;

			if (ts_job_tile_valid(j, k, idx))
				continue;
			assert_int_equal(ts_job_render_tile(j, k, idx, 0, NULL, NULL, NULL, &r), 0);
			assert_int_equal(ts_job_log(j, &r), 0);
		}
		assert_int_equal(ts_job_assemble(j, k), 0);
	}
}

static ts_image *
load(const char *path)
{
	ts_image *im = ts_image_load(path, 0);

	assert_non_null(im);
	return im;
}

/* Quantize as the writers do: through a TIFF of the given bits, read back. */
static void
quantize(ts_image *im, int bits)
{
	char path[160];
	ts_image *q;

	snprintf(path, sizeof path, "%s/quantize.tif", dir);
	assert_int_equal(ts_image_save(im, path, bits), 0);
	q = load(path);
	memcpy(im->px, q->px, sizeof(float) * 3 * im->w * im->h);
	ts_image_destroy(q);
}

static void
test_lossless_plumbing(void **state)
{
	ts_config c;
	char out[128], job[128], path[160];
	ts_job *j;
	ts_image *l0, *l1, *o, *want;

	(void)state;
	snprintf(out, sizeof out, "%s/lossless.tif", dir);
	snprintf(job, sizeof job, "%s/lossless.job", dir);
	job_config(&c, out, job, 3);
	j = ts_job_open(&c, 1);
	assert_non_null(j);
	assert_int_equal(ts_job_plan(j)->nlevels, 3);
	render_all(j, 0);
	ts_job_close(j);

	snprintf(path, sizeof path, "%s/L0.tif", job);
	l0 = load(path);
	snprintf(path, sizeof path, "%s/L1.tif", job);
	l1 = load(path);
	o = load(out);
	assert_int_equal(l1->w, 100);
	assert_int_equal(o->w, 200);
	assert_int_equal(o->h, 160);
	/* level 1 = level 0 upsampled (stored at 16 bits) */
	want = ts_image_create(100, 80);
	assert_int_equal(ts_resample_planar(l0->px, l0->w, l0->h, 100, 80, 0, 0, 100, 80,
	                                    want->px), 0);
	quantize(want, 16);
	assert_memory_equal(want->px, l1->px, sizeof(float) * 3 * 100 * 80);
	ts_image_destroy(want);
	/* the output = level 1 upsampled, at the content's 8 bits */
	want = ts_image_create(200, 160);
	assert_int_equal(ts_resample_planar(l1->px, 100, 80, 200, 160, 0, 0, 200, 160,
	                                    want->px), 0);
	quantize(want, 8);
	assert_memory_equal(want->px, o->px, sizeof(float) * 3 * 200 * 160);
	ts_image_destroy(want);
	ts_image_destroy(l0);
	ts_image_destroy(l1);
	ts_image_destroy(o);
	ts_config_fini(&c);
}

static void
test_order_independent_and_resume(void **state)
{
	ts_config c;
	char out1[128], out2[128], job1[128], job2[128], cmd[400];
	ts_job *j;

	(void)state;
	snprintf(out1, sizeof out1, "%s/a.png", dir);
	snprintf(out2, sizeof out2, "%s/b.png", dir);
	snprintf(job1, sizeof job1, "%s/a.job", dir);
	snprintf(job2, sizeof job2, "%s/b.job", dir);
	job_config(&c, out1, job1, 2);
	c.level_iterations[1] = 2;
	j = ts_job_open(&c, 1);
	assert_non_null(j);
	render_all(j, 0);
	ts_job_close(j);
	free(c.out);
	free(c.job_dir);
	c.out = strdup(out2);
	c.job_dir = strdup(job2);
	j = ts_job_open(&c, 1);
	render_all(j, 1);
	ts_job_close(j);
	snprintf(cmd, sizeof cmd, "cmp -s %s %s", out1, out2);
	assert_int_equal(system(cmd), 0);

	/* resume: every tile is valid, nothing is rendered again, same output */
	j = ts_job_open(&c, 1);
	for (int k = 0; k < ts_job_plan(j)->nlevels; k++)
		for (int i = 0; i < ts_job_plan(j)->level[k].ncols * ts_job_plan(j)->level[k].nrows; i++)
			assert_int_equal(ts_job_tile_valid(j, k, i), 1);
	ts_job_close(j);

	/* another plan in the same directory is refused */
	c.style_weight *= 2;
	assert_null(ts_job_open(&c, 1));
	assert_non_null(strstr(ts_errmsg(), "different plan"));
	/* so is the 16-bit L-BFGS memory (it changes the iterates) */
	c.style_weight /= 2;
	c.lbfgs_half = 1;
	assert_null(ts_job_open(&c, 1));
	assert_non_null(strstr(ts_errmsg(), "different plan"));
	/* and another padding (issue 17) */
	c.lbfgs_half = 0;
	c.padding = TS_PAD_REFLECT;
	assert_null(ts_job_open(&c, 1));
	assert_non_null(strstr(ts_errmsg(), "different plan"));
	c.fresh = 1;
	j = ts_job_open(&c, 1);
	assert_non_null(j);
	assert_int_equal(ts_job_tile_valid(j, 0, 0), 0); /* emptied */
	ts_job_close(j);
	ts_config_fini(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lossless_plumbing),
		cmocka_unit_test(test_order_independent_and_resume),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
