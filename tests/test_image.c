/* test_image: image IO round trips, TIFF region reads and the tiled BigTIFF writer,
 * refusal of bad input before decoding, atomic writes, resize, crop, keep_colors.
 * The decoders for untrusted files (libpng, libjpeg-turbo, EXIF, truncated files) are
 * test_image_decode.c's; the helpers both use are image_test_util.h's.
 *
 * Every input is made here (ts_image_save, hand-built PNG chunks with zlib, TIFFs with
 * libtiff directly) inside one mkdtemp directory that the group teardown removes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tiffio.h>
#include <zlib.h>

#include "tessera/error.h"
#include "tessera/image.h"

#define TEST_NAME "test_image"
#include "image_test_util.h"

/* --- tests --- */

static void
test_png8_roundtrip(void **state)
{
	char p[PATH_MAX];
	ts_image *a = pattern8(37, 23), *b;
	int w, h, bits;

	(void)state;
	tpath(p, "a.png");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_false(part_exists(p));
	assert_int_equal(ts_image_probe(p, &w, &h, &bits), 0);
	assert_int_equal(w, 37);
	assert_int_equal(h, 23);
	assert_int_equal(bits, 8);
	assert_non_null(b = ts_image_load(p, 0));
	assert_int_equal(b->bits, 8);
	assert_same(a, b, 0.0f);
	ts_image_destroy(a);
	ts_image_destroy(b);
	ts_image_destroy(NULL);
}

static void
test_png16_load(void **state)
{
	enum { W = 19, H = 11 };
	unsigned char rows[H * (1 + W * 6)];
	uint16_t v[H][W][3];
	char p[PATH_MAX];
	ts_image *im;
	int x, y, c, bits;
	unsigned char *q = rows;

	(void)state;
	for (y = 0; y < H; y++) {
		*q++ = 0; /* filter: none */
		for (x = 0; x < W; x++)
			for (c = 0; c < 3; c++) {
				v[y][x][c] = (uint16_t)(x * 3001 + y * 577 + c * 10007 + 1);
				*q++ = (unsigned char)(v[y][x][c] >> 8);
				*q++ = (unsigned char)v[y][x][c];
			}
	}
	tpath(p, "d16.png");
	write_png(p, W, H, 16, rows, sizeof rows);
	assert_int_equal(ts_image_probe(p, NULL, NULL, &bits), 0);
	assert_int_equal(bits, 16);
	assert_non_null(im = ts_image_load(p, 0));
	assert_int_equal(im->bits, 16);
	for (c = 0; c < 3; c++)
		for (y = 0; y < H; y++)
			for (x = 0; x < W; x++)
				assert_int_equal(
					lrintf(im->px[((size_t)c * H + y) * W + x] * 65535.0f),
					v[y][x][c]);
	ts_image_destroy(im);
}

static void
test_jpeg_roundtrip(void **state)
{
	enum { W = 64, H = 48 };
	char p[PATH_MAX];
	ts_image *a = ts_image_create(W, H), *b;
	double err = 0;
	size_t i, n = (size_t)3 * W * H;
	int c, x, y;

	(void)state;
	assert_non_null(a);
	for (c = 0; c < 3; c++)
		for (y = 0; y < H; y++)
			for (x = 0; x < W; x++)
				a->px[((size_t)c * H + y) * W + x] =
					0.2f + 0.6f * (float)(x + c * y) / (W + 2 * H);
	tpath(p, "a.JPEG"); /* extension case does not matter */
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_non_null(b = ts_image_load(p, 0));
	assert_int_equal(b->w, W);
	assert_int_equal(b->h, H);
	for (i = 0; i < n; i++)
		err += fabsf(a->px[i] - b->px[i]);
	assert_true(err / n < 0.03);
	ts_image_destroy(a);
	ts_image_destroy(b);
}

/* A JPEG decoded at 1/4 by ts_image_load_scaled: its sides rounded up (203 -> 51),
 * close to the full decode averaged over 4 x 4 boxes; a PNG and denom 1 at full size
 * (the format cannot shrink); a missing file named. */
static void
test_load_scaled(void **state)
{
	enum { W = 256, H = 203 };
	char p[PATH_MAX], q[PATH_MAX];
	ts_image *a = ts_image_create(W, H), *full, *s;
	double err = 0;
	int n = 0;

	(void)state;
	assert_non_null(a);
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < H; y++)
			for (int x = 0; x < W; x++)
				a->px[((size_t)c * H + y) * W + x] =
					(float)(0.5 + 0.4 * sin(0.03 * x + 0.05 * y + c));
	tpath(p, "scaled.jpg");
	tpath(q, "scaled.png");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_int_equal(ts_image_save(a, q, 8), 0);
	assert_non_null(full = ts_image_load(p, 0));
	assert_non_null(s = ts_image_load_scaled(p, 4));
	assert_int_equal(s->w, 64);
	assert_int_equal(s->h, 51);
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < H / 4; y++)
			for (int x = 0; x < W / 4; x++) {
				double m = 0;

				for (int j = 0; j < 4; j++)
					for (int i = 0; i < 4; i++)
						m += full->px[((size_t)c * H + 4 * y + j) * W + 4 * x + i];
				err += fabs(m / 16 - s->px[((size_t)c * s->h + y) * s->w + x]);
				n++;
			}
	assert_true(err / n < 0.01);
	ts_image_destroy(s);
	assert_non_null(s = ts_image_load_scaled(q, 4));
	assert_int_equal(s->w, W);
	assert_int_equal(s->h, H);
	ts_image_destroy(s);
	assert_non_null(s = ts_image_load_scaled(p, 1));
	assert_int_equal(s->w, W);
	ts_image_destroy(s);
	tpath(q, "missing.jpg");
	assert_null(ts_image_load_scaled(q, 4));
	assert_non_null(strstr(ts_errmsg(), "missing.jpg"));
	ts_image_destroy(full);
	ts_image_destroy(a);
}

static void
test_bmp_loads(void **state)
{
	char p[PATH_MAX];
	ts_image *a = pattern8(21, 9), *b;

	(void)state;
	tpath(p, "a.bmp");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_non_null(b = ts_image_load(p, 0));
	assert_same(a, b, 0.0f);
	ts_image_destroy(a);
	ts_image_destroy(b);
}

static void
test_tiff16_roundtrip(void **state)
{
	char p[PATH_MAX];
	ts_image *a = pattern16(45, 31), *b;
	uint16_t comp = 0, pred = 0, bps = 0;
	TIFF *tif;

	(void)state;
	tpath(p, "a16.tif");
	assert_int_equal(ts_image_save(a, p, 16), 0);
	assert_false(part_exists(p));
	assert_non_null(b = ts_image_load(p, 0));
	assert_int_equal(b->bits, 16);
	assert_same(a, b, 0.5f / 65535.0f);
	assert_non_null(tif = TIFFOpen(p, "r"));
	assert_true(TIFFGetField(tif, TIFFTAG_COMPRESSION, &comp));
	assert_int_equal(comp, COMPRESSION_ADOBE_DEFLATE);
	assert_true(TIFFGetField(tif, TIFFTAG_PREDICTOR, &pred));
	assert_int_equal(pred, PREDICTOR_HORIZONTAL);
	assert_true(TIFFGetField(tif, TIFFTAG_BITSPERSAMPLE, &bps));
	assert_int_equal(bps, 16);
	assert_false(TIFFIsTiled(tif));
	TIFFClose(tif);
	ts_image_destroy(b);

	/* bits 0 keeps the source precision; 8-bit output rounds */
	tpath(p, "a8.tiff");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_non_null(b = ts_image_load(p, 0));
	assert_int_equal(b->bits, 8);
	assert_same(a, b, 0.5f / 255.0f + 1e-6f);
	ts_image_destroy(b);
	assert_int_equal(ts_image_save(a, p, 12), -1);
	assert_err_has("8 or 16");
	ts_image_destroy(a);
}

/* Write an 8-bit TIFF with libtiff: spp 1 (grey), 3 or 4 (RGB + alpha); tile 0 means
 * strips of 5 rows; separate: planar config separate.  data is [h, w, spp]. */
static void
write_tiff8(const char *path, int w, int h, int spp, int tile, int separate,
            const uint8_t *data)
{
	TIFF *tif = TIFFOpen(path, "w");
	int s, y, x, tx, ty;
	uint16_t extra = EXTRASAMPLE_UNASSALPHA;
	int planes = separate ? spp : 1, per = separate ? 1 : spp;

	assert_non_null(tif);
	TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)w);
	TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)h);
	TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
	TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, spp);
	TIFFSetField(tif, TIFFTAG_PHOTOMETRIC,
	             spp == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB);
	TIFFSetField(tif, TIFFTAG_PLANARCONFIG,
	             separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
	TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
	if (spp == 4)
		TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, &extra);
	if (tile) {
		uint8_t *buf = malloc((size_t)tile * tile * per);

		assert_non_null(buf);
		TIFFSetField(tif, TIFFTAG_TILEWIDTH, (uint32_t)tile);
		TIFFSetField(tif, TIFFTAG_TILELENGTH, (uint32_t)tile);
		for (s = 0; s < planes; s++)
			for (ty = 0; ty < h; ty += tile)
				for (tx = 0; tx < w; tx += tile) {
					memset(buf, 0xee, (size_t)tile * tile * per);
					for (y = 0; y < tile && ty + y < h; y++)
						for (x = 0; x < tile && tx + x < w; x++) {
							const uint8_t *px =
								data + ((size_t)(ty + y) * w + tx + x) * spp;
							if (separate)
								buf[y * tile + x] = px[s];
							else
								memcpy(buf + ((size_t)y * tile + x) * spp, px,
								       (size_t)spp);
						}
					assert_true(TIFFWriteTile(tif, buf, (uint32_t)tx, (uint32_t)ty,
					                          0, (uint16_t)s) >= 0);
				}
		free(buf);
	} else {
		uint8_t *line = malloc((size_t)w * per);

		assert_non_null(line);
		TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 5u);
		for (s = 0; s < planes; s++)
			for (y = 0; y < h; y++) {
				for (x = 0; x < w; x++) {
					const uint8_t *px = data + ((size_t)y * w + x) * spp;
					if (separate)
						line[x] = px[s];
					else
						memcpy(line + (size_t)x * spp, px, (size_t)spp);
				}
				assert_true(TIFFWriteScanline(tif, line, (uint32_t)y, (uint16_t)s) >= 0);
			}
		free(line);
	}
	TIFFClose(tif);
}

/* Check an RGB image against [h, w, spp] 8-bit data (grey replicated). */
static void
assert_matches8(const float *px, int w, int h, int spp, const uint8_t *data)
{
	int c, x, y;

	for (c = 0; c < 3; c++)
		for (y = 0; y < h; y++)
			for (x = 0; x < w; x++) {
				int s = spp == 1 ? 0 : c;
				float want = data[((size_t)y * w + x) * spp + s] / 255.0f;
				float got = px[((size_t)c * h + y) * w + x];
				if (got != want)
					fail_msg("c%d (%d,%d): %g vs %g", c, x, y, got, want);
			}
}

static void
test_tiff8_grey_rgba(void **state)
{
	enum { W = 40, H = 27 };
	static const struct {
		int spp, tile, separate;
	} cases[] = {
		{ 1, 0, 0 }, { 1, 16, 0 }, { 4, 0, 0 }, { 4, 16, 0 }, { 3, 0, 1 }, { 3, 16, 1 },
	};
	uint8_t data[H * W * 4];
	char p[PATH_MAX], name[64];
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)((i * 37 + i / 7) & 0xff);
	for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		ts_image *im;
		ts_tiff_reader *r;
		float reg[3 * 9 * 13];
		int w, h, bits;

		snprintf(name, sizeof name, "in%zu.tif", k);
		tpath(p, name);
		write_tiff8(p, W, H, cases[k].spp, cases[k].tile, cases[k].separate, data);
		assert_non_null(im = ts_image_load(p, 0));
		assert_int_equal(im->bits, 8);
		assert_int_equal(im->w, W);
		assert_int_equal(im->h, H);
		assert_matches8(im->px, W, H, cases[k].spp, data);
		ts_image_destroy(im);

		/* a region straddling chunk borders: 13 x 9 at (14, 3) */
		assert_non_null(r = ts_tiff_reader_open(p));
		ts_tiff_reader_size(r, &w, &h, &bits);
		assert_int_equal(w, W);
		assert_int_equal(h, H);
		assert_int_equal(bits, 8);
		assert_int_equal(ts_tiff_reader_region(r, 14, 3, 13, 9, reg), 0);
		{
			int c, x, y;
			for (c = 0; c < 3; c++)
				for (y = 0; y < 9; y++)
					for (x = 0; x < 13; x++) {
						int s = cases[k].spp == 1 ? 0 : c;
						float want = data[((size_t)(y + 3) * W + x + 14) *
						                  cases[k].spp + s] / 255.0f;
						assert_true(reg[(c * 9 + y) * 13 + x] == want);
					}
		}
		assert_int_equal(ts_tiff_reader_region(r, 30, 20, 11, 1, reg), -1);
		assert_err_has("outside");
		ts_tiff_reader_close(r);
	}
	ts_tiff_reader_close(NULL);
}

/* Palette TIFF: not native, read through the TIFFReadRGBA* fallback. */
static void
test_tiff_palette_fallback(void **state)
{
	enum { W = 40, H = 30 };
	uint16_t map[3][256];
	uint8_t idx[H][W];
	char p[PATH_MAX];
	ts_image *im;
	int i, x, y, c, tiled;

	(void)state;
	for (i = 0; i < 256; i++) {
		map[0][i] = (uint16_t)(i * 257);
		map[1][i] = (uint16_t)((255 - i) * 257);
		map[2][i] = (uint16_t)(((i * 5) & 255) * 257);
	}
	for (y = 0; y < H; y++)
		for (x = 0; x < W; x++)
			idx[y][x] = (uint8_t)(x * 6 + y);
	for (tiled = 0; tiled < 2; tiled++) {
		TIFF *tif;

		tpath(p, tiled ? "pal_t.tif" : "pal_s.tif");
		assert_non_null(tif = TIFFOpen(p, "w"));
		TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)W);
		TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)H);
		TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
		TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
		TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_PALETTE);
		TIFFSetField(tif, TIFFTAG_COLORMAP, map[0], map[1], map[2]);
		if (tiled) {
			uint8_t t[16 * 16];
			int tx, ty;

			TIFFSetField(tif, TIFFTAG_TILEWIDTH, 16u);
			TIFFSetField(tif, TIFFTAG_TILELENGTH, 16u);
			for (ty = 0; ty < H; ty += 16)
				for (tx = 0; tx < W; tx += 16) {
					memset(t, 0, sizeof t);
					for (y = 0; y < 16 && ty + y < H; y++)
						for (x = 0; x < 16 && tx + x < W; x++)
							t[y * 16 + x] = idx[ty + y][tx + x];
					assert_true(TIFFWriteTile(tif, t, (uint32_t)tx, (uint32_t)ty, 0, 0) >=
					            0);
				}
		} else {
			TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 7u);
			for (y = 0; y < H; y++)
				assert_true(TIFFWriteScanline(tif, idx[y], (uint32_t)y, 0) >= 0);
		}
		TIFFClose(tif);
		if (!(im = ts_image_load(p, 0)))
			fail_msg("%s", ts_errmsg());
		assert_int_equal(im->bits, 8);
		for (c = 0; c < 3; c++)
			for (y = 0; y < H; y++)
				for (x = 0; x < W; x++)
					assert_true(im->px[((size_t)c * H + y) * W + x] ==
					            (map[c][idx[y][x]] >> 8) / 255.0f);
		ts_image_destroy(im);
	}
}

/* YCbCr JPEG-in-TIFF goes through the RGBA fallback (approximately); floating-point
 * samples are refused with a clear message. */
static void
test_tiff_jpeg_and_float(void **state)
{
	enum { W = 48, H = 32 };
	uint8_t line[W * 3];
	float fline[W];
	char p[PATH_MAX];
	ts_image *im;
	TIFF *tif;
	double err = 0;
	int x, y, c;

	(void)state;
	tpath(p, "jpeg.tif");
	assert_non_null(tif = TIFFOpen(p, "w"));
	TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)W);
	TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)H);
	TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
	TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
	TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
	TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
	TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
	TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
	TIFFSetField(tif, TIFFTAG_JPEGQUALITY, 95);
	TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 16u);
	for (y = 0; y < H; y++) {
		for (x = 0; x < W; x++)
			for (c = 0; c < 3; c++)
				line[x * 3 + c] = (uint8_t)(60 + x * 2 + y * c);
		assert_true(TIFFWriteScanline(tif, line, (uint32_t)y, 0) >= 0);
	}
	TIFFClose(tif);
	assert_non_null(im = ts_image_load(p, 0));
	for (c = 0; c < 3; c++)
		for (y = 0; y < H; y++)
			for (x = 0; x < W; x++)
				err += fabsf(im->px[((size_t)c * H + y) * W + x] -
				             (60 + x * 2 + y * c) / 255.0f);
	assert_true(err / (3 * W * H) < 0.03);
	ts_image_destroy(im);

	tpath(p, "float.tif");
	assert_non_null(tif = TIFFOpen(p, "w"));
	TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)W);
	TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 1u);
	TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 32);
	TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
	TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_IEEEFP);
	TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
	for (x = 0; x < W; x++)
		fline[x] = 0.5f;
	assert_true(TIFFWriteScanline(tif, fline, 0, 0) >= 0);
	TIFFClose(tif);
	assert_null(ts_image_load(p, 0));
	assert_err_has("floating-point");
	assert_err_has(p);
}

static void
test_bigtiff_writer(void **state)
{
	enum { W = 100, H = 70, T = 32 };
	static const int rects[][4] = {
		{ 0, 0, W, H }, { 31, 31, 2, 2 }, { 5, 40, 90, 29 }, { 99, 69, 1, 1 },
		{ 64, 0, 36, 70 }, { 10, 60, 70, 10 },
	};
	char p[PATH_MAX];
	ts_image *a = pattern16(W, H), *b;
	ts_tiff_writer *wr;
	ts_tiff_reader *r;
	float *band, *reg;
	uint16_t comp = 0;
	uint32_t tw = 0;
	TIFF *tif;
	int y, c, k, bits;

	(void)state;
	tpath(p, "big.tif");
	assert_non_null(band = malloc(sizeof(float) * 3 * T * W));
	assert_non_null(wr = ts_tiff_writer_open(p, W, H, 16, T));
	for (y = 0; y < H; y += T) {
		int rows = H - y < T ? H - y : T;
		for (c = 0; c < 3; c++)
			memcpy(band + (size_t)c * rows * W, a->px + ((size_t)c * H + y) * W,
			       sizeof(float) * rows * W);
		assert_int_equal(ts_tiff_writer_band(wr, band, rows), 0);
	}
	assert_true(part_exists(p));
	assert_false(exists(p));
	assert_int_equal(ts_tiff_writer_close(wr, 0), 0);
	assert_true(exists(p));
	assert_false(part_exists(p));

	assert_non_null(tif = TIFFOpen(p, "r"));
	assert_true(TIFFIsBigTIFF(tif));
	assert_true(TIFFIsTiled(tif));
	assert_true(TIFFGetField(tif, TIFFTAG_COMPRESSION, &comp));
	assert_int_equal(comp, COMPRESSION_ADOBE_DEFLATE);
	assert_true(TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw));
	assert_int_equal(tw, T);
	TIFFClose(tif);

	assert_non_null(b = ts_image_load(p, 0));
	assert_int_equal(b->bits, 16);
	assert_same(a, b, 0.5f / 65535.0f);
	ts_image_destroy(b);

	assert_non_null(r = ts_tiff_reader_open(p));
	ts_tiff_reader_size(r, NULL, NULL, &bits);
	assert_int_equal(bits, 16);
	assert_non_null(reg = malloc(sizeof(float) * 3 * W * H));
	for (k = 0; k < (int)(sizeof rects / sizeof rects[0]); k++) {
		int x0 = rects[k][0], y0 = rects[k][1], w = rects[k][2], h = rects[k][3];
		int x, yy;

		assert_int_equal(ts_tiff_reader_region(r, x0, y0, w, h, reg), 0);
		for (c = 0; c < 3; c++)
			for (yy = 0; yy < h; yy++)
				for (x = 0; x < w; x++)
					assert_true(fabsf(reg[((size_t)c * h + yy) * w + x] -
					                  a->px[((size_t)c * H + y0 + yy) * W + x0 + x]) <=
					            0.5f / 65535.0f);
	}
	ts_tiff_reader_close(r);
	free(reg);
	free(band);
	ts_image_destroy(a);
}

static void
test_bigtiff_writer_errors(void **state)
{
	char p[PATH_MAX];
	float band[3 * 16 * 20] = { 0 };
	ts_tiff_writer *wr;

	(void)state;
	tpath(p, "bad.tif");
	assert_null(ts_tiff_writer_open(p, 20, 20, 16, 20));
	assert_err_has("multiple of 16");
	assert_null(ts_tiff_writer_open(p, 20, 20, 12, 16));
	assert_false(part_exists(p));

	/* a band of the wrong height fails, and close then removes the .part */
	assert_non_null(wr = ts_tiff_writer_open(p, 20, 20, 8, 16));
	assert_int_equal(ts_tiff_writer_band(wr, band, 16), 0);
	assert_int_equal(ts_tiff_writer_band(wr, band, 16), -1);
	assert_err_has("expected 4");
	assert_int_equal(ts_tiff_writer_close(wr, 0), -1);
	assert_false(exists(p));
	assert_false(part_exists(p));

	/* closing early is an error; abort removes silently */
	assert_non_null(wr = ts_tiff_writer_open(p, 20, 20, 8, 16));
	assert_int_equal(ts_tiff_writer_band(wr, band, 16), 0);
	assert_int_equal(ts_tiff_writer_close(wr, 0), -1);
	assert_err_has("only 16 of 20");
	assert_false(part_exists(p));
	assert_non_null(wr = ts_tiff_writer_open(p, 20, 20, 8, 16));
	assert_int_equal(ts_tiff_writer_close(wr, 1), 0);
	assert_false(exists(p));
	assert_false(part_exists(p));

	/* missing directory */
	tpath(p, "nodir/big.tif");
	assert_null(ts_tiff_writer_open(p, 20, 20, 8, 16));
	assert_err_has("cannot write");
	assert_err_has(p);
	assert_false(part_exists(p));
}

static void
test_bad_inputs(void **state)
{
	static const unsigned char pngsig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	unsigned char junk[200];
	char p[PATH_MAX];
	ts_image *a;
	FILE *f;
	long n;
	size_t i;

	(void)state;
	/* missing */
	tpath(p, "missing.png");
	assert_null(ts_image_load(p, 0));
	assert_err_has(p);
	assert_int_equal(ts_image_probe(p, NULL, NULL, NULL), -1);

	/* empty */
	tpath(p, "empty.png");
	write_bytes(p, "", 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("empty");

	/* GIF is refused by magic even with a .png name */
	tpath(p, "gif.png");
	write_bytes(p, "GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14);
	assert_null(ts_image_load(p, 0));
	assert_err_has("unknown or unsupported format");
	assert_err_has(p);
	tpath(p, "pnm.ppm");
	write_bytes(p, "P6\n1 1\n255\n\0\0\0", 14);
	assert_null(ts_image_load(p, 0));
	assert_err_has("unknown or unsupported format");

	/* garbage after the PNG magic */
	for (i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(i * 97 + 13);
	memcpy(junk, pngsig, 8);
	tpath(p, "junk.png");
	write_bytes(p, junk, sizeof junk);
	assert_null(ts_image_load(p, 0));
	assert_err_has(p);

	/* truncated PNG: a valid file cut in half */
	a = pattern8(64, 64);
	tpath(p, "trunc.png");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_non_null(f = fopen(p, "r+b"));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(truncate(p, n / 2), 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has(p);
	assert_err_has("truncated");

	/* over budget, refused from the header: 100000 x 100000 with a valid IHDR CRC */
	tpath(p, "huge.png");
	write_png(p, 100000, 100000, 8, NULL, 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("exceeds the budget");
	/* and a small image over a small budget */
	tpath(p, "small.png");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_null(ts_image_load(p, 64 * 64 - 1));
	assert_err_has("exceeds the budget");
	tpath(p, "small.tif");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_null(ts_image_load(p, 100));
	assert_err_has("exceeds the budget");
	ts_image_destroy(a);
}

/* A classic little-endian TIFF whose IFD says width 0. */
static void
test_zero_sized_tiff(void **state)
{
	/* header (8) + IFD: count, 8 entries of 12 bytes, next offset; 1 data byte */
	unsigned char b[8 + 2 + 8 * 12 + 4 + 1];
	static const uint16_t tags[8][2] = {
		/* tag, value (all SHORT/LONG count 1) */
		{ 256, 0 },   { 257, 5 }, { 258, 8 }, { 259, 1 },
		{ 262, 1 },   { 273, 0 }, { 278, 5 }, { 279, 1 },
	};
	char p[PATH_MAX];
	unsigned char *q;
	int i;

	(void)state;
	memset(b, 0, sizeof b);
	memcpy(b, "II*\0\x08\0\0\0", 8);
	b[8] = 8;
	q = b + 10;
	for (i = 0; i < 8; i++, q += 12) {
		uint32_t v = tags[i][1];
		if (tags[i][0] == 273)
			v = sizeof b - 1; /* strip offset: the last byte */
		q[0] = (unsigned char)tags[i][0], q[1] = (unsigned char)(tags[i][0] >> 8);
		q[2] = 4; /* LONG */
		q[4] = 1; /* count */
		q[8] = (unsigned char)v, q[9] = (unsigned char)(v >> 8);
	}
	tpath(p, "zero.tif");
	write_bytes(p, b, sizeof b);
	assert_null(ts_image_load(p, 0));
	assert_err_has(p);
	assert_null(ts_tiff_reader_open(p));
	assert_err_has(p);
}

static void
test_bad_outputs(void **state)
{
	char p[PATH_MAX];
	ts_image *a = pattern8(8, 8);
	static const char *names[] = { "nodir/a.png", "nodir/a.jpg", "nodir/a.bmp",
		                       "nodir/a.tif" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		tpath(p, names[i]);
		assert_int_equal(ts_image_save(a, p, 8), -1);
		assert_err_has("cannot write");
		assert_err_has(p);
		assert_false(exists(p));
		assert_false(part_exists(p));
	}

	/* unknown extension: an error naming the file, nothing written */
	tpath(p, "a.xyz");
	assert_int_equal(ts_image_save(a, p, 8), -1);
	assert_err_has(p);
	assert_false(exists(p));
	assert_false(part_exists(p));
	tpath(p, "noext");
	assert_int_equal(ts_image_save(a, p, 8), -1);
	assert_err_has("extension");

	/* the rename fails (the target is a directory): the .part is removed */
	tpath(p, "isdir.png");
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(ts_image_save(a, p, 8), -1);
	assert_err_has("cannot write");
	assert_false(part_exists(p));
	tpath(p, "isdir.tif");
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(ts_image_save(a, p, 16), -1);
	assert_false(part_exists(p));

	/* saving over an existing file replaces it */
	tpath(p, "over.png");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	a->px[0] = 1.0f;
	assert_int_equal(ts_image_save(a, p, 8), 0);
	{
		ts_image *b = ts_image_load(p, 0);
		assert_non_null(b);
		assert_true(b->px[0] == 1.0f);
		ts_image_destroy(b);
	}
	ts_image_destroy(a);
}

static void
test_resize(void **state)
{
	ts_image *a = ts_image_create(40, 30), *b;
	size_t i;

	(void)state;
	assert_non_null(a);
	for (i = 0; i < (size_t)3 * 40 * 30; i++)
		a->px[i] = i < 1200 ? 0.37f : (i < 2400 ? 0.0f : 1.0f);
	assert_non_null(b = ts_image_resize(a, 20, 15));
	assert_int_equal(b->w, 20);
	assert_int_equal(b->h, 15);
	for (i = 0; i < (size_t)3 * 20 * 15; i++) {
		float want = i < 300 ? 0.37f : (i < 600 ? 0.0f : 1.0f);
		assert_true(fabsf(b->px[i] - want) < 1e-5f);
	}
	ts_image_destroy(b);
	assert_non_null(b = ts_image_resize(a, 77, 51));
	assert_int_equal(b->w, 77);
	assert_int_equal(b->h, 51);
	for (i = 0; i < (size_t)77 * 51; i++)
		assert_true(fabsf(b->px[i] - 0.37f) < 1e-5f);
	ts_image_destroy(b);
	assert_null(ts_image_resize(a, 0, 5));

	/* a gradient keeps its mean and stays in range */
	{
		double ma = 0, mb = 0;
		for (i = 0; i < (size_t)40 * 30; i++)
			a->px[i] = (float)(i % 40) / 39.0f;
		assert_non_null(b = ts_image_resize(a, 20, 15));
		for (i = 0; i < (size_t)40 * 30; i++)
			ma += a->px[i];
		for (i = 0; i < (size_t)20 * 15; i++) {
			mb += b->px[i];
			assert_true(b->px[i] >= 0.0f && b->px[i] <= 1.0f);
		}
		assert_true(fabs(ma / 1200 - mb / 300) < 0.01);
		ts_image_destroy(b);
	}
	ts_image_destroy(a);
}

static void
test_crop_clamp(void **state)
{
	ts_image *a = pattern8(30, 20), *b;
	int c, x, y;

	(void)state;
	a->bits = 16;
	assert_non_null(b = ts_image_crop(a, 7, 5, 11, 9));
	assert_int_equal(b->w, 11);
	assert_int_equal(b->h, 9);
	assert_int_equal(b->bits, 16);
	for (c = 0; c < 3; c++)
		for (y = 0; y < 9; y++)
			for (x = 0; x < 11; x++)
				assert_true(b->px[((size_t)c * 9 + y) * 11 + x] ==
				            a->px[((size_t)c * 20 + y + 5) * 30 + x + 7]);
	ts_image_destroy(b);
	assert_null(ts_image_crop(a, 20, 0, 11, 5));
	assert_err_has("outside");
	assert_null(ts_image_crop(a, -1, 0, 5, 5));
	assert_non_null(b = ts_image_crop(a, 0, 0, 30, 20));
	assert_same(a, b, 0.0f);
	ts_image_destroy(b);

	a->px[0] = -0.5f, a->px[1] = 1.5f, a->px[2] = NAN, a->px[3] = 0.25f;
	ts_image_clamp(a);
	assert_true(a->px[0] == 0.0f);
	assert_true(a->px[1] == 1.0f);
	assert_true(a->px[2] == 0.0f);
	assert_true(a->px[3] == 0.25f);
	ts_image_destroy(a);
}

static void
yiq_of(const ts_image *im, size_t i, double out[3])
{
	size_t n = (size_t)im->w * im->h;
	double r = im->px[i], g = im->px[n + i], b = im->px[2 * n + i];

	out[0] = 0.299 * r + 0.587 * g + 0.114 * b;
	out[1] = 0.595716 * r - 0.274453 * g - 0.321263 * b;
	out[2] = 0.211456 * r - 0.522591 * g + 0.311135 * b;
}

static void
test_keep_colors(void **state)
{
	enum { W = 17, H = 13 };
	ts_image *out = ts_image_create(W, H), *col = ts_image_create(W, H), *orig;
	size_t i, n = (size_t)W * H;

	(void)state;
	assert_non_null(out);
	assert_non_null(col);
	for (i = 0; i < n; i++) {
		/* out: strongly coloured, mid luminance; colors: gently coloured */
		out->px[i] = 0.3f + 0.4f * (float)(i % 7) / 6;
		out->px[n + i] = 0.7f - 0.4f * (float)(i % 5) / 4;
		out->px[2 * n + i] = 0.4f + 0.2f * (float)(i % 3) / 2;
		col->px[i] = 0.45f + 0.1f * (float)(i % 11) / 10;
		col->px[n + i] = 0.5f;
		col->px[2 * n + i] = 0.55f - 0.1f * (float)(i % 4) / 3;
	}
	assert_non_null(orig = ts_image_crop(out, 0, 0, W, H));
	ts_image_keep_colors(out, col);
	for (i = 0; i < n; i++) {
		double yo[3], yc[3], yr[3];
		int c;

		for (c = 0; c < 3; c++) /* nothing was clamped */
			assert_true(out->px[c * n + i] > 0.0f && out->px[c * n + i] < 1.0f);
		yiq_of(orig, i, yo);
		yiq_of(col, i, yc);
		yiq_of(out, i, yr);
		assert_true(fabs(yr[0] - yo[0]) < 1e-5);
		assert_true(fabs(yr[1] - yc[1]) < 1e-5);
		assert_true(fabs(yr[2] - yc[2]) < 1e-5);
	}
	/* far out of gamut the result is clamped */
	for (i = 0; i < n; i++)
		out->px[i] = out->px[n + i] = out->px[2 * n + i] = 1.0f;
	for (i = 0; i < n; i++)
		col->px[i] = 1.0f, col->px[n + i] = 0.0f, col->px[2 * n + i] = 0.0f;
	ts_image_keep_colors(out, col);
	for (i = 0; i < 3 * n; i++)
		assert_true(out->px[i] >= 0.0f && out->px[i] <= 1.0f);
	ts_image_destroy(orig);
	ts_image_destroy(out);
	ts_image_destroy(col);
}
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_png8_roundtrip),
		cmocka_unit_test(test_png16_load),
		cmocka_unit_test(test_jpeg_roundtrip),
		cmocka_unit_test(test_load_scaled),
		cmocka_unit_test(test_bmp_loads),
		cmocka_unit_test(test_tiff16_roundtrip),
		cmocka_unit_test(test_tiff8_grey_rgba),
		cmocka_unit_test(test_tiff_palette_fallback),
		cmocka_unit_test(test_tiff_jpeg_and_float),
		cmocka_unit_test(test_bigtiff_writer),
		cmocka_unit_test(test_bigtiff_writer_errors),
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_zero_sized_tiff),
		cmocka_unit_test(test_bad_outputs),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_crop_clamp),
		cmocka_unit_test(test_keep_colors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
