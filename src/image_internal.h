/* image_internal: what image.c, image_stb.c and image_tiff.c share (not public).
 *
 * image.c owns format detection, the atomic-write protocol and sample conversion;
 * image_stb.c and image_tiff.c own their libraries.  A back end writes a complete
 * "<path>.part" and closes it; image_commit() then makes it durable and renames it.
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

/* "<path>.part" in a new string (caller frees); NULL with a message. */
char *image_part_path(const char *path);
/* fsync the closed file part, rename it to path, fsync path's directory.  On failure
 * part is removed and -1 returned with "image: cannot write PATH: reason". */
int image_commit(const char *part, const char *path);

/* Sample conversions (round to nearest after clamping to [0,1]). */
uint8_t image_to_u8(float v);
uint16_t image_to_u16(float v);

/* image_stb.c: PNG/JPEG/BMP.  f is open at any position on path, format already
 * detected; the caller closes f. */
ts_image *image_stb_load(FILE *f, const char *path, enum image_format fmt,
                         long long max_pixels);
int image_stb_probe(FILE *f, const char *path, enum image_format fmt, int *w, int *h,
                    int *bits);
/* Write im (8-bit RGB) to part in format fmt; -1 with a message naming path. */
int image_stb_write(const ts_image *im, const char *part, const char *path,
                    enum image_format fmt);

/* image_tiff.c: whole-file TIFF/BigTIFF. */
ts_image *image_tiff_load(const char *path, long long max_pixels);
int image_tiff_probe(const char *path, int *w, int *h, int *bits);
/* Write im as deflate-compressed RGB strips of bits 8 or 16 to part. */
int image_tiff_write(const ts_image *im, const char *part, const char *path, int bits);

#endif
