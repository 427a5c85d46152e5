/* test_image: image IO round trips, TIFF region reads and the tiled BigTIFF writer,
 * refusal of bad input before decoding, atomic writes, resize, crop, keep_colors;
 * the decoders for untrusted files: every PNG colour type, JPEG colour spaces and
 * EXIF orientation, a hostile DHT, truncated JPEG/PNG/BMP, the pixel budget.
 *
 * Every input is made here (ts_image_save, hand-built PNG chunks with zlib, PNGs and
 * JPEGs with libpng and libjpeg directly, TIFFs with libtiff directly) inside one
 * mkdtemp directory that the group teardown removes. */
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

#include <jpeglib.h>
#include <png.h>
#include <tiffio.h>
#include <zlib.h>

#include "tessera/error.h"
#include "tessera/image.h"

static char tmpdir[PATH_MAX];

/* buf = tmpdir/name */
static void
tpath(char *buf, const char *name)
{
	size_t n = strlen(tmpdir), m = strlen(name);

	assert_true(n + 1 + m < PATH_MAX);
	memcpy(buf, tmpdir, n);
	buf[n] = '/';
	memcpy(buf + n + 1, name, m + 1);
}

static int
exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static int
part_exists(const char *path)
{
	char part[PATH_MAX + 8];

	snprintf(part, sizeof part, "%s.part", path);
	return exists(part);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tessera_test_image_XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* w x h image with distinct 8-bit values per channel (v / 255). */
static ts_image *
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
static ts_image *
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

static void
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

static void
assert_err_has(const char *what)
{
	if (!strstr(ts_errmsg(), what))
		fail_msg("message \"%s\" lacks \"%s\"", ts_errmsg(), what);
}

/* --- hand-made PNG --- */

static void
be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void
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
static void
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

static void
write_bytes(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	if (n)
		assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static long
file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (long)st.st_size;
}

/* Samples of the libpng-written test PNGs: a pattern in [0, 2^depth). */
static unsigned
png_sample(int x, int y, int k, int depth)
{
	return (unsigned)(x * 5 + y * 11 + k * 29 + 7) % (1u << depth);
}

/* Write a w x h PNG with libpng itself: colour type ctype (palette: 16 entries of
 * pal16() with a tRNS), samples png_sample(), Adam7 if interlace. */
static void
pal16(int i, unsigned char rgb[3])
{
	rgb[0] = (unsigned char)(i * 17), rgb[1] = (unsigned char)(255 - i * 13);
	rgb[2] = (unsigned char)(i * 7 + 100);
}

static void
lpng_write(const char *path, int w, int h, int depth, int ctype, int interlace)
{
	int spp = ctype == 0 || ctype == 3 ? 1 : ctype == 4 ? 2 : ctype == 2 ? 3 : 4;
	size_t rowbytes = ((size_t)w * spp * depth + 7) / 8;
	unsigned char *data = calloc((size_t)h, rowbytes);
	png_bytep *rows = calloc((size_t)h, sizeof *rows);
	FILE *f = fopen(path, "wb");
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	int x, y, k;

	assert_non_null(data);
	assert_non_null(rows);
	assert_non_null(f);
	assert_non_null(info);
	for (y = 0; y < h; y++) {
		rows[y] = data + rowbytes * y;
		for (x = 0; x < w; x++)
			for (k = 0; k < spp; k++) {
				unsigned v = png_sample(x, y, k, depth) % (ctype == 3 ? 16 : 65536);
				size_t bit = ((size_t)x * spp + k) * depth;
				if (depth == 16)
					rows[y][bit / 8] = (unsigned char)(v >> 8),
					rows[y][bit / 8 + 1] = (unsigned char)v;
				else
					rows[y][bit / 8] |= (unsigned char)(v << (8 - depth - bit % 8));
			}
	}
	if (setjmp(png_jmpbuf(png)))
		fail_msg("libpng cannot write %s", path);
	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype,
	             interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
	             PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	if (ctype == PNG_COLOR_TYPE_PALETTE) {
		png_color pal[16];
		png_byte trns[16];
		unsigned char rgb[3];

		for (k = 0; k < 16; k++) {
			pal16(k, rgb);
			pal[k].red = rgb[0], pal[k].green = rgb[1], pal[k].blue = rgb[2];
			trns[k] = (png_byte)(k * 16);
		}
		png_set_PLTE(png, info, pal, 16);
		png_set_tRNS(png, info, trns, 16, NULL);
	}
	png_write_info(png, info);
	png_write_image(png, rows);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	assert_int_equal(fclose(f), 0);
	free(rows);
	free(data);
}

/* Write a JPEG with libjpeg: data [h, w, comps] in colour space in, stored as out,
 * quality 100 without chroma subsampling; app1 (n bytes) as an APP1 segment. */
static void
write_jpeg(const char *path, int w, int h, int comps, J_COLOR_SPACE in, J_COLOR_SPACE out,
           int progressive, const unsigned char *app1, unsigned n,
           const unsigned char *data)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	FILE *f = fopen(path, "wb");
	int i;

	assert_non_null(f);
	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_stdio_dest(&c, f);
	c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
	c.input_components = comps, c.in_color_space = in;
	jpeg_set_defaults(&c);
	jpeg_set_colorspace(&c, out);
	jpeg_set_quality(&c, 100, TRUE);
	for (i = 0; i < c.num_components; i++)
		c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
	if (progressive)
		jpeg_simple_progression(&c);
	jpeg_start_compress(&c, TRUE);
	if (app1)
		jpeg_write_marker(&c, JPEG_APP0 + 1, app1, n);
	while (c.next_scanline < c.image_height) {
		JSAMPROW r = (JSAMPROW)(data + (size_t)c.next_scanline * w * comps);
		assert_int_equal(jpeg_write_scanlines(&c, &r, 1), 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	assert_int_equal(fclose(f), 0);
}

/* An APP1 "Exif" payload holding only IFD0 Orientation = o, in either byte order. */
static unsigned
exif_app1(unsigned char b[32], int o, int big_endian)
{
	static const unsigned char mm[] = { 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0,
		                            0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1 };
	static const unsigned char ii[] = { 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0,
		                            0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0 };

	memset(b, 0, 32);
	memcpy(b, big_endian ? mm : ii, 24);
	b[big_endian ? 25 : 24] = (unsigned char)o; /* the SHORT value; then next IFD 0 */
	return 32;
}

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
		assert_non_null(im = ts_image_load(p, 0));
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

/* --- the decoders for untrusted files: libpng, libjpeg-turbo, BMP check --- */

static void
test_png16_roundtrip(void **state)
{
	char p[PATH_MAX];
	ts_image *a = pattern16(45, 31), *b;
	int bits;

	(void)state;
	tpath(p, "r16.png");
	assert_int_equal(ts_image_save(a, p, 0), 0); /* bits 0: the source's 16 */
	assert_int_equal(ts_image_probe(p, NULL, NULL, &bits), 0);
	assert_int_equal(bits, 16);
	assert_non_null(b = ts_image_load(p, 0));
	assert_int_equal(b->bits, 16);
	assert_same(a, b, 0.5f / 65535.0f);
	ts_image_destroy(b);
	/* bits 8 rounds to 8 bits; other depths are refused */
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_non_null(b = ts_image_load(p, 0));
	assert_int_equal(b->bits, 8);
	assert_same(a, b, 0.5f / 255.0f + 1e-6f);
	ts_image_destroy(b);
	assert_int_equal(ts_image_save(a, p, 12), -1);
	assert_err_has("PNG bits must be 8 or 16");
	ts_image_destroy(a);
}

/* Every colour type and depth libpng can write, Adam7 too: RGB out, alpha dropped,
 * grey replicated, palette looked up, 16 bits kept. */
static void
test_png_colour_types(void **state)
{
	enum { W = 23, H = 14 };
	static const struct {
		int depth, ctype, interlace;
	} cases[] = {
		{ 8, 0, 0 }, { 16, 0, 0 }, { 1, 0, 0 }, { 4, 0, 1 }, { 4, 3, 0 }, { 8, 3, 1 },
		{ 8, 4, 0 }, { 16, 6, 0 }, { 8, 2, 1 }, { 16, 2, 1 },
	};
	char p[PATH_MAX], name[32];
	size_t k;

	(void)state;
	for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		int d = cases[k].depth, ct = cases[k].ctype, x, y, c, bits;
		float max = (float)((1u << d) - 1);
		ts_image *im;

		snprintf(name, sizeof name, "ct%zu.png", k);
		tpath(p, name);
		lpng_write(p, W, H, d, ct, cases[k].interlace);
		assert_int_equal(ts_image_probe(p, NULL, NULL, &bits), 0);
		assert_int_equal(bits, d == 16 ? 16 : 8);
		assert_non_null(im = ts_image_load(p, 0));
		assert_int_equal(im->bits, d == 16 ? 16 : 8);
		assert_int_equal(im->w, W);
		assert_int_equal(im->h, H);
		for (c = 0; c < 3; c++)
			for (y = 0; y < H; y++)
				for (x = 0; x < W; x++) {
					float got = im->px[((size_t)c * H + y) * W + x], want;
					if (ct == 3) {
						unsigned char rgb[3];
						pal16((int)png_sample(x, y, 0, d) % 16, rgb);
						want = rgb[c] / 255.0f;
					} else {
						want = png_sample(x, y, ct & 2 ? c : 0, d) / max;
					}
					if (fabsf(got - want) > 1e-6f)
						fail_msg("case %zu c%d (%d,%d): %g vs %g", k, c, x, y, got,
						         want);
				}
		ts_image_destroy(im);
	}
}

/* The PNG writer compresses: a smooth picture comes out well under its raw size. */
static void
test_png_compresses(void **state)
{
	enum { W = 256, H = 192 };
	ts_image *a = ts_image_create(W, H);
	char p[PATH_MAX];
	int c, x, y;

	(void)state;
	assert_non_null(a);
	for (c = 0; c < 3; c++)
		for (y = 0; y < H; y++)
			for (x = 0; x < W; x++)
				a->px[((size_t)c * H + y) * W + x] =
					0.5f + 0.4f * sinf(0.03f * x + 0.05f * y + c);
	tpath(p, "smooth.png");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	if (file_size(p) > W * H * 3 / 4)
		fail_msg("%ld bytes for %d raw", file_size(p), W * H * 3);
	ts_image_destroy(a);
}

/* 0xffffffff x 0xffffffff in a valid IHDR: the budget refuses it, with no overflow
 * (the sanitizer build checks), and the message says so. */
static void
test_png_budget(void **state)
{
	char p[PATH_MAX];

	(void)state;
	tpath(p, "max.png");
	write_png(p, 0xffffffffu, 0xffffffffu, 8, NULL, 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("exceeds the budget");
	assert_err_has(p);
	assert_int_equal(ts_image_probe(p, NULL, NULL, NULL), -1);
	assert_err_has("too large");
	/* over the default budget (1 Gpixel) but of a size stb would have refused itself */
	tpath(p, "40k.png");
	write_png(p, 40000, 40000, 16, NULL, 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("exceeds the budget of 1073741824 pixels");
	if (strstr(ts_errmsg(), "unknown"))
		fail_msg("message \"%s\"", ts_errmsg());
}

/* Grey, progressive, CMYK (Adobe, inverted) and YCCK JPEGs written by libjpeg. */
static void
test_jpeg_colour_spaces(void **state)
{
	enum { W = 40, H = 24 };
	static const struct {
		int comps;
		J_COLOR_SPACE in, out;
		int progressive;
	} cases[] = {
		{ 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0 }, { 3, JCS_RGB, JCS_YCbCr, 1 },
		{ 4, JCS_CMYK, JCS_CMYK, 0 }, { 4, JCS_CMYK, JCS_YCCK, 0 },
	};
	unsigned char data[H * W * 4];
	char p[PATH_MAX], name[32];
	size_t k;

	(void)state;
	for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		int n = cases[k].comps, x, y, c;
		ts_image *im;

		/* CMYK as Adobe stores it: 255 - ink, so (r, g, b, 255) is RGB (r, g, b) */
		for (y = 0; y < H; y++)
			for (x = 0; x < W; x++)
				for (c = 0; c < n; c++)
					data[(y * W + x) * n + c] =
						c == 3 ? 255 : (unsigned char)(40 + x * 4 + y * 2 + c * 30);
		snprintf(name, sizeof name, "cs%zu.jpg", k);
		tpath(p, name);
		write_jpeg(p, W, H, n, cases[k].in, cases[k].out, cases[k].progressive, NULL, 0,
		           data);
		assert_non_null(im = ts_image_load(p, 0));
		assert_int_equal(im->w, W);
		assert_int_equal(im->h, H);
		assert_int_equal(im->bits, 8);
		for (c = 0; c < 3; c++)
			for (y = 0; y < H; y++)
				for (x = 0; x < W; x++) {
					float want = data[(y * W + x) * n + (n == 1 ? 0 : c)] / 255.0f;
					float got = im->px[((size_t)c * H + y) * W + x];
					if (fabsf(got - want) > 4.0f / 255)
						fail_msg("case %zu c%d (%d,%d): %g vs %g", k, c, x, y, got,
						         want);
				}
		ts_image_destroy(im);
	}
}

/* Stored 32 x 16: top-left quarter red, bottom-left green, right half blue.  Under
 * every EXIF orientation the upright picture has each region where the EXIF table
 * puts it; orientation 6 (a phone held upright) is rotated 90 degrees clockwise. */
static int
region(int x, int y)
{
	return x >= 16 ? 2 : y < 8 ? 0 : 1;
}

static void
test_jpeg_exif_orientation(void **state)
{
	enum { W = 32, H = 16 };
	unsigned char data[H * W * 3], app1[32];
	char p[PATH_MAX], name[32];
	int o, x, y;

	(void)state;
	for (y = 0; y < H; y++)
		for (x = 0; x < W; x++) {
			unsigned char *px = data + (y * W + x) * 3;
			px[0] = px[1] = px[2] = 0;
			px[region(x, y)] = 255;
		}
	for (o = 1; o <= 8; o++) {
		int ow = o >= 5 ? H : W, oh = o >= 5 ? W : H, w, h, c, n;
		ts_image *im;

		snprintf(name, sizeof name, "exif%d.jpg", o);
		tpath(p, name);
		n = (int)exif_app1(app1, o, o % 2);
		write_jpeg(p, W, H, 3, JCS_RGB, JCS_YCbCr, 0, app1, (unsigned)n, data);
		assert_int_equal(ts_image_probe(p, &w, &h, NULL), 0);
		assert_int_equal(w, ow);
		assert_int_equal(h, oh);
		assert_non_null(im = ts_image_load(p, 0));
		assert_int_equal(im->w, ow);
		assert_int_equal(im->h, oh);
		/* the centre of every 4 x 4 block, away from the region edges */
		for (y = 2; y < oh; y += 4)
			for (x = 2; x < ow; x += 4) {
				/* upright (x, y) shows stored (sx, sy): the EXIF table */
				int sx = o <= 4 ? (o == 1 || o == 4 ? x : W - 1 - x) :
				         (o <= 6 ? y : W - 1 - y);
				int sy = o == 1 || o == 2 ? y : o == 3 || o == 4 ? H - 1 - y :
				         o == 5 || o == 8 ? x : H - 1 - x;
				for (c = 0; c < 3; c++) {
					float got = im->px[((size_t)c * oh + y) * ow + x];
					float want = c == region(sx, sy) ? 1.0f : 0.0f;
					if (fabsf(got - want) > 0.1f)
						fail_msg("orientation %d c%d (%d,%d): %g", o, c, x, y, got);
				}
			}
		if (o == 6) {
			/* clockwise: stored top-left (red) is now top-right, blue at the bottom */
			assert_true(im->px[(size_t)0 * oh * ow + 2 * ow + (ow - 3)] > 0.9f);
			assert_true(im->px[(size_t)1 * oh * ow + 2 * ow + 2] > 0.9f);
			assert_true(im->px[(size_t)2 * oh * ow + (oh - 3) * ow + 2] > 0.9f);
		}
		ts_image_destroy(im);
	}
}

/* A DHT whose 16 code counts add up to 4080 (> 256 symbols): an error from libjpeg's
 * own check, both alone and spliced into a real file; never a crash or an exit. */
static void
test_jpeg_bad_dht(void **state)
{
	unsigned char b[4 + 2 + 17 + 4080 + 2], *f;
	char p[PATH_MAX];
	ts_image *a = pattern8(16, 16);
	long n, i;
	FILE *fp;

	(void)state;
	memset(b, 0, sizeof b);
	b[0] = 0xff, b[1] = 0xd8, b[2] = 0xff, b[3] = 0xc4;
	b[4] = (unsigned char)((2 + 17 + 4080) >> 8), b[5] = (unsigned char)(2 + 17 + 4080);
	b[6] = 0x00; /* class DC, table 0 */
	memset(b + 7, 0xff, 16);
	b[sizeof b - 2] = 0xff, b[sizeof b - 1] = 0xd9;
	tpath(p, "dht.jpg");
	write_bytes(p, b, sizeof b);
	assert_null(ts_image_load(p, 0));
	assert_err_has("Huffman");
	assert_err_has(p);

	tpath(p, "dht2.jpg");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	n = file_size(p);
	assert_non_null(f = malloc((size_t)n));
	assert_non_null(fp = fopen(p, "rb"));
	assert_int_equal(fread(f, 1, (size_t)n, fp), n);
	assert_int_equal(fclose(fp), 0);
	for (i = 2; i + 22 < n && !(f[i] == 0xff && f[i + 1] == 0xc4); i++)
		;
	assert_true(i + 22 < n);
	memset(f + i + 5, 0xff, 16); /* the counts of the first table */
	write_bytes(p, f, (size_t)n);
	assert_null(ts_image_load(p, 0));
	assert_err_has("Huffman");
	free(f);
	ts_image_destroy(a);
}

/* Files cut short are errors saying so, never pictures completed with grey/black. */
static void
test_truncated(void **state)
{
	char p[PATH_MAX];
	ts_image *a = pattern8(64, 48);
	long n;

	(void)state;
	/* JPEG: in the scan, in the header, and just the final EOI missing */
	tpath(p, "t.jpg");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	n = file_size(p);
	assert_int_equal(truncate(p, n / 2), 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("truncated JPEG");
	assert_err_has(p);
	assert_int_equal(truncate(p, 100), 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("truncated");
	assert_int_equal(ts_image_probe(p, NULL, NULL, NULL), -1);
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_int_equal(truncate(p, n - 2), 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("truncated");

	/* PNG: in IDAT, and the IEND chunk missing */
	tpath(p, "t.png");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	n = file_size(p);
	assert_int_equal(truncate(p, n / 2), 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("truncated PNG");
	assert_err_has(p);
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_int_equal(truncate(p, n - 12), 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("truncated");

	/* BMP: the first 60 bytes (headers and 6 pixel bytes), one byte short, 20 bytes */
	tpath(p, "t.bmp");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	n = file_size(p);
	assert_int_equal(truncate(p, 60), 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("truncated BMP");
	assert_err_has(p);
	assert_int_equal(ts_image_probe(p, NULL, NULL, NULL), -1);
	assert_err_has("truncated BMP");
	assert_int_equal(ts_image_save(a, p, 8), 0);
	assert_int_equal(truncate(p, n - 1), 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("truncated BMP");
	assert_int_equal(truncate(p, 20), 0);
	assert_null(ts_image_load(p, 0));
	assert_err_has("truncated BMP");
	/* and a whole BMP is still read, probe included */
	assert_int_equal(ts_image_save(a, p, 8), 0);
	{
		int w, h;
		ts_image *b;

		assert_int_equal(ts_image_probe(p, &w, &h, NULL), 0);
		assert_int_equal(w, 64);
		assert_int_equal(h, 48);
		assert_non_null(b = ts_image_load(p, 0));
		assert_same(a, b, 0.0f);
		assert_null(ts_image_load(p, 64 * 48 - 1));
		assert_err_has("exceeds the budget");
		ts_image_destroy(b);
	}
	ts_image_destroy(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_png8_roundtrip),
		cmocka_unit_test(test_png16_load),
		cmocka_unit_test(test_jpeg_roundtrip),
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
		cmocka_unit_test(test_png16_roundtrip),
		cmocka_unit_test(test_png_colour_types),
		cmocka_unit_test(test_png_compresses),
		cmocka_unit_test(test_png_budget),
		cmocka_unit_test(test_jpeg_colour_spaces),
		cmocka_unit_test(test_jpeg_exif_orientation),
		cmocka_unit_test(test_jpeg_bad_dht),
		cmocka_unit_test(test_truncated),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
