/* mkdemo: draw the two demo pictures tessera ships no files for.
 *
 *   mkdemo PHOTO.png PAINTING.png
 *
 * The "photo" is a landscape (sky, sun, hills, a lake with a reflection); the
 * "painting" is a field of swirling brush strokes in a night-sky palette.  Both are
 * drawn from formulas, so every machine gets the same pictures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

int
main(int argc, char **argv)
{
	ts_image *photo = NULL, *painting = NULL;
	int ret = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: mkdemo PHOTO.png PAINTING.png\n");
		return 2;
	}
	if (!(photo = ts_image_create(384, 256)) || !(painting = ts_image_create(256, 256)))
		goto cleanup;
	draw_photo(photo);
	draw_painting(painting);
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
