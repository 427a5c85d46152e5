/* image_internal: what image.c and its back ends share (not public).
 *
 * image.c owns format detection, the size and budget check, the atomic-write protocol
 * and sample conversion; each back end owns its library: image_png.c (libpng),
 * image_jpeg.c (libjpeg-turbo, libexif), image_stb.c (stb: BMP reading, JPEG/BMP
 * writing) and image_tiff.c (libtiff).  A back end checks a file's size from its
 * header with image_check_size() before it decodes a single pixel.  A writer writes a
 * complete "<path>.part" (ts_file_part_name) and closes it; ts_file_commit_part
 * (file.h) then makes it durable and renames it.
 * Every message names the real path, never the ".part". */
#ifndef TESSERA_IMAGE_INTERNAL_H
#define TESSERA_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tessera/image.h"

enum image_format {
	IMAGE_UNKNOWN = 0,
	IMAGE_PNG,
	IMAGE_JPEG,
	IMAGE_BMP,
	IMAGE_TIFF, /* classic TIFF or BigTIFF, either byte order */
};

/* Format from the first n bytes of a file (n may be < 8). */
enum image_format image_detect(const unsigned char *magic, size_t n);


/* Check a size read from a header, before decoding: w, h > 0, each fits in int, and
 * w * h <= max_pixels (max_pixels <= 0: no budget).  The product is never formed, so
 * any long long is safe.  -1 with "image: PATH: ..." ("zero-sized", "exceeds the
 * budget", "too large"). */
int image_check_size(const char *path, long long w, long long h, long long max_pixels);

/* Sample conversions (round to nearest after clamping to [0,1]). */
uint8_t image_to_u8(float v);
uint16_t image_to_u16(float v);

/* Readers below: f is open on path at any position, the format already detected from
 * the magic bytes; the caller closes f.  A probe reports what the load would return
 * (for a JPEG: the size after its EXIF orientation).  w, h, bits may be NULL. */

/* image_png.c: PNG of any colour type, 1 to 16 bits (16 stays 16). */
ts_image *image_png_load(FILE *f, const char *path, long long max_pixels);
int image_png_probe(FILE *f, const char *path, int *w, int *h, int *bits);
/* Write im as an RGB PNG of bits 8 or 16 (zlib's default level) to part. */
int image_png_write(const ts_image *im, const char *part, const char *path, int bits);

/* image_jpeg.c: baseline/progressive 8-bit JPEG, grey, YCbCr/RGB, CMYK/YCCK. */
ts_image *image_jpeg_load(FILE *f, const char *path, long long max_pixels);
int image_jpeg_probe(FILE *f, const char *path, int *w, int *h, int *bits);

/* image_stb.c: BMP reading (after a completeness check), JPEG and BMP writing. */
ts_image *image_stb_load(FILE *f, const char *path, long long max_pixels);
int image_stb_probe(FILE *f, const char *path, int *w, int *h, int *bits);
/* Write im (8-bit RGB) to part as IMAGE_JPEG or IMAGE_BMP; -1 with a message naming
 * path. */
int image_stb_write(const ts_image *im, const char *part, const char *path,
                    enum image_format fmt);

/* Streaming readers: rows top-down into out [3, rows, w], one row buffer held.  open
 * returns NULL with *whole = 1 (and no message) when the file cannot stream (an
 * interlaced PNG, a JPEG with an EXIF orientation other than 1): the caller decodes
 * it whole.  The stream keeps f, which must stay open until close. */
typedef struct image_png_stream image_png_stream;
image_png_stream *image_png_stream_open(FILE *f, const char *path, long long max_pixels,
                                        int *w, int *h, int *bits, int *whole);
int image_png_stream_rows(image_png_stream *s, int rows, float *out);
void image_png_stream_close(image_png_stream *s);
/* A JPEG streams at 1/denom (1, 2, 4, 8: libjpeg-turbo's scaled decoding, each side
 * rounded up); w, h are the scaled sizes. */
int image_jpeg_probe_scaled(FILE *f, const char *path, int denom, int *w, int *h,
                            int *applied);
typedef struct image_jpeg_stream image_jpeg_stream;
image_jpeg_stream *image_jpeg_stream_open(FILE *f, const char *path, long long max_pixels,
                                          int denom, int *w, int *h, int *bits, int *whole);
int image_jpeg_stream_rows(image_jpeg_stream *s, int rows, float *out);
void image_jpeg_stream_close(image_jpeg_stream *s);

/* image_icc.c: an sRGB ICC profile made by lcms2, in a new buffer *data of *len
 * bytes (caller frees).  -1 with a message. */
int image_srgb_profile(void **data, uint32_t *len);

/* image_tiff.c: whole-file TIFF/BigTIFF. */
ts_image *image_tiff_load(const char *path, long long max_pixels);
int image_tiff_probe(const char *path, int *w, int *h, int *bits);
/* Write im as deflate-compressed RGB strips of bits 8 or 16 to part. */
int image_tiff_write(const ts_image *im, const char *part, const char *path, int bits);

#endif
