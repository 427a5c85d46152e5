/* image_tiff: TIFF and BigTIFF through libtiff: whole-file load and save, a region
 * reader that decodes only the strips or tiles covering a rectangle, and a streaming
 * tiled BigTIFF writer that takes one row of tiles at a time.
 *
 * Native path: 8- or 16-bit unsigned samples, grey (MINISBLACK/MINISWHITE, 1 sample
 * plus extras) or RGB (3 samples plus extras, the 4th usually alpha), contiguous or
 * separate planes, strips or tiles, any compression this libtiff decodes.  Anything
 * else TIFFRGBAImageOK accepts (palette, 1/2/4-bit, YCbCr/JPEG, CMYK) is read through
 * TIFFReadRGBAStrip/Tile as 8-bit; floating-point and signed samples are refused.
 * Extra samples (alpha) are dropped without un-premultiplying.
 *
 * libtiff reports through process-global handlers: ours silence warnings and keep the
 * first error of the current operation in a thread-local buffer; every libtiff call
 * sequence starts by clearing it.  Memory: the reader holds one strip or tile, the
 * writer one tile; libtiff's own allocations are capped (TIFFOpenOptions, 4.5+). */
#include "image_internal.h"

#include "tessera/error.h"
#include "tessera/file.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tiffio.h>

/* Largest single buffer: one strip or tile decoded, or one libtiff allocation. */
#define MAX_CHUNK ((tmsize_t)1 << 30)
/* Target size of a strip written by image_tiff_write. */
#define STRIP_BYTES 262144

static _Thread_local char tiff_msg[512];
static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

static void
on_error(const char *module, const char *fmt, va_list ap)
{
	int e = errno; /* a failed write(2) just before: libtiff's text omits it */
	size_t n;

	(void)module;
	if (tiff_msg[0]) /* the first error is the cause, later ones consequences */
		return;
	vsnprintf(tiff_msg, sizeof tiff_msg, fmt, ap);
	/* only the errors a write gives (a stale errno must not explain a decode error) */
	if (e == ENOSPC || e == EDQUOT || e == EFBIG || e == EIO) {
		n = strlen(tiff_msg);
		snprintf(tiff_msg + n, sizeof tiff_msg - n, ": %s", strerror(e));
	}
}

static void
install_handlers(void)
{
	TIFFSetErrorHandler(on_error);
	TIFFSetWarningHandler(NULL);
}

static const char *
tiff_why(void)
{
	return tiff_msg[0] ? tiff_msg : "libtiff error";
}

static TIFF *
tiff_open(const char *path, const char *mode)
{
	TIFF *tif;

	pthread_once(&handlers_once, install_handlers);
	tiff_msg[0] = '\0';
#if TIFFLIB_VERSION >= 20221213 /* 4.5.0: TIFFOpenExt and open options */
	{
		TIFFOpenOptions *o = TIFFOpenOptionsAlloc();

		if (o)
			TIFFOpenOptionsSetMaxSingleMemAlloc(o, MAX_CHUNK);
		tif = TIFFOpenExt(path, mode, o);
		TIFFOpenOptionsFree(o);
	}
#else
	tif = TIFFOpen(path, mode);
#endif
	return tif;
}

/* --- reading --- */

struct ts_tiff_reader {
	TIFF *tif;
	char *path;       /* for messages; owned */
	uint32_t w, h;    /* image size, both in 1..INT_MAX */
	int bits;         /* 8 or 16: precision delivered */
	uint16_t bps;     /* bits per sample of the native path */
	uint16_t spp;     /* samples per pixel */
	int grey;         /* 1: one colour sample, replicated */
	int white;        /* MINISWHITE: 0 is white */
	int separate;     /* PLANARCONFIG_SEPARATE: one plane per sample */
	int tiled;        /* tiles, else strips */
	uint32_t cw, ch;  /* chunk (tile, or strip: w x rowsperstrip) size in pixels */
	int rgba;         /* decode through TIFFReadRGBA* (8-bit) */
	void *buf;        /* one chunk: native [ch, cw, spp or 1] or RGBA uint32 [ch, cw] */
	tmsize_t bufsize; /* bytes of buf */
};

void
ts_tiff_reader_close(ts_tiff_reader *r)
{
	if (!r)
		return;
	if (r->tif)
		TIFFClose(r->tif);
	free(r->buf);
	free(r->path);
	free(r);
}

static ts_tiff_reader *
reader_open(const char *path, const char *mode)
{
	ts_tiff_reader *r = NULL;
	uint16_t photo, planar, fmt, bps, spp;
	uint32_t rps;
	char emsg[1024];
	int ok = 0;

	if (!(r = calloc(1, sizeof *r)) || !(r->path = strdup(path))) {
		ts_error("image", "%s: out of memory", path);
		goto cleanup;
	}
	if (!(r->tif = tiff_open(path, mode))) {
		ts_error("image", "cannot open %s: %s", path, tiff_why());
		goto cleanup;
	}
	if (!TIFFGetField(r->tif, TIFFTAG_IMAGEWIDTH, &r->w) ||
	    !TIFFGetField(r->tif, TIFFTAG_IMAGELENGTH, &r->h) || r->w == 0 || r->h == 0) {
		ts_error("image", "%s: zero-sized or size-less TIFF", path);
		goto cleanup;
	}
	if (r->w > INT_MAX || r->h > INT_MAX) {
		ts_error("image", "%s: TIFF of %ux%u pixels is too large", path, r->w, r->h);
		goto cleanup;
	}
	TIFFGetFieldDefaulted(r->tif, TIFFTAG_BITSPERSAMPLE, &bps);
	TIFFGetFieldDefaulted(r->tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
	TIFFGetFieldDefaulted(r->tif, TIFFTAG_PLANARCONFIG, &planar);
	TIFFGetFieldDefaulted(r->tif, TIFFTAG_SAMPLEFORMAT, &fmt);
	if (!TIFFGetField(r->tif, TIFFTAG_PHOTOMETRIC, &photo))
		photo = spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
	r->bps = bps;
	r->spp = spp;
	r->separate = planar == PLANARCONFIG_SEPARATE;
	r->tiled = TIFFIsTiled(r->tif);
	if (fmt == SAMPLEFORMAT_IEEEFP || fmt == SAMPLEFORMAT_COMPLEXIEEEFP) {
		ts_error("image", "%s: floating-point TIFF samples are not supported", path);
		goto cleanup;
	}
	if (fmt != SAMPLEFORMAT_UINT && fmt != SAMPLEFORMAT_VOID) {
		ts_error("image", "%s: signed or complex TIFF samples are not supported", path);
		goto cleanup;
	}
	if ((bps == 8 || bps == 16) &&
	    (((photo == PHOTOMETRIC_MINISBLACK || photo == PHOTOMETRIC_MINISWHITE) &&
	      spp >= 1) ||
	     (photo == PHOTOMETRIC_RGB && spp >= 3))) {
		r->grey = photo != PHOTOMETRIC_RGB;
		r->white = photo == PHOTOMETRIC_MINISWHITE;
		r->bits = bps;
	} else if (TIFFRGBAImageOK(r->tif, emsg)) {
		r->rgba = 1;
		r->bits = 8;
	} else {
		ts_error("image", "%s: unsupported TIFF (%u-bit, %u samples, photometric %u: %s)",
		         path, bps, spp, photo, emsg);
		goto cleanup;
	}
	if (r->tiled) {
		if (!TIFFGetField(r->tif, TIFFTAG_TILEWIDTH, &r->cw) ||
		    !TIFFGetField(r->tif, TIFFTAG_TILELENGTH, &r->ch) || !r->cw || !r->ch) {
			ts_error("image", "%s: tiled TIFF without a tile size", path);
			goto cleanup;
		}
	} else {
		TIFFGetFieldDefaulted(r->tif, TIFFTAG_ROWSPERSTRIP, &rps);
		r->cw = r->w;
		r->ch = rps == 0 || rps > r->h ? r->h : rps;
	}
	ok = 1;
cleanup:
	if (!ok) {
		ts_tiff_reader_close(r);
		r = NULL;
	}
	return r;
}

void
ts_tiff_reader_size(const ts_tiff_reader *r, int *w, int *h, int *bits)
{
	TS_ASSERT(r);
	if (w)
		*w = (int)r->w;
	if (h)
		*h = (int)r->h;
	if (bits)
		*bits = r->bits;
}

/* Allocate the chunk buffer on first use (probing a file never needs it). */
static int
chunk_alloc(ts_tiff_reader *r)
{
	uint64_t n;

	if (r->buf)
		return 0;
	if (r->rgba)
		n = (uint64_t)r->cw * r->ch * sizeof(uint32_t);
	else
		n = r->tiled ? TIFFTileSize64(r->tif) : TIFFStripSize64(r->tif);
	if (n == 0 || n > (uint64_t)MAX_CHUNK) {
		ts_error("image", "%s: a %s of %llu bytes is too large to decode (limit %lld)",
		         r->path, r->tiled ? "tile" : "strip", (unsigned long long)n,
		         (long long)MAX_CHUNK);
		return -1;
	}
	if (!(r->buf = malloc((size_t)n))) {
		ts_error("image", "%s: out of memory for a %llu-byte chunk", r->path,
		         (unsigned long long)n);
		return -1;
	}
	r->bufsize = (tmsize_t)n;
	return 0;
}

/* Copy the part of the decoded native chunk at (cx, cy) (plane = sample index when
 * planes are separate, else -1) that lies in the region into out [3, h, w]. */
static void
put_native(const ts_tiff_reader *r, uint32_t cx, uint32_t cy, int plane, uint32_t x0,
           uint32_t y0, uint32_t x1, uint32_t y1, uint32_t x, uint32_t y, uint32_t w,
           uint32_t h, float *out)
{
	uint32_t stride = r->separate ? 1 : r->spp; /* samples per pixel in buf */
	/* divide (not multiply by the reciprocal): the same floats as the stb path */
	float scale = r->bps == 16 ? 65535.0f : 255.0f;
	int c0 = plane >= 0 ? plane : 0;
	int c1 = plane >= 0 ? plane + 1 : (r->grey ? 1 : 3);
	uint32_t row;
	int c;

	for (c = c0; c < c1; c++) {
		int s = plane >= 0 ? 0 : c; /* sample offset within a pixel of buf */
		for (row = y0; row < y1; row++) {
			size_t base = ((size_t)(row - cy) * r->cw + (x0 - cx)) * stride + s;
			float *o = out + ((size_t)c * h + (row - y)) * w + (x0 - x);
			size_t n = x1 - x0;
			size_t i;

			if (r->bps == 16) {
				const uint16_t *p = (const uint16_t *)r->buf + base;
				for (i = 0; i < n; i++)
					o[i] = p[i * stride] / scale;
			} else {
				const uint8_t *p = (const uint8_t *)r->buf + base;
				for (i = 0; i < n; i++)
					o[i] = p[i * stride] / scale;
			}
			if (r->white)
				for (i = 0; i < n; i++)
					o[i] = 1.0f - o[i];
			if (r->grey) {
				memcpy(o + (size_t)h * w, o, n * sizeof(float));
				memcpy(o + (size_t)2 * h * w, o, n * sizeof(float));
			}
		}
	}
}

/* Same for an RGBA chunk: rows are bottom-up, nrows of them. */
static void
put_rgba(const ts_tiff_reader *r, uint32_t cx, uint32_t cy, uint32_t nrows, uint32_t x0,
         uint32_t y0, uint32_t x1, uint32_t y1, uint32_t x, uint32_t y, uint32_t w,
         uint32_t h, float *out)
{
	const uint32_t *raster = r->buf;
	uint32_t row, col;

	for (row = y0; row < y1; row++) {
		const uint32_t *p = raster + (size_t)(nrows - 1 - (row - cy)) * r->cw + (x0 - cx);
		float *o = out + (size_t)(row - y) * w + (x0 - x);

		for (col = 0; col < x1 - x0; col++) {
			o[col] = TIFFGetR(p[col]) / 255.0f;
			o[(size_t)h * w + col] = TIFFGetG(p[col]) / 255.0f;
			o[(size_t)2 * h * w + col] = TIFFGetB(p[col]) / 255.0f;
		}
	}
}

int
ts_tiff_reader_region(ts_tiff_reader *r, int x, int y, int w, int h, float *out)
{
	uint32_t cx, cy, X, Y, W, H;
	int ret = -1;

	TS_ASSERT(r && out);
	if (x < 0 || y < 0 || w <= 0 || h <= 0 || (uint32_t)x + (uint32_t)w > r->w ||
	    (uint32_t)y + (uint32_t)h > r->h) {
		ts_error("image", "%s: region %dx%d+%d+%d is outside the %ux%u image", r->path,
		         w, h, x, y, r->w, r->h);
		goto cleanup;
	}
	if (chunk_alloc(r))
		goto cleanup;
	X = (uint32_t)x, Y = (uint32_t)y, W = (uint32_t)w, H = (uint32_t)h;
	tiff_msg[0] = '\0';
	for (cy = Y / r->ch * r->ch; cy < Y + H; cy += r->ch) {
		/* rows of this chunk that exist in the image, and those in the region */
		uint32_t valid = r->h - cy < r->ch ? r->h - cy : r->ch;
		uint32_t y0 = cy > Y ? cy : Y;
		uint32_t y1 = cy + valid < Y + H ? cy + valid : Y + H;

		for (cx = X / r->cw * r->cw; cx < X + W; cx += r->cw) {
			uint32_t x0 = cx > X ? cx : X;
			uint32_t x1 = cx + r->cw < X + W ? cx + r->cw : X + W;
			int p, np;

			if (r->rgba) {
				int ok = r->tiled ? TIFFReadRGBATile(r->tif, cx, cy, r->buf)
				                  : TIFFReadRGBAStrip(r->tif, cy, r->buf);
				if (!ok) {
					ts_error("image", "%s: cannot decode: %s", r->path, tiff_why());
					goto cleanup;
				}
				/* a full tile is always tile-high; a strip only valid rows */
				put_rgba(r, cx, cy, r->tiled ? r->ch : valid, x0, y0, x1, y1, X, Y,
				         W, H, out);
				continue;
			}
			np = r->separate ? (r->grey ? 1 : 3) : 1;
			for (p = 0; p < np; p++) {
				uint16_t plane = (uint16_t)(r->separate ? p : 0);
				/* bytes the rows we copy need: whole rows up to y1 */
				uint64_t need = (uint64_t)(y1 - cy) * r->cw * (r->bps / 8) *
				                (r->separate ? 1 : r->spp);
				tmsize_t got;

				if (r->tiled)
					got = TIFFReadEncodedTile(r->tif,
					                          TIFFComputeTile(r->tif, cx, cy, 0, plane),
					                          r->buf, r->bufsize);
				else
					got = TIFFReadEncodedStrip(r->tif,
					                           TIFFComputeStrip(r->tif, cy, plane),
					                           r->buf, r->bufsize);
				if (got < 0 || (uint64_t)got < need) {
					ts_error("image", "%s: cannot decode %s at (%u, %u): %s", r->path,
					         r->tiled ? "tile" : "strip", cx, cy,
					         got < 0 ? tiff_why() : "short data");
					goto cleanup;
				}
				put_native(r, cx, cy, r->separate ? p : -1, x0, y0, x1, y1, X, Y, W, H,
				           out);
			}
		}
	}
	ret = 0;
cleanup:
	return ret;
}

ts_tiff_reader *
ts_tiff_reader_open(const char *path)
{
	return reader_open(path, "r");
}

ts_tiff_reader *
ts_tiff_reader_open_unmapped(const char *path)
{
	/* "m": read(2), not mmap: a mapping of a gigapixel level counts its pages in the
	 * process's RSS (1.4 GB of file cache in a 1-Gpx job's rank 0, where its own memory
	 * was 134 MB), and a file cut short while mapped is a SIGBUS, not a message.  Not for
	 * every file: libtiff's RGBA path then refuses some valid palette TIFFs. */
	return reader_open(path, "rm");
}

int
image_tiff_probe(const char *path, int *w, int *h, int *bits)
{
	ts_tiff_reader *r = ts_tiff_reader_open(path);

	if (!r)
		return -1;
	ts_tiff_reader_size(r, w, h, bits);
	ts_tiff_reader_close(r);
	return 0;
}

ts_image *
image_tiff_load(const char *path, long long max_pixels)
{
	ts_tiff_reader *r = NULL;
	ts_image *im = NULL;
	int w, h, bits;

	if (!(r = ts_tiff_reader_open(path)))
		goto cleanup;
	ts_tiff_reader_size(r, &w, &h, &bits);
	if ((long long)w * h > max_pixels) {
		ts_error("image", "%s: %dx%d pixels exceeds the budget of %lld", path, w, h,
		         max_pixels);
		goto cleanup;
	}
	if (!(im = ts_image_create(w, h)))
		goto cleanup;
	im->bits = bits;
	if (ts_tiff_reader_region(r, 0, 0, w, h, im->px)) {
		ts_image_destroy(im);
		im = NULL;
	}
cleanup:
	ts_tiff_reader_close(r);
	return im;
}

/* --- writing --- */

/* Tags common to both writers: RGB, contiguous, deflate with horizontal predictor. */
static int
set_rgb_tags(TIFF *tif, uint32_t w, uint32_t h, int bits)
{
	return TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w) &&
	       TIFFSetField(tif, TIFFTAG_IMAGELENGTH, h) &&
	       TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, bits) &&
	       TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3) &&
	       TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT) &&
	       TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB) &&
	       TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
	       TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT) &&
	       TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE) &&
	       TIFFSetField(tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
}

/* Convert rows [0, rows) x columns [x, x + n) of planar src ([3, sh, sw]) into the
 * interleaved buffer dst (row stride dstride pixels). */
static void
pack_rows(const float *src, uint32_t sw, uint32_t sh, uint32_t y, uint32_t rows,
          uint32_t x, uint32_t n, int bits, void *dst, uint32_t dstride)
{
	size_t plane = (size_t)sw * sh;
	uint32_t r, i;

	for (r = 0; r < rows; r++) {
		const float *s = src + (size_t)(y + r) * sw + x;
		for (i = 0; i < n; i++) {
			size_t o = ((size_t)r * dstride + i) * 3;
			if (bits == 16) {
				uint16_t *d = dst;
				d[o] = image_to_u16(s[i]);
				d[o + 1] = image_to_u16(s[plane + i]);
				d[o + 2] = image_to_u16(s[2 * plane + i]);
			} else {
				uint8_t *d = dst;
				d[o] = image_to_u8(s[i]);
				d[o + 1] = image_to_u8(s[plane + i]);
				d[o + 2] = image_to_u8(s[2 * plane + i]);
			}
		}
	}
}

int
image_tiff_write(const ts_image *im, const char *part, const char *path, int bits)
{
	uint32_t w = (uint32_t)im->w, h = (uint32_t)im->h, rps, y;
	size_t rowbytes = (size_t)w * 3 * (size_t)(bits / 8);
	void *buf = NULL; /* one strip [rps, w, 3] */
	TIFF *tif = NULL;
	int ret = -1;

	rps = (uint32_t)(STRIP_BYTES / rowbytes);
	if (rps < 1)
		rps = 1;
	if (rps > h)
		rps = h;
	/* classic TIFF offsets are 32-bit: go BigTIFF well before 4 GB of raw data */
	if (!(tif = tiff_open(part, (uint64_t)rowbytes * h > (1ull << 31) ? "w8" : "w"))) {
		ts_error("image", "cannot write %s: %s", path, tiff_why());
		goto cleanup;
	}
	if (!set_rgb_tags(tif, w, h, bits) || !TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rps)) {
		ts_error("image", "cannot write %s: %s", path, tiff_why());
		goto cleanup;
	}
	if (!(buf = malloc(rowbytes * rps))) {
		ts_error("image", "cannot write %s: out of memory", path);
		goto cleanup;
	}
	for (y = 0; y < h; y += rps) {
		uint32_t rows = h - y < rps ? h - y : rps;

		pack_rows(im->px, w, h, y, rows, 0, w, bits, buf, w);
		if (TIFFWriteEncodedStrip(tif, y / rps, buf, (tmsize_t)(rowbytes * rows)) < 0) {
			ts_error("image", "cannot write %s: %s", path, tiff_why());
			goto cleanup;
		}
	}
	if (TIFFFlush(tif) != 1) {
		ts_error("image", "cannot write %s: %s", path, tiff_why());
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (tif)
		TIFFClose(tif);
	if (ret && tif)
		unlink(part);
	free(buf);
	return ret;
}

/* Most reduced-resolution levels (a 2^31-pixel side halves to 256 in 23 steps). */
#define MAX_SUB 24

/* One reduced level of the writer: rows made by halving the level above, in a band
 * written to its own temporary tiled file ("<path>.r<k>"), copied into a SubIFD at
 * the end. */
typedef struct sub_level {
	ts_tiff_writer *wr;
	int w, h;    /* its size */
	float *band; /* [3, tile, w] */
	int rows;    /* rows held in band */
	int done;    /* rows made so far */
} sub_level;

struct ts_tiff_writer {
	TIFF *tif;
	char *path, *part; /* owned */
	uint32_t w, h;     /* image size */
	uint32_t tile;     /* tile side, a multiple of 16 */
	int bits;          /* 8 or 16 */
	uint32_t y;        /* first row not yet written */
	int failed;        /* a band failed: close removes the .part */
	void *buf;         /* one tile [tile, tile, 3] of bits-bit samples */
	tmsize_t tilesize; /* bytes of buf */
	int nsub;          /* reduced levels (ts_tiff_writer_set_meta) */
	sub_level sub[MAX_SUB];
};

ts_tiff_writer *
ts_tiff_writer_open(const char *path, int w, int h, int bits, int tile)
{
	ts_tiff_writer *wr = NULL;
	int ok = 0;

	if (w <= 0 || h <= 0 || (bits != 8 && bits != 16)) {
		ts_error("image", "cannot write %s: bad size %dx%d or bits %d (8 or 16)", path,
		         w, h, bits);
		return NULL;
	}
	if (tile <= 0 || tile % 16 || tile > 65536) {
		ts_error("image", "cannot write %s: tile side %d must be a multiple of 16 "
		         "(16..65536)", path, tile);
		return NULL;
	}
	if (!(wr = calloc(1, sizeof *wr)) || !(wr->path = strdup(path))) {
		ts_error("image", "cannot write %s: out of memory", path);
		goto cleanup;
	}
	if (!(wr->part = ts_file_part_name("image", path)))
		goto cleanup;
	wr->w = (uint32_t)w, wr->h = (uint32_t)h, wr->tile = (uint32_t)tile, wr->bits = bits;
	if (!(wr->tif = tiff_open(wr->part, "w8"))) {
		ts_error("image", "cannot write %s: %s", path, tiff_why());
		goto cleanup;
	}
	if (!set_rgb_tags(wr->tif, wr->w, wr->h, bits) ||
	    !TIFFSetField(wr->tif, TIFFTAG_TILEWIDTH, wr->tile) ||
	    !TIFFSetField(wr->tif, TIFFTAG_TILELENGTH, wr->tile)) {
		ts_error("image", "cannot write %s: %s", path, tiff_why());
		goto cleanup;
	}
	wr->tilesize = (tmsize_t)wr->tile * wr->tile * 3 * (bits / 8);
	if (!(wr->buf = calloc(1, (size_t)wr->tilesize))) {
		ts_error("image", "cannot write %s: out of memory", path);
		goto cleanup;
	}
	ok = 1;
cleanup:
	if (!ok && wr) {
		/* an abort records no message: the one explaining the failure stays */
		ts_tiff_writer_close(wr, 1);
		wr = NULL;
	}
	return wr;
}

int
ts_tiff_writer_set_meta(ts_tiff_writer *wr, const ts_tiff_meta *m)
{
	int ok = 1;

	TS_ASSERT(wr && m && wr->y == 0);
	tiff_msg[0] = '\0';
	if (m->dpi > 0)
		ok = TIFFSetField(wr->tif, TIFFTAG_XRESOLUTION, m->dpi) &&
		     TIFFSetField(wr->tif, TIFFTAG_YRESOLUTION, m->dpi) &&
		     TIFFSetField(wr->tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH);
	if (ok && m->srgb) {
		void *icc = NULL;
		uint32_t len = 0;

		if (image_srgb_profile(&icc, &len)) {
			ts_error("image", "cannot write %s: %s", wr->path, ts_errmsg());
			return -1;
		}
		ok = TIFFSetField(wr->tif, TIFFTAG_ICCPROFILE, len, icc);
		free(icc);
	}
	if (ok && m->reduced) {
		uint64_t offsets[MAX_SUB] = { 0 };
		int w = (int)wr->w, h = (int)wr->h;

		while (wr->nsub < MAX_SUB && (w > (int)wr->tile || h > (int)wr->tile)) {
			sub_level *l = &wr->sub[wr->nsub];
			char p[4200];

			w = (w + 1) / 2, h = (h + 1) / 2;
			l->w = w, l->h = h;
			snprintf(p, sizeof p, "%s.r%d", wr->path, wr->nsub + 1);
			wr->nsub++; /* counted before it can fail: close frees what was made */
			if (!(l->band = malloc((size_t)3 * wr->tile * w * sizeof *l->band))) {
				ts_error("image", "cannot write %s: out of memory for its reduced levels",
				         wr->path);
				return -1;
			}
			if (!(l->wr = ts_tiff_writer_open(p, w, h, wr->bits, (int)wr->tile)))
				return -1;
		}
		if (wr->nsub)
			ok = TIFFSetField(wr->tif, TIFFTAG_SUBIFD, (uint16_t)wr->nsub, offsets);
	}
	if (!ok) {
		ts_error("image", "cannot write %s: %s", wr->path, tiff_why());
		return -1;
	}
	return 0;
}

/* Rows [0, rows) of a band of level k - 1 (width sw, planar [3, rows, sw]) halved into
 * level k's band; full bands go to its file and on to level k + 1.  last: the band
 * ends level k - 1 (an odd last row is halved alone). */
static int
sub_feed(ts_tiff_writer *wr, int k, const float *src, int sw, int rows, int last)
{
	sub_level *l;

	if (k >= wr->nsub)
		return 0;
	l = &wr->sub[k];
	for (int r = 0; r < rows; r += 2) {
		int r1 = r + 1 < rows ? r + 1 : r;
		size_t sp = (size_t)rows * sw, dp = (size_t)wr->tile * l->w;

		for (int c = 0; c < 3; c++) {
			const float *a = src + c * sp + (size_t)r * sw, *b = src + c * sp + (size_t)r1 * sw;
			float *d = l->band + c * dp + (size_t)l->rows * l->w;

			for (int x = 0; x < l->w; x++) {
				int x0 = 2 * x, x1 = 2 * x + 1 < sw ? 2 * x + 1 : 2 * x;

				d[x] = 0.25f * (a[x0] + a[x1] + b[x0] + b[x1]);
			}
		}
		l->rows++, l->done++;
		if (l->rows == (int)wr->tile || l->done == l->h) {
			/* the band is [3, tile, w]: compact it to [3, rows, w] for the writer */
			for (int c = 1; c < 3; c++)
				memmove(l->band + (size_t)c * l->rows * l->w,
				        l->band + (size_t)c * wr->tile * l->w, (size_t)l->rows * l->w * sizeof(float));
			if (ts_tiff_writer_band(l->wr, l->band, l->rows) ||
			    sub_feed(wr, k + 1, l->band, l->w, l->rows, l->done == l->h))
				return -1;
			l->rows = 0;
		}
	}
	(void)last;
	return 0;
}

/* Copy the reduced levels' tiles, still encoded, into SubIFDs after the main
 * directory. */
static int
write_subifds(ts_tiff_writer *wr)
{
	void *raw = NULL;
	tmsize_t rawsize = 0;
	int ret = -1;

	if (TIFFWriteDirectory(wr->tif) != 1)
		return -1;
	for (int k = 0; k < wr->nsub; k++) {
		sub_level *l = &wr->sub[k];
		char p[4200];
		TIFF *in;
		uint32_t nt;
		int ok;

		snprintf(p, sizeof p, "%s.r%d", wr->path, k + 1);
		if (!(in = tiff_open(p, "rm")))
			goto cleanup;
		ok = set_rgb_tags(wr->tif, (uint32_t)l->w, (uint32_t)l->h, wr->bits) &&
		     TIFFSetField(wr->tif, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE) &&
		     TIFFSetField(wr->tif, TIFFTAG_TILEWIDTH, wr->tile) &&
		     TIFFSetField(wr->tif, TIFFTAG_TILELENGTH, wr->tile);
		nt = TIFFNumberOfTiles(in);
		for (uint32_t t = 0; ok && t < nt; t++) {
			uint64_t *bc = NULL;
			tmsize_t n;

			ok = TIFFGetField(in, TIFFTAG_TILEBYTECOUNTS, &bc) && bc;
			if (!ok)
				break;
			if ((tmsize_t)bc[t] > rawsize) {
				void *nb = realloc(raw, (size_t)bc[t]);

				if (!nb) {
					ok = 0;
					break;
				}
				raw = nb, rawsize = (tmsize_t)bc[t];
			}
			n = TIFFReadRawTile(in, t, raw, rawsize);
			ok = n >= 0 && TIFFWriteRawTile(wr->tif, t, raw, n) == n;
		}
		TIFFClose(in);
		unlink(p);
		if (!ok || TIFFWriteDirectory(wr->tif) != 1)
			goto cleanup;
	}
	ret = 0;
cleanup:
	free(raw);
	return ret;
}

int
ts_tiff_writer_band(ts_tiff_writer *wr, const float *band, int rows)
{
	uint32_t want, x;
	int ret = -1;

	TS_ASSERT(wr && band);
	if (wr->failed) {
		ts_error("image", "cannot write %s: an earlier band failed", wr->path);
		goto cleanup;
	}
	want = wr->h - wr->y < wr->tile ? wr->h - wr->y : wr->tile;
	if (rows <= 0 || (uint32_t)rows != want) {
		ts_error("image", "cannot write %s: band at row %u has %d rows, expected %u",
		         wr->path, wr->y, rows, want);
		goto cleanup;
	}
	tiff_msg[0] = '\0';
	for (x = 0; x < wr->w; x += wr->tile) {
		uint32_t n = wr->w - x < wr->tile ? wr->w - x : wr->tile;

		/* edge tiles: the part outside the image is left zero (compresses away) */
		memset(wr->buf, 0, (size_t)wr->tilesize);
		pack_rows(band, wr->w, want, 0, want, x, n, wr->bits, wr->buf, wr->tile);
		if (TIFFWriteEncodedTile(wr->tif, TIFFComputeTile(wr->tif, x, wr->y, 0, 0),
		                         wr->buf, wr->tilesize) < 0) {
			ts_error("image", "cannot write %s: %s", wr->path, tiff_why());
			goto cleanup;
		}
	}
	wr->y += want;
	if (sub_feed(wr, 0, band, (int)wr->w, (int)want, wr->y == wr->h))
		goto cleanup;
	ret = 0;
cleanup:
	if (ret)
		wr->failed = 1;
	return ret;
}

int
ts_tiff_writer_close(ts_tiff_writer *wr, int abort)
{
	int ret = -1;

	if (!wr)
		return 0;
	if (abort) {
		ret = 0;
	} else if (wr->failed) {
		ts_error("image", "cannot write %s: an earlier band failed", wr->path);
	} else if (wr->y != wr->h) {
		ts_error("image", "cannot write %s: only %u of %u rows were written", wr->path,
		         wr->y, wr->h);
	} else {
		tiff_msg[0] = '\0';
		ret = 0;
		for (int k = 0; k < wr->nsub && ret == 0; k++) {
			ret = ts_tiff_writer_close(wr->sub[k].wr, 0); /* to "<path>.r<k>" */
			wr->sub[k].wr = NULL;
		}
		if (ret == 0 && wr->nsub && write_subifds(wr)) {
			ts_error("image", "cannot write %s: its reduced levels: %s", wr->path, tiff_why());
			ret = -1;
		} else if (ret == 0 && !wr->nsub && TIFFFlush(wr->tif) != 1) {
			ts_error("image", "cannot write %s: %s", wr->path, tiff_why());
			ret = -1;
		}
	}
	for (int k = 0; k < wr->nsub; k++) {
		char p[4200];

		ts_tiff_writer_close(wr->sub[k].wr, 1);
		free(wr->sub[k].band);
		snprintf(p, sizeof p, "%s.r%d", wr->path, k + 1);
		unlink(p);
	}
	if (wr->tif)
		TIFFClose(wr->tif);
	if (wr->part) {
		if (!abort && ret == 0)
			ret = ts_file_commit_part("image", wr->part, wr->path); /* removes the .part on failure */
		else
			unlink(wr->part);
	}
	free(wr->buf);
	free(wr->part);
	free(wr->path);
	free(wr);
	return ret;
}
