/* mkcorpus: write the fuzzers' seed and regression corpus under DIR, one folder per
 * harness (DIR/<harness>/<case>), so that no binary file is committed.
 *
 * Valid inputs are made with the project's own writers (ts_image_save, the BigTIFF
 * writer, ts_ckpt_write) or built here byte by byte (a narrow VGG-19 as safetensors and
 * as Caffe protobuf and as a torch.save zip archive, INI files, command lines).  The regression cases are minimized
 * crafted inputs for the bugs issue 15 named: a JPEG with a DHT whose code counts total
 * more than 256, a BMP cut to 60 bytes, a PNG header declaring 0xffffffff x 0xffffffff,
 * safetensors headers with absurd offsets and sizes, truncated tile checkpoints, INI
 * files with very long lines and odd bytes; and their neighbours (other truncations,
 * overflowing numbers and lists).
 *
 * Usage: mkcorpus DIR (DIR must exist).  Exit 0, or 1 with a message on stderr. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zip.h>
#include <zlib.h>

#include "tessera/ckpt.h"
#include "tessera/error.h"
#include "tessera/image.h"

static const char *root;

static void
die(const char *what)
{
	fprintf(stderr, "mkcorpus: %s%s%s\n", what, ts_errmsg()[0] ? ": " : "", ts_errmsg());
	exit(1);
}

/* ---- a growable byte buffer ------------------------------------------------------- */

typedef struct buf {
	unsigned char *p;
	size_t n, cap;
} buf;

static void
put(buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		if (!(b->p = realloc(b->p, b->cap)))
			die("out of memory");
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void
byte(buf *b, unsigned c)
{
	unsigned char u = (unsigned char)c;

	put(b, &u, 1);
}

static void
putf(buf *b, const char *fmt, ...)
{
	char tmp[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof tmp)
		die("putf: line too long");
	put(b, tmp, (size_t)n);
}

static void
put_le(buf *b, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		byte(b, (unsigned)(v >> 8 * i) & 0xff);
}

static void
put_be32(buf *b, uint32_t v)
{
	for (int i = 3; i >= 0; i--)
		byte(b, (v >> 8 * i) & 0xff);
}

static void
repeat(buf *b, unsigned c, size_t n)
{
	while (n--)
		byte(b, c);
}

/* ---- files ------------------------------------------------------------------------ */

/* buf = root/dir/name (dir made if needed) */
static void
path_of(char *p, size_t size, const char *dir, const char *name)
{
	snprintf(p, size, "%s/%s", root, dir);
	if (mkdir(p, 0777) && errno != EEXIST)
		die("cannot create a corpus folder");
	if (name && snprintf(p, size, "%s/%s/%s", root, dir, name) >= (int)size)
		die("path too long");
}

static void
write_file(const char *dir, const char *name, const void *d, size_t n)
{
	char p[PATH_MAX];
	FILE *f;

	path_of(p, sizeof p, dir, name);
	if (!(f = fopen(p, "wb")) || (n && fwrite(d, 1, n, f) != n) || fclose(f))
		die(p);
}

static void
write_buf(const char *dir, const char *name, const buf *b)
{
	write_file(dir, name, b->p, b->n);
}

/* The whole file at path into b (b->n = 0 first). */
static void
slurp(const char *path, buf *b)
{
	unsigned char tmp[65536];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		die(path);
	b->n = 0;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		put(b, tmp, n);
	fclose(f);
}

/* ---- images ----------------------------------------------------------------------- */

static ts_image *
pattern(int w, int h, int bits)
{
	ts_image *im = ts_image_create(w, h);

	if (!im)
		die("image");
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++)
				im->px[((size_t)c * h + y) * w + x] =
					(float)((x * 7 + y * 13 + c * 85) % 256) / 255.0f;
	im->bits = bits;
	return im;
}

/* Save im as dir/name with the writer its extension picks; its bytes into b. */
static void
save(const ts_image *im, const char *dir, const char *name, int bits, buf *b)
{
	char p[PATH_MAX];

	path_of(p, sizeof p, dir, name);
	if (ts_image_save(im, p, bits))
		die(p);
	slurp(p, b);
}

/* A PNG of colour type 2 with only IHDR (w x h, depth 8) and IEND, CRCs right. */
static void
png_header_only(buf *b, uint32_t w, uint32_t h)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	unsigned char ihdr[17] = { 'I', 'H', 'D', 'R' };

	b->n = 0;
	put(b, sig, 8);
	for (int i = 0; i < 4; i++) {
		ihdr[4 + i] = (unsigned char)(w >> (24 - 8 * i));
		ihdr[8 + i] = (unsigned char)(h >> (24 - 8 * i));
	}
	ihdr[12] = 8, ihdr[13] = 2;
	put_be32(b, 13);
	put(b, ihdr, 17);
	put_be32(b, (uint32_t)crc32(0, ihdr, 17));
	put_be32(b, 0);
	put(b, "IEND", 4);
	put_be32(b, (uint32_t)crc32(0, (const Bytef *)"IEND", 4));
}

static void
images(void)
{
	ts_image *a = pattern(20, 13, 8), *b16 = pattern(9, 7, 16);
	buf b = { 0 }, c = { 0 };
	size_t i;

	save(a, "image", "valid.png", 8, &b);
	save(b16, "image", "valid16.png", 16, &b);
	save(a, "image", "valid.bmp", 8, &b);
	/* regression: a BMP cut to its first 60 bytes, and to 20 */
	write_file("image", "bmp_trunc60.bmp", b.p, 60);
	write_file("image", "bmp_trunc20.bmp", b.p, 20);
	save(a, "image", "valid.tif", 8, &b);
	write_buf("tiff", "valid8.tif", &b);
	write_file("tiff", "trunc.tif", b.p, b.n / 2);
	save(b16, "image", "valid16.tif", 16, &b);
	write_buf("tiff", "valid16.tif", &b);
	save(a, "image", "valid.jpg", 8, &b);
	write_file("image", "jpeg_trunc_half.jpg", b.p, b.n / 2);
	write_file("image", "jpeg_trunc_eoi.jpg", b.p, b.n - 2);

	/* regression: the same JPEG with the first DHT's 16 code counts all 0xff (4080
	 * codes, more than 256 symbols) */
	for (i = 2; i + 22 < b.n && !(b.p[i] == 0xff && b.p[i + 1] == 0xc4); i++)
		;
	if (i + 22 >= b.n)
		die("no DHT in the JPEG");
	c.n = 0;
	put(&c, b.p, b.n);
	memset(c.p + i + 5, 0xff, 16);
	write_buf("image", "jpeg_dht_counts.jpg", &c);
	/* and an extra DHT segment of its own right after SOI, counts total 4080 */
	c.n = 0;
	put(&c, b.p, 2);
	byte(&c, 0xff), byte(&c, 0xc4);
	byte(&c, (2 + 17 + 32) >> 8), byte(&c, 2 + 17 + 32);
	byte(&c, 0x00);          /* class DC, table 0 */
	repeat(&c, 0xff, 16);    /* the counts */
	repeat(&c, 0x01, 32);    /* a few symbols; the rest is missing */
	put(&c, b.p + 2, b.n - 2);
	write_buf("image", "jpeg_extra_dht.jpg", &c);

	/* the JPEG with an EXIF APP1 right after SOI: IFD0 Orientation = 6 */
	{
		static const unsigned char app1[] = {
			0xff, 0xe1, 0, 34, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8,
			0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0,
		};

		c.n = 0;
		put(&c, b.p, 2);
		put(&c, app1, sizeof app1);
		put(&c, b.p + 2, b.n - 2);
		write_buf("image", "jpeg_exif6.jpg", &c);
	}

	/* regression: a PNG header declaring 0xffffffff x 0xffffffff, and 40000 x 40000 */
	png_header_only(&b, 0xffffffffu, 0xffffffffu);
	write_buf("image", "png_max.png", &b);
	png_header_only(&b, 40000, 40000);
	write_buf("image", "png_40k.png", &b);
	save(a, "image", "png_trunc.png", 8, &b);
	write_file("image", "png_trunc.png", b.p, b.n / 2);

	/* a tiled BigTIFF from the tiled renderer's writer, for the region reader */
	{
		char p[PATH_MAX];
		ts_image *t = pattern(40, 33, 8);
		ts_tiff_writer *wr;
		int y;

		path_of(p, sizeof p, "tiff", "tiled.tif");
		if (!(wr = ts_tiff_writer_open(p, 40, 33, 8, 16)))
			die(p);
		for (y = 0; y < 33; y += 16) {
			int rows = 33 - y < 16 ? 33 - y : 16;
			float *band = malloc(sizeof(float) * 3 * rows * 40);

			if (!band)
				die("out of memory");
			for (int k = 0; k < 3; k++)
				memcpy(band + (size_t)k * rows * 40, t->px + ((size_t)k * 33 + y) * 40,
				       sizeof(float) * rows * 40);
			if (ts_tiff_writer_band(wr, band, rows))
				die(p);
			free(band);
		}
		if (ts_tiff_writer_close(wr, 0))
			die(p);
		slurp(p, &b);
		write_buf("image", "tiled.tif", &b);
		write_file("tiff", "tiled_trunc.tif", b.p, b.n * 3 / 4);
		ts_image_destroy(t);
	}
	ts_image_destroy(a);
	ts_image_destroy(b16);
	free(b.p);
	free(c.p);
}

/* ---- weights: a narrow VGG-19 ----------------------------------------------------- */

enum { NCONV = 2 };
static const int conv_out[NCONV] = { 4, 4 };
static const int conv_in[NCONV] = { 3, 4 };

static uint32_t
float_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float
value(int k)
{
	return (float)((k * 37) % 19 - 9) / 16.0f;
}

/* A safetensors file: the JSON header text given (NULL: the narrow VGG's), padded to
 * 8 with spaces, hlen as its length field (0: the real one), then the tensors' data. */
static void
st_file(buf *out, const char *header, uint64_t hlen)
{
	buf h = { 0 }, data = { 0 };
	long long off = 0;

	if (header) {
		put(&h, header, strlen(header));
	} else {
		putf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
		for (int i = 0; i < NCONV; i++) {
			long long nw = (long long)conv_out[i] * conv_in[i] * 9, nb = conv_out[i];

			putf(&h, ",\"features.%d.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d,3,3],"
			     "\"data_offsets\":[%lld,%lld]}", 2 * i, conv_out[i], conv_in[i], off,
			     off + 4 * nw);
			off += 4 * nw;
			putf(&h, ",\"features.%d.bias\":{\"dtype\":\"F32\",\"shape\":[%d],"
			     "\"data_offsets\":[%lld,%lld]}", 2 * i, conv_out[i], off, off + 4 * nb);
			off += 4 * nb;
		}
		byte(&h, '}');
	}
	while (h.n % 8)
		byte(&h, ' ');
	for (int k = 0; k < off / 4; k++)
		put_le(&data, float_bits(value(k)), 4);
	out->n = 0;
	put_le(out, hlen ? hlen : h.n, 8);
	put(out, h.p, h.n);
	put(out, data.p, data.n);
	free(h.p);
	free(data.p);
}

/* The header of one tensor features.0.weight with this shape and these offsets, over
 * 432 bytes of data (what [4, 3, 3, 3] F32 needs). */
static void
st_one(const char *name, const char *shape, const char *offsets)
{
	char h[512];
	buf b = { 0 };

	snprintf(h, sizeof h, "{\"features.0.weight\":{\"dtype\":\"F32\",\"shape\":%s,"
	         "\"data_offsets\":%s},\"features.0.bias\":{\"dtype\":\"F32\",\"shape\":[4],"
	         "\"data_offsets\":[432,448]}}", shape, offsets);
	st_file(&b, h, 0);
	repeat(&b, 0x3f, 448);
	write_buf("safetensors", name, &b);
	free(b.p);
}

static void
safetensors(void)
{
	buf b = { 0 };

	st_file(&b, NULL, 0);
	write_buf("safetensors", "valid.safetensors", &b);
	write_file("safetensors", "trunc.safetensors", b.p, b.n - 5);
	/* regression: absurd header length, offsets and sizes */
	st_file(&b, NULL, UINT64_MAX);
	write_buf("safetensors", "hlen_max.safetensors", &b);
	st_file(&b, NULL, (uint64_t)1 << 40);
	write_buf("safetensors", "hlen_1t.safetensors", &b);
	st_one("off_max.safetensors", "[4,3,3,3]", "[0,18446744073709551615]");
	st_one("off_i64max.safetensors", "[4,3,3,3]", "[9223372036854775807,9223372036854775807]");
	st_one("off_reversed.safetensors", "[4,3,3,3]", "[432,0]");
	st_one("off_negative.safetensors", "[4,3,3,3]", "[-432,0]");
	st_one("off_float.safetensors", "[4,3,3,3]", "[0.5,1e300]");
	st_one("off_overlap.safetensors", "[4,3,3,3]", "[16,448]");
	st_one("shape_huge.safetensors", "[4611686018427387904,4611686018427387904,3,3]",
	       "[0,432]");
	st_one("shape_wraps.safetensors", "[4294967296,4294967296,4294967296,4294967296]",
	       "[0,0]");
	st_one("shape_negative.safetensors", "[-4,-3,3,3]", "[0,432]");
	st_one("shape_zero.safetensors", "[0,3,3,3]", "[0,0]");
	st_one("shape_deep.safetensors", "[[[[[[[[[[[[[[[[4]]]]]]]]]]]]]]]]", "[0,432]");
	st_one("shape_long.safetensors",
	       "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,4,3,3,3]",
	       "[0,432]");
	st_file(&b, "{\"features.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,3,3,3]", 0);
	write_buf("safetensors", "json_unterminated.safetensors", &b);
	free(b.p);
}

/* ---- PyTorch .pth: torch.save's zip of a pickle and storages ----------------------- */

static void
pk_str(buf *b, const char *s)
{
	byte(b, 'X');
	put_le(b, strlen(s), 4);
	put(b, s, strlen(s));
}

/* BININT, or LONG1 of 8 bytes beyond 32 bits */
static void
pk_int(buf *b, long long v)
{
	if (v >= INT32_MIN && v <= INT32_MAX) {
		byte(b, 'J');
		put_le(b, (uint64_t)v, 4);
	} else {
		byte(b, 0x8a);
		byte(b, 8);
		put_le(b, (uint64_t)v, 8);
	}
}

static void
pk_ints(buf *b, int n, const long long *v)
{
	byte(b, '(');
	for (int i = 0; i < n; i++)
		pk_int(b, v[i]);
	byte(b, 't');
}

/* A state dict pickle (protocol 2, memo as torch.save uses it) of the narrow VGG's
 * convolutions, storage i = tensor i; dims0 / stride0 / numel0 replace the first
 * weight's (NULL, NULL, -1: its own). */
static void
pth_pickle(buf *b, const long long *dims0, const long long *stride0, long long numel0)
{
	int t = 0;

	b->n = 0;
	byte(b, 0x80); /* PROTO 2 */
	byte(b, 2);
	putf(b, "ccollections\nOrderedDict\nq");
	putf(b, "%c)Rq\x01(", 0);
	for (int i = 0; i < NCONV; i++) {
		for (int bias = 0; bias < 2; bias++, t++) {
			long long n = bias ? conv_out[i] : (long long)conv_out[i] * conv_in[i] * 9;
			long long dims[4] = { conv_out[i], conv_in[i], 3, 3 };
			long long strides[4] = { conv_in[i] * 9, 9, 3, 1 };
			char name[32], key[8];

			snprintf(name, sizeof name, "features.%d.%s", 2 * i, bias ? "bias" : "weight");
			snprintf(key, sizeof key, "%d", t);
			pk_str(b, name);
			putf(b, t == 0 ? "ctorch._utils\n_rebuild_tensor_v2\nq\x02" : "h\x02");
			putf(b, "((");
			pk_str(b, "storage");
			putf(b, t == 0 ? "ctorch\nFloatStorage\nq\x03" : "h\x03");
			pk_str(b, key);
			pk_str(b, "cpu");
			pk_int(b, t == 0 && numel0 >= 0 ? numel0 : n);
			putf(b, "tQ");
			pk_int(b, 0);
			pk_ints(b, bias ? 1 : 4, t == 0 && dims0 ? dims0 : bias ? &dims[0] : dims);
			pk_ints(b, bias ? 1 : 4, t == 0 && stride0 ? stride0 : bias ? &strides[3] : strides);
			byte(b, 0x89);
			byte(b, 'h');
			byte(b, 0);
			putf(b, ")RtRr");
			put_le(b, 100u + (unsigned)t, 4); /* LONG_BINPUT */
		}
	}
	putf(b, "u}");
	pk_str(b, "_metadata");
	putf(b, "}sb.");
}

/* The archive: archive/data.pkl = pkl, archive/data/<t> = the values of tensor t. */
static void
pth_zip(const char *name, const buf *pkl)
{
	char p[PATH_MAX], en[64];
	buf data[2 * NCONV] = { { 0 } };
	zip_t *za;
	int err, k = 0, t = 0;

	path_of(p, sizeof p, "pth", name);
	if (!(za = zip_open(p, ZIP_CREATE | ZIP_TRUNCATE, &err)))
		die("cannot create a .pth");
	for (int i = 0; i < NCONV; i++) {
		for (int bias = 0; bias < 2; bias++, t++) {
			int n = bias ? conv_out[i] : conv_out[i] * conv_in[i] * 9;

			for (int j = 0; j < n; j++)
				put_le(&data[t], float_bits(value(k++)), 4);
		}
	}
	for (int i = -1; i < 2 * NCONV; i++) {
		zip_source_t *src;
		zip_int64_t idx;

		snprintf(en, sizeof en, i < 0 ? "archive/data.pkl" : "archive/data/%d", i);
		src = zip_source_buffer(za, i < 0 ? pkl->p : data[i].p, i < 0 ? pkl->n : data[i].n, 0);
		if (!src || (idx = zip_file_add(za, en, src, 0)) < 0 ||
		    zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0))
			die("cannot add to a .pth");
	}
	if (zip_close(za))
		die("cannot write a .pth");
	for (int i = 0; i < 2 * NCONV; i++)
		free(data[i].p);
}

static void
pth(void)
{
	buf b = { 0 };
	FILE *f;

	pth_pickle(&b, NULL, NULL, -1);
	pth_zip("valid.pth", &b);
	/* regression: strides, sizes and numbers a state dict never has */
	pth_pickle(&b, NULL, (const long long[]){ 0, 0, 0, 0 }, -1);
	pth_zip("stride0.pth", &b);
	pth_pickle(&b, (const long long[]){ INT32_MAX, INT32_MAX, 3, 3 },
	           (const long long[]){ 1LL << 62, 9, 3, 1 }, -1);
	pth_zip("huge.pth", &b);
	pth_pickle(&b, NULL, NULL, 107);
	pth_zip("short_storage.pth", &b);
	pth_pickle(&b, NULL, NULL, 1LL << 62);
	pth_zip("numel_huge.pth", &b);
	b.n = 0;
	byte(&b, 0x80);
	byte(&b, 2);
	putf(&b, "cos\nsystem\n");
	pk_str(&b, "true");
	putf(&b, "\x85R.");
	pth_zip("os_system.pth", &b);
	b.n = 0;
	putf(&b, "\x80\x02");
	repeat(&b, '(', 100);
	pth_zip("marks.pth", &b);
	/* the fixture torch.save wrote, when run from the repository */
	if ((f = fopen("tests/fixtures/narrow_vgg.pth", "rb"))) {
		unsigned char tmp[65536];
		size_t n;

		b.n = 0;
		while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
			put(&b, tmp, n);
		fclose(f);
		write_buf("pth", "narrow_vgg.pth", &b);
		write_file("pth", "narrow_vgg_trunc.pth", b.p, b.n - 30);
	}
	free(b.p);
}

/* protobuf wire format */
static void
pb_varint(buf *b, uint64_t v)
{
	while (v >= 0x80) {
		byte(b, (unsigned)(v & 0x7f) | 0x80);
		v >>= 7;
	}
	byte(b, (unsigned)v);
}

static void
pb_tag(buf *b, unsigned field, unsigned wt)
{
	pb_varint(b, (uint64_t)field << 3 | wt);
}

static void
pb_msg(buf *b, unsigned field, const buf *sub)
{
	pb_tag(b, field, 2);
	pb_varint(b, sub->n);
	put(b, sub->p, sub->n);
}

static void
pb_str(buf *b, unsigned field, const char *s)
{
	buf tmp = { (unsigned char *)s, strlen(s), 0 };

	pb_msg(b, field, &tmp);
}

/* A BlobProto (BlobShape dims, packed floats) as field `field` of l. */
static void
pb_blob(buf *l, unsigned field, const int *dims, int ndim, int *k)
{
	buf blob = { 0 }, sh = { 0 }, run = { 0 };
	long long n = 1;

	for (int i = 0; i < ndim; i++) {
		pb_tag(&sh, 1, 0);
		pb_varint(&sh, (uint64_t)dims[i]);
		n *= dims[i];
	}
	pb_msg(&blob, 7, &sh);
	for (long long i = 0; i < n; i++)
		put_le(&run, float_bits(value((*k)++)), 4);
	pb_msg(&blob, 5, &run);
	pb_msg(l, field, &blob);
	free(blob.p);
	free(sh.p);
	free(run.p);
}

/* A NetParameter with conv1_1, relu1_1, conv1_2: LayerParameter (field 100) or, with
 * v1, V1LayerParameter (field 2, type enum 4 = convolution). */
static void
caffe_net(buf *net, int v1)
{
	static const char *const names[NCONV] = { "conv1_1", "conv1_2" };
	int k = 0;

	net->n = 0;
	pb_str(net, 1, "VGG_ILSVRC_19_layers");
	for (int i = 0; i < NCONV; i++) {
		buf l = { 0 }, relu = { 0 };
		int wd[4] = { conv_out[i], conv_in[i], 3, 3 }, bd[1] = { conv_out[i] };

		if (v1) {
			pb_str(&l, 4, names[i]);
			pb_tag(&l, 5, 0);
			pb_varint(&l, 4);
		} else {
			pb_str(&l, 1, names[i]);
			pb_str(&l, 2, "Convolution");
		}
		pb_blob(&l, v1 ? 6 : 7, wd, 4, &k);
		pb_blob(&l, v1 ? 6 : 7, bd, 1, &k);
		pb_msg(net, v1 ? 2 : 100, &l);
		pb_str(&relu, v1 ? 4 : 1, "relu1_1");
		pb_msg(net, v1 ? 2 : 100, &relu);
		free(l.p);
		free(relu.p);
	}
}

static void
caffe(void)
{
	buf b = { 0 }, n = { 0 };

	caffe_net(&b, 0);
	write_buf("caffe", "valid.caffemodel", &b);
	write_file("caffe", "trunc.caffemodel", b.p, b.n - 7);
	caffe_net(&b, 1);
	write_buf("caffe", "valid_v1.caffemodel", &b);
	/* a length far past the end, a varint of 11 bytes, nesting 2000 deep */
	b.n = 0;
	pb_tag(&b, 100, 2);
	pb_varint(&b, (uint64_t)1 << 62);
	pb_str(&b, 1, "conv1_1");
	write_buf("caffe", "len_past_end.caffemodel", &b);
	b.n = 0;
	pb_tag(&b, 100, 0);
	repeat(&b, 0xff, 10);
	byte(&b, 0x01);
	write_buf("caffe", "varint_long.caffemodel", &b);
	b.n = 0;
	for (int d = 0; d < 2000; d++) {
		pb_tag(&n, 100, 2);
		pb_varint(&n, b.n);
		put(&n, b.p, b.n);
		b.n = 0;
		put(&b, n.p, n.n);
		n.n = 0;
	}
	write_buf("caffe", "deep.caffemodel", &b);
	free(b.p);
	free(n.p);
}

/* ---- tile checkpoints ------------------------------------------------------------- */

static void
set_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24);
}

static void
ckpt(void)
{
	enum { W = 5, H = 3 };
	float px[3 * W * H];
	ts_tile_result r = { 0 };
	char p[PATH_MAX];
	buf b = { 0 };

	for (int i = 0; i < 3 * W * H; i++)
		px[i] = (float)i / (3 * W * H);
	r.plan_hash = 0x0123456789abcdefULL;
	r.level = 1, r.row = 2, r.col = 3, r.x = 40, r.y = 30, r.w = W, r.h = H;
	r.iterations = 7, r.content = 1, r.style = 2, r.tv = 3, r.total = 6, r.seconds = 0.5;
	r.px = px;
	path_of(p, sizeof p, "ckpt", "valid.tile");
	if (ts_ckpt_write(&r, p))
		die(p);
	slurp(p, &b);
	/* regression: cut in the header, in the pixels, the CRC missing a byte */
	write_file("ckpt", "trunc_header.tile", b.p, 60);
	write_file("ckpt", "trunc_pixels.tile", b.p, 100);
	write_file("ckpt", "trunc_crc.tile", b.p, b.n - 1);
	write_file("ckpt", "magic_only.tile", b.p, 8);
	/* a header claiming 1M x 1M (and 65536 x 65536) pixels on a short file */
	set_le32(b.p + 40, 1u << 20), set_le32(b.p + 44, 1u << 20);
	write_buf("ckpt", "huge_claim.tile", &b);
	set_le32(b.p + 40, 1u << 16), set_le32(b.p + 44, 1u << 16);
	write_buf("ckpt", "big_claim.tile", &b);
	/* negative sizes, and a version of the future */
	memset(b.p + 40, 0xff, 8);
	write_buf("ckpt", "negative.tile", &b);
	slurp(p, &b);
	b.p[8] = 2;
	write_buf("ckpt", "version2.tile", &b);
	free(b.p);
}

/* ---- configuration: INI files and command lines ----------------------------------- */

static void
ini(void)
{
	buf b = { 0 };

	putf(&b, "; a whole configuration\n[run]\ncontent = in.png\nstyle = a.jpg,b.jpg\n"
	     "style-blend = 0.25,0.75\nout = out.png\nsize = 640\niterations = 300\n"
	     "content_weight = 1\nstyle-weight = 1e4\ntv-weight = 0.001\n"
	     "content-layers = relu4_2\nstyle-layers = relu1_1:0.5,relu2_1,relu3_1:2\n"
	     "optimizer = adam\nlearning-rate = 0.02\npool = max\ninit = noise\nseed = 42\n"
	     "tile = 256\noverlap = 64\nlevel-factor = 2\nlevel-iterations = 100,50,20\n"
	     "print-size = 8x10in\ndpi = 300\noriginal-colors = true\nprogress = off\n"
	     "[other]\nthreads = 2\ngram = tile\nlbfgs-precision = half\n");
	write_buf("ini", "valid.ini", &b);

	/* regression: very long lines (past libinih's line buffer, and far past) */
	b.n = 0;
	putf(&b, "content = ");
	repeat(&b, 'a', 70000);
	putf(&b, "\nstyle = x.png\n");
	write_buf("ini", "long_value.ini", &b);
	b.n = 0;
	repeat(&b, 'k', 5000);
	putf(&b, " = 1\n[");
	repeat(&b, 's', 3000);
	putf(&b, "]\ntile = 64\n");
	write_buf("ini", "long_key_section.ini", &b);
	b.n = 0;
	putf(&b, "style = ");
	for (int i = 0; i < 400; i++)
		putf(&b, "%sstyle%d.png", i ? "," : "", i);
	putf(&b, "\nstyle-blend = ");
	for (int i = 0; i < 400; i++)
		putf(&b, "%s0.5", i ? "," : "");
	putf(&b, "\nlevel-iterations = ");
	for (int i = 0; i < 400; i++)
		putf(&b, "%s%d", i ? "," : "", i + 1);
	putf(&b, "\nstyle-layers = ");
	for (int i = 0; i < 100; i++)
		putf(&b, "%srelu%d_1:1e400", i ? "," : "", i % 5 + 1);
	byte(&b, '\n');
	write_buf("ini", "long_lists.ini", &b);
	/* regression (fuzz_plan): two keys longer than a plan key's 63 kept characters,
	 * alike in those: a text once differed from itself */
	b.n = 0;
	repeat(&b, 'k', 70);
	putf(&b, "a = 1\n");
	repeat(&b, 'k', 70);
	putf(&b, "b = 2\n");
	write_buf("ini", "long_plan_keys.ini", &b);

	/* regression: odd bytes (NUL, 0xff, CR, controls, no final newline) */
	{
		static const char odd[] =
			"\xef\xbb\xbf[\xff\xfe]\r\ncontent\0 = in.png\r\nstyle = \x01\x02\x7f\r\n"
			"= value\nkey without equals\n[unterminated\n  size = 0x10\n"
			"iterations = 99999999999999999999\nseed = -1\ntv-weight = nan\n"
			"style-weight = inf\nwidth = 1e9\ndpi = \nlevel-factor = 1\n"
			"print-size = 1e308x1e308cm\ntile = -5\noverlap = 2147483648\n"
			"content-layers = relu9_9:,:,relu1_1:-1\ninit = /dev/null\nquiet\n"
			"config = /dev/null\nweights = builtin\nbuiltin-width = 0\n\xc3";

		write_file("ini", "odd_bytes.ini", odd, sizeof odd - 1);
	}
	free(b.p);
}

/* A command line: the arguments, each followed by a NUL. */
static void
argv_case(const char *name, ...)
{
	buf b = { 0 };
	va_list ap;
	const char *a;

	va_start(ap, name);
	while ((a = va_arg(ap, const char *)))
		put(&b, a, strlen(a) + 1);
	va_end(ap);
	write_buf("argv", name, &b);
	free(b.p);
}

static void
argv(void)
{
	buf b = { 0 };

	argv_case("valid", "--content", "in.png", "--style=a.jpg,b.jpg", "--out", "out.tif",
	          "--size", "2048", "--tile", "512", "--overlap=128", "--iterations", "200",
	          "--optimizer", "lbfgs", "--lbfgs-history", "20", "--style-layers",
	          "relu1_1,relu2_1:0.5", "--original-colors", "--gram", "global", NULL);
	argv_case("plan", "--content", "big.tif", "--style", "s.png", "--out", "o.tif",
	          "--plan", "--print-size", "24x36in", "--dpi", "150", "--level-factor",
	          "1.5", "--level-iterations", "10,20,30", "--fresh", "--job-dir", "J", NULL);
	argv_case("help", "--help", "--version", "-h", "-V", "--quiet", NULL);
	argv_case("bad", "--nope", "--size", "--tile=", "--width=0", "--height=-1",
	          "--seed=18446744073709551616", "--style-blend", "1,,2", "--pool", "median",
	          "--init", "", "positional", "--", "--after", NULL);
	argv_case("config_devnull", "--config", "/dev/null", "--content", "x", NULL);
	/* found by the fuzzer: an endless stream of NUL bytes read forever */
	argv_case("config_devfull", "--config", "/dev/full", "--content", "0x", NULL);

	/* too many styles, weights, levels; a very long argument */
	putf(&b, "--style=");
	for (int i = 0; i < 100; i++)
		putf(&b, "%ss%d.png", i ? "," : "", i);
	putf(&b, "%c--style-blend=", 0);
	for (int i = 0; i < 100; i++)
		putf(&b, "%s1", i ? "," : "");
	putf(&b, "%c--level-iterations=", 0);
	for (int i = 0; i < 100; i++)
		putf(&b, "%s%d", i ? "," : "", i);
	putf(&b, "%c--content-layers=", 0);
	for (int i = 0; i < 60; i++)
		putf(&b, "%srelu4_2:%d", i ? "," : "", i);
	putf(&b, "%c--out=", 0);
	repeat(&b, 'o', 20000);
	byte(&b, 0);
	write_buf("argv", "long_lists", &b);
	free(b.p);
}

int
main(int argc, char **argv_)
{
	struct stat st;

	if (argc != 2 || stat(argv_[1], &st) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "usage: mkcorpus DIR (an existing folder)\n");
		return 1;
	}
	root = argv_[1];
	images();
	safetensors();
	pth();
	caffe();
	ckpt();
	ini();
	argv();
	return 0;
}
