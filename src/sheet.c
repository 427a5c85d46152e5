/* sheet: the contact sheet of a run (see sheet.h), drawn with cairo.
 *
 * Invariants: the layout depends only on the pictures' sizes (ts_sheet_layout_for),
 * so a test knows where each picture is; a picture is copied into the sheet's pixels
 * unscaled by cairo (the thumbnail is made at the picture's exact rectangle first),
 * so the sheet holds the thumbnail's 8-bit values.  Numbers of the report are read
 * both as cJSON numbers (a parsed file) and as raw number text (report.c's own tree
 * keeps numbers as raw text for exact round trips).  Memory: a picture is read in
 * chunks of rows (READ_BYTES) into a box-averaged copy at most 4 times the thumbnail
 * a side. */
#include "tessera/sheet.h"

#include <cairo.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tessera/error.h"
#include "tessera/image.h"

#define PANEL_H TS_SHEET_PANEL_H
#define MARGIN 16           /* around the sheet and between panels */
#define HEADER_H 34         /* the header line's band */
#define TITLE_H 22          /* a panel's title above it */
#define CAPTION_H 44        /* file name and size below it (two lines) */
#define MIN_SLOT_W 150      /* a narrow picture's slot, for its caption */
#define PLOT_W 440          /* the curve's slot */
#define PLOT_LEFT 62        /* inside the slot: room for the y tick labels */
#define PLOT_RIGHT 10
#define FONT "DejaVu Sans"
/* Rows read at a time: as many as fit in READ_BYTES (a tiled TIFF decodes each tile
 * of a band once per read: fewer, taller reads decode less), 16 to 256. */
#define READ_BYTES (32L << 20)
#define MAX_REPORT (1L << 30) /* largest report file read */

/* --- the layout --- */

int
ts_sheet_layout_for(int npics, const int *w, const int *h, ts_sheet_layout *l)
{
	int x = MARGIN, top = HEADER_H + TITLE_H;

	memset(l, 0, sizeof *l);
	if (npics < 2 || npics > TS_MAX_STYLES + 2) {
		ts_error("sheet", "%d pictures: a sheet holds the content, 1 to %d styles and the "
		         "output", npics, TS_MAX_STYLES);
		return -1;
	}
	for (int i = 0; i < npics; i++) {
		ts_sheet_rect *r = &l->pic[i];
		int slot;

		if (w[i] < 1 || h[i] < 1) {
			ts_error("sheet", "picture %d has no size (%dx%d)", i + 1, w[i], h[i]);
			return -1;
		}
		/* a common height; a panorama to twice the height in width, then lower */
		r->h = PANEL_H;
		r->w = (int)fmax(1, round((double)w[i] * PANEL_H / h[i]));
		if (r->w > 2 * PANEL_H) {
			r->w = 2 * PANEL_H;
			r->h = (int)fmax(1, round((double)h[i] * r->w / w[i]));
		}
		slot = r->w > MIN_SLOT_W ? r->w : MIN_SLOT_W;
		r->x = x + (slot - r->w) / 2;
		r->y = top + (PANEL_H - r->h) / 2;
		x += slot + MARGIN;
	}
	l->npics = npics;
	l->plot = (ts_sheet_rect){ x + PLOT_LEFT, top, PLOT_W - PLOT_LEFT - PLOT_RIGHT, PANEL_H };
	l->w = x + PLOT_W + MARGIN;
	l->h = top + PANEL_H + CAPTION_H + MARGIN;
	return 0;
}

/* --- the report --- */

/* A number of the report: a cJSON number, or raw number text (report.c); NAN when
 * absent, null or not a number. */
static double
item_num(const cJSON *it)
{
	if (cJSON_IsNumber(it))
		return it->valuedouble;
	if (cJSON_IsRaw(it) && it->valuestring) {
		char *end;
		double v = strtod(it->valuestring, &end);

		return end != it->valuestring && !*end ? v : NAN;
	}
	return NAN;
}

static double
num(const cJSON *o, const char *key)
{
	return item_num(o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL);
}

static const char *
str(const cJSON *o, const char *key)
{
	const cJSON *it = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* The loss curve: points (x, y), for a tiled run with the tiles' range [lo, hi]. */
typedef struct curve {
	int n;
	double *x, *y, *lo, *hi; /* [n]; lo, hi NULL for a single piece */
	int *start;              /* [n] 1: a level (of coarse-to-fine) starts here */
	int *w, *h;              /* [n] a tiled run's level sizes (NULL otherwise) */
	int npiece, pw[16], ph[16]; /* a single piece's coarse-to-fine level sizes */
	int tiled;
} curve;

static void
curve_fini(curve *c)
{
	free(c->x);
	free(c->y);
	free(c->lo);
	free(c->hi);
	free(c->start);
	free(c->w);
	free(c->h);
}

static int
curve_alloc(curve *c, int n, int ranges)
{
	size_t m = n > 0 ? (size_t)n : 1;

	c->x = malloc(m * sizeof *c->x);
	c->y = malloc(m * sizeof *c->y);
	c->start = calloc(m, sizeof *c->start);
	if (ranges) {
		c->lo = malloc(m * sizeof *c->lo);
		c->hi = malloc(m * sizeof *c->hi);
		c->w = calloc(m, sizeof *c->w);
		c->h = calloc(m, sizeof *c->h);
	}
	if (!c->x || !c->y || !c->start ||
	    (ranges && (!c->lo || !c->hi || !c->w || !c->h))) {
		ts_error("sheet", "out of memory for the loss curve");
		return -1;
	}
	return 0;
}

/* The curve of report: per level (a tiled run's "levels") or per iteration. */
static int
curve_from(const cJSON *report, curve *c)
{
	const cJSON *levels = cJSON_GetObjectItemCaseSensitive(report, "levels");
	const cJSON *its = cJSON_GetObjectItemCaseSensitive(report, "iterations"), *e;

	memset(c, 0, sizeof *c);
	if (cJSON_IsArray(levels) && cJSON_GetArraySize(levels) > 0) {
		c->tiled = 1;
		if (curve_alloc(c, cJSON_GetArraySize(levels), 1))
			return -1;
		cJSON_ArrayForEach(e, levels)
		{
			const cJSON *list = cJSON_GetObjectItemCaseSensitive(e, "tile_list"), *t;
			double sum = 0, lo = INFINITY, hi = -INFINITY;
			int k = 0;

			if (!list)
				list = cJSON_GetObjectItemCaseSensitive(e, "block_list");
			cJSON_ArrayForEach(t, list)
			{
				double v = num(t, "total");

				if (!isfinite(v))
					continue;
				sum += v;
				lo = fmin(lo, v);
				hi = fmax(hi, v);
				k++;
			}
			if (k == 0 || !isfinite(num(e, "level")))
				continue; /* every tile done by an earlier run: no losses here */
			c->x[c->n] = num(e, "level");
			c->y[c->n] = sum / k;
			c->lo[c->n] = lo;
			c->hi[c->n] = hi;
			if (isfinite(num(e, "width")) && isfinite(num(e, "height"))) {
				c->w[c->n] = (int)num(e, "width");
				c->h[c->n] = (int)num(e, "height");
			}
			c->n++;
		}
		return 0;
	}
	if (curve_alloc(c, cJSON_IsArray(its) ? cJSON_GetArraySize(its) : 0, 0))
		return -1;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(report, "piece_levels"))
	{
		if (c->npiece == 16)
			break;
		c->pw[c->npiece] = isfinite(num(e, "width")) ? (int)num(e, "width") : 0;
		c->ph[c->npiece++] = isfinite(num(e, "height")) ? (int)num(e, "height") : 0;
	}
	{
		double prev_it = -1, prev_level = NAN;
		int i = 0;

		cJSON_ArrayForEach(e, its)
		{
			double it = num(e, "iteration"), level = num(e, "level"), v = num(e, "total");

			/* a new level: its own "level" field, or the iteration count restarting */
			if (i > 0 && ((isfinite(level) && level != prev_level) ||
			              (isfinite(it) && it <= prev_it)))
				c->start[c->n] = 1;
			prev_it = it;
			prev_level = level;
			if (isfinite(v)) {
				c->x[c->n] = i;
				c->y[c->n] = v;
				c->n++;
			} /* else a mark stays for the next point that has a value */
			i++;
		}
	}
	return 0;
}

/* --- pictures --- */

/* path's picture as exactly w x h: rows streamed and averaged over k x k boxes (k
 * leaves at least twice the target a side), then the cubic resize.  Caller owns. */
static ts_image *
thumbnail(const char *path, int w, int h)
{
	ts_image_reader *rd = NULL;
	ts_image *box = NULL, *out = NULL;
	float *buf = NULL;
	double *acc = NULL;
	int sw, sh, k, bw, bh, by = 0, in_box = 0, chunk;

	if (!(rd = ts_image_reader_open(path)))
		goto cleanup;
	ts_image_reader_size(rd, &sw, &sh, NULL);
	k = (int)fmin((double)sw / w, (double)sh / h) / 2;
	if (k < 1)
		k = 1;
	bw = (sw + k - 1) / k;
	bh = (sh + k - 1) / k;
	if (!(box = ts_image_create(bw, bh)))
		goto cleanup;
	chunk = (int)fmax(16, fmin(256, (double)READ_BYTES / (3.0 * sizeof *buf * sw)));
	buf = malloc((size_t)3 * chunk * sw * sizeof *buf);
	acc = calloc((size_t)3 * bw, sizeof *acc);
	if (!buf || !acc) {
		ts_error("sheet", "%s: out of memory for its thumbnail", path);
		goto cleanup;
	}
	for (int y = 0; y < sh;) {
		int rows = sh - y < chunk ? sh - y : chunk;

		if (ts_image_reader_rows(rd, rows, buf))
			goto cleanup;
		for (int r = 0; r < rows; r++, y++) {
			for (int c = 0; c < 3; c++) {
				const float *src = buf + ((size_t)c * rows + r) * sw;
				double *a = acc + (size_t)c * bw;

				for (int x = 0; x < sw; x++)
					a[x / k] += src[x];
			}
			if (++in_box == k || y + 1 == sh) { /* a row of boxes is complete */
				size_t plane = (size_t)bw * bh;

				for (int bx = 0; bx < bw; bx++) {
					int cols = sw - bx * k < k ? sw - bx * k : k;
					double n = (double)cols * in_box;

					for (int c = 0; c < 3; c++)
						box->px[c * plane + (size_t)by * bw + bx] =
							(float)(acc[(size_t)c * bw + bx] / n);
				}
				memset(acc, 0, (size_t)3 * bw * sizeof *acc);
				in_box = 0;
				by++;
			}
		}
	}
	if (bw == w && bh == h) {
		out = box;
		box = NULL;
	} else {
		out = ts_image_resize(box, w, h);
	}
cleanup:
	ts_image_reader_close(rd);
	ts_image_destroy(box);
	free(buf);
	free(acc);
	return out;
}

/* Copy im into the RGB24 surface's pixels at (x0, y0). */
static void
blit(cairo_surface_t *s, const ts_image *im, int x0, int y0)
{
	unsigned char *data = cairo_image_surface_get_data(s);
	int stride = cairo_image_surface_get_stride(s);
	size_t plane = (size_t)im->w * im->h;

	cairo_surface_flush(s);
	for (int y = 0; y < im->h; y++) {
		uint32_t *row = (uint32_t *)(data + (size_t)(y0 + y) * stride) + x0;

		for (int x = 0; x < im->w; x++) {
			size_t i = (size_t)y * im->w + x;
			uint32_t r = (uint32_t)lrintf(fminf(1, fmaxf(0, im->px[i])) * 255);
			uint32_t g = (uint32_t)lrintf(fminf(1, fmaxf(0, im->px[plane + i])) * 255);
			uint32_t b = (uint32_t)lrintf(fminf(1, fmaxf(0, im->px[2 * plane + i])) * 255);

			row[x] = r << 16 | g << 8 | b;
		}
	}
	cairo_surface_mark_dirty(s);
}

/* --- text and the plot --- */

static void
font(cairo_t *cr, double size, int bold)
{
	cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
	                       bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(cr, size);
}

/* Draw s with its left (align 0), centre (0.5) or right (1) at x, baseline y,
 * shortened with an ellipsis to at most maxw px (maxw <= 0: any width). */
static void
text(cairo_t *cr, const char *s, double x, double y, double align, double maxw)
{
	char buf[512];
	cairo_text_extents_t te;
	size_t n;

	snprintf(buf, sizeof buf, "%s", s);
	n = strlen(buf);
	cairo_text_extents(cr, buf, &te);
	while (maxw > 0 && te.x_advance > maxw && n > 1) {
		/* drop a whole UTF-8 character, then append the ellipsis */
		do
			n--;
		while (n > 0 && ((unsigned char)buf[n] & 0xc0) == 0x80);
		snprintf(buf + n, sizeof buf - n, "\u2026");
		cairo_text_extents(cr, buf, &te);
	}
	cairo_move_to(cr, x - align * te.x_advance, y);
	cairo_show_text(cr, buf);
}

/* A tick value on a log axis: 1e+05 -> "1e5", 0.002 -> "0.002". */
static void
tick_label(double v, char *buf, size_t n)
{
	int e = (int)floor(log10(v) + 1e-9);
	double m = v / pow(10, e);

	if (e >= -3 && e <= 4)
		snprintf(buf, n, "%g", v);
	else if (fabs(m - 1) < 1e-6)
		snprintf(buf, n, "1e%d", e);
	else
		snprintf(buf, n, "%.0fe%d", m, e);
}

/* A round step for about want ticks over span. */
static double
nice_step(double span, int want)
{
	double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;

	return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void
draw_plot(cairo_t *cr, const ts_sheet_rect *a, const curve *c)
{
	double lmin = INFINITY, lmax = -INFINITY, x0, x1;
	double ax = a->x, ay = a->y, aw = a->w, ah = a->h;
	int first = 1;

	font(cr, 13, 1);
	cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
	text(cr, c->tiled ? "total loss per level (tiles' mean and range)" : "total loss",
	     ax + aw / 2, ay - 7, 0.5, aw + PLOT_LEFT);
	cairo_set_line_width(cr, 1);
	cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
	cairo_rectangle(cr, ax + 0.5, ay + 0.5, aw - 1, ah - 1);
	cairo_stroke(cr);
	for (int i = 0; i < c->n; i++) {
		double lo = c->lo ? c->lo[i] : c->y[i], hi = c->hi ? c->hi[i] : c->y[i];

		if (lo > 0)
			lmin = fmin(lmin, log10(lo));
		if (hi > 0)
			lmax = fmax(lmax, log10(hi));
	}
	font(cr, 11, 0);
	if (!(lmax >= lmin)) {
		cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
		text(cr, "no positive losses in the report", ax + aw / 2, ay + ah / 2, 0.5, aw);
		return;
	}
	if (lmax - lmin < 0.05) { /* a flat curve: a tenth of a decade around it */
		lmin -= 0.05;
		lmax += 0.05;
	}
	{ /* 5% room above and below */
		double pad = 0.05 * (lmax - lmin);

		lmin -= pad;
		lmax += pad;
	}
	x0 = c->n > 0 ? c->x[0] : 0;
	x1 = c->n > 0 ? c->x[c->n - 1] : 1;
	if (c->tiled) {
		x0 -= 0.5;
		x1 += 0.5;
	} else if (x1 <= x0) {
		x1 = x0 + 1;
	}
#define PX(v) (ax + ((v) - x0) / (x1 - x0) * aw)
#define PY(v) (ay + ah - (log10(v) - lmin) / (lmax - lmin) * ah)
	{ /* y ticks: decades, or 1-2-5 when the curve spans less than two of them */
		static const double steps[3][9] = { { 1 }, { 1, 2, 5 }, { 1, 2, 3, 4, 5, 6, 7, 8, 9 } };
		static const int nsteps[3] = { 1, 3, 9 };
		int s = 0, count = 0;

		for (s = 0; s < 3; s++) {
			count = 0;
			for (int e = (int)floor(lmin); e <= (int)ceil(lmax); e++)
				for (int j = 0; j < nsteps[s]; j++) {
					double l = log10(steps[s][j]) + e;

					count += l >= lmin && l <= lmax;
				}
			if (count >= 3)
				break;
		}
		if (s == 3)
			s = 2;
		for (int e = (int)floor(lmin); e <= (int)ceil(lmax); e++) {
			for (int j = 1; j < 10; j++) { /* minor ticks between decades */
				double l = log10(j) + e, y;
				int major = 0;
				char lab[32];

				for (int m = 0; m < nsteps[s]; m++)
					major |= j == (int)steps[s][m];
				if (l < lmin || l > lmax)
					continue;
				y = PY(pow(10, l));
				if (major) {
					cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
					cairo_move_to(cr, ax + 1, round(y) + 0.5);
					cairo_line_to(cr, ax + aw - 1, round(y) + 0.5);
					cairo_stroke(cr);
				}
				cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
				cairo_move_to(cr, ax - (major ? 6 : 3), round(y) + 0.5);
				cairo_line_to(cr, ax, round(y) + 0.5);
				cairo_stroke(cr);
				if (major && count <= 12) {
					tick_label(j * pow(10, e), lab, sizeof lab);
					text(cr, lab, ax - 9, y + 4, 1, 0);
				}
			}
		}
	}
	{ /* x ticks */
		char lab[32];

		cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
		if (c->tiled) {
			/* the level and, where there is room, its size */
			double room = c->n > 0 ? aw / (x1 - x0) : 0;

			for (int i = 0; i < c->n; i++) {
				double x = round(PX(c->x[i])) + 0.5;

				cairo_move_to(cr, x, ay + ah);
				cairo_line_to(cr, x, ay + ah + 5);
				cairo_stroke(cr);
				if (c->w[i] > 0 && room >= 80)
					snprintf(lab, sizeof lab, "%.0f: %d\u00d7%d", c->x[i], c->w[i], c->h[i]);
				else
					snprintf(lab, sizeof lab, "%.0f", c->x[i]);
				text(cr, lab, x, ay + ah + 18, 0.5, room);
			}
		} else {
			double step = nice_step(x1 - x0, 5);

			if (step < 1)
				step = 1;
			for (double v = ceil(x0 / step) * step; v <= x1 + 1e-9; v += step) {
				double x = round(PX(v)) + 0.5;

				cairo_move_to(cr, x, ay + ah);
				cairo_line_to(cr, x, ay + ah + 5);
				cairo_stroke(cr);
				snprintf(lab, sizeof lab, "%.0f", v);
				text(cr, lab, x, ay + ah + 18, 0.5, 0);
			}
		}
		text(cr, c->tiled ? "level" : "iteration", ax + aw / 2, ay + ah + 34, 0.5, 0);
	}
	/* where a coarse-to-fine level starts, and each level's size (when known) */
	cairo_save(cr);
	cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
	cairo_set_dash(cr, (const double[]){ 3, 3 }, 2, 0);
	for (int i = 0, k = 0; i < c->n; i++)
		if (i == 0 || c->start[i]) {
			double x = round(PX(c->x[i] - (i ? 0.5 : 0))) + 0.5;
			char lab[32];

			if (i > 0) {
				cairo_move_to(cr, x, ay + 1);
				cairo_line_to(cr, x, ay + ah - 1);
				cairo_stroke(cr);
			}
			if (k < c->npiece && c->npiece > 1) {
				snprintf(lab, sizeof lab, "%d\u00d7%d", c->pw[k], c->ph[k]);
				text(cr, lab, x + 4, ay + 14, 0, 0);
			}
			k++;
		}
	cairo_restore(cr);
	/* the curve, clipped to the axes */
	cairo_save(cr);
	cairo_rectangle(cr, ax, ay, aw, ah);
	cairo_clip(cr);
	cairo_set_source_rgb(cr, 0.12, 0.35, 0.75);
	if (c->lo) { /* the tiles' range */
		cairo_set_line_width(cr, 1);
		for (int i = 0; i < c->n; i++) {
			if (!(c->lo[i] > 0))
				continue;
			cairo_move_to(cr, round(PX(c->x[i])) + 0.5, PY(c->lo[i]));
			cairo_line_to(cr, round(PX(c->x[i])) + 0.5, PY(c->hi[i]));
			cairo_stroke(cr);
		}
	}
	cairo_set_line_width(cr, 2);
	cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
	for (int i = 0; i < c->n; i++) {
		if (!(c->y[i] > 0)) {
			first = 1;
			continue;
		}
		if (first || c->start[i]) /* a new level is a new piece of the curve */
			cairo_move_to(cr, PX(c->x[i]), PY(c->y[i]));
		else
			cairo_line_to(cr, PX(c->x[i]), PY(c->y[i]));
		first = 0;
	}
	cairo_stroke(cr);
	if (c->tiled || c->n == 1)
		for (int i = 0; i < c->n; i++) {
			if (!(c->y[i] > 0))
				continue;
			cairo_arc(cr, PX(c->x[i]), PY(c->y[i]), 3.5, 0, 2 * M_PI);
			cairo_fill(cr);
		}
	cairo_restore(cr);
#undef PX
#undef PY
}

/* --- the sheet --- */

/* The header line of the run. */
static void
header(const cJSON *report, const curve *c, char *buf, size_t n)
{
	const cJSON *set = cJSON_GetObjectItemCaseSensitive(report, "settings");
	const cJSON *levels = cJSON_GetObjectItemCaseSensitive(report, "levels"), *e;
	const char *weights = str(set, "weights"), *version = str(report, "version");
	double w = num(report, "width"), h = num(report, "height");
	double secs = num(report, c->tiled ? "job_seconds" : "seconds");
	size_t len = 0;

#define ADD(...) (len += (size_t)snprintf(buf + len, len < n ? n - len : 0, __VA_ARGS__), \
	          len = len < n ? len : n)
	ADD("tessera %s", version ? version : "?");
	if (isfinite(w) && isfinite(h))
		ADD("  \u00b7  %.0f\u00d7%.0f px", w, h);
	if (c->tiled) {
		int k = 0;

		ADD("  \u00b7  tiled, %d level%s (", cJSON_GetArraySize(levels),
		    cJSON_GetArraySize(levels) == 1 ? "" : "s");
		cJSON_ArrayForEach(e, levels)
			ADD("%s%.0f", k++ ? "/" : "", num(e, "iterations"));
		ADD(" iterations)");
		if (isfinite(num(report, "tiles_rendered")))
			ADD(", %.0f tiles", num(report, "tiles_rendered"));
		if (isfinite(num(report, "nranks")))
			ADD(", %.0f rank%s", num(report, "nranks"), num(report, "nranks") == 1 ? "" : "s");
	} else {
		const cJSON *pl = cJSON_GetObjectItemCaseSensitive(report, "piece_levels");
		double done = num(report, "iterations_done");

		if (!isfinite(done))
			done = num(set, "iterations");
		if (isfinite(done))
			ADD("  \u00b7  %.0f iteration%s", done, done == 1 ? "" : "s");
		if (cJSON_GetArraySize(pl) > 1) { /* coarse to fine: the levels' widths */
			int k = 0;

			ADD(" in %d levels (", cJSON_GetArraySize(pl));
			cJSON_ArrayForEach(e, pl)
				ADD("%s%.0f", k++ ? ", " : "", num(e, "width"));
			ADD(" px wide)");
		}
	}
	if (c->n > 0)
		ADD("  \u00b7  final loss %.4g", c->y[c->n - 1]);
	if (isfinite(secs))
		ADD("  \u00b7  %.1f s", secs);
	if (!weights || !strcmp(weights, "builtin"))
		ADD("  \u00b7  built-in network");
	else
		ADD("  \u00b7  %s", base_name(weights));
#undef ADD
}

/* The surface's RGB24 pixels as an image. */
static ts_image *
surface_image(cairo_surface_t *s)
{
	int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
	int stride = cairo_image_surface_get_stride(s);
	const unsigned char *data;
	ts_image *im = ts_image_create(w, h);
	size_t plane = (size_t)w * h;

	if (!im)
		return NULL;
	cairo_surface_flush(s);
	data = cairo_image_surface_get_data(s);
	for (int y = 0; y < h; y++) {
		const uint32_t *row = (const uint32_t *)(data + (size_t)y * stride);

		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;

			im->px[i] = (float)((row[x] >> 16 & 0xff) / 255.0);
			im->px[plane + i] = (float)((row[x] >> 8 & 0xff) / 255.0);
			im->px[2 * plane + i] = (float)((row[x] & 0xff) / 255.0);
		}
	}
	return im;
}

int
ts_sheet_write(const cJSON *report, const char *path)
{
	const cJSON *set = cJSON_GetObjectItemCaseSensitive(report, "settings");
	const cJSON *styles = cJSON_GetObjectItemCaseSensitive(set, "style");
	const cJSON *blend = cJSON_GetObjectItemCaseSensitive(set, "style_blend");
	const char *paths[TS_MAX_STYLES + 2], *role[TS_MAX_STYLES + 2];
	char (*joined)[4096] = NULL; /* [np]: relative names from "cwd" */
	const char *cwd = str(report, "cwd");
	int pw[TS_MAX_STYLES + 2], ph[TS_MAX_STYLES + 2], np = 0, nstyle, ret = -1;
	cairo_surface_t *surf = NULL;
	cairo_t *cr = NULL;
	ts_image *im = NULL, *sheet = NULL;
	ts_sheet_layout l;
	curve cv = { 0 };
	char line[1024];

	nstyle = cJSON_IsArray(styles) ? cJSON_GetArraySize(styles) : 0;
	if (!str(set, "content") || !str(set, "out") || nstyle < 1 || nstyle > TS_MAX_STYLES) {
		ts_error("sheet", "the report names no content, styles and output in its "
		         "\"settings\" (is it tessera's --report?)");
		goto cleanup;
	}
	paths[np] = str(set, "content");
	role[np++] = "content";
	for (int i = 0; i < nstyle; i++) {
		const cJSON *s = cJSON_GetArrayItem(styles, i);

		if (!cJSON_IsString(s) || !*s->valuestring) {
			ts_error("sheet", "the report's style %d has no file name", i + 1);
			goto cleanup;
		}
		paths[np] = s->valuestring;
		role[np++] = "style";
	}
	paths[np] = str(set, "out");
	role[np++] = "output";
	if (!(joined = malloc((size_t)np * sizeof *joined))) {
		ts_error("sheet", "out of memory");
		goto cleanup;
	}
	for (int i = 0, rel; i < np; i++) {
		/* a relative name from the run's folder, else as given */
		rel = paths[i][0] != '/' && cwd && *cwd &&
		      snprintf(joined[i], sizeof joined[i], "%s/%s", cwd, paths[i]) <
		              (int)sizeof joined[i];
		if (rel && !ts_image_probe(joined[i], &pw[i], &ph[i], NULL)) {
			paths[i] = joined[i];
			continue;
		}
		if (ts_image_probe(paths[i], &pw[i], &ph[i], NULL)) {
			char msg[1024];

			snprintf(msg, sizeof msg, "%s", ts_errmsg());
			ts_error("sheet", "cannot read the %s \"%s\" the report names%s%s%s (%s)",
			         role[i], paths[i], rel ? ", neither as \"" : "", rel ? joined[i] : "",
			         rel ? "\" (the run's folder) nor from here" : "", msg);
			goto cleanup;
		}
	}
	if (ts_sheet_layout_for(np, pw, ph, &l) || curve_from(report, &cv))
		goto cleanup;

	surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, l.w, l.h);
	if (cairo_surface_status(surf)) {
		ts_error("sheet", "cannot make a %dx%d picture: %s", l.w, l.h,
		         cairo_status_to_string(cairo_surface_status(surf)));
		goto cleanup;
	}
	cr = cairo_create(surf);
	{ /* grey-level antialiasing, no hinting: the same pixels from any font set-up */
		cairo_font_options_t *fo = cairo_font_options_create();

		cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
		cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
		cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
		cairo_set_font_options(cr, fo);
		cairo_font_options_destroy(fo);
	}
	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_paint(cr);
	header(report, &cv, line, sizeof line);
	font(cr, 14, 0);
	cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
	text(cr, line, MARGIN, 23, 0, l.w - 2 * MARGIN);

	for (int i = 0; i < np; i++) {
		const ts_sheet_rect *r = &l.pic[i];
		int slot = r->w > MIN_SLOT_W ? r->w : MIN_SLOT_W;
		double cx = r->x + r->w / 2.0, top = HEADER_H + TITLE_H, bottom = top + PANEL_H;
		char title[64];

		if (!(im = thumbnail(paths[i], r->w, r->h)))
			goto cleanup;
		blit(surf, im, r->x, r->y);
		ts_image_destroy(im);
		im = NULL;
		if (i > 0 && i <= nstyle && nstyle > 1)
			snprintf(title, sizeof title, "style %d (blend %.2g)", i,
			         item_num(cJSON_GetArrayItem(blend, i - 1)));
		else
			snprintf(title, sizeof title, "%s", role[i]);
		font(cr, 13, 1);
		cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
		text(cr, title, cx, top - 7, 0.5, slot);
		font(cr, 11, 0);
		cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
		text(cr, base_name(paths[i]), cx, bottom + 16, 0.5, slot);
		snprintf(title, sizeof title, "%d\u00d7%d", pw[i], ph[i]);
		text(cr, title, cx, bottom + 31, 0.5, slot);
	}
	draw_plot(cr, &l.plot, &cv);
	cairo_surface_flush(surf);
	if (cairo_status(cr)) {
		ts_error("sheet", "cairo: %s", cairo_status_to_string(cairo_status(cr)));
		goto cleanup;
	}
	if (!(sheet = surface_image(surf)))
		goto cleanup;
	if (ts_image_save(sheet, path, 8)) {
		char msg[1024];

		snprintf(msg, sizeof msg, "%s", ts_errmsg());
		ts_error("sheet", "cannot write the contact sheet \"%s\" (%s)", path, msg);
		goto cleanup;
	}
	ret = 0;
cleanup:
	free(joined);
	curve_fini(&cv);
	ts_image_destroy(im);
	ts_image_destroy(sheet);
	if (cr)
		cairo_destroy(cr);
	if (surf)
		cairo_surface_destroy(surf);
	return ret;
}

int
ts_sheet_write_file(const char *report_path, const char *path)
{
	FILE *f = NULL;
	char *text = NULL;
	cJSON *root = NULL;
	struct stat st;
	int ret = -1;

	if (!(f = fopen(report_path, "rb")) || fstat(fileno(f), &st)) {
		ts_error_errno("sheet", "cannot read the report \"%s\"", report_path);
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_REPORT) {
		ts_error("sheet", "\"%s\" is not a report (%s)", report_path,
		         S_ISREG(st.st_mode) ? "larger than 1 GiB" : "not a regular file");
		goto cleanup;
	}
	if (!(text = malloc((size_t)st.st_size + 1))) {
		ts_error("sheet", "out of memory for the report \"%s\"", report_path);
		goto cleanup;
	}
	if (fread(text, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		ts_error_errno("sheet", "cannot read the report \"%s\"", report_path);
		goto cleanup;
	}
	text[st.st_size] = '\0';
	if (!(root = cJSON_Parse(text)) || !cJSON_IsObject(root)) {
		ts_error("sheet", "\"%s\" is not a JSON report (a parse error near byte %ld)",
		         report_path, root ? 0L : (long)(cJSON_GetErrorPtr() - text));
		goto cleanup;
	}
	ret = ts_sheet_write(root, path);
cleanup:
	if (f)
		fclose(f);
	cJSON_Delete(root);
	free(text);
	return ret;
}
