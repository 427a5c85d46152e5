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
	return isfinite(f) ? f : NAN;
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

void
ts_stylizer_release(ts_stylizer *s)
{
	if (!s)
		return;
	ts_optim_destroy(s->opt);
	ts_objective_destroy(s->obj);
	free(s->cvbuf);
	s->opt = NULL;
	s->obj = NULL;
	s->cvbuf = NULL;
	s->h = s->w = 0;
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
	ts_stylizer_release(s);
	if (!(s->obj = ts_objective_create(s->net, h, w, &s->op, targets, content)))
		return -1;
	if (s->op.color_vars > 0 && !(s->cvbuf = malloc((size_t)9 * h * w * sizeof(float)))) {
		ts_error("render", "out of memory for the colour variables");
		ts_stylizer_release(s);
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

/* --- the single-picture render: progress, frames, report --- */

typedef struct single_ctx {
	const ts_config *c;
	ts_report *report;
	const ts_image *colors;  /* content, for --original-colors frames */
	ts_image *frame;         /* scratch for frames */
	volatile int *stop;
	int progress;            /* print progress */
	int tty;
	double t0;               /* ts_now() at the start */
	int total;
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

/* Write x as an image file (clamped; original colours applied when asked). */
static int
write_frame(single_ctx *s, const float *x, const char *path, int bits)
{
	memcpy(s->frame->px, x, (size_t)3 * s->frame->w * s->frame->h * sizeof(float));
	ts_image_clamp(s->frame);
	if (s->c->original_colors)
		ts_image_keep_colors(s->frame, s->colors);
	return ts_image_save(s->frame, path, bits);
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

static int
single_iteration(void *user, int it, const ts_loss_parts *p, const float *x)
{
	single_ctx *s = user;
	double el = ts_now() - s->t0;

	if (s->report && ts_report_iteration(s->report, it, p->content, p->style, p->tv,
	                                     p->total, el))
		return -1;
	if (s->progress) {
		double rate = it > 0 ? it / el : 0;
		char eta[32] = "?";

		if (rate > 0)
			format_eta((s->total - it) / rate, eta, sizeof eta);
		fprintf(stderr, "%siter %d/%d  total %.4g  content %.4g  style %.4g  tv %.4g  "
		        "%.2f it/s  ETA %s%s", s->tty ? "\r" : "", it, s->total, p->total,
		        p->content, p->style, p->tv, rate, eta, s->tty ? "\033[K" : "\n");
		fflush(stderr);
	}
	if (s->c->save_every > 0 && it > 0 && it % s->c->save_every == 0 && it < s->total) {
		char path[4096];

		ts_render_frame_path(s->c->out, it, path, sizeof path);
		if (write_frame(s, x, path, 8))
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

int
ts_render_single(const ts_config *c, volatile int *stop)
{
	ts_image *content_src = NULL, *content = NULL, *x = NULL;
	ts_image *styles[TS_MAX_STYLES] = { 0 };
	ts_vgg *net = NULL;
	ts_style_targets *targets = NULL;
	ts_objective_params op;
	ts_optim_params oo;
	ts_loss_parts final;
	single_ctx s = { 0 };
	ts_stylize_hooks hooks = { &s, single_iteration, single_should_stop };
	int w, h, done = 0, ret = -1, bits;
	double t0, conv0, layers0, loss0, optim0; /* seconds of the optimization, its parts */

	s.c = c;
	s.stop = stop;
	s.total = c->iterations;
	s.tty = isatty(fileno(stderr));
	s.progress = c->progress == TS_PROGRESS_ON || (c->progress == TS_PROGRESS_AUTO && s.tty);
	s.t0 = ts_now();

	if (!(content_src = ts_image_load(c->content, 0)))
		goto cleanup;
	ts_render_output_size(c, content_src->w, content_src->h, &w, &h);
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
	if (w == content_src->w && h == content_src->h) {
		content = content_src;
		content_src = NULL;
	} else if (!(content = ts_image_resize(content_src, w, h))) {
		goto cleanup;
	}
	content->bits = content_src ? content_src->bits : content->bits;
	if (ts_render_style_images(c, w > h ? w : h, styles))
		goto cleanup;
	if (!(net = ts_render_network(c)))
		goto cleanup;
	ts_objective_params_from_config(&op, c);
	/* the weights laid out once for the style targets and every level's objective */
	if (ts_objective_prepare(net, &op, NULL, 1))
		goto cleanup;
	if (!(targets = ts_targets_create(net, styles, c->style_blend, c->nstyle,
	                                  &op.style_layers, op.pool)))
		goto cleanup;
	if (!(x = ts_render_init_image(c, content, styles)))
		goto cleanup;
	if (!(s.frame = ts_image_create(w, h)))
		goto cleanup;
	s.colors = content;
	if (c->report || c->sheet) { /* the sheet is drawn from the report */
		if (!(s.report = ts_report_create(c)))
			goto cleanup;
		ts_report_set(s.report, "width", w);
		ts_report_set(s.report, "height", h);
	}
	ts_render_optim_params(c, &oo);
	t0 = ts_now();
	conv0 = ts_conv_seconds();
	layers0 = ts_vgg_layers_seconds();
	loss0 = ts_loss_seconds();
	optim0 = ts_optim_seconds();
	if (ts_stylize(net, targets, &op, &oo, c->iterations, h, w, content->px, x->px,
	               &hooks, &final, &done))
		goto cleanup;
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
	bits = content->bits == 16 ? 16 : 8;
	if (write_output(&s, x->px, bits))
		goto cleanup;
	if (s.report) {
		ts_report_set(s.report, "iterations_done", done);
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
	ts_image_destroy(s.frame);
	ts_image_destroy(x);
	ts_targets_destroy(targets);
	ts_vgg_destroy(net);
	for (int i = 0; i < TS_MAX_STYLES; i++)
		ts_image_destroy(styles[i]);
	ts_image_destroy(content);
	ts_image_destroy(content_src);
	return ret;
}
