/* image: pictures in memory and on disk.
 *
 * In memory an image is planar RGB float in [0,1] ([3, h, w]), the layout the network
 * reads.  Readers are chosen by magic bytes, never by extension, and each checks the
 * size in the file's header against an overflow-checked pixel budget before it
 * decodes a single pixel:
 *   PNG through libpng: 1 to 16 bits, grey/RGB/palette, with or without alpha; a
 *     16-bit PNG stays bits 16;
 *   JPEG through libjpeg-turbo: grey, YCbCr/RGB, CMYK/YCCK (naive conversion), with
 *     the EXIF orientation (1-8, through libexif) applied, so a phone picture is
 *     upright and the probe reports the upright size;
 *   BMP through stb_image, after a check that the file holds all the pixel rows its
 *     header promises;
 *   TIFF and BigTIFF 8/16-bit, grey, RGB, RGBA, strips or tiles through libtiff.
 * Never GIF/PSD/HDR/PNM/PIC.  Alpha is dropped, grey replicated.  A corrupt or
 * truncated file is an error naming the file and the library's reason, never an
 * image completed with filler, never a message on stderr, never an exit.
 * Writers, chosen by the file extension: PNG (8 or 16-bit, libpng, zlib's default
 * compression), JPEG and BMP (8-bit, stb_image_write), TIFF (8 or 16-bit); always
 * written to "<path>.part" and renamed, so a failure never leaves a partial file under
 * the real name.
 *
 * Only image_*.c include stb, libpng, libjpeg, libexif or tiffio.h. */
#ifndef TESSERA_IMAGE_H
#define TESSERA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ts_image {
	int w, h;  /* pixels */
	int bits;  /* precision of the source: 8 or 16 (a 16-bit TIFF stays 16 on output) */
	float *px; /* [3, h, w] planar RGB in [0,1]; owned */
} ts_image;

/* Default pixel budget for decoding (w * h): 1 Gpixel. */
#define TS_IMAGE_MAX_PIXELS (1LL << 30)

/* Pixel limit of a streamed read (ts_image_reader): 16 Gpixel. */
#define TS_IMAGE_MAX_STREAM_PIXELS (1LL << 34)

/* New w x h image, zeroed, bits 8.  Caller owns; NULL with a message. */
ts_image *ts_image_create(int w, int h);
void ts_image_destroy(ts_image *im);

/* Width, height and bits of an image file without decoding the pixels (for a JPEG,
 * after its EXIF orientation: what ts_image_load returns).  Any pointer may be NULL. */
int ts_image_probe(const char *path, int *w, int *h, int *bits);

/* Decode a whole file.  max_pixels <= 0 means TS_IMAGE_MAX_PIXELS.  NULL with a message
 * naming the file and why (missing, unknown format, corrupt, truncated, zero or
 * over-budget size: "... exceeds the budget of N pixels"). */
ts_image *ts_image_load(const char *path, long long max_pixels);

/* Write by extension: .png (bits 8 or 16), .jpg/.jpeg (quality 95), .tif/.tiff (bits
 * 8 or 16; deflate-compressed), .bmp.  bits 0 keeps the source's (im->bits); bits is
 * ignored for the 8-bit-only formats JPEG and BMP.  Atomic: writes
 * "<path>.part", fsyncs, renames.  -1 with a message (unknown extension, cannot write). */
int ts_image_save(const ts_image *im, const char *path, int bits);

/* Resampled copy (w x h), good for both shrinking and enlarging (stb_image_resize,
 * Mitchell/cubic filter, edge clamp).  Caller owns. */
ts_image *ts_image_resize(const ts_image *src, int w, int h);

/* Copy of the rectangle (x, y, w, h) of src; the rectangle must lie inside src. */
ts_image *ts_image_crop(const ts_image *src, int x, int y, int w, int h);

/* Original colours (Gatys et al. 2016, luminance-only): keep the luminance (Y of YIQ)
 * of out and take the chrominance (I, Q) of colors, which must have the same size;
 * the result is clamped to [0,1]. */
void ts_image_keep_colors(ts_image *out, const ts_image *colors);

/* Clamp every sample to [0,1]. */
void ts_image_clamp(ts_image *im);

/* --- Any format by rows, in bounded memory, for pictures larger than memory. ---
 *
 * PNG (non-interlaced) and JPEG (EXIF orientation 1) stream through libpng and
 * libjpeg-turbo one scanline at a time; TIFF is read by rectangles (a strip or tile
 * held); the rest (BMP, interlaced PNG, a rotated JPEG) is decoded whole, within
 * TS_IMAGE_MAX_PIXELS.  Streamed sizes may reach TS_IMAGE_MAX_STREAM_PIXELS. */
typedef struct ts_image_reader ts_image_reader;
/* NULL with a message naming the file (as ts_image_load's). */
ts_image_reader *ts_image_reader_open(const char *path);
/* The same at 1/denom (1, 2, 4 or 8) where the decoder itself can shrink on the way
 * (a JPEG of EXIF orientation 1: libjpeg-turbo's scaled DCT, sides rounded up); other
 * files read at full size, as ts_image_probe_scaled says beforehand. */
ts_image_reader *ts_image_reader_open_scaled(const char *path, int denom);
/* The size ts_image_reader_open_scaled(path, denom) reads, and the denominator it
 * applies (*applied: denom, or 1 where the format cannot shrink).  0 or -1. */
int ts_image_probe_scaled(const char *path, int denom, int *w, int *h, int *applied);
void ts_image_reader_size(const ts_image_reader *r, int *w, int *h, int *bits);
/* 1 when the file is read in bounded memory, 0 when it was decoded whole. */
int ts_image_reader_streams(const ts_image_reader *r);
/* The next rows, top-down: out [3, rows, w].  -1 with a message (a corrupt or
 * truncated file is found here, as late as the rows that show it). */
int ts_image_reader_rows(ts_image_reader *r, int rows, float *out);
void ts_image_reader_close(ts_image_reader *r);
/* A whole file decoded at 1/denom (1, 2, 4 or 8) as ts_image_reader_open_scaled reads
 * it: a JPEG shrunk by libjpeg-turbo on the way, rows at a time, so that a large photo
 * for a small render never exists at full size; other formats, and denom 1, as
 * ts_image_load(path, 0).  NULL with a message naming the file. */
ts_image *ts_image_load_scaled(const char *path, int denom);

/* --- Large TIFF, for the tiled renderer: read a region, write tile rows. --- */

typedef struct ts_tiff_reader ts_tiff_reader;
/* Open a TIFF/BigTIFF for region reads; the image is never decoded whole. */
ts_tiff_reader *ts_tiff_reader_open(const char *path);
/* The same, read by read(2) rather than memory-mapped (tessera's own files: the content
 * pyramid's levels), so their pages never count in the process's resident memory. */
ts_tiff_reader *ts_tiff_reader_open_unmapped(const char *path);
void ts_tiff_reader_size(const ts_tiff_reader *r, int *w, int *h, int *bits);
/* Read the rectangle (x, y, w, h) into out [3, h, w] (RGB in [0,1]). */
int ts_tiff_reader_region(ts_tiff_reader *r, int x, int y, int w, int h, float *out);
void ts_tiff_reader_close(ts_tiff_reader *r);

typedef struct ts_tiff_writer ts_tiff_writer;
/* Start a tiled, deflate-compressed BigTIFF ("w8") of w x h, bits 8 or 16, with square
 * tiles of side tile (a multiple of 16), written to "<path>.part". */
ts_tiff_writer *ts_tiff_writer_open(const char *path, int w, int h, int bits, int tile);
/* What a print-ready output carries besides its pixels. */
typedef struct ts_tiff_meta {
	double dpi;  /* > 0: XResolution, YResolution (pixels per inch), ResolutionUnit inch */
	int srgb;    /* 1: an embedded sRGB ICC profile (made by lcms2) */
	int reduced; /* 1: reduced-resolution levels as SubIFDs, each half the one above
	              * (2x2 mean), tiled and compressed like the image, down to one tile;
	              * held as a band of tile rows each ([3, tile, w/2^k] floats: 12 * tile
	              * * w bytes in all) and in temporary files "<path>.r<k>" until close */
} ts_tiff_meta;
/* Before the first band: tags and reduced levels.  -1 with a message. */
int ts_tiff_writer_set_meta(ts_tiff_writer *wr, const ts_tiff_meta *m);
/* Write one row of tiles: rows [y, y + rows) where y is the next unwritten tile row
 * start and rows = min(tile, h - y); band is [3, rows, w] RGB in [0,1]. */
int ts_tiff_writer_band(ts_tiff_writer *wr, const float *band, int rows);
/* Finish: close, fsync, rename to path.  On error (or abort = 1) the .part is removed.
 * Frees wr in every case. */
int ts_tiff_writer_close(ts_tiff_writer *wr, int abort);

#endif
