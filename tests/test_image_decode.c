/* test_image_decode: the decoders for untrusted files: every PNG colour type and depth
 * written by libpng (Adam7 too), a 16-bit PNG round trip, PNG compression, the pixel
 * budget on a 0xffffffff x 0xffffffff header, JPEG colour spaces and EXIF orientation,
 * a hostile DHT, truncated JPEG/PNG/BMP.
 *
 * Every input is made here (ts_image_save, hand-built PNG chunks with zlib, PNGs and
 * JPEGs with libpng and libjpeg directly) inside one mkdtemp directory that the group
 * teardown removes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#define TEST_NAME "test_image_decode"
#include "image_test_util.h"

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
