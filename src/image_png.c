/* image_png: PNG reading and writing through libpng (-lpng).
 *
 * Reading: the size is taken from the raw IHDR bytes and checked against the pixel
 * budget before libpng parses anything (so a 0xffffffff x 0xffffffff header is a
 * budget error, not an IHDR error or an overflow), and again from libpng's parsed
 * header before any row is decoded.  Every colour type is reduced to RGB: palette
 * expanded, grey of 1/2/4 bits widened to 8 and replicated, alpha and tRNS dropped
 * (no premultiplication), gamma ignored (as before); 16-bit samples stay 16 (bits 16).
 * Ancillary chunks we never use are skipped unread, so a hostile iCCP or zTXt is never
 * inflated.  libpng's errors longjmp back to one place and become one message with
 * libpng's own text; its warnings are counted, never printed.  A file that ends early
 * (inside IDAT, or before IEND) is an error, never a partly grey image.
 *
 * Writing: RGB, 8 or 16 bits, zlib's default level and libpng's filter heuristics,
 * one row buffer; written to the ".part" name given by image.c.
 *
 * setjmp rule: each function that calls setjmp keeps everything that changes after
 * it in a struct owned by its caller, so nothing is indeterminate after a longjmp. */
#include "image_internal.h"

#include "tessera/error.h"

#include <errno.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* State shared with libpng's callbacks; owned by the caller of the setjmp function. */
struct pngctx {
	png_structp png;
	png_infop info;
	FILE *f;
	const char *path;
	char msg[256];     /* libpng's error text */
	int io_errno;      /* errno of a failed read or write, or 0 */
	int eof;           /* the file ended before libpng was done */
	int warnings;      /* counted, not printed */
	long long max_pixels;
	ts_image *im;      /* result (load); owned until handed over */
	unsigned char *buf; /* rows being decoded or encoded */
	const ts_image *src; /* image being written */
	int bits;           /* bits of the written file */
};

static void
on_error(png_structp png, png_const_charp msg)
{
	struct pngctx *c = png_get_error_ptr(png);

	snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "error");
	png_longjmp(png, 1);
}

static void
on_warning(png_structp png, png_const_charp msg)
{
	struct pngctx *c = png_get_error_ptr(png);

	(void)msg;
	c->warnings++;
}

static void
on_read(png_structp png, png_bytep data, size_t n)
{
	struct pngctx *c = png_get_io_ptr(png);

	if (fread(data, 1, n, c->f) != n) {
		if (ferror(c->f))
			c->io_errno = errno ? errno : EIO;
		else
			c->eof = 1;
		png_error(png, c->eof ? "file is truncated" : "read error");
	}
}

static void
on_write(png_structp png, png_bytep data, size_t n)
{
	struct pngctx *c = png_get_io_ptr(png);

	errno = 0;
	if (fwrite(data, 1, n, c->f) != n) {
		c->io_errno = errno ? errno : EIO;
		png_error(png, "write error");
	}
}

static void
on_flush(png_structp png)
{
	(void)png; /* image.c's commit fsyncs the closed file */
}

/* The one message after a longjmp: the file, and libpng's reason. */
static void
report(const struct pngctx *c, int writing)
{
	if (c->io_errno) {
		errno = c->io_errno;
		ts_error_errno("image", "cannot %s %s", writing ? "write" : "read", c->path);
	} else if (writing) {
		ts_error("image", "cannot write %s (libpng: %s)", c->path, c->msg);
	} else if (c->eof) {
		ts_error("image", "%s: truncated PNG: the file ends before the image does",
		         c->path);
	} else {
		ts_error("image", "%s: cannot decode PNG (libpng: %s)", c->path, c->msg);
	}
}

/* Width and height from the IHDR, which must be the first chunk (bytes 8..23), read
 * raw so that the budget is checked before libpng sees the header.  Leaves f at the
 * start.  A file too short for an IHDR is left for libpng to refuse. */
static int
raw_ihdr(struct pngctx *c)
{
	unsigned char b[24];
	long long w, h;
	size_t n;

	n = fread(b, 1, sizeof b, c->f);
	if (fseek(c->f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", c->path);
		return -1;
	}
	if (n < sizeof b || memcmp(b + 12, "IHDR", 4))
		return 0;
	w = (long long)b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
	h = (long long)b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
	return image_check_size(c->path, w, h, c->max_pixels);
}

/* Create the read structs and read up to the first IDAT.  Called under setjmp. */
static void
start_read(struct pngctx *c)
{
	/* chunks tessera never uses: skipped without decompressing or storing them */
	static const png_byte skip[] = {
		'b', 'K', 'G', 'D', 0, 'c', 'H', 'R', 'M', 0, 'e', 'X', 'I', 'f', 0,
		'g', 'A', 'M', 'A', 0, 'h', 'I', 'S', 'T', 0, 'i', 'C', 'C', 'P', 0,
		'i', 'T', 'X', 't', 0, 'o', 'F', 'F', 's', 0, 'p', 'C', 'A', 'L', 0,
		'p', 'H', 'Y', 's', 0, 's', 'B', 'I', 'T', 0, 's', 'C', 'A', 'L', 0,
		's', 'P', 'L', 'T', 0, 's', 'R', 'G', 'B', 0, 't', 'E', 'X', 't', 0,
		't', 'I', 'M', 'E', 0, 't', 'R', 'N', 'S', 0, 'z', 'T', 'X', 't', 0,
	};

	png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
	png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_NEVER, skip,
	                            (int)(sizeof skip / 5));
	/* the budget, not libpng's default 1e6 x 1e6, limits the size */
	png_set_user_limits(c->png, 0x7fffffff, 0x7fffffff);
	png_set_read_fn(c->png, c, on_read);
	png_read_info(c->png, c->info);
}

/* Read the header (and with load, the pixels) under one setjmp. */
static int
read_png(struct pngctx *c, int load, int *w, int *h, int *bits)
{
	png_uint_32 pw, ph;
	int depth, type, interlace, passes, p, x, y;
	size_t rowbytes, n;

	if (setjmp(png_jmpbuf(c->png)))
		return -1;
	start_read(c);
	png_get_IHDR(c->png, c->info, &pw, &ph, &depth, &type, &interlace, NULL, NULL);
	if (image_check_size(c->path, pw, ph, load ? c->max_pixels : 0))
		return -2; /* message already recorded */
	*w = (int)pw, *h = (int)ph, *bits = depth == 16 ? 16 : 8;
	if (!load)
		return 0;

	/* reduce every colour type to RGB of 8 or 16 bits */
	if (type == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(c->png);
	if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(c->png);
	png_set_strip_alpha(c->png); /* no-op without alpha */
	if (!(type & PNG_COLOR_MASK_COLOR))
		png_set_gray_to_rgb(c->png);
	passes = png_set_interlace_handling(c->png);
	png_read_update_info(c->png, c->info);
	rowbytes = png_get_rowbytes(c->png, c->info);
	if (rowbytes != (size_t)pw * 3 * (depth == 16 ? 2 : 1))
		png_error(c->png, "unexpected row size after the RGB transforms");
	if (!(c->im = ts_image_create(*w, *h)))
		return -2;
	c->im->bits = *bits;
	/* interlaced: passes fill a whole image; otherwise one row at a time */
	if (!(c->buf = malloc(passes > 1 ? rowbytes * ph : rowbytes)))
		png_error(c->png, "out of memory");
	if (passes > 1)
		for (p = 0; p < passes; p++)
			for (y = 0; y < *h; y++)
				png_read_row(c->png, c->buf + rowbytes * y, NULL);
	n = (size_t)pw * ph;
	for (y = 0; y < *h; y++) {
		unsigned char *row = passes > 1 ? c->buf + rowbytes * y : c->buf;
		float *r = c->im->px + (size_t)y * pw, *g = r + n, *b = g + n;

		if (passes == 1)
			png_read_row(c->png, row, NULL);
		if (depth == 16)
			for (x = 0; x < *w; x++) {
				const unsigned char *s = row + 6 * (size_t)x;
				r[x] = (s[0] << 8 | s[1]) / 65535.0f;
				g[x] = (s[2] << 8 | s[3]) / 65535.0f;
				b[x] = (s[4] << 8 | s[5]) / 65535.0f;
			}
		else
			for (x = 0; x < *w; x++) {
				r[x] = row[3 * x] / 255.0f;
				g[x] = row[3 * x + 1] / 255.0f;
				b[x] = row[3 * x + 2] / 255.0f;
			}
	}
	/* up to IEND: a file cut after its pixels is still a truncated file */
	png_read_end(c->png, NULL);
	return 0;
}

/* Probe (load 0) or load (load 1) the PNG on f. */
static int
png_open(struct pngctx *c, int load, int *w, int *h, int *bits)
{
	int rc, ret = -1;

	if (raw_ihdr(c))
		goto cleanup;
	if (!(c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_error,
	                                      on_warning)) ||
	    !(c->info = png_create_info_struct(c->png))) {
		ts_error("image", "%s: cannot start libpng: out of memory", c->path);
		goto cleanup;
	}
	if ((rc = read_png(c, load, w, h, bits))) {
		if (rc == -1)
			report(c, 0);
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (c->png)
		png_destroy_read_struct(&c->png, c->info ? &c->info : NULL, NULL);
	free(c->buf);
	c->buf = NULL;
	if (ret) {
		ts_image_destroy(c->im);
		c->im = NULL;
	}
	return ret;
}

int
image_png_probe(FILE *f, const char *path, int *w, int *h, int *bits)
{
	struct pngctx c = { .f = f, .path = path };
	int pw, ph, pb;

	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		return -1;
	}
	if (png_open(&c, 0, &pw, &ph, &pb))
		return -1;
	if (w)
		*w = pw;
	if (h)
		*h = ph;
	if (bits)
		*bits = pb;
	return 0;
}

ts_image *
image_png_load(FILE *f, const char *path, long long max_pixels)
{
	struct pngctx c = { .f = f, .path = path, .max_pixels = max_pixels };
	int w, h, bits;

	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		return NULL;
	}
	if (png_open(&c, 1, &w, &h, &bits))
		return NULL;
	return c.im;
}

/* --- streaming: rows in order, one row buffer (non-interlaced files) --- */

struct image_png_stream {
	struct pngctx c;
	int w, h, bits, y;
	size_t rowbytes;
	char *path; /* owned copy (c.path points to it) */
};

/* Header and transforms under one setjmp: 0, 1 for an interlaced file (decode it
 * whole instead), -1 libpng's error, -2 a message already recorded. */
static int
stream_start(struct image_png_stream *s)
{
	struct pngctx *c = &s->c;
	png_uint_32 pw, ph;
	int depth, type, interlace;

	if (setjmp(png_jmpbuf(c->png)))
		return -1;
	start_read(c);
	png_get_IHDR(c->png, c->info, &pw, &ph, &depth, &type, &interlace, NULL, NULL);
	if (image_check_size(c->path, pw, ph, c->max_pixels))
		return -2;
	if (interlace != PNG_INTERLACE_NONE)
		return 1;
	s->w = (int)pw, s->h = (int)ph, s->bits = depth == 16 ? 16 : 8;
	if (type == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(c->png);
	if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(c->png);
	png_set_strip_alpha(c->png);
	if (!(type & PNG_COLOR_MASK_COLOR))
		png_set_gray_to_rgb(c->png);
	png_read_update_info(c->png, c->info);
	s->rowbytes = png_get_rowbytes(c->png, c->info);
	if (s->rowbytes != (size_t)pw * 3 * (depth == 16 ? 2 : 1))
		png_error(c->png, "unexpected row size after the RGB transforms");
	if (!(c->buf = malloc(s->rowbytes)))
		png_error(c->png, "out of memory");
	return 0;
}

void
image_png_stream_close(image_png_stream *s)
{
	if (!s)
		return;
	if (s->c.png)
		png_destroy_read_struct(&s->c.png, s->c.info ? &s->c.info : NULL, NULL);
	free(s->c.buf);
	free(s->path);
	free(s);
}

image_png_stream *
image_png_stream_open(FILE *f, const char *path, long long max_pixels, int *w, int *h,
                      int *bits, int *whole)
{
	image_png_stream *s = calloc(1, sizeof *s);
	int rc;

	*whole = 0;
	if (!s || !(s->path = strdup(path))) {
		ts_error("image", "%s: out of memory", path);
		free(s);
		return NULL;
	}
	s->c.f = f, s->c.path = s->path, s->c.max_pixels = max_pixels;
	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		goto fail;
	}
	if (raw_ihdr(&s->c))
		goto fail;
	if (!(s->c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s->c, on_error,
	                                        on_warning)) ||
	    !(s->c.info = png_create_info_struct(s->c.png))) {
		ts_error("image", "%s: cannot start libpng: out of memory", path);
		goto fail;
	}
	if ((rc = stream_start(s)) == 1) {
		*whole = 1;
		goto fail;
	}
	if (rc) {
		if (rc == -1)
			report(&s->c, 0);
		goto fail;
	}
	*w = s->w, *h = s->h, *bits = s->bits;
	return s;
fail:
	image_png_stream_close(s);
	return NULL;
}

/* The next rows under one setjmp. */
static int
stream_rows(image_png_stream *s, int rows, float *out)
{
	struct pngctx *c = &s->c;
	size_t n = (size_t)s->w * rows;

	if (setjmp(png_jmpbuf(c->png)))
		return -1;
	for (int r = 0; r < rows; r++) {
		const unsigned char *row = c->buf;
		float *R = out + (size_t)r * s->w, *G = R + n, *B = G + n;

		png_read_row(c->png, c->buf, NULL);
		if (s->bits == 16)
			for (int x = 0; x < s->w; x++) {
				const unsigned char *p = row + 6 * (size_t)x;
				R[x] = (p[0] << 8 | p[1]) / 65535.0f;
				G[x] = (p[2] << 8 | p[3]) / 65535.0f;
				B[x] = (p[4] << 8 | p[5]) / 65535.0f;
			}
		else
			for (int x = 0; x < s->w; x++) {
				R[x] = row[3 * x] / 255.0f;
				G[x] = row[3 * x + 1] / 255.0f;
				B[x] = row[3 * x + 2] / 255.0f;
			}
		s->y++;
	}
	if (s->y == s->h)
		png_read_end(c->png, NULL); /* a file cut after its pixels is truncated too */
	return 0;
}

int
image_png_stream_rows(image_png_stream *s, int rows, float *out)
{
	TS_ASSERT(rows > 0 && s->y + rows <= s->h);
	if (stream_rows(s, rows, out)) {
		report(&s->c, 0);
		return -1;
	}
	return 0;
}

/* Encode c->src under one setjmp. */
static int
write_png(struct pngctx *c)
{
	const ts_image *im = c->src;
	size_t n = (size_t)im->w * im->h;
	int x, y, k;

	if (setjmp(png_jmpbuf(c->png)))
		return -1;
	png_set_write_fn(c->png, c, on_write, on_flush);
	png_set_IHDR(c->png, c->info, (png_uint_32)im->w, (png_uint_32)im->h, c->bits,
	             PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
	             PNG_FILTER_TYPE_DEFAULT);
	png_write_info(c->png, c->info);
	for (y = 0; y < im->h; y++) {
		for (k = 0; k < 3; k++) {
			const float *s = im->px + k * n + (size_t)y * im->w;
			for (x = 0; x < im->w; x++) {
				unsigned char *d = c->buf + ((size_t)x * 3 + k) * (c->bits / 8);
				if (c->bits == 16) {
					uint16_t v = image_to_u16(s[x]);
					d[0] = (unsigned char)(v >> 8), d[1] = (unsigned char)v;
				} else {
					d[0] = image_to_u8(s[x]);
				}
			}
		}
		png_write_row(c->png, c->buf);
	}
	png_write_end(c->png, NULL);
	return 0;
}

int
image_png_write(const ts_image *im, const char *part, const char *path, int bits)
{
	struct pngctx c = { .path = path, .src = im, .bits = bits };
	int ret = -1;

	TS_ASSERT(bits == 8 || bits == 16);
	if ((size_t)im->w > PNG_UINT_31_MAX / 6 || (size_t)im->h > PNG_UINT_31_MAX) {
		ts_error("image", "cannot write %s: %dx%d is too large for PNG (write a .tif)",
		         path, im->w, im->h);
		goto cleanup;
	}
	if (!(c.buf = malloc((size_t)im->w * 3 * (bits / 8)))) {
		ts_error("image", "cannot write %s: out of memory", path);
		goto cleanup;
	}
	if (!(c.f = fopen(part, "wb"))) {
		ts_error_errno("image", "cannot write %s", path);
		goto cleanup;
	}
	if (!(c.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, on_error,
	                                      on_warning)) ||
	    !(c.info = png_create_info_struct(c.png))) {
		ts_error("image", "cannot write %s: out of memory", path);
		goto cleanup;
	}
	if (write_png(&c)) {
		report(&c, 1);
		goto cleanup;
	}
	if (fflush(c.f)) {
		ts_error_errno("image", "cannot write %s", path);
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (c.png)
		png_destroy_write_struct(&c.png, c.info ? &c.info : NULL);
	if (c.f && fclose(c.f) && ret == 0) {
		ts_error_errno("image", "cannot write %s", path);
		ret = -1;
	}
	if (ret && c.f)
		unlink(part);
	free(c.buf);
	return ret;
}
