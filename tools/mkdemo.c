/* mkdemo: draw the two demo pictures tessera ships no files for.
 *
 *   mkdemo [--strokes] PHOTO.png PAINTING.png
 *
 * The "photo" is a landscape (sky, sun, hills, a lake with a reflection).  The
 * "painting" is, by default, a field of swirls drawn from one formula (the tests'
 * style picture: their figures are measured on it); with --strokes (the demo's,
 * tools/run-demo.sh) it is a painting of some 3000 brush strokes in a night-sky
 * palette, drawn with cairo (antialiased, round caps): strokes 5-11 px wide along
 * a swirling flow, yellow and white in the swirls' cores, blues around them, a dark
 * hill of near-vertical strokes below, a rim of lighter paint on each stroke.  Both
 * come from formulas and a seeded generator of our own, so every machine (with the
 * same cairo) gets the same pictures. */
#include <cairo.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/image.h"

#define PI 3.14159265358979323846

static void
put(ts_image *im, int x, int y, double r, double g, double b)
{
	size_t plane = (size_t)im->w * im->h, i = (size_t)y * im->w + x;

	im->px[i] = (float)fmin(1, fmax(0, r));
	im->px[plane + i] = (float)fmin(1, fmax(0, g));
	im->px[2 * plane + i] = (float)fmin(1, fmax(0, b));
}

static double
hill(double x, double a, double f, double ph, double base)
{
	return base + a * sin(f * x + ph) + 0.3 * a * sin(2.7 * f * x + 1.3 * ph);
}

static void
draw_photo(ts_image *im)
{
	int w = im->w, h = im->h;

	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++) {
			double u = (double)x / w, v = (double)y / h;
			double r, g, b, horizon = 0.62;
			double vv = v < horizon ? v : 2 * horizon - v; /* mirror for the lake */
			double d = hypot(u - 0.7, vv - 0.22);

			/* sky: blue above, warm near the horizon */
			r = 0.35 + 0.6 * vv;
			g = 0.55 + 0.3 * vv;
			b = 0.95 - 0.3 * vv;
			if (d < 0.07) { /* sun */
				r = 1.0; g = 0.93; b = 0.6;
			} else if (d < 0.14) {
				double t = (0.14 - d) / 0.07;
				r += 0.3 * t; g += 0.2 * t;
			}
			if (vv > hill(u, 0.05, 9, 0.4, 0.42)) { /* far hills */
				r = 0.35; g = 0.45; b = 0.55;
			}
			if (vv > hill(u, 0.06, 5, 2.0, 0.5)) { /* near hills with a texture */
				double tex = 0.05 * sin(60 * u + 30 * vv) * sin(45 * vv);
				r = 0.2 + tex; g = 0.45 + 0.2 * (vv - 0.5) + tex; b = 0.2;
			}
			if (v >= horizon) { /* lake: darker, rippled reflection */
				double ripple = 0.04 * sin(140 * v + 8 * sin(12 * u));
				r = 0.7 * r + ripple; g = 0.75 * g + ripple; b = 0.85 * b + 0.1 + ripple;
			}
			put(im, x, y, r, g, b);
		}
	}
}

static void
draw_painting(ts_image *im)
{
	int w = im->w, h = im->h;

	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++) {
			double u = (double)x / w * 6, v = (double)y / h * 6;
			/* a flow field of swirls; strokes follow its angle */
			double a = sin(u) * cos(v) * PI + 0.5 * sin(0.7 * u + 1.3 * v);
			double s = u * cos(a) + v * sin(a);
			double stroke = 0.5 + 0.5 * sin(18 * s + 3 * sin(5 * (u * sin(a) - v * cos(a))));
			double swirl = 0.5 + 0.5 * cos(2.2 * hypot(u - 3, v - 2.5));
			double r = 0.08 + 0.25 * stroke * swirl + 0.7 * pow(stroke, 8) * (1 - swirl);
			double g = 0.15 + 0.3 * stroke * swirl + 0.6 * pow(stroke, 8) * (1 - swirl);
			double b = 0.35 + 0.45 * stroke - 0.1 * pow(stroke, 8);

			put(im, x, y, r, g, b);
		}
	}
}

/* --- the brush-stroke painting (--strokes) --- */

/* splitmix64: the same numbers on every machine */
static uint64_t rng_state = 0x5eed7e55e7aULL;

static double
rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0;
}

/* the swirls: centre (u, v in [0,1]), radius, turn (+ anticlockwise) */
static const double swirls[][4] = {
	{ 0.30, 0.30, 0.20, 1.0 }, { 0.70, 0.22, 0.13, -1.0 }, { 0.78, 0.55, 0.10, 1.0 },
	{ 0.45, 0.62, 0.12, -1.0 },
};
#define NSWIRL (int)(sizeof swirls / sizeof swirls[0])
#define HILL(u) (0.78 - 0.10 * sin(3.1 * (u) + 0.6) - 0.05 * sin(7.3 * (u)))

/* The flow at (u, v): a wind to the right turned around each swirl. */
static void
flow(double u, double v, double *du, double *dv)
{
	double fu = 1, fv = 0.15 * sin(6 * u);

	if (v > HILL(u)) { /* the hill: strokes rise */
		*du = 0.25 * sin(9 * u);
		*dv = -1;
		return;
	}
	for (int k = 0; k < NSWIRL; k++) {
		double x = u - swirls[k][0], y = v - swirls[k][1], r = swirls[k][2];
		double g = 3.5 * exp(-(x * x + y * y) / (r * r));

		fu += -swirls[k][3] * y / r * g;
		fv += swirls[k][3] * x / r * g;
	}
	*du = fu;
	*dv = fv;
}

/* A stroke's colour at (u, v): the palette by place, with a jitter. */
static void
stroke_colour(double u, double v, double rgb[3])
{
	static const double core[3] = { 0.98, 0.86, 0.35 }, halo[3] = { 0.55, 0.78, 0.90 };
	static const double sky[3] = { 0.10, 0.22, 0.55 }, deep[3] = { 0.05, 0.09, 0.30 };
	static const double hill[3] = { 0.07, 0.16, 0.10 };
	double best = 1e9, j = 0.10 * (rnd() - 0.5);

	for (int k = 0; k < NSWIRL; k++)
		best = fmin(best, hypot(u - swirls[k][0], v - swirls[k][1]) / swirls[k][2]);
	for (int c = 0; c < 3; c++) {
		double t;

		if (v > HILL(u))
			t = hill[c] + 0.06 * rnd();
		else if (best < 0.35)
			t = core[c];
		else if (best < 0.9)
			t = halo[c] + (core[c] - halo[c]) * (0.9 - best) / 0.55 * (rnd() < 0.5);
		else
			t = (v < 0.5 ? deep[c] : sky[c]) + (sky[c] - deep[c]) * rnd();
		rgb[c] = t + j;
	}
}

static int
draw_strokes(ts_image *im)
{
	int w = im->w, h = im->h, stride, ret = -1;
	cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
	cairo_t *cr = cairo_create(s);
	unsigned char *data;
	size_t plane = (size_t)w * h;

	cairo_set_source_rgb(cr, 0.08, 0.14, 0.40);
	cairo_paint(cr);
	cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
	cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
	for (int n = 0; n < 3200; n++) {
		double u = rnd(), v = 1.1 * rnd(), rgb[3], width = (5 + 6 * rnd()) * w / 384.0;
		double len = (16 + 22 * rnd()) * w / 384.0, x = u * w, y = v * h;

		stroke_colour(u, v, rgb);
		/* follow the flow in four steps: a curved stroke */
		cairo_new_path(cr);
		cairo_move_to(cr, x, y);
		for (int k = 0; k < 4; k++) {
			double du, dv, m;

			flow(x / w, y / h, &du, &dv);
			m = hypot(du, dv) + 1e-9;
			x += du / m * len / 4;
			y += dv / m * len / 4;
			cairo_line_to(cr, x, y);
		}
		cairo_set_line_width(cr, width);
		cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
		cairo_stroke_preserve(cr);
		/* a rim of lighter paint along the stroke */
		cairo_set_line_width(cr, width * 0.3);
		cairo_set_source_rgba(cr, fmin(1, rgb[0] + 0.18), fmin(1, rgb[1] + 0.18),
		                      fmin(1, rgb[2] + 0.15), 0.6);
		cairo_translate(cr, width * 0.2, -width * 0.2);
		cairo_stroke(cr);
		cairo_identity_matrix(cr);
	}
	cairo_surface_flush(s);
	if (cairo_status(cr)) {
		ts_error("mkdemo", "cairo: %s", cairo_status_to_string(cairo_status(cr)));
		goto cleanup;
	}
	data = cairo_image_surface_get_data(s);
	stride = cairo_image_surface_get_stride(s);
	for (int y = 0; y < h; y++) {
		const uint32_t *row = (const uint32_t *)(data + (size_t)y * stride);

		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;

			im->px[i] = (float)((row[x] >> 16 & 0xff) / 255.0);
			im->px[plane + i] = (float)((row[x] >> 8 & 0xff) / 255.0);
			im->px[2 * plane + i] = (float)((row[x] & 0xff) / 255.0);
		}
	}
	ret = 0;
cleanup:
	cairo_destroy(cr);
	cairo_surface_destroy(s);
	return ret;
}

int
main(int argc, char **argv)
{
	ts_image *photo = NULL, *painting = NULL;
	int ret = 1, strokes = argc > 1 && !strcmp(argv[1], "--strokes");

	if (argc - strokes != 3) {
		fprintf(stderr, "usage: mkdemo [--strokes] PHOTO.png PAINTING.png\n");
		return 2;
	}
	argv += strokes;
	if (!(photo = ts_image_create(384, 256)) ||
	    !(painting = strokes ? ts_image_create(384, 384) : ts_image_create(256, 256)))
		goto cleanup;
	draw_photo(photo);
	if (strokes ? draw_strokes(painting) : (draw_painting(painting), 0))
		goto cleanup;
	if (ts_image_save(photo, argv[1], 8) || ts_image_save(painting, argv[2], 8))
		goto cleanup;
	ret = 0;
cleanup:
	if (ret)
		fprintf(stderr, "mkdemo: %s\n", ts_errmsg());
	ts_image_destroy(photo);
	ts_image_destroy(painting);
	return ret;
}
