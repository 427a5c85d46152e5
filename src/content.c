/* content: fit geometry and the content pyramid (see content.h).
 *
 * Invariants: a level file exists under its real name only when written whole (the
 * TIFF writer's .part and rename); pyramid.ini is written after every level, so a
 * pyramid.ini naming the key means every level it lists is whole.  Each level is a
 * function of the input file and the fit alone: the same bits on every rank, run and
 * resume. */
#include "tessera/content.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/file.h"
#include "tessera/resample.h"

/* Rows of a band; tile side of the level files. */
#define BAND 256
/* Output columns resampled at once when a level is made from the one above. */
#define CHUNK_W 1024
#define MAX_LEVELS 32
/* The colour of a padded canvas: white, a print's margin. */
#define PAD_VALUE 1.0f

void
ts_fit_geometry(int cw, int ch, int ow, int oh, ts_fit_mode mode, ts_fit *f)
{
	double oa = (double)ow / oh;
	int w, h;

	memset(f, 0, sizeof *f);
	f->w = cw, f->h = ch;
	if (mode == TS_FIT_STRETCH)
		return;
	if ((double)cw / ch > oa) { /* content wider than the output */
		w = (int)lround(ch * oa), h = ch;
		if (mode == TS_FIT_PAD)
			w = cw, h = (int)lround(cw / oa);
	} else {
		w = cw, h = (int)lround(cw / oa);
		if (mode == TS_FIT_PAD)
			w = (int)lround(ch * oa), h = ch;
	}
	if (w < 1)
		w = 1;
	if (h < 1)
		h = 1;
	if (w == cw && h == ch)
		return;
	f->w = w, f->h = h;
	/* centred: half the difference, rounded down */
	f->ox = (cw - w) / 2;
	f->oy = (ch - h) / 2;
	if (cw - w < 0)
		f->ox = -((w - cw) / 2);
	if (ch - h < 0)
		f->oy = -((h - ch) / 2);
	f->fitted = 1;
}

void
ts_fit_describe(const ts_fit *f, int cw, int ch, ts_fit_mode mode, char *buf, size_t size)
{
	if (!f->fitted) {
		if (size)
			buf[0] = '\0';
		return;
	}
	if (mode == TS_FIT_CROP)
		snprintf(buf, size, "crop: the %dx%d content cut to %dx%d at (%d, %d)", cw, ch,
		         f->w, f->h, f->ox, f->oy);
	else
		snprintf(buf, size, "pad: the %dx%d content centred on a white %dx%d canvas at "
		         "(%d, %d)", cw, ch, f->w, f->h, -f->ox, -f->oy);
}

/* Canvas rows [0, rows) starting at canvas row y0 from content rows held in src
 * ([3, sn, cw], content rows [sy0, sy0 + sn)); outside the content: PAD_VALUE. */
static void
place_rows(const ts_fit *f, int cw, int ch, const float *src, int sy0, int sn, int y0,
           int rows, float *band)
{
	size_t bp = (size_t)rows * f->w, sp = (size_t)sn * cw;
	int x0 = f->ox < 0 ? -f->ox : 0, x1 = cw - f->ox < f->w ? cw - f->ox : f->w;

	for (size_t i = 0; i < 3 * bp; i++)
		band[i] = PAD_VALUE;
	(void)ch;
	for (int r = 0; r < rows; r++) {
		int cy = y0 + r + f->oy;

		if (cy < sy0 || cy >= sy0 + sn || x1 <= x0)
			continue;
		for (int c = 0; c < 3; c++)
			memcpy(band + c * bp + (size_t)r * f->w + x0,
			       src + c * sp + (size_t)(cy - sy0) * cw + x0 + f->ox,
			       (size_t)(x1 - x0) * sizeof(float));
	}
}

ts_image *
ts_fit_image(const ts_image *content, const ts_fit *f)
{
	ts_image *im = ts_image_create(f->w, f->h);

	if (!im)
		return NULL;
	im->bits = content->bits;
	/* place_rows over the whole canvas, band by band of the canvas */
	{
		size_t cp = (size_t)f->w * f->h;
		float *tmp = malloc((size_t)3 * f->w * sizeof *tmp);

		if (!tmp) {
			ts_error("content", "out of memory for a %dx%d canvas", f->w, f->h);
			ts_image_destroy(im);
			return NULL;
		}
		for (int y = 0; y < f->h; y++) {
			place_rows(f, content->w, content->h, content->px, 0, content->h, y, 1, tmp);
			for (int c = 0; c < 3; c++)
				memcpy(im->px + c * cp + (size_t)y * f->w, tmp + (size_t)c * f->w,
				       (size_t)f->w * sizeof(float));
		}
		free(tmp);
	}
	return im;
}

/* --- the pyramid --- */

struct ts_pyramid {
	char dir[4200];
	int n;
	int w[MAX_LEVELS], h[MAX_LEVELS];
	ts_tiff_reader *r[MAX_LEVELS]; /* opened on first use */
};

static void
level_path(const char *dir, int k, char *buf, size_t size)
{
	snprintf(buf, size, "%s/P%d.tif", dir, k);
}

static int
level_sizes(int w, int h, int min_w, int min_h, int *lw, int *lh)
{
	int n = 0;

	lw[n] = w, lh[n] = h, n++;
	while (n < MAX_LEVELS) {
		int nw = (lw[n - 1] + 1) / 2, nh = (lh[n - 1] + 1) / 2;

		if (nw < min_w || nh < min_h || (nw == lw[n - 1] && nh == lh[n - 1]))
			break;
		lw[n] = nw, lh[n] = nh, n++;
	}
	return n;
}

double
ts_pyramid_disk_bytes(int w, int h, int bits, int min_w, int min_h, int *levels)
{
	int lw[MAX_LEVELS], lh[MAX_LEVELS], n = level_sizes(w, h, min_w, min_h, lw, lh);
	double b = 0;

	for (int k = 0; k < n; k++)
		b += 3.0 * lw[k] * lh[k] * (k == 0 ? bits / 8 : 2);
	if (levels)
		*levels = n;
	return b;
}

static int
tiff_region(void *user, int x, int y, int w, int h, float *out)
{
	return ts_tiff_reader_region(user, x, y, w, h, out);
}

/* pyramid.ini of dir into p when it names key: 1 found and matching, 0 not. */
static int
read_ini(const char *dir, const char *key, ts_pyramid *p)
{
	char path[4400], line[256], k[128];
	FILE *f;
	int ok = 0, n = -1, got = 0;

	snprintf(path, sizeof path, "%s/pyramid.ini", dir);
	if (!(f = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof line, f)) {
		int i, w, h;

		if (sscanf(line, "key = %127s", k) == 1)
			ok = !strcmp(k, key);
		else if (sscanf(line, "levels = %d", &n) == 1 && (n < 1 || n > MAX_LEVELS))
			n = -1;
		else if (sscanf(line, "level%d = %dx%d", &i, &w, &h) == 3 && i >= 0 &&
		         i < MAX_LEVELS && w > 0 && h > 0)
			p->w[i] = w, p->h[i] = h, got++;
	}
	fclose(f);
	if (!ok || n < 1 || got != n)
		return 0;
	p->n = n;
	return 1;
}

/* Level 0 from the input, streamed. */
static int
build_base(const char *path, int denom, const ts_fit *fit, const char *out, int *bits)
{
	ts_image_reader *rd = NULL;
	ts_tiff_writer *wr = NULL;
	float *src = NULL, *band = NULL;
	int cw, ch, ret = -1;

	if (!(rd = ts_image_reader_open_scaled(path, denom)))
		goto cleanup;
	ts_image_reader_size(rd, &cw, &ch, bits);
	src = malloc((size_t)3 * BAND * cw * sizeof *src);
	band = malloc((size_t)3 * BAND * fit->w * sizeof *band);
	if (!src || !band) {
		ts_error("content", "out of memory for a band of %s (%d pixels wide)", path,
		         cw > fit->w ? cw : fit->w);
		goto cleanup;
	}
	if (!(wr = ts_tiff_writer_open(out, fit->w, fit->h, *bits == 16 ? 16 : 8, BAND)))
		goto cleanup;
	/* rows above a crop: read and dropped */
	for (int y = 0; y < fit->oy;) {
		int n = fit->oy - y < BAND ? fit->oy - y : BAND;

		if (ts_image_reader_rows(rd, n, src))
			goto cleanup;
		y += n;
	}
	for (int y0 = 0; y0 < fit->h; y0 += BAND) {
		int rows = fit->h - y0 < BAND ? fit->h - y0 : BAND;
		int a = y0 + fit->oy, b = a + rows; /* content rows of the band */

		if (a < 0)
			a = 0;
		if (b > ch)
			b = ch;
		if (b > a && ts_image_reader_rows(rd, b - a, src))
			goto cleanup;
		place_rows(fit, cw, ch, src, a, b > a ? b - a : 0, y0, rows, band);
		if (ts_tiff_writer_band(wr, band, rows))
			goto cleanup;
	}
	ret = ts_tiff_writer_close(wr, 0);
	wr = NULL;
cleanup:
	ts_tiff_writer_close(wr, 1);
	ts_image_reader_close(rd);
	free(src);
	free(band);
	return ret;
}

/* Level k (dw x dh) from the file above, region by region. */
static int
build_below(const char *above, int sw, int sh, const char *out, int dw, int dh)
{
	ts_tiff_reader *rd = NULL;
	ts_tiff_writer *wr = NULL;
	float *chunk = NULL, *band = NULL;
	int ret = -1;

	if (!(rd = ts_tiff_reader_open_unmapped(above)))
		goto cleanup;
	chunk = malloc((size_t)3 * BAND * CHUNK_W * sizeof *chunk);
	band = malloc((size_t)3 * BAND * dw * sizeof *band);
	if (!chunk || !band) {
		ts_error("content", "out of memory for a band of %s", out);
		goto cleanup;
	}
	if (!(wr = ts_tiff_writer_open(out, dw, dh, 16, BAND)))
		goto cleanup;
	for (int y0 = 0; y0 < dh; y0 += BAND) {
		int rows = dh - y0 < BAND ? dh - y0 : BAND;
		size_t bp = (size_t)rows * dw;

		for (int x0 = 0; x0 < dw; x0 += CHUNK_W) {
			int cols = dw - x0 < CHUNK_W ? dw - x0 : CHUNK_W;
			size_t cp = (size_t)rows * cols;

			if (ts_resample_region(tiff_region, rd, sw, sh, dw, dh, x0, y0, cols, rows, chunk))
				goto cleanup;
			for (int c = 0; c < 3; c++)
				for (int r = 0; r < rows; r++)
					memcpy(band + c * bp + (size_t)r * dw + x0, chunk + c * cp + (size_t)r * cols,
					       (size_t)cols * sizeof(float));
		}
		if (ts_tiff_writer_band(wr, band, rows))
			goto cleanup;
	}
	ret = ts_tiff_writer_close(wr, 0);
	wr = NULL;
cleanup:
	ts_tiff_writer_close(wr, 1);
	ts_tiff_reader_close(rd);
	free(chunk);
	free(band);
	return ret;
}

static void
content_dir(const char *job_dir, char *buf, size_t size)
{
	snprintf(buf, size, "%s/content", job_dir);
}

int
ts_content_decode_scale(const char *path, int cw, int ch, int ow, int oh, ts_fit_mode mode,
                        int *sw, int *sh)
{
	*sw = cw, *sh = ch;
	for (int d = 8; d >= 2; d /= 2) {
		int w, h, applied;
		ts_fit f;

		if (ts_image_probe_scaled(path, d, &w, &h, &applied))
			return -1;
		if (applied != d)
			return 1; /* the format cannot shrink */
		ts_fit_geometry(w, h, ow, oh, mode, &f);
		if (f.w >= ow && f.h >= oh) {
			*sw = w, *sh = h;
			return d;
		}
	}
	return 1;
}

int
ts_pyramid_build(const char *job_dir, const char *path, int denom, const ts_fit *fit,
                 int min_w, int min_h, const char *key, int *reused)
{
	ts_pyramid p;
	char dir[4200], lp[4400], above[4400], *ini = NULL;
	int lw[MAX_LEVELS], lh[MAX_LEVELS], n, bits = 8, ret = -1;
	size_t len = 0, cap = 256 + 64 * MAX_LEVELS;

	memset(&p, 0, sizeof p);
	content_dir(job_dir, dir, sizeof dir);
	n = level_sizes(fit->w, fit->h, min_w, min_h, lw, lh);
	if (reused)
		*reused = 0;
	if (read_ini(dir, key, &p) && p.n == n && p.w[0] == fit->w && p.h[0] == fit->h) {
		struct stat st;
		int all = 1;

		for (int k = 0; k < n && all; k++) {
			level_path(dir, k, lp, sizeof lp);
			all = stat(lp, &st) == 0;
		}
		if (all) {
			if (reused)
				*reused = 1;
			return 0;
		}
	}
	if (mkdir(dir, 0777) && errno != EEXIST) {
		ts_error_errno("content", "cannot create \"%s\"", dir);
		return -1;
	}
	snprintf(lp, sizeof lp, "%s/pyramid.ini", dir);
	unlink(lp); /* a pyramid being remade is not a pyramid */
	level_path(dir, 0, lp, sizeof lp);
	if (build_base(path, denom, fit, lp, &bits))
		return -1;
	for (int k = 1; k < n; k++) {
		level_path(dir, k - 1, above, sizeof above);
		level_path(dir, k, lp, sizeof lp);
		if (build_below(above, lw[k - 1], lh[k - 1], lp, lw[k], lh[k]))
			return -1;
	}
	if (!(ini = malloc(cap))) {
		ts_error("content", "out of memory");
		return -1;
	}
	len += (size_t)snprintf(ini + len, cap - len, "[pyramid]\nkey = %s\nlevels = %d\n", key, n);
	for (int k = 0; k < n; k++)
		len += (size_t)snprintf(ini + len, cap - len, "level%d = %dx%d\n", k, lw[k], lh[k]);
	snprintf(lp, sizeof lp, "%s/pyramid.ini", dir);
	ret = ts_file_write("content", lp, ini, len);
	free(ini);
	return ret;
}

ts_pyramid *
ts_pyramid_open(const char *job_dir, const char *key)
{
	ts_pyramid *p = calloc(1, sizeof *p);

	if (!p) {
		ts_error("content", "out of memory");
		return NULL;
	}
	content_dir(job_dir, p->dir, sizeof p->dir);
	if (!read_ini(p->dir, key, p)) {
		ts_error("content", "\"%s/pyramid.ini\" is missing or was made for another job",
		         p->dir);
		free(p);
		return NULL;
	}
	return p;
}

void
ts_pyramid_close(ts_pyramid *p)
{
	if (!p)
		return;
	for (int k = 0; k < p->n; k++)
		ts_tiff_reader_close(p->r[k]);
	free(p);
}

int
ts_pyramid_levels(const ts_pyramid *p)
{
	return p->n;
}

void
ts_pyramid_size(const ts_pyramid *p, int k, int *w, int *h)
{
	TS_ASSERT(k >= 0 && k < p->n);
	*w = p->w[k];
	*h = p->h[k];
}

int
ts_pyramid_pick(const ts_pyramid *p, int dw, int dh)
{
	int k = 0;

	while (k + 1 < p->n && p->w[k + 1] >= dw && p->h[k + 1] >= dh)
		k++;
	return k;
}

int
ts_pyramid_region(ts_pyramid *p, int dw, int dh, int x, int y, int w, int h, float *out)
{
	int k = ts_pyramid_pick(p, dw, dh);

	if (!p->r[k]) {
		char lp[4400];
		int rw, rh;

		level_path(p->dir, k, lp, sizeof lp);
		if (!(p->r[k] = ts_tiff_reader_open_unmapped(lp)))
			return -1;
		ts_tiff_reader_size(p->r[k], &rw, &rh, NULL);
		if (rw != p->w[k] || rh != p->h[k]) {
			ts_error("content", "%s is %dx%d, its pyramid.ini says %dx%d", lp, rw, rh,
			         p->w[k], p->h[k]);
			ts_tiff_reader_close(p->r[k]);
			p->r[k] = NULL;
			return -1;
		}
	}
	return ts_resample_region(tiff_region, p->r[k], p->w[k], p->h[k], dw, dh, x, y, w, h,
	                          out);
}

void
ts_pyramid_plan_pick(int w, int h, int min_w, int min_h, int dw, int dh, int *pw, int *ph)
{
	int lw[MAX_LEVELS], lh[MAX_LEVELS], n = level_sizes(w, h, min_w, min_h, lw, lh), k = 0;

	while (k + 1 < n && lw[k + 1] >= dw && lh[k + 1] >= dh)
		k++;
	*pw = lw[k];
	*ph = lh[k];
}

double
ts_pyramid_build_bytes(int cw, const ts_fit *f)
{
	/* level 0: a band of the input and of the canvas, the decoder's row; below: a band,
	 * a chunk and the resampler's source of a chunk (twice its side, plus taps) */
	double base = 12.0 * BAND * (cw + f->w) + 8.0 * cw;
	double below = 12.0 * BAND * (CHUNK_W + (f->w + 1) / 2) +
	               12.0 * (2 * CHUNK_W + 8) * (2 * BAND + 8) + 12.0 * (2 * BAND + 8) * CHUNK_W;

	return base > below ? base : below;
}
