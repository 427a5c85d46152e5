/* config_check: ts_config_check, the checks of a whole configuration after parsing
 * (files exist, values in range, the combination makes sense); every problem found is
 * reported, not only the first. */
#include "tessera/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "config_internal.h"

/* The file must exist, be readable and not be a directory. */
static void
check_file(const char *opt, const char *path, int *nerr)
{
	struct stat st;

	if (access(path, R_OK)) {
		ts_error_add(nerr, NULL, "%s: cannot read \"%s\": %s", opt, path, strerror(errno));
		return;
	}
	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		ts_error_add(nerr, NULL, "%s: \"%s\" is a directory", opt, path);
}

/* Whether a file can be created in dir: a probe file made and removed at once.  Not
 * access(W_OK): it says yes to root in any directory, and yes under /proc, where no
 * file can be made. */
static int
dir_writable(const char *dir)
{
	char probe[4200];
	int fd;

	if (snprintf(probe, sizeof probe, "%s/.tessera-probe-XXXXXX", dir) >= (int)sizeof probe) {
		errno = ENAMETOOLONG;
		return 0;
	}
	if ((fd = mkstemp(probe)) < 0)
		return 0;
	close(fd);
	unlink(probe);
	return 1;
}

/* The directory of path ("." when it has none) into dir [size]. */
static void
dir_of(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, size, ".");
	else if (slash == path)
		snprintf(dir, size, "/");
	else
		snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

/* A directory that exists and, unless probe is 0, where files can be created. */
static void
check_dir(const char *opt, const char *what, const char *dir, int probe, int *nerr)
{
	struct stat st;

	if (stat(dir, &st))
		ts_error_add(nerr, NULL, "%s: %s \"%s\" does not exist: %s", opt, what, dir,
			       strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		ts_error_add(nerr, NULL, "%s: \"%s\" is not a directory", opt, dir);
	else if (probe && !dir_writable(dir))
		ts_error_add(nerr, NULL, "%s: cannot create files in %s \"%s\": %s", opt, what, dir,
			       strerror(errno));
	else if (!probe && access(dir, W_OK | X_OK))
		ts_error_add(nerr, NULL, "%s: cannot write in %s \"%s\": %s", opt, what, dir,
			       strerror(errno));
}

/* A file the run will write (atomically, so its directory must take new files): the
 * directory exists and takes files, and path is not a directory. */
static void
check_output_file(const char *opt, const char *path, int probe, int *nerr)
{
	char dir[4096];
	struct stat st;

	dir_of(path, dir, sizeof dir);
	check_dir(opt, "directory", dir, probe, nerr);
	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		ts_error_add(nerr, NULL, "%s: \"%s\" is a directory", opt, path);
}

/* Output directory exists and can be written; the extension names a format.  The
 * frames of --save-every go next to it (ts_render_frame_path). */
static void
check_out(const char *opt, const char *out, int probe, int *nerr)
{
	static const char *const exts[] = { "png", "jpg", "jpeg", "tif", "tiff", "bmp" };
	const char *slash = strrchr(out, '/');
	const char *base = slash ? slash + 1 : out;
	const char *dot = strrchr(base, '.');
	int ok = 0;

	check_output_file(opt, out, probe, nerr);
	for (int i = 0; dot && i < 6; i++)
		if (!strcasecmp(dot + 1, exts[i]))
			ok = 1;
	if (!ok)
		ts_error_add(nerr, NULL, "%s: \"%s\" has an unknown extension "
			       "(use .png, .jpg, .jpeg, .tif, .tiff or .bmp)", opt, out);
}

/* The job directory (--job-dir, default OUT.job as job.c names it) takes files: when
 * it exists, in it; else in its parent, where it will be made. */
static void
check_job_dir(const ts_config *c, int *nerr)
{
	char dir[4096], parent[4096];
	struct stat st;

	if (c->job_dir)
		snprintf(dir, sizeof dir, "%s", c->job_dir);
	else
		snprintf(dir, sizeof dir, "%s.job", c->out);
	if (!stat(dir, &st)) {
		check_dir("--job-dir", "job directory", dir, 1, nerr);
		return;
	}
	if (!c->job_dir)
		return; /* made in --out's directory, checked with it */
	dir_of(dir, parent, sizeof parent);
	check_dir("--job-dir", "the job directory's parent", parent, 1, nerr);
}

static void
check_layers(const char *opt, const ts_layer_weights *lw, int *nerr)
{
	if (lw->n < 0 || lw->n > TS_VGG_NLAYERS) {
		ts_error_add(nerr, NULL, "%s: %d layers", opt, lw->n);
		return;
	}
	for (int i = 0; i < lw->n; i++) {
		if (lw->layer[i] < 0 || lw->layer[i] >= TS_VGG_NLAYERS)
			ts_error_add(nerr, NULL, "%s: layer index %d is not a VGG-19 layer", opt, lw->layer[i]);
		else if (!(lw->w[i] >= 0) || !isfinite(lw->w[i]))
			ts_error_add(nerr, NULL, "%s: weight %g of %s is not a non-negative number", opt,
				       lw->w[i], ts_vgg_layer_name(lw->layer[i]));
	}
}

static void
check_int(const char *opt, int v, int lo, int hi, int *nerr)
{
	if (v < lo || v > hi)
		ts_error_add(nerr, NULL, "%s: %d is not in %d..%d", opt, v, lo, hi);
}

static void
check_weight(const char *opt, double v, int *nerr)
{
	if (!(v >= 0) || !isfinite(v))
		ts_error_add(nerr, NULL, "%s: %g is negative", opt, v);
}

int
ts_config_check(const ts_config *c)
{
	int nerr = 0;
	int dims = c->width || c->height;
	int print = c->print_w != 0 || c->print_h != 0;

	ts_error_clear();
	/* inputs and output */
	if (c->config_path)
		check_file("--config", c->config_path, &nerr);
	if (!c->content)
		ts_error_add(&nerr, NULL, "--content is required");
	else
		check_file("--content", c->content, &nerr);
	if (c->nstyle < 1 || c->nstyle > TS_MAX_STYLES)
		ts_error_add(&nerr, NULL, "--style is required");
	for (int i = 0; i < c->nstyle && i < TS_MAX_STYLES; i++) {
		if (!c->style[i])
			ts_error_add(&nerr, NULL, "--style: style %d has no file name", i + 1);
		else
			check_file("--style", c->style[i], &nerr);
	}
	if (c->has_blend && c->has_blend != c->nstyle) {
		ts_error_add(&nerr, NULL, "--style-blend: %d weight%s for %d style%s", c->has_blend,
			       c->has_blend == 1 ? "" : "s", c->nstyle, c->nstyle == 1 ? "" : "s");
	} else if (c->nstyle > 0 && c->nstyle <= TS_MAX_STYLES) {
		double sum = 0;

		for (int i = 0; i < c->nstyle; i++) {
			if (!(c->style_blend[i] >= 0))
				ts_error_add(&nerr, NULL, "--style-blend: weight %g is negative", c->style_blend[i]);
			sum += c->style_blend[i];
		}
		if (!(sum > 0))
			ts_error_add(&nerr, NULL, "--style-blend: the weights are all zero");
	}
	if (!c->out) {
		if (!c->plan_only)
			ts_error_add(&nerr, NULL, "--out is required");
	} else {
		check_out("--out", c->out, !c->plan_only, &nerr);
	}
	/* every file the run writes, before any work: a run must not fail at its end */
	if (c->report && !c->plan_only)
		check_output_file("--report", c->report, 1, &nerr);
	/* the contact sheet (sheet.h): an image file of its own */
	if (c->sheet && !c->plan_only) {
		check_out("--sheet", c->sheet, 1, &nerr);
		if ((c->out && !strcmp(c->sheet, c->out)) || (c->report && !strcmp(c->sheet, c->report)))
			ts_error_add(&nerr, NULL, "--sheet: \"%s\" is also the %s", c->sheet,
			             c->out && !strcmp(c->sheet, c->out) ? "--out" : "--report");
	}
	if (!c->plan_only && c->out)
		check_job_dir(c, &nerr);
	if (c->init == TS_INIT_FILE) {
		if (!c->init_file)
			ts_error_add(&nerr, NULL, "--init: no file given");
		else
			check_file("--init", c->init_file, &nerr);
	}
	if (c->weights && strcmp(c->weights, "builtin"))
		check_file("--weights", c->weights, &nerr);

	/* output size */
	if (c->width)
		check_int("--width", c->width, 1, MAX_DIM, &nerr);
	if (c->height)
		check_int("--height", c->height, 1, MAX_DIM, &nerr);
	if (c->size)
		check_int("--size", c->size, 1, MAX_DIM, &nerr);
	if (c->size && dims)
		ts_error_add(&nerr, NULL, "--size excludes --width and --height");
	if (print) {
		if (c->dpi <= 0)
			ts_error_add(&nerr, NULL, "--print-size needs --dpi > 0 (got %d)", c->dpi);
		if (dims || c->size)
			ts_error_add(&nerr, NULL, "--print-size excludes --width, --height and --size");
		if (!(c->print_w > 0) || !(c->print_h > 0))
			ts_error_add(&nerr, NULL, "--print-size: width and height must be positive");
		else if (c->dpi > 0 &&
		         (c->print_w * c->dpi > MAX_DIM || c->print_h * c->dpi > MAX_DIM))
			ts_error_add(&nerr, NULL, "--print-size: %gx%gin at %d dpi is more than %d pixels a side",
				       c->print_w, c->print_h, c->dpi, MAX_DIM);
	} else if (c->dpi < 0) {
		ts_error_add(&nerr, NULL, "--dpi: %d is negative", c->dpi);
	}

	/* objective */
	check_weight("--content-weight", c->content_weight, &nerr);
	check_weight("--style-weight", c->style_weight, &nerr);
	check_weight("--tv-weight", c->tv_weight, &nerr);
	check_weight("--tv-chroma-weight", c->tv_chroma_weight, &nerr);
	if (!(c->color_vars >= 0 && c->color_vars <= 100))
		ts_error_add(&nerr, NULL, "--color-vars: %g is not in [0, 100] (0: RGB pixels)",
		             c->color_vars);
	else if (c->color_vars > 0 && c->gram_global)
		ts_error_add(&nerr, NULL, "--color-vars: not with --gram global yet (its "
		             "optimizer moves the pixels): use --gram tile or --color-vars 0");
	check_layers("--content-layers", &c->content_layers, &nerr);
	check_layers("--style-layers", &c->style_layers, &nerr);
	if (c->content_layers.n == 0 && c->style_layers.n == 0)
		ts_error_add(&nerr, NULL, "no layers: give --content-layers or --style-layers");
	if (!(c->style_scale > 0 && c->style_scale <= 16))
		ts_error_add(&nerr, NULL, "--style-scale: %g is not in (0, 16]", c->style_scale);

	/* start and optimizer */
	if (c->iterations < 0)
		ts_error_add(&nerr, NULL, "--iterations: %d is negative", c->iterations);
	if (c->start_size != 0 && (c->start_size < TS_RENDER_MIN_SIDE || c->start_size > MAX_DIM))
		ts_error_add(&nerr, NULL, "--start-size: %d is not 0 (full size only) or in "
		             "%d..%d px (the first level's long side)", c->start_size,
		             TS_RENDER_MIN_SIDE, MAX_DIM);
	check_int("--margin", c->margin, 0, 1024, &nerr);
	check_int("--lbfgs-history", c->lbfgs_history, 1, 1000, &nerr);
	check_int("--ranks", c->plan_ranks, 0, 1 << 20, &nerr);
	if (!(c->learning_rate >= 0) || !isfinite(c->learning_rate))
		ts_error_add(&nerr, NULL, "--learning-rate: %g is negative", c->learning_rate);
	check_int("--builtin-width", c->builtin_width, 1, 64, &nerr);

	/* outputs of the run */
	if (c->save_every < 0)
		ts_error_add(&nerr, NULL, "--save-every: %d is negative", c->save_every);
	if (c->progress_every < 1)
		ts_error_add(&nerr, NULL, "--progress-every: %d is not a positive number of seconds",
		             c->progress_every);
	if (c->checkpoint_every < 0)
		ts_error_add(&nerr, NULL, "--checkpoint-every: %d is negative", c->checkpoint_every);
	if (c->threads < 0)
		ts_error_add(&nerr, NULL, "--threads: %d is negative", c->threads);

	/* tiles */
	if (c->tile < 64 || c->tile % 16)
		ts_error_add(&nerr, NULL, "--tile: %d is not a multiple of 16 of at least 64", c->tile);
	if (c->overlap < 0 || c->overlap >= c->tile / 2)
		ts_error_add(&nerr, NULL, "--overlap: %d is not in 0..%d (less than half the tile)",
			       c->overlap, c->tile / 2 - 1);
	if (!(c->level_factor > 1 && c->level_factor <= 8))
		ts_error_add(&nerr, NULL, "--level-factor: %g is not in (1, 8]", c->level_factor);
	if (c->nlevel_iterations < 0 || c->nlevel_iterations > MAX_LEVELS)
		ts_error_add(&nerr, NULL, "--level-iterations: %d entries", c->nlevel_iterations);
	for (int i = 0; i < c->nlevel_iterations && i < MAX_LEVELS; i++)
		if (c->level_iterations[i] < 0)
			ts_error_add(&nerr, NULL, "--level-iterations: %d is negative", c->level_iterations[i]);
	return nerr ? -1 : 0;
}

