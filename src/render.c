/* render: one picture or one tile through the optimizer (see render.h).
 *
 * Evaluation j of the objective is always at the image after j iterations (L-BFGS
 * evaluates the start, then each new point; Adam evaluates the current point before
 * moving, so one last evaluation after the loop gives the result's loss).  The
 * iteration hook therefore sees iterations 0..n in order, each exactly once. */
#include "tessera/render.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/colorvar.h"
#include "tessera/content.h"
#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/loss.h"
#include "tessera/optim.h"
#include "tessera/output.h"
#include "tessera/par.h"
#include "tessera/report.h"
#include "tessera/resample.h"
#include "tessera/sheet.h"
#include "tessera/weights.h"

typedef struct eval_ctx {
	ts_objective *obj;
	const ts_colorvar *cv; /* the variables are colour variables (NULL: pixels) */
	float *img, *gimg;     /* with cv: the image of the variables, its gradient */
	size_t plane;
	const ts_stylize_hooks *hooks;
	int next_it;        /* iteration number of the next evaluation */
	int failed;         /* a hook returned nonzero */
	ts_loss_parts last; /* parts of the last evaluation */
} eval_ctx;

static double
eval_fn(void *user, const float *x, float *grad)
{
	eval_ctx *e = user;
	double f;

	if (e->cv) {
		/* the optimizer moves the variables; the objective sees their image */
		ts_colorvar_to_image(e->cv, x, e->img, e->plane);
		x = e->img;
	}
	f = ts_objective_eval(e->obj, x, e->cv && grad ? e->gimg : grad, &e->last);
	if (e->cv && grad)
		ts_colorvar_adjoint(e->cv, e->gimg, grad, e->plane);

	if (e->hooks && e->hooks->iteration &&
	    e->hooks->iteration(e->hooks->user, e->next_it, &e->last, x)) {
		e->failed = 1;
		return NAN;
	}
	e->next_it++;
	return isfinite(f) ? f : INFINITY; /* not finite here: a rise (NaN: a failure) */
}

struct ts_stylizer {
	const ts_vgg *net; /* borrowed */
	ts_objective_params op;
	ts_optim_params oo;
	int h, w;          /* size of obj and opt (0: none yet) */
	ts_objective *obj;
	ts_optim *opt;
	ts_colorvar cv;    /* with op.color_vars > 0 */
	float *cvbuf;      /* [3, 3, h, w]: the variables, their image, its gradient */
	float *mbuf;       /* ts_stylizer_run_margins: content and x with their margins */
	size_t mcap;       /* floats of mbuf */
};

ts_stylizer *
ts_stylizer_create(const ts_vgg *net, const ts_objective_params *op,
                   const ts_optim_params *oo)
{
	ts_stylizer *s = calloc(1, sizeof *s);

	if (!s) {
		ts_error("render", "out of memory");
		return NULL;
	}
	s->net = net;
	s->op = *op;
	s->oo = *oo;
	if (op->color_vars > 0)
		ts_colorvar_init(&s->cv, op->color_vars);
	return s;
}

/* the held problem: objective, optimizer, colour variables (not mbuf, which may
 * hold the picture a run is about to optimize) */
static void
release_problem(ts_stylizer *s)
{
	ts_optim_destroy(s->opt);
	ts_objective_destroy(s->obj);
	free(s->cvbuf);
	s->opt = NULL;
	s->obj = NULL;
	s->cvbuf = NULL;
	s->h = s->w = 0;
}

void
ts_stylizer_release(ts_stylizer *s)
{
	if (!s)
		return;
	release_problem(s);
	free(s->mbuf);
	s->mbuf = NULL;
	s->mcap = 0;
}

void
ts_stylizer_destroy(ts_stylizer *s)
{
	ts_stylizer_release(s);
	free(s);
}

/* obj and opt for an h x w problem against targets and content: the held ones when
 * the size matches, else new ones.  0 or -1. */
static int
stylizer_prepare(ts_stylizer *s, const ts_style_targets *targets, int h, int w,
                 const float *content)
{
	if (s->obj && s->h == h && s->w == w) {
		if (ts_objective_retarget(s->obj, targets, content))
			return -1;
		if (s->opt)
			ts_optim_reset(s->opt);
		return 0;
	}
	release_problem(s);
	if (!(s->obj = ts_objective_create(s->net, h, w, &s->op, targets, content)))
		return -1;
	if (s->op.color_vars > 0 && !(s->cvbuf = malloc((size_t)9 * h * w * sizeof(float)))) {
		ts_error("render", "out of memory for the colour variables");
		release_problem(s);
		return -1;
	}
	s->h = h;
	s->w = w;
	return 0;
}

int
ts_stylizer_run(ts_stylizer *s, const ts_style_targets *targets, int iterations, int h,
                int w, const float *content, float *x, const ts_stylize_hooks *hooks,
                ts_loss_parts *final, int *done)
{
	eval_ctx e = { 0 };
	size_t n = (size_t)3 * h * w;
	int it = 0;
	float *img = x; /* the caller's image; x becomes the variables */

	if (stylizer_prepare(s, targets, h, w, content))
		return -1;
	if (iterations > 0 && !s->opt && !(s->opt = ts_optim_create(&s->oo, n)))
		return -1;
	e.obj = s->obj;
	e.hooks = hooks;
	if (s->cvbuf) {
		e.cv = &s->cv;
		e.plane = (size_t)h * w;
		e.img = s->cvbuf + n;
		e.gimg = s->cvbuf + 2 * n;
		x = s->cvbuf;
		ts_colorvar_from_image(e.cv, img, x, e.plane);
	}
	while (it < iterations) {
		int r;

		if (hooks && hooks->should_stop && hooks->should_stop(hooks->user))
			break;
		r = ts_optim_step(s->opt, x, eval_fn, &e, NULL);
		if (r < 0) {
			if (!e.failed)
				ts_error("render", "the objective is not finite at iteration %d "
				         "(weights too large? try a smaller --learning-rate)", it + 1);
			return -1;
		}
		if (r == 1)
			break; /* converged: x is the minimum found */
		it++;
	}
	/* The last move raised the loss (--lbfgs-backtrack): the result is where it
	 * started, its parts evaluated again (not an iteration: no hook). */
	if (s->opt && ts_optim_settle(s->opt, x)) {
		e.hooks = NULL;
		if (!isfinite(eval_fn(&e, x, NULL)))
			return -1;
	}
	/* The result itself has not been evaluated yet when no evaluation reached it
	 * (Adam, converged L-BFGS, a stop, or zero iterations). */
	if (e.next_it <= it || e.next_it == 0) {
		e.next_it = it;
		if (!isfinite(eval_fn(&e, x, NULL)) && e.failed)
			return -1;
	}
	if (e.cv)
		ts_colorvar_to_image(e.cv, x, img, e.plane);
	if (final)
		*final = e.last;
	if (done)
		*done = it;
	return 0;
}

int
ts_stylizer_run_margins(ts_stylizer *s, const ts_style_targets *targets, int iterations,
                        int h, int w, const int m[4], const float *content, float *x,
                        const ts_stylize_hooks *hooks, ts_loss_parts *final, int *done)
{
	int ew = w + m[0] + m[2], eh = h + m[1] + m[3];
	size_t n = (size_t)3 * ew * eh;

	if (ew == w && eh == h)
		return ts_stylizer_run(s, targets, iterations, h, w, content, x, hooks, final,
		                       done);
	if (s->mcap < 2 * n) {
		float *b = realloc(s->mbuf, 2 * n * sizeof *b);

		if (!b) {
			ts_error("render", "out of memory for a %dx%d picture with its margin", ew, eh);
			return -1;
		}
		s->mbuf = b;
		s->mcap = 2 * n;
	}
	ts_margin_extend(content, w, h, m[0], m[1], m[2], m[3], s->mbuf);
	ts_margin_extend(x, w, h, m[0], m[1], m[2], m[3], s->mbuf + n);
	if (ts_stylizer_run(s, targets, iterations, eh, ew, s->mbuf, s->mbuf + n, hooks, final,
	                    done))
		return -1;
	ts_margin_cut(s->mbuf + n, w, h, m[0], m[1], m[2], m[3], x);
	return 0;
}

int
ts_stylize(const ts_vgg *net, const ts_style_targets *targets,
           const ts_objective_params *op, const ts_optim_params *oo, int iterations,
           int h, int w, const float *content, float *x, const ts_stylize_hooks *hooks,
           ts_loss_parts *final, int *done)
{
	ts_stylizer *s = ts_stylizer_create(net, op, oo);
	int ret;

	if (!s)
		return -1;
	ret = ts_stylizer_run(s, targets, iterations, h, w, content, x, hooks, final, done);
	ts_stylizer_destroy(s);
	return ret;
}

/* --- the single-picture render: levels, progress, frames, report --- */

typedef struct single_ctx {
	const ts_config *c;
	ts_report *report;
	const ts_image *colors;  /* the level's content, for --original-colors frames */
	ts_image *frame;         /* scratch for frames, the output's size */
	volatile int *stop;
	int progress;            /* print progress */
	int tty;
	double t0;               /* ts_now() at the start */
	int total;               /* iterations of every level rendered */
	/* the level being optimized */
	int level, nlevels;      /* index in the level list; levels in it */
	int lw, lh;              /* its size */
	int margin[4];           /* px optimized beyond the left, top, right, bottom */
	int offset;              /* run-wide number of its iteration 0 */
	double work_before;      /* pixel iterations of the levels before it */
	double work_total;       /* of every level rendered: the ETA's measure */
	ts_loss_parts first;     /* loss of its start */
} single_ctx;

static void
format_eta(double s, char *buf, size_t size)
{
	long v = (long)(s + 0.5);

	if (v >= 3600)
		snprintf(buf, size, "%ldh%02ldm", v / 3600, v / 60 % 60);
	else if (v >= 60)
		snprintf(buf, size, "%ldm%02lds", v / 60, v % 60);
	else
		snprintf(buf, size, "%lds", v);
}

/* Write x, an image of the current level's size with margins m around it (cut off),
 * as an image file (clamped; original colours applied when asked). */
static int
write_frame(single_ctx *s, const float *x, const int m[4], const char *path, int bits)
{
	ts_image f = { s->lw, s->lh, 8, s->frame->px };

	ts_margin_cut(x, s->lw, s->lh, m[0], m[1], m[2], m[3], f.px);
	ts_image_clamp(&f);
	if (s->c->original_colors)
		ts_image_keep_colors(&f, s->colors);
	return ts_image_save(&f, path, bits);
}

/* The finished picture, as the tiled assembly writes it (output.h): the TIFF's tags
 * and reduced levels, the Deep Zoom folder. */
static int
write_output(single_ctx *s, const float *x, int bits)
{
	ts_image *f = s->frame;
	ts_output *o;
	float *band;
	size_t plane = (size_t)f->w * f->h;

	memcpy(f->px, x, 3 * plane * sizeof(float));
	ts_image_clamp(f);
	if (s->c->original_colors)
		ts_image_keep_colors(f, s->colors);
	if (!(band = malloc((size_t)3 * TS_OUTPUT_BAND * f->w * sizeof *band))) {
		ts_error("render", "out of memory");
		return -1;
	}
	if (!(o = ts_output_open(s->c, f->w, f->h, bits))) {
		free(band);
		return -1;
	}
	for (int y = 0; y < f->h; y += TS_OUTPUT_BAND) {
		int rows = f->h - y < TS_OUTPUT_BAND ? f->h - y : TS_OUTPUT_BAND;

		for (int c = 0; c < 3; c++)
			memcpy(band + (size_t)c * rows * f->w, f->px + c * plane + (size_t)y * f->w,
			       (size_t)rows * f->w * sizeof(float));
		if (ts_output_band(o, band, rows)) {
			ts_output_close(o, 1);
			free(band);
			return -1;
		}
	}
	free(band);
	return ts_output_close(o, 0);
}

/* Iteration it of the current level; the report, the progress line and the frames
 * number iterations over the whole run (a level's start is the level below's
 * result, upsampled: it is reported once, as the level's "first"). */
static int
single_iteration(void *user, int it, const ts_loss_parts *p, const float *x)
{
	single_ctx *s = user;
	double el = ts_now() - s->t0;
	int run_it = s->offset + it;

	if (it == 0)
		s->first = *p;
	if (s->report && (it > 0 || s->offset == 0) &&
	    ts_report_iteration_at(s->report, s->nlevels > 1 ? s->level : -1, run_it,
	                           p->content, p->style, p->tv, p->total, el))
		return -1;
	if (s->progress) {
		/* the ETA from pixel iterations: a coarse level's are cheap */
		double work = s->work_before + (double)it * s->lw * s->lh;
		double rate = run_it > 0 ? run_it / el : 0;
		char eta[32] = "?", lvl[48] = "";

		if (work > 0 && el > 0)
			format_eta((s->work_total - work) * el / work, eta, sizeof eta);
		if (s->nlevels > 1)
			snprintf(lvl, sizeof lvl, "level %d/%d %dx%d  ", s->level + 1, s->nlevels,
			         s->lw, s->lh);
		fprintf(stderr, "%s%siter %d/%d  total %.4g  content %.4g  style %.4g  tv %.4g  "
		        "%.2f it/s  ETA %s%s", s->tty ? "\r" : "", lvl, run_it, s->total, p->total,
		        p->content, p->style, p->tv, rate, eta, s->tty ? "\033[K" : "\n");
		fflush(stderr);
	}
	if (s->c->save_every > 0 && it > 0 && run_it % s->c->save_every == 0 &&
	    run_it < s->total) {
		char path[4096];

		ts_render_frame_path(s->c->out, run_it, path, sizeof path);
		if (write_frame(s, x, s->margin, path, 8))
			return -1;
	}
	return 0;
}

static int
single_should_stop(void *user)
{
	single_ctx *s = user;

	return s->stop && *s->stop;
}

/* --save-every: a level below the output as a frame beside it, "OUT-stem_level<k>.tif"
 * (16 bits), as a tiled run saves its assembled levels. */
static int
save_level_frame(single_ctx *s, int level, const float *x)
{
	const char *out = s->c->out, *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
	char path[4400];

	if (!dot || (slash && dot < slash))
		dot = out + strlen(out);
	snprintf(path, sizeof path, "%.*s_level%d.tif", (int)(dot - out), out, level);
	return write_frame(s, x, (const int[4]){ 0, 0, 0, 0 }, path, 16);
}

/* x [3, h, w] = src [3, sh, sw] clamped to [0, 1] (as a level's file holds it) and
 * resampled as the tiled job upsamples a level to the next. */
static int
upsample(float *src, int sw, int sh, float *x, int w, int h)
{
	ts_image im = { sw, sh, 8, src };

	ts_image_clamp(&im);
	return ts_resample_planar(src, sw, sh, w, h, 0, 0, w, h, x);
}

/* The first level --init FILE leaves to render: the first whose long side is larger
 * than FILE's (FILE stands for the levels up to its size), else the last. */
static int
init_file_level(const ts_config *c, int sizes[][2], int n, int *k0)
{
	int fw, fh, bits, flong;

	*k0 = 0;
	if (c->init != TS_INIT_FILE)
		return 0;
	if (ts_image_probe(c->init_file, &fw, &fh, &bits))
		return -1;
	flong = fw > fh ? fw : fh;
	for (*k0 = 0; *k0 < n - 1; (*k0)++)
		if ((sizes[*k0][0] > sizes[*k0][1] ? sizes[*k0][0] : sizes[*k0][1]) > flong)
			break;
	return 0;
}

static int
level_iterations(const ts_config *c, int level)
{
	if (c->nlevel_iterations == 0)
		return c->iterations;
	return c->level_iterations[level < c->nlevel_iterations ? level
	                                                        : c->nlevel_iterations - 1];
}

int
ts_render_single(const ts_config *c, volatile int *stop)
{
	ts_image *content_src = NULL, *x = NULL;
	ts_image *contents[TS_MAX_LEVELS] = { 0 }; /* [k]: the content at level k's size */
	ts_image *styles[TS_MAX_STYLES] = { 0 };
	ts_vgg *net = NULL;
	ts_style_targets *targets = NULL;
	ts_stylizer *sty = NULL;
	ts_objective_params op;
	ts_optim_params oo;
	ts_loss_parts final;
	single_ctx s = { 0 };
	ts_stylize_hooks hooks = { &s, single_iteration, single_should_stop };
	int sizes[TS_MAX_LEVELS][2], n, k0, k, w, h, done = 0, ret = -1, bits;
	double t0, conv0, layers0, loss0, optim0; /* seconds of the optimization, its parts */
	float *prev = NULL;                        /* the level below's result */

	s.c = c;
	s.stop = stop;
	s.tty = isatty(fileno(stderr));
	s.progress = c->progress == TS_PROGRESS_ON || (c->progress == TS_PROGRESS_AUTO && s.tty);
	s.t0 = ts_now();

	{ /* the output's size from the file's; a large JPEG decoded shrunk on the way (by
	   * what still covers the output, as a tiled job's pyramid is) */
		int cw, ch, sw, sh, d;

		if (ts_image_probe(c->content, &cw, &ch, NULL))
			goto cleanup;
		ts_render_output_size(c, cw, ch, &w, &h);
		if ((d = ts_content_decode_scale(c->content, cw, ch, w, h, c->fit, &sw, &sh)) < 0 ||
		    !(content_src = ts_image_load_scaled(c->content, d)))
			goto cleanup;
	}
	if ((n = ts_render_levels(w, h, c->start_size, c->level_factor, TS_RENDER_MIN_SIDE,
	                          sizes)) < 0)
		goto cleanup;
	/* fewer values than levels: the last repeats; more cannot be meant (as job.c) */
	if (c->nlevel_iterations > n) {
		ts_error("render", "--level-iterations: %d values, but a %dx%d output at start "
		         "size %d and level factor %g has %d level%s (level 0: %dx%d): give at "
		         "most %d", c->nlevel_iterations, w, h, c->start_size, c->level_factor, n,
		         n == 1 ? "" : "s", sizes[0][0], sizes[0][1], n);
		goto cleanup;
	}
	if (init_file_level(c, sizes, n, &k0))
		goto cleanup;
	{ /* --fit: the canvas of the output's shape, as a tiled job makes it */
		ts_fit fit;

		ts_fit_geometry(content_src->w, content_src->h, w, h, c->fit, &fit);
		if (fit.fitted) {
			ts_image *canvas = ts_fit_image(content_src, &fit);

			if (!canvas)
				goto cleanup;
			ts_image_destroy(content_src);
			content_src = canvas;
		}
	}
	/* every level's content resized from the content itself */
	for (k = k0; k < n; k++) {
		if (sizes[k][0] == content_src->w && sizes[k][1] == content_src->h)
			contents[k] = ts_image_crop(content_src, 0, 0, sizes[k][0], sizes[k][1]);
		else
			contents[k] = ts_image_resize(content_src, sizes[k][0], sizes[k][1]);
		if (!contents[k])
			goto cleanup;
	}
	bits = content_src->bits; /* a 16-bit source keeps 16 bits (below) */
	ts_image_destroy(content_src);
	content_src = NULL;
	for (k = k0; k < n; k++) {
		double px = (double)sizes[k][0] * sizes[k][1];

		s.total += level_iterations(c, k);
		s.work_total += level_iterations(c, k) * px;
	}
	s.nlevels = n;
	if (!(net = ts_render_network(c)))
		goto cleanup;
	ts_objective_params_from_config(&op, c);
	/* the weights laid out once for the style targets and every level's objective */
	if (ts_objective_prepare(net, &op, NULL, 1))
		goto cleanup;
	ts_render_optim_params(c, &oo);
	if (!(sty = ts_stylizer_create(net, &op, &oo)))
		goto cleanup;
	if (!(x = ts_image_create(w, h)) || !(s.frame = ts_image_create(w, h)) ||
	    !(prev = malloc((size_t)3 * w * h * sizeof *prev))) {
		ts_error("render", "out of memory for a %dx%d picture", w, h);
		goto cleanup;
	}
	if (c->report || c->sheet) { /* the sheet is drawn from the report */
		if (!(s.report = ts_report_create(c)))
			goto cleanup;
		ts_report_set(s.report, "width", w);
		ts_report_set(s.report, "height", h);
	}
	t0 = ts_now();
	conv0 = ts_conv_seconds();
	layers0 = ts_vgg_layers_seconds();
	loss0 = ts_loss_seconds();
	optim0 = ts_optim_seconds();
	for (k = k0; k < n; k++) {
		int lw = sizes[k][0], lh = sizes[k][1], iters = level_iterations(c, k), ldone = 0;
		double lt0 = ts_now();

		/* the style seen at the level's scale, as a tiled job's levels see it */
		for (int i = 0; i < TS_MAX_STYLES; i++) {
			ts_image_destroy(styles[i]);
			styles[i] = NULL;
		}
		ts_targets_destroy(targets);
		targets = NULL;
		if (ts_render_style_images(c, lw > lh ? lw : lh, styles) ||
		    !(targets = ts_targets_create(net, styles, c->style_blend, c->nstyle,
		                                  &op.style_layers, op.pool)))
			goto cleanup;
		/* the start: --init at the first level, else the level below upsampled */
		if (k == k0) {
			ts_image *im = ts_render_init_image(c, contents[k], styles);

			if (!im)
				goto cleanup;
			memcpy(x->px, im->px, (size_t)3 * lw * lh * sizeof(float));
			ts_image_destroy(im);
		} else if (upsample(prev, sizes[k - 1][0], sizes[k - 1][1], x->px, lw, lh)) {
			goto cleanup;
		}
		s.level = k;
		s.lw = lw;
		s.lh = lh;
		s.colors = contents[k];
		ts_render_margins(c, lw, lh, 0, 0, lw, lh, s.margin);
		/* the level optimized with a mirrored margin around it, then cut */
		if (ts_stylizer_run_margins(sty, targets, iters, lh, lw, s.margin, contents[k]->px,
		                            x->px, &hooks, &final, &ldone))
			goto cleanup;
		done += ldone;
		if (s.report) {
			ts_report_piece_level lv = {
				k, lw, lh, iters, ldone,
				{ s.first.content, s.first.style, s.first.tv, s.first.total },
				{ final.content, final.style, final.tv, final.total },
				ts_now() - lt0
			};

			if (ts_report_piece_level_add(s.report, &lv))
				goto cleanup;
		}
		if (stop && *stop)
			break;
		if (k < n - 1) {
			if (c->save_every > 0 && save_level_frame(&s, k, x->px))
				goto cleanup;
			memcpy(prev, x->px, (size_t)3 * lw * lh * sizeof(float));
		}
		s.offset += iters;
		s.work_before += (double)iters * lw * lh;
	}
	/* stopped below the output: the current image at the output's size */
	if (k < n - 1) {
		memcpy(prev, x->px, (size_t)3 * sizes[k][0] * sizes[k][1] * sizeof(float));
		if (upsample(prev, sizes[k][0], sizes[k][1], x->px, w, h))
			goto cleanup;
	}
	ts_stylizer_destroy(sty);
	sty = NULL;
	if (s.progress && s.tty)
		fputc('\n', stderr);
	/* where the optimization's time went, as the tiled renderer reports per level */
	t0 = ts_now() - t0;
	conv0 = ts_conv_seconds() - conv0;
	layers0 = ts_vgg_layers_seconds() - layers0;
	loss0 = ts_loss_seconds() - loss0;
	optim0 = ts_optim_seconds() - optim0;
	if (s.progress && t0 > 0)
		fprintf(stderr,
		        "%d iterations in %.1f s; of the time: convolution %.1f%%, other layers "
		        "(pooling, ReLU) %.1f%%, losses %.1f%%, optimizer %.1f%%, the rest (set-up, "
		        "levels' resampling) %.1f%%\n",
		        done, t0, 100 * conv0 / t0, 100 * layers0 / t0, 100 * loss0 / t0,
		        100 * optim0 / t0, 100 * (t0 - conv0 - layers0 - loss0 - optim0) / t0);
	/* A 16-bit source keeps 16 bits where the output format can hold them. */
	bits = bits == 16 ? 16 : 8;
	s.colors = contents[n - 1];
	if (write_output(&s, x->px, bits))
		goto cleanup;
	if (s.report) {
		ts_report_set(s.report, "iterations_done", done);
		ts_report_set(s.report, "start_level", k0);
		ts_report_set(s.report, "seconds", ts_now() - s.t0);
		ts_report_set(s.report, "conv_seconds", conv0);
		ts_report_set(s.report, "layers_seconds", layers0);
		ts_report_set(s.report, "loss_seconds", loss0);
		ts_report_set(s.report, "optim_seconds", optim0);
		if (c->report && ts_report_write(s.report, c->report))
			goto cleanup;
		if (c->sheet && ts_sheet_write(ts_report_json(s.report), c->sheet))
			goto cleanup;
	}
	ret = stop && *stop ? 1 : 0;
cleanup:
	ts_report_destroy(s.report);
	ts_stylizer_destroy(sty);
	ts_image_destroy(s.frame);
	ts_image_destroy(x);
	free(prev);
	ts_targets_destroy(targets);
	ts_vgg_destroy(net);
	for (int i = 0; i < TS_MAX_STYLES; i++)
		ts_image_destroy(styles[i]);
	for (k = 0; k < TS_MAX_LEVELS; k++)
		ts_image_destroy(contents[k]);
	ts_image_destroy(content_src);
	return ret;
}
