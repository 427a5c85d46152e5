/* image: in-memory images ([3, h, w] planar RGB float in [0,1]), format dispatch and
 * the atomic-write protocol.
 *
 * Invariants: a ts_image always owns px of exactly 3 * w * h floats with w, h > 0.
 * Readers are chosen by magic bytes, never by extension; writers by extension.  Every
 * writer produces "<path>.part" and only ts_file_commit_part() renames it, so a failure
 * never leaves a partial file under the real name (and removes the .part). */
#include "image_internal.h"

#include "tessera/error.h"
#include "tessera/file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ts_image *
ts_image_create(int w, int h)
{
	ts_image *im = NULL;
	size_t n;

	if (w <= 0 || h <= 0 || (size_t)w > SIZE_MAX / 3 / sizeof(float) / (size_t)h) {
		ts_error("image", "invalid image size %dx%d", w, h);
		goto cleanup;
	}
	n = (size_t)3 * (size_t)w * (size_t)h;
	if (!(im = calloc(1, sizeof *im)) || !(im->px = calloc(n, sizeof(float)))) {
		ts_error("image", "cannot allocate a %dx%d image", w, h);
		free(im);
		im = NULL;
		goto cleanup;
	}
	im->w = w;
	im->h = h;
	im->bits = 8;
cleanup:
	return im;
}

void
ts_image_destroy(ts_image *im)
{
	if (!im)
		return;
	free(im->px);
	free(im);
}

int
image_check_size(const char *path, long long w, long long h, long long max_pixels)
{
	if (w <= 0 || h <= 0) {
		ts_error("image", "%s: %s image size (%lldx%lld)", path,
		         w == 0 || h == 0 ? "zero-sized" : "invalid", w, h);
		return -1;
	}
	/* w * h > max_pixels, without forming a product that could overflow */
	if (max_pixels > 0 && w > max_pixels / h) {
		ts_error("image", "%s: %lldx%lld pixels exceeds the budget of %lld pixels", path,
		         w, h, max_pixels);
		return -1;
	}
	if (w > INT_MAX || h > INT_MAX) {
		ts_error("image", "%s: %lldx%lld is too large", path, w, h);
		return -1;
	}
	return 0;
}

enum image_format
image_detect(const unsigned char *m, size_t n)
{
	static const unsigned char png[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

	if (n >= 8 && !memcmp(m, png, 8))
		return IMAGE_PNG;
	if (n >= 3 && m[0] == 0xff && m[1] == 0xd8 && m[2] == 0xff)
		return IMAGE_JPEG;
	if (n >= 2 && m[0] == 'B' && m[1] == 'M')
		return IMAGE_BMP;
	/* II*\0, MM\0*, and BigTIFF II+\0, MM\0+ */
	if (n >= 4 && m[0] == 'I' && m[1] == 'I' && (m[2] == 42 || m[2] == 43) && m[3] == 0)
		return IMAGE_TIFF;
	if (n >= 4 && m[0] == 'M' && m[1] == 'M' && m[2] == 0 && (m[3] == 42 || m[3] == 43))
		return IMAGE_TIFF;
	return IMAGE_UNKNOWN;
}

/* Open path and detect its format from the magic bytes.  On success *fp is open at
 * offset 0. */
static int
open_detect(const char *path, FILE **fp, enum image_format *fmt)
{
	unsigned char magic[8];
	size_t n;
	FILE *f = NULL;
	int ret = -1;

	if (!(f = fopen(path, "rb"))) {
		ts_error_errno("image", "cannot open %s", path);
		goto cleanup;
	}
	n = fread(magic, 1, sizeof magic, f);
	if (ferror(f)) {
		ts_error_errno("image", "cannot read %s", path);
		goto cleanup;
	}
	if (n == 0) {
		ts_error("image", "%s: empty file", path);
		goto cleanup;
	}
	if ((*fmt = image_detect(magic, n)) == IMAGE_UNKNOWN) {
		ts_error("image", "%s: unknown or unsupported format", path);
		goto cleanup;
	}
	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		goto cleanup;
	}
	*fp = f;
	f = NULL;
	ret = 0;
cleanup:
	if (f)
		fclose(f);
	return ret;
}

/* --- the format table: one entry a format, chosen by magic bytes --- */

static int
tiff_probe_f(FILE *f, const char *path, int *w, int *h, int *bits)
{
	(void)f; /* libtiff opens the file itself */
	return image_tiff_probe(path, w, h, bits);
}

static ts_image *
tiff_load_f(FILE *f, const char *path, long long max_pixels)
{
	(void)f;
	return image_tiff_load(path, max_pixels);
}

/* A format: what it is, how to probe and load it, and optionally a streaming reader
 * (rows top-down) or a region reader (any rectangle: TIFF).  A format with neither is
 * decoded whole by ts_image_reader. */
typedef struct image_class {
	enum image_format fmt;
	const char *name;
	int (*probe)(FILE *f, const char *path, int *w, int *h, int *bits);
	ts_image *(*load)(FILE *f, const char *path, long long max_pixels);
	void *(*stream_open)(FILE *f, const char *path, long long max_pixels, int denom, int *w,
	                     int *h, int *bits, int *whole);
	int (*stream_rows)(void *s, int rows, float *out);
	void (*stream_close)(void *s);
	int region; /* 1: read through ts_tiff_reader (rectangles) */
	/* the decoder's own shrinking by 1/2, 1/4, 1/8 (JPEG's scaled DCT): the size it gives */
	int (*probe_scaled)(FILE *f, const char *path, int denom, int *w, int *h, int *applied);
} image_class;

static void *
png_sopen(FILE *f, const char *path, long long m, int denom, int *w, int *h, int *b,
          int *whole)
{
	TS_ASSERT(denom == 1);
	return image_png_stream_open(f, path, m, w, h, b, whole);
}
static int
png_srows(void *s, int rows, float *out)
{
	return image_png_stream_rows(s, rows, out);
}
static void
png_sclose(void *s)
{
	image_png_stream_close(s);
}
static void *
jpeg_sopen(FILE *f, const char *path, long long m, int denom, int *w, int *h, int *b,
           int *whole)
{
	return image_jpeg_stream_open(f, path, m, denom, w, h, b, whole);
}
static int
jpeg_srows(void *s, int rows, float *out)
{
	return image_jpeg_stream_rows(s, rows, out);
}
static void
jpeg_sclose(void *s)
{
	image_jpeg_stream_close(s);
}

static const image_class classes[] = {
	{ IMAGE_PNG, "PNG", image_png_probe, image_png_load, png_sopen, png_srows, png_sclose,
	  0, NULL },
	{ IMAGE_JPEG, "JPEG", image_jpeg_probe, image_jpeg_load, jpeg_sopen, jpeg_srows,
	  jpeg_sclose, 0, image_jpeg_probe_scaled },
	{ IMAGE_BMP, "BMP", image_stb_probe, image_stb_load, NULL, NULL, NULL, 0, NULL },
	{ IMAGE_TIFF, "TIFF", tiff_probe_f, tiff_load_f, NULL, NULL, NULL, 1, NULL },
};

static const image_class *
class_of(enum image_format fmt)
{
	for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
		if (classes[i].fmt == fmt)
			return &classes[i];
	return NULL;
}

int
ts_image_probe(const char *path, int *w, int *h, int *bits)
{
	enum image_format fmt;
	FILE *f = NULL;
	int ret = -1;

	if (open_detect(path, &f, &fmt))
		goto cleanup;
	ret = class_of(fmt)->probe(f, path, w, h, bits);
cleanup:
	if (f)
		fclose(f);
	return ret;
}

int
ts_image_probe_scaled(const char *path, int denom, int *w, int *h, int *applied)
{
	enum image_format fmt;
	const image_class *cls;
	FILE *f = NULL;
	int ret = -1;

	TS_ASSERT(denom == 1 || denom == 2 || denom == 4 || denom == 8);
	if (open_detect(path, &f, &fmt))
		goto cleanup;
	cls = class_of(fmt);
	if (cls->probe_scaled && denom > 1) {
		ret = cls->probe_scaled(f, path, denom, w, h, applied);
	} else {
		int bits;

		*applied = 1;
		ret = cls->probe(f, path, w, h, &bits);
	}
cleanup:
	if (f)
		fclose(f);
	return ret;
}

ts_image *
ts_image_load(const char *path, long long max_pixels)
{
	enum image_format fmt;
	ts_image *im = NULL;
	FILE *f = NULL;

	if (max_pixels <= 0)
		max_pixels = TS_IMAGE_MAX_PIXELS;
	if (open_detect(path, &f, &fmt))
		goto cleanup;
	im = class_of(fmt)->load(f, path, max_pixels);
cleanup:
	if (f)
		fclose(f);
	return im;
}

/* --- any format by rows: streamed, by rectangles, or decoded whole --- */

struct ts_image_reader {
	const image_class *cls;
	char *path;
	FILE *f;
	int w, h, bits, y;
	void *stream;         /* cls->stream_open's state */
	ts_tiff_reader *tiff; /* region formats */
	ts_image *whole;      /* neither: decoded whole (within TS_IMAGE_MAX_PIXELS) */
};

void
ts_image_reader_close(ts_image_reader *r)
{
	if (!r)
		return;
	if (r->stream)
		r->cls->stream_close(r->stream);
	ts_tiff_reader_close(r->tiff);
	ts_image_destroy(r->whole);
	if (r->f)
		fclose(r->f);
	free(r->path);
	free(r);
}

ts_image_reader *
ts_image_reader_open(const char *path)
{
	return ts_image_reader_open_scaled(path, 1);
}

ts_image_reader *
ts_image_reader_open_scaled(const char *path, int denom)
{
	ts_image_reader *r = calloc(1, sizeof *r);
	enum image_format fmt;
	int whole = 1;

	if (!r || !(r->path = strdup(path))) {
		ts_error("image", "%s: out of memory", path);
		free(r);
		return NULL;
	}
	if (open_detect(path, &r->f, &fmt))
		goto fail;
	r->cls = class_of(fmt);
	if (!r->cls->probe_scaled)
		denom = 1;
	if (r->cls->region) {
		if (!(r->tiff = ts_tiff_reader_open(path)))
			goto fail;
		ts_tiff_reader_size(r->tiff, &r->w, &r->h, &r->bits);
		return r;
	}
	if (r->cls->stream_open) {
		r->stream = r->cls->stream_open(r->f, path, TS_IMAGE_MAX_STREAM_PIXELS, denom, &r->w,
		                                &r->h, &r->bits, &whole);
		if (r->stream)
			return r;
		if (!whole)
			goto fail;
		if (fseek(r->f, 0, SEEK_SET)) {
			ts_error_errno("image", "cannot seek in %s", path);
			goto fail;
		}
	}
	if (!(r->whole = r->cls->load(r->f, path, TS_IMAGE_MAX_PIXELS)))
		goto fail;
	r->w = r->whole->w, r->h = r->whole->h, r->bits = r->whole->bits;
	return r;
fail:
	ts_image_reader_close(r);
	return NULL;
}

void
ts_image_reader_size(const ts_image_reader *r, int *w, int *h, int *bits)
{
	if (w)
		*w = r->w;
	if (h)
		*h = r->h;
	if (bits)
		*bits = r->bits;
}

int
ts_image_reader_streams(const ts_image_reader *r)
{
	return !r->whole;
}

int
ts_image_reader_rows(ts_image_reader *r, int rows, float *out)
{
	int ret;

	if (rows <= 0 || rows > r->h - r->y) {
		ts_error("image", "%s: %d rows asked at row %d of %d", r->path, rows, r->y, r->h);
		return -1;
	}
	if (r->tiff) {
		ret = ts_tiff_reader_region(r->tiff, 0, r->y, r->w, rows, out);
	} else if (r->stream) {
		ret = r->cls->stream_rows(r->stream, rows, out);
	} else {
		for (int c = 0; c < 3; c++)
			memcpy(out + (size_t)c * rows * r->w,
			       r->whole->px + ((size_t)c * r->h + r->y) * r->w,
			       (size_t)rows * r->w * sizeof(float));
		ret = 0;
	}
	if (ret == 0)
		r->y += rows;
	return ret;
}

ts_image *
ts_image_load_scaled(const char *path, int denom)
{
	ts_image_reader *r;
	ts_image *im = NULL;
	float *chunk = NULL;
	int w, h, bits, step;

	if (denom <= 1)
		return ts_image_load(path, 0);
	if (!(r = ts_image_reader_open_scaled(path, denom)))
		return NULL;
	ts_image_reader_size(r, &w, &h, &bits);
	if ((long long)w * h > TS_IMAGE_MAX_PIXELS) {
		ts_error("image", "%s: %dx%d at 1/%d exceeds the budget of %lld pixels", path, w,
		         h, denom, (long long)TS_IMAGE_MAX_PIXELS);
		goto cleanup;
	}
	step = h < 64 ? h : 64;
	if (!(im = ts_image_create(w, h)) ||
	    !(chunk = malloc((size_t)3 * step * w * sizeof *chunk))) {
		if (im)
			ts_error("image", "%s: out of memory for a %dx%d picture", path, w, h);
		goto fail;
	}
	im->bits = bits;
	for (int y = 0; y < h; y += step) {
		int rows = h - y < step ? h - y : step;

		if (ts_image_reader_rows(r, rows, chunk))
			goto fail;
		for (int c = 0; c < 3; c++)
			memcpy(im->px + ((size_t)c * h + y) * w, chunk + (size_t)c * rows * w,
			       (size_t)rows * w * sizeof *chunk);
	}
	goto cleanup;
fail:
	ts_image_destroy(im);
	im = NULL;
cleanup:
	free(chunk);
	ts_image_reader_close(r);
	return im;
}

/* Output format from the extension of path (case-insensitive). */
static enum image_format
format_from_ext(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash + 1 : path, '.');
	char ext[8] = { 0 };
	size_t i;

	if (!dot || strlen(dot + 1) >= sizeof ext)
		return IMAGE_UNKNOWN;
	for (i = 0; i < sizeof ext - 1 && dot[1 + i]; i++)
		ext[i] = (char)tolower((unsigned char)dot[1 + i]);
	if (!strcmp(ext, "png"))
		return IMAGE_PNG;
	if (!strcmp(ext, "jpg") || !strcmp(ext, "jpeg"))
		return IMAGE_JPEG;
	if (!strcmp(ext, "bmp"))
		return IMAGE_BMP;
	if (!strcmp(ext, "tif") || !strcmp(ext, "tiff"))
		return IMAGE_TIFF;
	return IMAGE_UNKNOWN;
}

int
ts_image_save(const ts_image *im, const char *path, int bits)
{
	enum image_format fmt = format_from_ext(path);
	char *part = NULL;
	int ret = -1;

	TS_ASSERT(im && im->px && im->w > 0 && im->h > 0);
	if (fmt == IMAGE_UNKNOWN) {
		ts_error("image", "%s: unknown output extension "
		         "(use .png, .jpg, .jpeg, .bmp, .tif or .tiff)", path);
		goto cleanup;
	}
	if (bits == 0) /* extension: 0 keeps the precision of the source */
		bits = im->bits == 16 ? 16 : 8;
	if ((fmt == IMAGE_TIFF || fmt == IMAGE_PNG) && bits != 8 && bits != 16) {
		ts_error("image", "%s: %s bits must be 8 or 16, not %d", path,
		         fmt == IMAGE_TIFF ? "TIFF" : "PNG", bits);
		goto cleanup;
	}
	if (!(part = ts_file_part_name("image", path)))
		goto cleanup;
	/* a back end removes its .part itself when it fails */
	if (fmt == IMAGE_TIFF) {
		if (image_tiff_write(im, part, path, bits))
			goto cleanup;
	} else if (fmt == IMAGE_PNG) {
		if (image_png_write(im, part, path, bits))
			goto cleanup;
	} else if (image_stb_write(im, part, path, fmt)) {
		goto cleanup;
	}
	if (ts_file_commit_part("image", part, path))
		goto cleanup;
	ret = 0;
cleanup:
	free(part);
	return ret;
}

uint8_t
image_to_u8(float v)
{
	if (!(v > 0.0f)) /* also NaN */
		return 0;
	if (v >= 1.0f)
		return 255;
	return (uint8_t)lrintf(v * 255.0f);
}

uint16_t
image_to_u16(float v)
{
	if (!(v > 0.0f))
		return 0;
	if (v >= 1.0f)
		return 65535;
	return (uint16_t)lrintf(v * 65535.0f);
}

ts_image *
ts_image_crop(const ts_image *src, int x, int y, int w, int h)
{
	ts_image *im = NULL;
	int c, r;

	TS_ASSERT(src && src->px);
	if (x < 0 || y < 0 || w <= 0 || h <= 0 || x > src->w - w || y > src->h - h) {
		ts_error("image", "crop %dx%d+%d+%d is outside the %dx%d image", w, h, x, y,
		         src->w, src->h);
		goto cleanup;
	}
	if (!(im = ts_image_create(w, h)))
		goto cleanup;
	im->bits = src->bits;
	for (c = 0; c < 3; c++)
		for (r = 0; r < h; r++)
			memcpy(im->px + ((size_t)c * h + r) * w,
			       src->px + ((size_t)c * src->h + y + r) * src->w + x,
			       (size_t)w * sizeof(float));
cleanup:
	return im;
}

void
ts_image_clamp(ts_image *im)
{
	size_t i, n;

	TS_ASSERT(im && im->px);
	n = (size_t)3 * im->w * im->h;
	for (i = 0; i < n; i++) {
		float v = im->px[i];
		im->px[i] = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* NaN -> 0 */
	}
}

/* RGB -> YIQ (NTSC 1953 coefficients). */
static const double yiq[3][3] = {
	{ 0.299, 0.587, 0.114 },
	{ 0.595716, -0.274453, -0.321263 },
	{ 0.211456, -0.522591, 0.311135 },
};

/* Inverse of a 3x3 matrix by cofactors (yiq is well conditioned). */
static void
invert3(const double m[3][3], double inv[3][3])
{
	double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
	             m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
	             m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
	int i, j;

	for (i = 0; i < 3; i++)
		for (j = 0; j < 3; j++) {
			/* cofactor of m[j][i] */
			int r0 = (j + 1) % 3, r1 = (j + 2) % 3;
			int c0 = (i + 1) % 3, c1 = (i + 2) % 3;
			inv[i][j] = (m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]) / det;
		}
}

void
ts_image_keep_colors(ts_image *out, const ts_image *colors)
{
	double inv[3][3];
	size_t i, n;
	float *r, *g, *b;
	const float *cr, *cg, *cb;

	TS_ASSERT(out && colors && out->px && colors->px);
	TS_ASSERT(out->w == colors->w && out->h == colors->h);
	invert3(yiq, inv);
	n = (size_t)out->w * out->h;
	r = out->px, g = r + n, b = g + n;
	cr = colors->px, cg = cr + n, cb = cg + n;
	for (i = 0; i < n; i++) {
		double y = yiq[0][0] * r[i] + yiq[0][1] * g[i] + yiq[0][2] * b[i];
		double ci = yiq[1][0] * cr[i] + yiq[1][1] * cg[i] + yiq[1][2] * cb[i];
		double cq = yiq[2][0] * cr[i] + yiq[2][1] * cg[i] + yiq[2][2] * cb[i];

		r[i] = (float)(inv[0][0] * y + inv[0][1] * ci + inv[0][2] * cq);
		g[i] = (float)(inv[1][0] * y + inv[1][1] * ci + inv[1][2] * cq);
		b[i] = (float)(inv[2][0] * y + inv[2][1] * ci + inv[2][2] * cq);
	}
	ts_image_clamp(out);
}
