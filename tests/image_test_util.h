/* image_test_util: helpers shared by test_image.c and test_image_decode.c (static
 * inline, so a file that uses only some of them compiles without warnings): the
 * group's temporary directory (setup / teardown), paths in it, test patterns,
 * comparisons, hand-made PNG chunks and raw files.  Define TEST_NAME (a string) before
 * including it; include it after cmocka.h. */
#ifndef TESSERA_IMAGE_TEST_UTIL_H
#define TESSERA_IMAGE_TEST_UTIL_H

#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "tessera/error.h"
#include "tessera/image.h"

/* the group's mkdtemp directory; each test file has its own */
static char tmpdir[PATH_MAX];

/* buf = tmpdir/name */
static inline void
tpath(char *buf, const char *name)
{
	size_t n = strlen(tmpdir), m = strlen(name);

	assert_true(n + 1 + m < PATH_MAX);
	memcpy(buf, tmpdir, n);
	buf[n] = '/';
	memcpy(buf + n + 1, name, m + 1);
}

static inline int
exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static inline int
part_exists(const char *path)
{
	char part[PATH_MAX + 8];

	snprintf(part, sizeof part, "%s.part", path);
	return exists(part);
}

static inline int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static inline int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tessera_%s_XXXXXX", TEST_NAME);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int
teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* w x h image with distinct 8-bit values per channel (v / 255). */
static inline ts_image *
pattern8(int w, int h)
{
	ts_image *im = ts_image_create(w, h);
	int c, x, y;

	assert_non_null(im);
	for (c = 0; c < 3; c++)
		for (y = 0; y < h; y++)
			for (x = 0; x < w; x++)
				im->px[((size_t)c * h + y) * w + x] =
					(float)((x * 7 + y * 13 + c * 85) % 256) / 255.0f;
	return im;
}

/* Same with 16-bit values (v / 65535), avoiding multiples of 257. */
static inline ts_image *
pattern16(int w, int h)
{
	ts_image *im = ts_image_create(w, h);
	int c, x, y;

	assert_non_null(im);
	for (c = 0; c < 3; c++)
		for (y = 0; y < h; y++)
			for (x = 0; x < w; x++)
				im->px[((size_t)c * h + y) * w + x] =
					(float)((x * 611 + y * 977 + c * 20011 + 3) % 65536) / 65535.0f;
	im->bits = 16;
	return im;
}

static inline void
assert_same(const ts_image *a, const ts_image *b, float tol)
{
	size_t i, n;

	assert_int_equal(a->w, b->w);
	assert_int_equal(a->h, b->h);
	n = (size_t)3 * a->w * a->h;
	for (i = 0; i < n; i++)
		if (fabsf(a->px[i] - b->px[i]) > tol)
			fail_msg("sample %zu: %g vs %g", i, a->px[i], b->px[i]);
}

static inline void
assert_err_has(const char *what)
{
	if (!strstr(ts_errmsg(), what))
		fail_msg("message \"%s\" lacks \"%s\"", ts_errmsg(), what);
}

/* --- hand-made PNG --- */

static inline void
be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static inline void
png_chunk(FILE *f, const char *type, const unsigned char *data, uint32_t n)
{
	unsigned char b[4];
	uLong crc = crc32(0, (const Bytef *)type, 4);

	if (n)
		crc = crc32(crc, data, n);
	be32(b, n);
	assert_int_equal(fwrite(b, 1, 4, f), 4);
	assert_int_equal(fwrite(type, 1, 4, f), 4);
	if (n)
		assert_int_equal(fwrite(data, 1, n, f), n);
	be32(b, (uint32_t)crc);
	assert_int_equal(fwrite(b, 1, 4, f), 4);
}

/* PNG of colour type 2 (RGB) and the given depth; rows = raw filtered scanlines
 * (or NULL: no IDAT). */
static inline void
write_png(const char *path, uint32_t w, uint32_t h, int depth, const unsigned char *rows,
          size_t n)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	unsigned char ihdr[13];
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(sig, 1, 8, f), 8);
	be32(ihdr, w);
	be32(ihdr + 4, h);
	ihdr[8] = (unsigned char)depth, ihdr[9] = 2, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0;
	png_chunk(f, "IHDR", ihdr, 13);
	if (rows) {
		uLongf zn = compressBound(n);
		unsigned char *z = malloc(zn);

		assert_non_null(z);
		assert_int_equal(compress2(z, &zn, rows, n, 6), Z_OK);
		png_chunk(f, "IDAT", z, (uint32_t)zn);
		free(z);
	}
	png_chunk(f, "IEND", NULL, 0);
	assert_int_equal(fclose(f), 0);
}

static inline void
write_bytes(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	if (n)
		assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

#endif
