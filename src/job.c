/* job: a tiled render on disk (see job.h).
 *
 * Invariants: the checkpoint files are the truth; an assembled level (JOB/L<k>.tif)
 * is rebuilt from them whenever a level is assembled.  Every file is written to a
 * temporary name, fsynced and renamed (file.h).  No function here holds the full-resolution
 * picture in floating point: tiles, bands of tile rows and regions only (a PNG/JPEG
 * content is decoded whole; large inputs should be TIFF). */
#include "tessera/job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tessera/conv.h"
#include "tessera/error.h"
#include "tessera/file.h"
#include "tessera/par.h"
#include "tessera/image.h"
#include "tessera/loss.h"
#include "tessera/optim.h"
#include "tessera/output.h"
#include "tessera/resample.h"
#include "tessera/tile.h"

#include "job_internal.h"

/* Which tiles of one level JOB/log.jsonl has a line for, read once per level (the
 * scheduler asks about every tile of a level in turn). */
static struct logged {
	const ts_job *j;
	uint64_t hash;
	int level, ncols, n;
	unsigned char *seen; /* [n]: tile index has a line */
} logged;

static void
logged_reset(void)
{
	free(logged.seen);
	memset(&logged, 0, sizeof logged);
}

/* CRC32 of a file's bytes (identity of an input in the plan hash). */
static int
file_crc(const char *path, uLong *crc, long long *size)
{
	unsigned char buf[1 << 16];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f) {
		ts_error_errno("job", "cannot read \"%s\"", path);
		return -1;
	}
	*crc = crc32(0L, Z_NULL, 0);
	*size = 0;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
		*crc = crc32(*crc, buf, (uInt)n);
		*size += (long long)n;
	}
	if (ferror(f)) {
		ts_error_errno("job", "cannot read \"%s\"", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

int
ts_job_iterations(const ts_job *j, int level)
{
	const ts_config *c = j->c;

	if (c->nlevel_iterations == 0)
		return c->iterations;
	return c->level_iterations[level < c->nlevel_iterations ? level
	                                                        : c->nlevel_iterations - 1];
}

/* The canonical text of everything that decides the pixels; its hash names the plan. */
static int
plan_text(ts_job *j, char *buf, size_t size)
{
	const ts_config *c = j->c;
	size_t n = 0;
	uLong crc;
	long long fsize;

#define ADD(...)                                                                     \
	do {                                                                         \
		int added_ = snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__); \
		n += added_ > 0 ? (size_t)added_ : 0;                               \
	} while (0)
	ADD("[plan]\nversion = 1\n");
	if (file_crc(c->content, &crc, &fsize))
		return -1;
	ADD("content = %s\ncontent_crc = %08lx\ncontent_bytes = %lld\n", c->content, crc, fsize);
	for (int i = 0; i < c->nstyle; i++) {
		if (file_crc(c->style[i], &crc, &fsize))
			return -1;
		ADD("style%d = %s\nstyle%d_crc = %08lx\nstyle%d_blend = %.17g\n", i, c->style[i], i,
		    crc, i, c->style_blend[i]);
	}
	if (c->weights && strcmp(c->weights, "builtin")) {
		if (file_crc(c->weights, &crc, &fsize))
			return -1;
		ADD("weights_crc = %08lx\n", crc);
	} else {
		ADD("weights = builtin\nbuiltin_seed = %llu\nbuiltin_width = %d\n",
		    (unsigned long long)c->builtin_seed, c->builtin_width);
	}
	if (c->init == TS_INIT_FILE) {
		if (file_crc(c->init_file, &crc, &fsize))
			return -1;
		ADD("init_file_crc = %08lx\n", crc);
	}
	ADD("width = %d\nheight = %d\ntile = %d\noverlap = %d\nlevel_factor = %.17g\n",
	    j->out_w, j->out_h, c->tile, c->overlap, c->level_factor);
	ADD("content_weight = %.17g\nstyle_weight = %.17g\ntv_weight = %.17g\n",
	    c->content_weight, c->style_weight, c->tv_weight);
	if (c->tv_chroma_weight != 0 || c->color_vars != 0) /* issue 17; only when set */
		ADD("tv_chroma_weight = %.17g\ncolor_vars = %.17g\n", c->tv_chroma_weight,
		    c->color_vars);
	for (int i = 0; i < c->content_layers.n; i++)
		ADD("content_layer = %s:%.17g\n", ts_vgg_layer_name(c->content_layers.layer[i]),
		    c->content_layers.w[i]);
	for (int i = 0; i < c->style_layers.n; i++)
		ADD("style_layer = %s:%.17g\n", ts_vgg_layer_name(c->style_layers.layer[i]),
		    c->style_layers.w[i]);
	ADD("style_scale = %.17g\nnormalize_style = %d\npool = %d\n", c->style_scale,
	    c->normalize_style, (int)c->pool);
	if (c->padding != TS_PAD_ZERO) /* issue 17; only when set: older plans keep theirs */
		ADD("padding = %d\n", (int)c->padding);
	ADD("init = %d\nseed = %llu\noptimizer = %d\nlbfgs_history = %d\nlearning_rate = %.17g\n",
	    (int)c->init, (unsigned long long)c->seed, (int)c->optimizer, c->lbfgs_history,
	    c->learning_rate);
	if (c->lbfgs_half) /* only when set: older plans keep their hash */
		ADD("lbfgs_precision = half\n");
	if (c->optimizer == TS_OPTIM_LBFGS && c->lbfgs_backtrack) /* its steps differ */
		ADD("lbfgs_backtrack = on\n");
	if (c->gram_global) /* likewise */
		ADD("gram = global\n");
	if (j->content_denom > 1) /* likewise: only for a JPEG decoded shrunk */
		ADD("content_decode = 1/%d\n", j->content_denom);
	if (ts_render_margin(c) > 0) /* likewise */
		ADD("margin = %d\n", ts_render_margin(c));
	if (j->fit.fitted) /* likewise: only when the shapes differ */
		ADD("fit = %s %dx%d at %d,%d\n", c->fit == TS_FIT_PAD ? "pad" : "crop", j->fit.w,
		    j->fit.h, j->fit.ox, j->fit.oy);
	for (int k = 0; k < j->plan->nlevels; k++)
		ADD("level%d = %dx%d iterations %d\n", k, j->plan->level[k].w, j->plan->level[k].h,
		    ts_job_iterations(j, k));
#undef ADD
	if (n >= size) {
		ts_error("job", "plan text too long");
		return -1;
	}
	return 0;
}

/* Remove every file under dir (the job directory's own layout: files and L<k>/). */
static int
empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4352];

	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (lstat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			empty_dir(path);
			rmdir(path);
		} else {
			unlink(path);
		}
	}
	closedir(d);
	return 0;
}

/* Whether JOB/plan.ini exists (*found) and names this plan's hash (*same). */
void
ts_job_dir_plan(const ts_job *j, int *found, int *same)
{
	char path[4400], line[256], want[64];
	FILE *f;

	*found = *same = 0;
	snprintf(want, sizeof want, "hash = %016llx", (unsigned long long)j->hash);
	snprintf(path, sizeof path, "%s/plan.ini", j->dir);
	if ((f = fopen(path, "r"))) {
		*found = 1;
		while (fgets(line, sizeof line, f))
			if (!strncmp(line, want, strlen(want)))
				*same = 1;
		fclose(f);
	}
}

/* Which resolved options differ between the job directory's plan.ini and this plan
 * (ts_config_text_diff), or "" when the file cannot be read. */
static void
plan_diff(const char *path, const char *text, char *buf, size_t size)
{
	char *old = calloc(1, 1 << 16);
	FILE *f = old ? fopen(path, "r") : NULL;

	buf[0] = '\0';
	if (f) {
		char *h;

		old[fread(old, 1, (1 << 16) - 1, f)] = '\0';
		fclose(f);
		if ((h = strstr(old, "\nhash = "))) /* setup_dir's line after the plan */
			h[1] = '\0';
		ts_config_text_diff(old, text, buf, size);
	}
	free(old);
}

/* Create the job directory or check that it belongs to this plan. */
static int
setup_dir(ts_job *j, const char *text)
{
	char path[4400];
	int same, found;

	if (mkdir(j->dir, 0777) && errno != EEXIST) {
		ts_error_errno("job", "cannot create the job directory \"%s\"", j->dir);
		return -1;
	}
	snprintf(path, sizeof path, "%s/plan.ini", j->dir);
	ts_job_dir_plan(j, &found, &same);
	if (found && !same) {
		if (!j->c->fresh) {
			char diff[1024];

			plan_diff(path, text, diff, sizeof diff);
			ts_error("job", "the job directory \"%s\" was made by a different plan: %s. "
			         "Use --fresh to discard it, or another --job-dir", j->dir,
			         diff[0] ? diff : "other options or inputs");
			return -1;
		}
	}
	if (j->c->fresh)
		empty_dir(j->dir);
	if (!found || !same || j->c->fresh) {
		size_t n = strlen(text) + 64;
		char *full = malloc(n);
		int r;

		if (!full) {
			ts_error("job", "out of memory");
			return -1;
		}
		snprintf(full, n, "%shash = %016llx\n", text, (unsigned long long)j->hash);
		r = ts_file_write("job", path, full, strlen(full));
		free(full);
		if (r)
			return -1;
	}
	return 0;
}

ts_job *
ts_job_open(const ts_config *c, int setup)
{
	ts_job *j = calloc(1, sizeof *j);
	char *text = NULL;
	const size_t text_size = 1 << 16;

	if (!j) {
		ts_error("job", "out of memory");
		return NULL;
	}
	j->c = c;
	j->targets_level = -1;
	if (c->job_dir)
		snprintf(j->dir, sizeof j->dir, "%s", c->job_dir);
	else
		snprintf(j->dir, sizeof j->dir, "%s.job", c->out ? c->out : "tessera");
	/* the content is only probed here; its pixels come from the pyramid */
	if (ts_image_probe(c->content, &j->content_w, &j->content_h, &j->content_bits))
		goto fail;
	ts_render_output_size(c, j->content_w, j->content_h, &j->out_w, &j->out_h);
	/* a JPEG much larger than the output decodes shrunk (the fit is in its pixels) */
	if ((j->content_denom = ts_content_decode_scale(c->content, j->content_w, j->content_h,
	                                                j->out_w, j->out_h, c->fit, &j->decoded_w,
	                                                &j->decoded_h)) < 0)
		goto fail;
	ts_fit_geometry(j->decoded_w, j->decoded_h, j->out_w, j->out_h, c->fit, &j->fit);
	if (!(j->plan = ts_plan_create(j->out_w, j->out_h, c->tile, c->overlap,
	                               c->level_factor)))
		goto fail;
	/* fewer values than levels: the last repeats; more cannot be meant */
	if (c->nlevel_iterations > j->plan->nlevels) {
		ts_error("job", "--level-iterations: %d values, but a %dx%d output at tile %d and "
		         "level factor %g has %d level%s (level 0: %dx%d): give at most %d",
		         c->nlevel_iterations, j->out_w, j->out_h, c->tile, c->level_factor,
		         j->plan->nlevels, j->plan->nlevels == 1 ? "" : "s", j->plan->level[0].w,
		         j->plan->level[0].h, j->plan->nlevels);
		goto fail;
	}
	if (!(text = malloc(text_size)) || plan_text(j, text, text_size))
		goto fail;
	j->hash = ts_plan_hash(text);
	if (!(j->net = ts_render_network(c)))
		goto fail;
	ts_objective_params_from_config(&j->op, c);
	ts_render_optim_params(c, &j->oo);
	if (setup && setup_dir(j, text))
		goto fail;
	if (!c->plan_only) {
		char key[32];
		const ts_level *l0 = &j->plan->level[0];

		snprintf(key, sizeof key, "%016llx", (unsigned long long)j->hash);
		if (setup && ts_pyramid_build(j->dir, c->content, j->content_denom, &j->fit, l0->w,
		                              l0->h, key, NULL))
			goto fail;
		if (!(j->pyr = ts_pyramid_open(j->dir, key)))
			goto fail;
	}
	free(text);
	return j;
fail:
	free(text);
	ts_job_close(j);
	return NULL;
}

void
ts_job_close(ts_job *j)
{
	if (!j)
		return;
	if (logged.j == j)
		logged_reset();
	ts_pyramid_close(j->pyr);
	ts_stylizer_destroy(j->sty);
	ts_plan_destroy(j->plan);
	ts_vgg_destroy(j->net);
	ts_targets_destroy(j->targets);
	free(j);
}

size_t
ts_job_prepared_floats(const ts_job *j)
{
	return ts_objective_prepared_floats(j->net, &j->op);
}

int
ts_job_prepare_weights(ts_job *j, float *mem, int compute)
{
	return ts_objective_prepare(j->net, &j->op, mem, compute);
}

const ts_plan *
ts_job_plan(const ts_job *j)
{
	return j->plan;
}

uint64_t
ts_job_hash(const ts_job *j)
{
	return j->hash;
}

/* The style images are seen at style_scale x the level's long side, capped at twice
 * the tile side: a tile never sees more of the picture than that, and the Gram of a
 * style image larger than a few tiles would cost more than the level's tiles. */
ts_style_targets *
ts_job_targets(ts_job *j, int level, int compute)
{
	const ts_config *c = j->c;
	const ts_level *lv = &j->plan->level[level];
	ts_image *styles[TS_MAX_STYLES] = { 0 };
	int long_side = lv->w > lv->h ? lv->w : lv->h;
	ts_config scaled = *c;

	ts_targets_destroy(j->targets);
	j->targets = NULL;
	j->targets_level = -1;
	if (!compute) {
		j->targets = ts_targets_alloc(j->net, &j->op.style_layers);
	} else {
		if (scaled.style_scale * long_side > 2.0 * c->tile)
			scaled.style_scale = 2.0 * c->tile / long_side;
		if (ts_render_style_images(&scaled, long_side, styles))
			return NULL;
		j->targets = ts_targets_create(j->net, styles, c->style_blend, c->nstyle,
		                               &j->op.style_layers, j->op.pool);
		for (int i = 0; i < c->nstyle; i++)
			ts_image_destroy(styles[i]);
	}
	if (j->targets)
		j->targets_level = level;
	return j->targets;
}

ts_style_targets *
ts_job_current_targets(ts_job *j)
{
	return j->targets;
}

static void
tile_rect(const ts_job *j, int level, int index, int *row, int *col, int *x, int *y, int *w,
          int *h)
{
	const ts_level *lv = &j->plan->level[level];

	*row = index / lv->ncols;
	*col = index % lv->ncols;
	ts_plan_tile_rect(j->plan, level, *row, *col, x, y, w, h);
}

/* An int after "\"key\":" in a log line, or -1. */
static int
line_int(const char *line, const char *key)
{
	const char *p = strstr(line, key);

	return p ? atoi(p + strlen(key)) : -1;
}

static unsigned char *
logged_level(ts_job *j, int level)
{
	const ts_level *lv = &j->plan->level[level];
	char path[4400], line[4096];
	FILE *f;

	if (logged.seen && logged.j == j && logged.hash == j->hash && logged.level == level)
		return logged.seen;
	logged_reset();
	if (!(logged.seen = calloc((size_t)lv->ncols * lv->nrows, 1)))
		return NULL;
	logged.j = j;
	logged.hash = j->hash;
	logged.level = level;
	logged.ncols = lv->ncols;
	logged.n = lv->ncols * lv->nrows;
	snprintf(path, sizeof path, "%s/log.jsonl", j->dir);
	if ((f = fopen(path, "r"))) {
		while (fgets(line, sizeof line, f)) {
			int r = line_int(line, "\"row\":"), c = line_int(line, "\"col\":");

			if (line_int(line, "\"level\":") == level && r >= 0 && r < lv->nrows &&
			    c >= 0 && c < lv->ncols)
				logged.seen[r * lv->ncols + c] = 1;
		}
		fclose(f);
	}
	return logged.seen;
}

int
ts_job_tile_valid(ts_job *j, int level, int index)
{
	ts_tile_result r;
	char path[4400];
	int row, col, x, y, w, h, st;
	unsigned char *seen;

	tile_rect(j, level, index, &row, &col, &x, &y, &w, &h);
	ts_ckpt_path(j->dir, level, row, col, path, sizeof path);
	st = ts_ckpt_read(path, j->hash, level, row, col, w, h, &r);
	if (st == 0) {
		/* A tile's line is written just after its checkpoint (sched.c): a process
		 * killed in between leaves a checkpoint without a line, written here from
		 * the checkpoint (without the time breakdown, which it does not keep). */
		if ((seen = logged_level(j, level)) && !seen[index] && ts_job_log(j, &r))
			ts_error_print(stderr, "tessera", ts_errmsg());
		ts_ckpt_result_fini(&r);
		return 1;
	}
	if (st < 0) {
		fprintf(stderr, "tessera: %s; the tile will be redone\n", ts_errmsg());
		unlink(path);
	}
	return 0;
}

int
ts_job_content_region(ts_job *j, int dw, int dh, int x, int y, int w, int h, float *out)
{
	return ts_pyramid_region(j->pyr, dw, dh, x, y, w, h, out);
}

int
ts_job_tiff_read(void *user, int x, int y, int w, int h, float *out)
{
	return ts_tiff_reader_region(user, x, y, w, h, out);
}

void
ts_job_level_path(const ts_job *j, int level, char *buf, size_t size)
{
	snprintf(buf, size, "%s/L%d.tif", j->dir, level);
}

/* Start image of a level-0 tile per --init, at the level-0 size. */
static int
level0_init(ts_job *j, const ts_image *content, float *x)
{
	ts_image *styles[TS_MAX_STYLES] = { 0 };
	ts_image *im = NULL;
	int ret = -1, lw = content->w, lh = content->h;

	if (j->c->init == TS_INIT_STYLE &&
	    ts_render_style_images(j->c, lw > lh ? lw : lh, styles))
		return -1;
	if (!(im = ts_render_init_image(j->c, content, styles)))
		goto cleanup;
	memcpy(x, im->px, (size_t)3 * lw * lh * sizeof(float));
	ret = 0;
cleanup:
	ts_image_destroy(im);
	for (int i = 0; i < TS_MAX_STYLES; i++)
		ts_image_destroy(styles[i]);
	return ret;
}

typedef struct tile_hooks_ctx {
	volatile int *stop;
	void (*poll)(void *);
	void *poll_user;
} tile_hooks_ctx;

static int
tile_iteration(void *user, int it, const ts_loss_parts *p, const float *x)
{
	tile_hooks_ctx *t = user;

	(void)it, (void)p, (void)x;
	if (t->poll)
		t->poll(t->poll_user);
	return 0;
}

static int
tile_should_stop(void *user)
{
	tile_hooks_ctx *t = user;

	return t->stop && *t->stop;
}

int
ts_job_render_tile(ts_job *j, int level, int index, int rank, volatile int *stop,
                   void (*poll)(void *), void *poll_user, ts_tile_result *res)
{
	const ts_level *lv = &j->plan->level[level];
	int row, col, x, y, w, h, iters = ts_job_iterations(j, level), done = 0, ret = -1;
	size_t n;
	float *content = NULL, *px = NULL;
	ts_tiff_reader *below = NULL;
	tile_hooks_ctx hc = { stop, poll, poll_user };
	ts_stylize_hooks hooks = { &hc, tile_iteration, tile_should_stop };
	ts_loss_parts final;
	char path[4400];
	double t0 = ts_now(), c0 = ts_conv_seconds(), l0 = ts_loss_seconds();
	double o0 = ts_optim_seconds(), n0 = ts_vgg_layers_seconds();

	TS_ASSERT(j->targets && j->targets_level == level);
	tile_rect(j, level, index, &row, &col, &x, &y, &w, &h);
	n = (size_t)3 * w * h;
	content = malloc(n * sizeof *content);
	px = malloc(n * sizeof *px);
	if (!content || !px) {
		ts_error("job", "out of memory for a %dx%d tile", w, h);
		goto cleanup;
	}
	/* content target: the content resampled over the tile's rectangle */
	if (ts_job_content_region(j, lv->w, lv->h, x, y, w, h, content))
		goto cleanup;
	/* start: --init at level 0, else the level below upsampled over the rectangle */
	if (level == 0) {
		ts_image cimg = { w, h, 8, content };

		if (level0_init(j, &cimg, px))
			goto cleanup;
	} else {
		int bw, bh, bb;

		ts_job_level_path(j, level - 1, path, sizeof path);
		if (!(below = ts_tiff_reader_open(path)))
			goto cleanup;
		ts_tiff_reader_size(below, &bw, &bh, &bb);
		if (ts_resample_region(ts_job_tiff_read, below, bw, bh, lv->w, lv->h, x, y, w, h, px))
			goto cleanup;
	}
	if (!j->sty && !(j->sty = ts_stylizer_create(j->net, &j->op, &j->oo)))
		goto cleanup;
	{ /* --margin: beyond the picture's true borders the tile is mirrored (a border
	   * inside the picture is the overlap's, blended away) */
		int mm[4];

		ts_render_margins(j->c, lv->w, lv->h, x, y, w, h, mm);
		if (ts_stylizer_run_margins(j->sty, j->targets, iters, h, w, mm, content, px,
		                            &hooks, &final, &done))
			goto cleanup;
	}
	if (stop && *stop && done < iters) {
		ret = 1; /* dropped: a resume redoes it */
		goto cleanup;
	}
	memset(res, 0, sizeof *res);
	res->plan_hash = j->hash;
	res->level = level;
	res->row = row;
	res->col = col;
	res->x = x;
	res->y = y;
	res->w = w;
	res->h = h;
	res->iterations = done;
	res->content = final.content;
	res->style = final.style;
	res->tv = final.tv;
	res->total = final.total;
	res->rank = rank;
	res->px = px;
	if (ts_ckpt_mkdirs(j->dir, level))
		goto cleanup;
	ts_ckpt_path(j->dir, level, row, col, path, sizeof path);
	res->seconds = ts_now() - t0;
	res->conv_seconds = ts_conv_seconds() - c0;
	res->loss_seconds = ts_loss_seconds() - l0;
	res->optim_seconds = ts_optim_seconds() - o0;
	res->layers_seconds = ts_vgg_layers_seconds() - n0;
	if (ts_ckpt_write(res, path))
		goto cleanup;
	ret = 0;
cleanup:
	if (res && ret == 0)
		res->px = NULL;
	ts_tiff_reader_close(below);
	free(content);
	free(px);
	return ret;
}

int
ts_job_log(ts_job *j, const ts_tile_result *res)
{
	if (logged.seen && logged.j == j && logged.level == res->level &&
	    res->row * logged.ncols + res->col < logged.n)
		logged.seen[res->row * logged.ncols + res->col] = 1;
	return ts_ckpt_log_append(j->dir, res);
}

/* --- assembly: tile rows in, bands out --- */

typedef struct tile_cache {
	ts_job *job;
	int level;
	const ts_level *lv;
	float **px;        /* [nrows * ncols]: loaded tiles, NULL when not held */
	int failed;
} tile_cache;

static void
cache_drop_rows_below(tile_cache *tc, int r0)
{
	for (int r = 0; r < r0; r++)
		for (int c = 0; c < tc->lv->ncols; c++) {
			free(tc->px[r * tc->lv->ncols + c]);
			tc->px[r * tc->lv->ncols + c] = NULL;
		}
}

static const float *
cache_get(void *user, int row, int col)
{
	tile_cache *tc = user;
	float **slot = &tc->px[row * tc->lv->ncols + col];

	if (!*slot) {
		ts_tile_result r;
		char path[4400];

		ts_ckpt_path(tc->job->dir, tc->level, row, col, path, sizeof path);
		if (ts_ckpt_read(path, tc->job->hash, tc->level, row, col, tc->lv->tw, tc->lv->th,
		                 &r)) {
			if (!ts_errmsg()[0])
				ts_error("job", "tile file \"%s\" is missing", path);
			tc->failed = 1;
			return NULL;
		}
		*slot = r.px; /* ownership moves to the cache */
	}
	return *slot;
}

/* --save-every in a tiled run: each assembled level below the output, as a frame
 * beside it ("OUT-stem_level<k>.tif", the level's 16-bit TIFF): a hard link to the job
 * directory's file, or a copy where the two are on different file systems. */
static int
save_level_frame(const ts_job *j, int level, const char *lpath)
{
	const char *out = j->c->out, *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
	char path[4400], *part = NULL;
	FILE *in = NULL, *o = NULL;
	char buf[65536];
	size_t n;
	int ret = -1;

	if (!dot || (slash && dot < slash))
		dot = out + strlen(out);
	snprintf(path, sizeof path, "%.*s_level%d.tif", (int)(dot - out), out, level);
	unlink(path);
	if (link(lpath, path) == 0)
		return 0;
	if (!(part = ts_file_part_name("job", path)))
		return -1;
	if (!(in = fopen(lpath, "rb")) || !(o = fopen(part, "wb"))) {
		ts_error_errno("job", "cannot write the level frame %s", path);
		goto cleanup;
	}
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, o) != n)
			break;
	if (ferror(in) || fclose(o)) {
		o = NULL;
		ts_error_errno("job", "cannot write the level frame %s", path);
		goto cleanup;
	}
	o = NULL;
	ret = ts_file_commit_part("job", part, path);
cleanup:
	if (in)
		fclose(in);
	if (o)
		fclose(o);
	if (ret)
		unlink(part);
	free(part);
	return ret;
}

int
ts_job_assemble(ts_job *j, int level)
{
	const ts_level *lv = &j->plan->level[level];
	int last = level == j->plan->nlevels - 1;
	tile_cache tc = { j, level, lv, NULL, 0 };
	ts_blocks *bl = NULL;
	ts_tiff_writer *wr = NULL;
	ts_output *out = NULL;
	float *band = NULL, *cband = NULL;
	char path[4400];
	int bits = 16, ret = -1;

	/* the tiles' working memory is not needed while assembling (the plan counts
	 * the two apart); the next level builds it once again */
	ts_stylizer_release(j->sty);
	if (last) {
		snprintf(path, sizeof path, "%s", j->c->out);
		bits = j->content_bits == 16 ? 16 : 8;
	} else {
		ts_job_level_path(j, level, path, sizeof path);
	}
	if (ts_job_level_global(j, level) && !(bl = ts_job_blocks(j, level)))
		goto cleanup;
	tc.px = calloc(bl ? (size_t)bl->n : (size_t)lv->ncols * lv->nrows, sizeof *tc.px);
	band = malloc((size_t)3 * OUT_TILE * lv->w * sizeof *band);
	if (last && j->c->original_colors)
		cband = malloc((size_t)3 * OUT_TILE * lv->w * sizeof *cband);
	if (!tc.px || !band || (last && j->c->original_colors && !cband)) {
		ts_error("job", "out of memory for assembling level %d", level);
		goto cleanup;
	}
	if (last) { /* the output, and its Deep Zoom folder (output.h) */
		if (!(out = ts_output_open(j->c, lv->w, lv->h, bits)))
			goto cleanup;
	} else if (!(wr = ts_tiff_writer_open(path, lv->w, lv->h, bits, OUT_TILE))) {
		goto cleanup;
	}
	for (int y0 = 0; y0 < lv->h; y0 += OUT_TILE) {
		int rows = y0 + OUT_TILE <= lv->h ? OUT_TILE : lv->h - y0, r0, r1;

		ts_error_clear();
		if (bl) { /* blocks do not overlap: copied */
			if (ts_job_block_band(j, level, bl, y0, rows, band, tc.px))
				goto cleanup;
		} else {
			ts_tile_band_rows(lv, y0, y0 + rows, &r0, &r1);
			cache_drop_rows_below(&tc, r0);
			if (ts_blend_band(lv, y0, y0 + rows, cache_get, &tc, band) || tc.failed)
				goto cleanup;
		}
		if (cband) {
			ts_image b = { lv->w, rows, 8, band }, cb = { lv->w, rows, 8, cband };

			if (ts_job_content_region(j, lv->w, lv->h, 0, y0, lv->w, rows, cband))
				goto cleanup;
			ts_image_clamp(&b);
			ts_image_keep_colors(&b, &cb);
		}
		if (wr) {
			if (ts_tiff_writer_band(wr, band, rows))
				goto cleanup;
		} else {
			ts_image b = { lv->w, rows, bits, band };

			ts_image_clamp(&b);
			if (ts_output_band(out, band, rows))
				goto cleanup;
		}
	}
	{
		int r = wr ? ts_tiff_writer_close(wr, 0) : ts_output_close(out, 0);

		wr = NULL, out = NULL;
		if (r)
			goto cleanup;
	}
	if (!last && j->c->save_every > 0 && save_level_frame(j, level, path))
		goto cleanup;
	ret = 0;
cleanup:
	if (wr)
		ts_tiff_writer_close(wr, 1);
	ts_output_close(out, 1);
	if (tc.px && bl) {
		for (int b = 0; b < bl->n; b++)
			free(tc.px[b]);
		free(tc.px);
	} else if (tc.px) {
		cache_drop_rows_below(&tc, lv->nrows);
		free(tc.px);
	}
	ts_blocks_destroy(bl);
	free(band);
	free(cband);
	return ret;
}
