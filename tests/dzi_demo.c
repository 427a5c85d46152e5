/* dzi_demo: the test driver of tests/t_dzi.sh, for the dzi module on its own.
 *
 *   dzi_demo write DIR NAME W H ROWS   a W x H picture, streamed ROWS rows at a time
 *                                      into ts_dzi (DIR/NAME.dzi, DIR/index.html)
 *   dzi_demo check SHOT.png            does a screenshot of index.html show it?
 *
 * The picture is a colour gradient, red rising to the right and green downwards, blue
 * at 0.5, with a dark 2-pixel grid every eighth of each side.  The check finds the
 * picture in the shot (the first and last pixels that are not the page's background
 * #202020 along the middle row and column: the controls and the navigator sit in the
 * corners), which must span at least half the shot each way; at nine points in it (a
 * quarter, half and three quarters of each side) the median colour of a 15x15 patch
 * must be the gradient's there within 0.12.  Exit status 0 when it holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/dzi.h"
#include "tessera/error.h"
#include "tessera/image.h"

static void
pixel(int x, int y, int w, int h, float rgb[3])
{
	int gx = w / 8 > 2 ? w / 8 : 2, gy = h / 8 > 2 ? h / 8 : 2;
	float dark = (x % gx < 2 || y % gy < 2) ? 0.2f : 1.0f;

	rgb[0] = dark * (w > 1 ? (float)x / (w - 1) : 0.5f);
	rgb[1] = dark * (h > 1 ? (float)y / (h - 1) : 0.5f);
	rgb[2] = dark * 0.5f;
}

static int
write_demo(const char *dir, const char *name, int w, int h, int rows)
{
	float *band = NULL, rgb[3];
	ts_dzi *z;
	int ret = 1;

	if (rows <= 0)
		rows = h;
	if (!(z = ts_dzi_open(dir, name, w, h)))
		goto cleanup;
	if (!(band = malloc((size_t)3 * rows * w * sizeof *band))) {
		ts_error("dzi_demo", "out of memory");
		goto cleanup;
	}
	for (int y0 = 0; y0 < h; y0 += rows) {
		int n = h - y0 < rows ? h - y0 : rows;
		size_t plane = (size_t)n * w;

		for (int y = 0; y < n; y++)
			for (int x = 0; x < w; x++) {
				pixel(x, y0 + y, w, h, rgb);
				for (int c = 0; c < 3; c++)
					band[c * plane + (size_t)y * w + x] = rgb[c];
			}
		if (ts_dzi_band(z, band, n))
			goto cleanup;
	}
	ret = ts_dzi_close(z, 0) ? 1 : 0;
	z = NULL;
cleanup:
	if (z)
		ts_dzi_close(z, 1);
	if (ret)
		fprintf(stderr, "dzi_demo: %s\n", ts_errmsg());
	free(band);
	return ret;
}

static int
cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

static int
is_bg(const ts_image *im, int x, int y)
{
	size_t plane = (size_t)im->w * im->h, k = (size_t)y * im->w + x;

	for (int c = 0; c < 3; c++)
		if ((int)(im->px[c * plane + k] * 255 + 0.5f) != 0x20)
			return 0;
	return 1;
}

static int
check_shot(const char *path)
{
	ts_image *im = ts_image_load(path, 0);
	int x0, x1, y0, y1, bad = 0;
	size_t plane;

	if (!im) {
		fprintf(stderr, "dzi_demo: %s\n", ts_errmsg());
		return 1;
	}
	plane = (size_t)im->w * im->h;
	for (x0 = 0; x0 < im->w && is_bg(im, x0, im->h / 2); x0++)
		;
	for (x1 = im->w - 1; x1 > x0 && is_bg(im, x1, im->h / 2); x1--)
		;
	for (y0 = 0; y0 < im->h && is_bg(im, im->w / 2, y0); y0++)
		;
	for (y1 = im->h - 1; y1 > y0 && is_bg(im, im->w / 2, y1); y1--)
		;
	printf("the picture in the shot: x %d..%d, y %d..%d of %dx%d\n", x0, x1, y0, y1,
	       im->w, im->h);
	if ((x1 - x0) * 2 < im->w || (y1 - y0) * 2 < im->h) {
		printf("it does not fill half the shot: no tiles drawn?\n");
		ts_image_destroy(im);
		return 1;
	}
	for (int j = 1; j <= 3; j++)
		for (int i = 1; i <= 3; i++) {
			int cx = x0 + (x1 - x0) * i / 4, cy = y0 + (y1 - y0) * j / 4;
			float med[3], v[225], want[3] = { i / 4.0f, j / 4.0f, 0.5f };

			for (int c = 0; c < 3; c++) {
				int n = 0;

				for (int y = cy - 7; y <= cy + 7; y++)
					for (int x = cx - 7; x <= cx + 7; x++)
						v[n++] = im->px[c * plane + (size_t)y * im->w + x];
				qsort(v, (size_t)n, sizeof *v, cmp_float);
				med[c] = v[n / 2];
			}
			printf("at (%d, %d): %.2f %.2f %.2f, the picture has %.2f %.2f %.2f\n", cx,
			       cy, med[0], med[1], med[2], want[0], want[1], want[2]);
			for (int c = 0; c < 3; c++)
				if (med[c] < want[c] - 0.12f || med[c] > want[c] + 0.12f)
					bad = 1;
		}
	ts_image_destroy(im);
	return bad;
}

int
main(int argc, char **argv)
{
	if (argc == 7 && !strcmp(argv[1], "write"))
		return write_demo(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
	if (argc == 3 && !strcmp(argv[1], "check"))
		return check_shot(argv[2]);
	fprintf(stderr, "usage: dzi_demo write DIR NAME W H ROWS | dzi_demo check SHOT.png\n");
	return 2;
}
