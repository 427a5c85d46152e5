/* End-to-end tests of the single-picture renderer at small size: the loss falls, the
 * output has the requested size, zero iterations writes the start image, frames and
 * the report are written, Adam works too. */
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
#include <unistd.h>

#include "tessera/config.h"
#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/plan.h"
#include "tessera/render.h"

static char dir[64];
static char content_path[128], style_path[128], style2_path[128];

static void
pattern(ts_image *im, int kind)
{
	size_t plane = (size_t)im->w * im->h;

	for (int y = 0; y < im->h; y++)
		for (int x = 0; x < im->w; x++) {
			size_t i = (size_t)y * im->w + x;
			double u = (double)x / im->w, v = (double)y / im->h;

			if (kind == 0) { /* a "photo": gradient sky and a disc */
				double d = hypot(u - 0.6, v - 0.4);
				im->px[i] = (float)(d < 0.2 ? 0.9 : 0.3 + 0.5 * v);
				im->px[plane + i] = (float)(d < 0.2 ? 0.8 : 0.5 * u + 0.2);
				im->px[2 * plane + i] = (float)(d < 0.2 ? 0.2 : 0.9 - 0.5 * v);
			} else { /* a "painting": stripes */
				double s = 0.5 + 0.5 * sin((kind == 1 ? 25 : 11) * (u + 0.6 * v));
				im->px[i] = (float)(0.1 + 0.8 * s);
				im->px[plane + i] = (float)(0.2 + 0.3 * s);
				im->px[2 * plane + i] = (float)(0.7 - 0.5 * s);
			}
		}
}

static int
setup(void **state)
{
	ts_image *a = ts_image_create(48, 40), *b = ts_image_create(32, 32),
	         *c = ts_image_create(30, 36);

	(void)state;
	snprintf(dir, sizeof dir, "/tmp/ts_render_XXXXXX");
	if (!mkdtemp(dir) || !a || !b || !c)
		return -1;
	pattern(a, 0);
	pattern(b, 1);
	pattern(c, 2);
	snprintf(content_path, sizeof content_path, "%s/content.png", dir);
	snprintf(style_path, sizeof style_path, "%s/style.png", dir);
	snprintf(style2_path, sizeof style2_path, "%s/style2.png", dir);
	if (ts_image_save(a, content_path, 8) || ts_image_save(b, style_path, 8) ||
	    ts_image_save(c, style2_path, 8))
		return -1;
	ts_image_destroy(a);
	ts_image_destroy(b);
	ts_image_destroy(c);
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
base_config(ts_config *c, const char *out)
{
	ts_config_defaults(c);
	c->content = strdup(content_path);
	c->style[0] = strdup(style_path);
	c->nstyle = 1;
	c->style_blend[0] = 1;
	c->out = strdup(out);
	c->builtin_width = 4;
	c->progress = TS_PROGRESS_OFF;
}

static cJSON *
read_json(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	cJSON *j;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	j = cJSON_Parse(buf);
	free(buf);
	assert_non_null(j);
	return j;
}

static double
iter_value(cJSON *j, int idx, const char *key)
{
	cJSON *it = cJSON_GetObjectItem(j, "iterations");
	cJSON *e = cJSON_GetArrayItem(it, idx);

	assert_non_null(e);
	return cJSON_GetObjectItem(e, key)->valuedouble;
}

static void
run_and_check_fall(ts_optim_kind kind, int iters, double factor)
{
	ts_config c;
	char out[160], rep[160];
	int w, h, bits;
	cJSON *j;
	double first, last;

	snprintf(out, sizeof out, "%s/out_%d.png", dir, (int)kind);
	snprintf(rep, sizeof rep, "%s/rep_%d.json", dir, (int)kind);
	base_config(&c, out);
	c.width = 56; /* content is 48x40: the output is 56x47 */
	c.iterations = iters;
	c.optimizer = kind;
	c.report = strdup(rep);
	assert_int_equal(ts_config_check(&c), 0);
	assert_int_equal(ts_render_single(&c, NULL), 0);
	assert_int_equal(ts_image_probe(out, &w, &h, &bits), 0);
	assert_int_equal(w, 56);
	assert_int_equal(h, 47);
	j = read_json(rep);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "iterations")), iters + 1);
	first = iter_value(j, 0, "total");
	last = iter_value(j, iters, "total");
	print_message("optimizer %d: total %g -> %g (x%.1f)\n", (int)kind, first, last,
	              first / last);
	assert_true(last * factor < first);
	/* iterations are numbered 0..n in order */
	for (int i = 0; i <= iters; i++)
		assert_int_equal((int)iter_value(j, i, "iteration"), i);
	/* the time breakdown: every part there, the convolutions, losses and the
	 * optimizer measured, and the parts within the whole */
	{
		const char *parts[] = { "conv_seconds", "layers_seconds", "loss_seconds",
			                "optim_seconds" };
		double sum = 0, all = cJSON_GetObjectItem(j, "seconds")->valuedouble;

		for (int k = 0; k < 4; k++) {
			cJSON *v = cJSON_GetObjectItem(j, parts[k]);

			assert_non_null(v);
			assert_true(v->valuedouble >= 0);
			assert_true(k == 1 || v->valuedouble > 0);
			sum += v->valuedouble;
		}
		assert_true(sum <= all);
	}
	cJSON_Delete(j);
	ts_config_fini(&c);
}

static void
test_lbfgs_loss_falls(void **state)
{
	(void)state;
	run_and_check_fall(TS_OPTIM_LBFGS, 60, 10.0);
}

static void
test_adam_loss_falls(void **state)
{
	(void)state;
	run_and_check_fall(TS_OPTIM_ADAM, 60, 2.0);
}

static void
test_zero_iterations_writes_start(void **state)
{
	ts_config c;
	char out[160];
	ts_image *a, *b;

	(void)state;
	snprintf(out, sizeof out, "%s/zero.png", dir);
	base_config(&c, out);
	c.iterations = 0;
	assert_int_equal(ts_render_single(&c, NULL), 0);
	a = ts_image_load(content_path, 0);
	b = ts_image_load(out, 0);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->w, b->w);
	assert_int_equal(a->h, b->h);
	assert_memory_equal(a->px, b->px, (size_t)3 * a->w * a->h * sizeof(float));
	ts_image_destroy(a);
	ts_image_destroy(b);
	ts_config_fini(&c);
}

/* A JPEG 4 times the output's size is decoded at 1/4 (libjpeg-turbo's scaled DCT, as
 * a tiled job's pyramid): the start written at 0 iterations is that decode resized,
 * not the full decode's. */
static void
test_large_jpeg_decoded_shrunk(void **state)
{
	ts_config c;
	char jpg[160], out[160];
	ts_image *big = ts_image_create(640, 480), *q, *f, *o, *fr, *qr;
	double dq = 0, df = 0;
	size_t n = (size_t)3 * 160 * 120;

	(void)state;
	assert_non_null(big);
	pattern(big, 2);
	snprintf(jpg, sizeof jpg, "%s/big.jpg", dir);
	assert_int_equal(ts_image_save(big, jpg, 8), 0);
	snprintf(out, sizeof out, "%s/big_start.tif", dir);
	base_config(&c, out);
	free(c.content);
	c.content = strdup(jpg);
	c.width = 160;
	c.start_size = 0;
	c.iterations = 0;
	assert_int_equal(ts_render_single(&c, NULL), 0);
	assert_non_null(o = ts_image_load(out, 0));
	assert_non_null(q = ts_image_load_scaled(jpg, 4));
	assert_int_equal(q->w, 160);
	assert_non_null(f = ts_image_load(jpg, 0));
	assert_non_null(qr = ts_image_resize(q, 160, 120));
	assert_non_null(fr = ts_image_resize(f, 160, 120));
	assert_int_equal(o->w, 160);
	assert_int_equal(o->h, 120);
	for (size_t i = 0; i < n; i++) {
		dq = fmax(dq, fabs(o->px[i] - fmin(fmax(qr->px[i], 0), 1)));
		df += fabs(o->px[i] - fr->px[i]);
	}
	assert_true(dq < 1.0 / 65535 + 1e-6); /* a 16-bit TIFF of that decode */
	assert_true(df / n > 1e-4);           /* and not the full one's */
	ts_image_destroy(big);
	ts_image_destroy(q);
	ts_image_destroy(f);
	ts_image_destroy(o);
	ts_image_destroy(qr);
	ts_image_destroy(fr);
	ts_config_fini(&c);
}

static void
test_frames_blend_and_colors(void **state)
{
	ts_config c;
	char out[160], frame[200];
	ts_image *im, *content;

	(void)state;
	snprintf(out, sizeof out, "%s/frames.png", dir);
	base_config(&c, out);
	c.style[1] = strdup(style2_path);
	c.nstyle = 2;
	c.style_blend[0] = 0.25;
	c.style_blend[1] = 0.75;
	c.iterations = 6;
	c.save_every = 2;
	c.original_colors = 1;
	c.init = TS_INIT_NOISE;
	c.seed = 5;
	assert_int_equal(ts_render_single(&c, NULL), 0);
	for (int it = 2; it < 6; it += 2) {
		ts_render_frame_path(out, it, frame, sizeof frame);
		assert_int_equal(access(frame, R_OK), 0);
	}
	ts_render_frame_path(out, 6, frame, sizeof frame);
	assert_int_not_equal(access(frame, R_OK), 0); /* the last one is the output */
	/* original colours: the output's chroma (YIQ I) follows the content's */
	im = ts_image_load(out, 0);
	content = ts_image_load(content_path, 0);
	assert_non_null(im);
	{
		size_t plane = (size_t)im->w * im->h;
		double err = 0;

		for (size_t i = 0; i < plane; i++) {
			double i1 = 0.596 * im->px[i] - 0.274 * im->px[plane + i] -
			            0.322 * im->px[2 * plane + i];
			double i2 = 0.596 * content->px[i] - 0.274 * content->px[plane + i] -
			            0.322 * content->px[2 * plane + i];
			err += fabs(i1 - i2);
		}
		assert_true(err / plane < 0.03);
	}
	ts_image_destroy(im);
	ts_image_destroy(content);
	ts_config_fini(&c);
}

static void
test_frame_path(void **state)
{
	char buf[128];

	(void)state;
	ts_render_frame_path("dir.v1/out.png", 7, buf, sizeof buf);
	assert_string_equal(buf, "dir.v1/out_00007.png");
	ts_render_frame_path("dir.v1/out", 12, buf, sizeof buf);
	assert_string_equal(buf, "dir.v1/out_00012");
}

static void
test_output_size_rules(void **state)
{
	ts_config c;
	int w, h;

	(void)state;
	ts_config_defaults(&c);
	ts_render_output_size(&c, 400, 300, &w, &h);
	assert_int_equal(w, 400);
	assert_int_equal(h, 300);
	c.size = 200;
	ts_render_output_size(&c, 400, 300, &w, &h);
	assert_int_equal(w, 200);
	assert_int_equal(h, 150);
	c.size = 0;
	c.height = 600;
	ts_render_output_size(&c, 400, 300, &w, &h);
	assert_int_equal(w, 800);
	assert_int_equal(h, 600);
	c.height = 0;
	c.print_w = 2;
	c.print_h = 3;
	c.dpi = 100;
	ts_render_output_size(&c, 400, 300, &w, &h);
	assert_int_equal(w, 200);
	assert_int_equal(h, 300);
}

/* A stylizer reused for a second problem of the same size (other content, other
 * targets, after a first problem with another size in between for the Adam case)
 * gives the bits of a one-off ts_stylize; targets of other shapes are refused. */
static void
test_stylizer_reuse(void **state)
{
	ts_config c;
	ts_objective_params op;
	ts_optim_params oo;
	ts_vgg *net;
	ts_image *st[2];
	ts_style_targets *t1, *t2, *bad;
	ts_layer_weights fewer;
	enum { W = 40, H = 32 };
	size_t n = (size_t)3 * W * H;
	float *c1 = malloc(n * sizeof(float)), *c2 = malloc(n * sizeof(float));
	float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
	float *z = malloc((size_t)3 * 24 * 24 * sizeof(float));

	(void)state;
	base_config(&c, "unused.png");
	assert_int_equal(ts_config_check(&c), 0);
	ts_objective_params_from_config(&op, &c);
	net = ts_render_network(&c);
	assert_non_null(net);
	st[0] = ts_image_load(style_path, 0);
	st[1] = ts_image_load(style2_path, 0);
	assert_non_null(st[0]);
	assert_non_null(st[1]);
	t1 = ts_targets_create(net, &st[0], (double[]){ 1.0 }, 1, &op.style_layers, op.pool);
	t2 = ts_targets_create(net, &st[1], (double[]){ 1.0 }, 1, &op.style_layers, op.pool);
	fewer = op.style_layers;
	fewer.n--;
	bad = ts_targets_create(net, &st[0], (double[]){ 1.0 }, 1, &fewer, op.pool);
	assert_non_null(t1);
	assert_non_null(t2);
	assert_non_null(bad);
	for (size_t i = 0; i < n; i++) {
		c1[i] = (float)((i * 37) % 101) / 101.0f;
		c2[i] = (float)((i * 53) % 97) / 97.0f;
	}
	for (size_t i = 0; i < (size_t)3 * 24 * 24; i++)
		z[i] = 0.5f;
	for (int kind = 0; kind < 2; kind++) {
		ts_stylizer *s;
		ts_loss_parts pa, pb;
		int da, db;

		c.optimizer = kind ? TS_OPTIM_ADAM : TS_OPTIM_LBFGS;
		ts_render_optim_params(&c, &oo);
		s = ts_stylizer_create(net, &op, &oo);
		assert_non_null(s);
		memcpy(x, c1, n * sizeof(float));
		assert_int_equal(ts_stylizer_run(s, t1, 6, H, W, c1, x, NULL, NULL, NULL), 0);
		if (kind) /* another size in between: a new objective, then back */
			assert_int_equal(ts_stylizer_run(s, t1, 2, 24, 24, z, z, NULL, NULL, NULL), 0);
		memcpy(x, c2, n * sizeof(float));
		assert_int_equal(ts_stylizer_run(s, t2, 7, H, W, c2, x, NULL, &pa, &da), 0);
		memcpy(y, c2, n * sizeof(float));
		assert_int_equal(ts_stylize(net, t2, &op, &oo, 7, H, W, c2, y, NULL, &pb, &db), 0);
		assert_memory_equal(x, y, n * sizeof(float));
		assert_int_equal(da, db);
		assert_true(pa.total == pb.total);
		/* and it did move */
		assert_memory_not_equal(x, c2, n * sizeof(float));
		assert_int_equal(ts_stylizer_run(s, bad, 1, H, W, c2, x, NULL, NULL, NULL), -1);
		assert_non_null(strstr(ts_errmsg(), "style targets"));
		ts_stylizer_destroy(s);
	}
	ts_targets_destroy(t1);
	ts_targets_destroy(t2);
	ts_targets_destroy(bad);
	ts_image_destroy(st[0]);
	ts_image_destroy(st[1]);
	ts_vgg_destroy(net);
	ts_config_fini(&c);
	free(c1);
	free(c2);
	free(x);
	free(y);
	free(z);
}

/* The level list: the output divided by the factor, rounded as ts_plan_create rounds,
 * down to a long side <= start; one level for start 0 or a small output; a level too
 * thin for the network is not made; a factor that cannot shrink is refused. */
static void
test_level_sizes(void **state)
{
	int sz[TS_MAX_LEVELS][2];
	static const int cases[][4] = { /* w, h, start, levels */
		{ 384, 288, 128, 3 }, { 1001, 751, 128, 4 }, { 512, 512, 128, 3 },
		{ 300, 200, 150, 2 }, { 4000, 3000, 100, 7 }, { 129, 100, 128, 2 },
	};

	(void)state;
	assert_int_equal(ts_render_levels(384, 288, 128, 2, 32, sz), 3);
	assert_int_equal(sz[0][0], 96);
	assert_int_equal(sz[0][1], 72);
	assert_int_equal(sz[1][0], 192);
	assert_int_equal(sz[1][1], 144);
	assert_int_equal(sz[2][0], 384);
	assert_int_equal(sz[2][1], 288);
	/* odd sides round half up at every step: 1001x751 -> 501x376 -> 251x188 -> 126x94 */
	assert_int_equal(ts_render_levels(1001, 751, 128, 2, 32, sz), 4);
	assert_int_equal(sz[0][0], 126);
	assert_int_equal(sz[0][1], 94);
	assert_int_equal(sz[1][0], 251);
	assert_int_equal(sz[2][1], 376);
	/* the same sizes as the tiled plan's levels with the start as its tile */
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const int *t = cases[i];
		ts_plan *p = ts_plan_create(t[0], t[1], t[2], 0, 2);
		int n = ts_render_levels(t[0], t[1], t[2], 2, 32, sz);

		assert_non_null(p);
		assert_int_equal(n, t[3]);
		assert_int_equal(n, p->nlevels);
		for (int k = 0; k < n; k++) {
			assert_int_equal(sz[k][0], p->level[k].w);
			assert_int_equal(sz[k][1], p->level[k].h);
		}
		ts_plan_destroy(p);
	}
	/* factor 1.5: 400x300 -> 267x200 -> 178x133 -> 119x89 */
	assert_int_equal(ts_render_levels(400, 300, 128, 1.5, 32, sz), 4);
	assert_int_equal(sz[0][0], 119);
	assert_int_equal(sz[0][1], 89);
	assert_int_equal(sz[1][0], 178);
	/* one level: start 0, an output already small, the start above the output */
	assert_int_equal(ts_render_levels(384, 288, 0, 2, 32, sz), 1);
	assert_int_equal(sz[0][0], 384);
	assert_int_equal(ts_render_levels(100, 80, 128, 2, 32, sz), 1);
	assert_int_equal(ts_render_levels(384, 288, 384, 2, 32, sz), 1);
	/* a strip: 2000x100 -> 1000x50, and 500x25 would be too thin */
	assert_int_equal(ts_render_levels(2000, 100, 128, 2, 32, sz), 2);
	assert_int_equal(sz[0][0], 1000);
	assert_int_equal(sz[0][1], 50);
	/* a factor too close to 1 to shrink 384 */
	assert_int_equal(ts_render_levels(384, 288, 128, 1.001, 32, sz), -1);
	assert_non_null(strstr(ts_errmsg(), "too close to 1"));
	/* more than TS_MAX_LEVELS */
	assert_int_equal(ts_render_levels(100000, 100000, 32, 1.1, 32, sz), -1);
	assert_non_null(strstr(ts_errmsg(), "levels"));
}

/* The margins of a level or a tile: the level margin on the level's borders, none
 * inside; on the right and bottom borders grown to a multiple of 16 (no pooling then
 * drops a column or row of the extended picture), by less than 16; none at all with
 * --margin 0 or on a level too small for one. */
static void
test_margins_to_16(void **state)
{
	static const int levels[][2] = { { 295, 384 }, { 384, 288 }, { 400, 300 },
	                                 { 257, 1001 }, { 64, 64 } };
	ts_config c;
	int m[4];

	(void)state;
	base_config(&c, "unused.png");
	c.margin = 10; /* rounded up to 16 */
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
		int lw = levels[i][0], lh = levels[i][1], e = ts_render_level_margin(&c, lw, lh);

		assert_int_equal(e, 16);
		/* the whole level */
		ts_render_margins(&c, lw, lh, 0, 0, lw, lh, m);
		assert_int_equal(m[0], 16);
		assert_int_equal(m[1], 16);
		assert_int_equal((16 + lw + m[2]) % 16, 0);
		assert_int_equal((16 + lh + m[3]) % 16, 0);
		assert_true(m[2] >= 16 && m[2] < 32);
		assert_true(m[3] >= 16 && m[3] < 32);
		/* a tile at the right border, not the top: the right grown from its own left */
		ts_render_margins(&c, lw, lh, 48, 16, lw - 48, 16, m);
		assert_int_equal(m[0], 0);
		assert_int_equal(m[1], 0);
		assert_int_equal((lw - 48 + m[2]) % 16, 0);
		assert_true(m[2] >= 16 && m[2] < 32);
		assert_int_equal(m[3], 0);
		/* an interior tile: none */
		ts_render_margins(&c, lw, lh, 16, 16, 32, 32, m);
		assert_true(!m[0] && !m[1] && !m[2] && !m[3]);
	}
	/* 295 wide: 16 + 295 + 25 = 336 = 21 x 16 */
	ts_render_margins(&c, 295, 384, 0, 0, 295, 384, m);
	assert_int_equal(m[2], 25);
	assert_int_equal(m[3], 16);
	/* a level whose short side is below 4 margins, and --margin 0: none */
	ts_render_margins(&c, 63, 200, 0, 0, 63, 200, m);
	assert_true(!m[0] && !m[1] && !m[2] && !m[3]);
	c.margin = 0;
	ts_render_margins(&c, 295, 384, 0, 0, 295, 384, m);
	assert_true(!m[0] && !m[1] && !m[2] && !m[3]);
	ts_config_fini(&c);
}

/* A coarse-to-fine render: the output at the requested size, the report's levels
 * with their sizes, iterations and losses, the iterations numbered over the run,
 * frames across levels and each level below the output saved. */
static void
test_coarse_to_fine(void **state)
{
	ts_config c;
	char out[160], rep[160], frame[200];
	int w, h, bits;
	cJSON *j, *levels;
	static const int want[][3] = { { 48, 40, 3 }, { 96, 80, 5 } };

	(void)state;
	snprintf(out, sizeof out, "%s/c2f.png", dir);
	snprintf(rep, sizeof rep, "%s/c2f.json", dir);
	base_config(&c, out);
	c.width = 96; /* content 48x40: 96x80, and 48x40 below it */
	c.start_size = 48;
	c.level_iterations[0] = 3;
	c.level_iterations[1] = 5;
	c.nlevel_iterations = 2;
	c.save_every = 2;
	c.report = strdup(rep);
	assert_int_equal(ts_config_check(&c), 0);
	assert_int_equal(ts_render_single(&c, NULL), 0);
	assert_int_equal(ts_image_probe(out, &w, &h, &bits), 0);
	assert_int_equal(w, 96);
	assert_int_equal(h, 80);
	j = read_json(rep);
	levels = cJSON_GetObjectItem(j, "piece_levels");
	assert_int_equal(cJSON_GetArraySize(levels), 2);
	for (int k = 0; k < 2; k++) {
		cJSON *lv = cJSON_GetArrayItem(levels, k);
		double first = cJSON_GetObjectItem(cJSON_GetObjectItem(lv, "first"), "total")->valuedouble;
		double last = cJSON_GetObjectItem(cJSON_GetObjectItem(lv, "final"), "total")->valuedouble;

		assert_int_equal(cJSON_GetObjectItem(lv, "level")->valueint, k);
		assert_int_equal(cJSON_GetObjectItem(lv, "width")->valueint, want[k][0]);
		assert_int_equal(cJSON_GetObjectItem(lv, "height")->valueint, want[k][1]);
		assert_int_equal(cJSON_GetObjectItem(lv, "iterations")->valueint, want[k][2]);
		assert_int_equal(cJSON_GetObjectItem(lv, "iterations_done")->valueint, want[k][2]);
		print_message("level %d: total %g -> %g\n", k, first, last);
		assert_true(isfinite(first) && last < first);
	}
	/* 3 + 5 iterations and the start, numbered 0..8; the last is the output level's */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "iterations")), 9);
	for (int i = 0; i <= 8; i++) {
		assert_int_equal((int)iter_value(j, i, "iteration"), i);
		assert_int_equal((int)iter_value(j, i, "level"), i > 3);
	}
	assert_null(cJSON_GetObjectItem(j, "levels")); /* a tiled job's key */
	assert_true(iter_value(j, 8, "total") ==
	            cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(levels, 1),
	                                                    "final"), "total")->valuedouble);
	assert_int_equal(cJSON_GetObjectItem(j, "iterations_done")->valueint, 8);
	cJSON_Delete(j);
	/* frames at run iterations 2 (level 0's size), 4 and 6 (the output's); level 0 */
	ts_render_frame_path(out, 2, frame, sizeof frame);
	assert_int_equal(ts_image_probe(frame, &w, &h, &bits), 0);
	assert_int_equal(w, 48);
	ts_render_frame_path(out, 6, frame, sizeof frame);
	assert_int_equal(ts_image_probe(frame, &w, &h, &bits), 0);
	assert_int_equal(w, 96);
	snprintf(frame, sizeof frame, "%s/c2f_level0.tif", dir);
	assert_int_equal(ts_image_probe(frame, &w, &h, &bits), 0);
	assert_int_equal(w, 48);
	assert_int_equal(h, 40);
	snprintf(frame, sizeof frame, "%s/c2f_level1.tif", dir);
	assert_int_not_equal(access(frame, R_OK), 0); /* the output is not a level frame */
	/* more --level-iterations values than levels: refused, naming them */
	c.level_iterations[2] = 1;
	c.nlevel_iterations = 3;
	assert_int_equal(ts_render_single(&c, NULL), -1);
	assert_non_null(strstr(ts_errmsg(), "--level-iterations: 3 values"));
	assert_non_null(strstr(ts_errmsg(), "2 levels"));
	ts_config_fini(&c);
}

/* --init FILE stands for the levels up to its size: the render begins at the first
 * level with a longer side, FILE resized to it. */
static void
test_init_file_level(void **state)
{
	static const int cases[][3] = { /* FILE's w, h, the first level rendered */
		{ 30, 25, 0 }, { 48, 40, 1 }, { 60, 50, 1 }, { 96, 80, 2 }, { 300, 250, 2 },
	};
	char out[160], rep[160], init[160];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ts_config c;
		ts_image *im = ts_image_create(cases[i][0], cases[i][1]);
		cJSON *j, *levels;
		int w, h, bits;

		assert_non_null(im);
		pattern(im, 0);
		snprintf(init, sizeof init, "%s/init_%zu.png", dir, i);
		snprintf(out, sizeof out, "%s/init_out_%zu.png", dir, i);
		snprintf(rep, sizeof rep, "%s/init_%zu.json", dir, i);
		assert_int_equal(ts_image_save(im, init, 8), 0);
		ts_image_destroy(im);
		base_config(&c, out);
		c.width = 192; /* levels 48x40, 96x80, 192x160 */
		c.start_size = 48;
		c.iterations = 1;
		c.init = TS_INIT_FILE;
		c.init_file = strdup(init);
		c.report = strdup(rep);
		assert_int_equal(ts_config_check(&c), 0);
		assert_int_equal(ts_render_single(&c, NULL), 0);
		assert_int_equal(ts_image_probe(out, &w, &h, &bits), 0);
		assert_int_equal(w, 192);
		assert_int_equal(h, 160);
		j = read_json(rep);
		levels = cJSON_GetObjectItem(j, "piece_levels");
		assert_int_equal(cJSON_GetObjectItem(j, "start_level")->valueint, cases[i][2]);
		assert_int_equal(cJSON_GetArraySize(levels), 3 - cases[i][2]);
		assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(levels, 0), "level")->valueint,
		                 cases[i][2]);
		assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(levels, 0), "width")->valueint,
		                 48 << cases[i][2]);
		cJSON_Delete(j);
		ts_config_fini(&c);
	}
}

/* A stop before the first iteration, at the coarsest level, still writes a picture of
 * the output's size (that level upsampled) and returns 1. */
static void
test_stop_at_coarse_level(void **state)
{
	ts_config c;
	char out[160];
	volatile int stop = 1;
	int w, h, bits;

	(void)state;
	snprintf(out, sizeof out, "%s/stopped.png", dir);
	base_config(&c, out);
	c.width = 192;
	c.start_size = 48;
	c.iterations = 5;
	assert_int_equal(ts_config_check(&c), 0);
	assert_int_equal(ts_render_single(&c, &stop), 1);
	assert_int_equal(ts_image_probe(out, &w, &h, &bits), 0);
	assert_int_equal(w, 192);
	assert_int_equal(h, 160);
	ts_config_fini(&c);
}

/* --start-size: 0, or a long side the network takes; anything else is refused by
 * ts_config_check naming the option. */
static void
test_start_size_checked(void **state)
{
	static const int bad[] = { -1, 1, 16, 31, 2000000 };
	static const int good[] = { 0, 32, 128, 5000 };

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ts_config c;

		base_config(&c, "unused.png");
		c.start_size = bad[i];
		assert_int_equal(ts_config_check(&c), -1);
		assert_non_null(strstr(ts_errmsg(), "--start-size"));
		ts_config_fini(&c);
	}
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		ts_config c;

		base_config(&c, "unused.png");
		c.start_size = good[i];
		assert_int_equal(ts_config_check(&c), 0);
		ts_config_fini(&c);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lbfgs_loss_falls),
		cmocka_unit_test(test_adam_loss_falls),
		cmocka_unit_test(test_zero_iterations_writes_start),
		cmocka_unit_test(test_large_jpeg_decoded_shrunk),
		cmocka_unit_test(test_frames_blend_and_colors),
		cmocka_unit_test(test_frame_path),
		cmocka_unit_test(test_output_size_rules),
		cmocka_unit_test(test_stylizer_reuse),
		cmocka_unit_test(test_level_sizes),
		cmocka_unit_test(test_margins_to_16),
		cmocka_unit_test(test_coarse_to_fine),
		cmocka_unit_test(test_init_file_level),
		cmocka_unit_test(test_stop_at_coarse_level),
		cmocka_unit_test(test_start_size_checked),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
