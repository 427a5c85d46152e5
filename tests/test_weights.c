/* Tests of weights: safetensors, PyTorch .pth and Caffe files written here (narrow
 * VGG-19, random values) load back exactly (F32, BF16, Caffe, .pth) or within half
 * precision (F16), with any name prefix and with fewer than 16 convolutions; every
 * corruption is refused with a message that names the file and says what is wrong.
 * The .pth that torch.save wrote (tests/fixtures/narrow_vgg.pth) loads to the same
 * bits as the safetensors of the same weights, and a pickle that names any other
 * global is refused before anything runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zip.h>

#include "tessera/error.h"
#include "tessera/weights.h"

/* Internal to src/weights.c (not public): the Caffe loader on a buffer with the
 * protobuf nesting bound as a parameter, so the bound can be tested. */
ts_vgg *ts_weights_caffe_buf(const unsigned char *buf, size_t size, const char *path,
                             int max_depth);

static char tmpdir[64];

static const char *
tmp_path(const char *name)
{
	static char p[2][sizeof tmpdir + 256];
	static int k;

	k ^= 1;
	snprintf(p[k], sizeof p[k], "%s/%.255s", tmpdir, name);
	return p[k];
}

/* ---- byte buffer -------------------------------------------------------------- */

typedef struct buf {
	unsigned char *p;
	size_t n, cap;
} buf;

static void
buf_put(buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void
buf_byte(buf *b, unsigned c)
{
	unsigned char x = (unsigned char)c;

	buf_put(b, &x, 1);
}

static void
buf_printf(buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof tmp);
	buf_put(b, tmp, (size_t)n);
}

static void
put_le(buf *b, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		buf_byte(b, (unsigned)(v >> (8 * i)) & 0xff);
}

static void
write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static uint32_t
float_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	return u;
}

/* float -> IEEE half, round to nearest; only finite values of modest size. */
static uint16_t
float_half(float f)
{
	uint16_t sign = (uint16_t)((float_bits(f) >> 16) & 0x8000);
	float a = fabsf(f);
	uint32_t mant;
	int e;

	if (a < 0x1p-14f) /* subnormal (rounding up to 0x400 is the right encoding) */
		return (uint16_t)(sign | (uint16_t)lrintf(a * 0x1p24f));
	frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
	mant = (uint32_t)lrintf((ldexpf(a, 1 - e) - 1.0f) * 1024.0f);
	if (mant == 1024)
		mant = 0, e++;
	return (uint16_t)(sign | (uint32_t)(e - 1 + 15) << 10 | mant);
}

/* ---- a narrow VGG-19 with random values ------------------------------------------ */

static const int narrow[16] = { 4, 4, 8, 8, 8, 8, 8, 8, 12, 12, 12, 12, 12, 12, 12, 12 };
static const int torch_idx[16] = { 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34 };
static const char *const caffe_name[16] = {
	"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
	"conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2", "conv5_3", "conv5_4",
};

typedef struct model {
	int nconv, in[16], out[16];
	float *w[16]; /* [out, in, 3, 3] */
	float *b[16]; /* [out] */
} model;

static void
model_make(model *m, int nconv, uint32_t seed)
{
	memset(m, 0, sizeof *m);
	m->nconv = nconv;
	for (int i = 0; i < nconv; i++) {
		size_t nw;

		m->in[i] = i ? narrow[i - 1] : 3;
		m->out[i] = narrow[i];
		nw = (size_t)m->out[i] * m->in[i] * 9;
		m->w[i] = malloc(nw * sizeof(float));
		m->b[i] = malloc((size_t)m->out[i] * sizeof(float));
		assert_true(m->w[i] && m->b[i]);
		for (size_t k = 0; k < nw + (size_t)m->out[i]; k++) {
			seed = seed * 1664525u + 1013904223u;
			float v = ((float)(seed >> 8) / 8388608.0f - 1.0f) * 0.5f;
			if (k < nw)
				m->w[i][k] = v;
			else
				m->b[i][k - nw] = v;
		}
	}
}

static void
model_free(model *m)
{
	for (int i = 0; i < m->nconv; i++) {
		free(m->w[i]);
		free(m->b[i]);
	}
}

/* The loaded net has the model's shapes; values compared by the caller. */
static void
check_shapes(const ts_vgg *net, const model *m)
{
	assert_non_null(net);
	assert_int_equal(net->nconv, m->nconv);
	for (int i = 0; i < m->nconv; i++) {
		assert_int_equal(net->in_ch[i], m->in[i]);
		assert_int_equal(net->out_ch[i], m->out[i]);
	}
}

static void
check_exact(const ts_vgg *net, const model *m)
{
	check_shapes(net, m);
	for (int i = 0; i < m->nconv; i++) {
		assert_memory_equal(net->w[i], m->w[i], (size_t)m->out[i] * m->in[i] * 9 * 4);
		assert_memory_equal(net->b[i], m->b[i], (size_t)m->out[i] * 4);
	}
}

/* ---- safetensors writer ------------------------------------------------------------ */

typedef struct st_tensor {
	char name[64];
	char dtype[16];
	int ndim;
	long long shape[5];
	buf data;
	long long begin, end;
} st_tensor;

typedef struct st_file {
	st_tensor t[48];
	int n;
	int dup;            /* list t[0] a second time */
	const char *raw;    /* header text instead of the generated one */
	long long hlen;     /* header length field instead of the real one (-1: real) */
	size_t trailing;    /* zero bytes appended */
	size_t cut;         /* bytes cut off the end */
} st_file;

static st_tensor *
st_add(st_file *f, const char *name, const char *dtype, int ndim, const long long *shape,
       const float *vals)
{
	st_tensor *t = &f->t[f->n++];
	size_t count = 1;

	assert_true(f->n <= 48);
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "%s", name);
	snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->shape[i] = shape[i], count *= (size_t)shape[i];
	for (size_t i = 0; i < count; i++) {
		if (!strcmp(dtype, "F32"))
			put_le(&t->data, float_bits(vals[i]), 4);
		else if (!strcmp(dtype, "F16"))
			put_le(&t->data, float_half(vals[i]), 2);
		else if (!strcmp(dtype, "BF16"))
			put_le(&t->data, float_bits(vals[i]) >> 16, 2); /* truncation */
		else if (!strcmp(dtype, "I64"))
			put_le(&t->data, (uint64_t)(int64_t)vals[i], 8);
		else
			fail_msg("dtype %s", dtype);
	}
	return t;
}

static void
st_layout(st_file *f)
{
	long long off = 0;

	for (int i = 0; i < f->n; i++) {
		f->t[i].begin = off;
		off += (long long)f->t[i].data.n;
		f->t[i].end = off;
	}
}

/* The model under prefix, as dtype, plus tensors a real file has that are ignored. */
static void
st_from_model(st_file *f, const model *m, const char *prefix, const char *dtype)
{
	static const float cls[6] = { 1, 2, 3, 4, 5, 6 };
	char name[64];

	memset(f, 0, sizeof *f);
	f->hlen = -1;
	for (int i = 0; i < m->nconv; i++) {
		long long ws[4] = { m->out[i], m->in[i], 3, 3 }, bs[1] = { m->out[i] };

		snprintf(name, sizeof name, "%sfeatures.%d.weight", prefix, torch_idx[i]);
		st_add(f, name, dtype, 4, ws, m->w[i]);
		snprintf(name, sizeof name, "%sfeatures.%d.bias", prefix, torch_idx[i]);
		st_add(f, name, dtype, 1, bs, m->b[i]);
	}
	snprintf(name, sizeof name, "%sclassifier.0.weight", prefix);
	st_add(f, name, "F32", 2, (const long long[]){ 2, 3 }, cls);
	st_add(f, "extra.counter", "I64", 1, (const long long[]){ 2 }, cls);
	st_layout(f);
}

static st_tensor *
st_find(st_file *f, const char *name)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->t[i].name, name))
			return &f->t[i];
	fail_msg("no tensor %s", name);
	return NULL;
}

static void
st_entry_json(buf *h, const st_tensor *t)
{
	buf_printf(h, "\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, t->dtype);
	for (int k = 0; k < t->ndim; k++)
		buf_printf(h, "%s%lld", k ? "," : "", t->shape[k]);
	buf_printf(h, "],\"data_offsets\":[%lld,%lld]}", t->begin, t->end);
}

static void
st_write(const st_file *f, const char *path)
{
	buf h = { 0 }, out = { 0 };

	if (f->raw) {
		buf_put(&h, f->raw, strlen(f->raw));
	} else {
		buf_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
		for (int i = 0; i < f->n; i++) {
			buf_byte(&h, ',');
			st_entry_json(&h, &f->t[i]);
		}
		if (f->dup) {
			buf_byte(&h, ',');
			st_entry_json(&h, &f->t[0]);
		}
		buf_byte(&h, '}');
		while (h.n % 8) /* padded with spaces, as the format allows */
			buf_byte(&h, ' ');
	}
	put_le(&out, f->hlen >= 0 ? (uint64_t)f->hlen : h.n, 8);
	buf_put(&out, h.p, h.n);
	for (int i = 0; i < f->n; i++)
		buf_put(&out, f->t[i].data.p, f->t[i].data.n);
	for (size_t i = 0; i < f->trailing; i++)
		buf_byte(&out, 0);
	assert_true(f->cut <= out.n);
	write_file(path, out.p, out.n - f->cut);
	free(h.p);
	free(out.p);
}

static void
st_free(st_file *f)
{
	for (int i = 0; i < f->n; i++)
		free(f->t[i].data.p);
	f->n = 0;
}

/* Writes f (then frees it), expects both loaders to refuse it with needle and the
 * file's path in the message. */
static void
st_expect_fail(st_file *f, const char *needle)
{
	const char *path = tmp_path("bad.safetensors");
	ts_vgg *net;

	st_write(f, path);
	st_free(f);
	free(f);
	for (int k = 0; k < 2; k++) {
		net = k ? ts_weights_load(path) : ts_weights_load_safetensors(path);
		if (net || !strstr(ts_errmsg(), needle) || !strstr(ts_errmsg(), path))
			print_error("expected \"%s\", got \"%s\"\n", needle, ts_errmsg());
		assert_null(net);
		assert_non_null(strstr(ts_errmsg(), needle));
		assert_non_null(strstr(ts_errmsg(), path));
		assert_int_equal(strncmp(ts_errmsg(), "weights: ", 9), 0);
	}
	unlink(path);
}

/* ---- safetensors: round trips ----------------------------------------------------- */

static void
test_st_f32_roundtrip(void **state)
{
	const char *path = tmp_path("vgg.safetensors");
	st_file *f = malloc(sizeof *f);
	ts_vgg *net;
	model m;

	(void)state;
	model_make(&m, 16, 1);
	st_from_model(f, &m, "", "F32");
	st_write(f, path);
	net = ts_weights_load_safetensors(path);
	if (!net)
		print_error("%s\n", ts_errmsg());
	check_exact(net, &m);
	assert_int_equal(net->input, TS_INPUT_TORCH);
	assert_float_equal(net->mean[0], 0.485, 1e-6);
	assert_float_equal(net->std[2], 0.225, 1e-6);
	ts_vgg_destroy(net);
	/* detection by content, also under a name that says nothing */
	rename(path, tmp_path("vgg.bin"));
	net = ts_weights_load(tmp_path("vgg.bin"));
	check_exact(net, &m);
	assert_int_equal(net->input, TS_INPUT_TORCH);
	ts_vgg_destroy(net);
	unlink(tmp_path("vgg.bin"));
	st_free(f);
	free(f);
	model_free(&m);
}

static void
test_st_f16_bf16(void **state)
{
	/* half bit patterns and their exact values: subnormals, normals, extremes */
	static const uint16_t hbits[] = { 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff,
	                                  0x8000, 0x8001, 0x3555 };
	const float hval[] = { 0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f, 1.0f, -2.0f, 65504.0f,
	                       -0.0f, -0x1p-24f, 0.333251953125f };
	/* infinities and NaN convert to themselves, and are refused (test_nonfinite) */
	static const uint16_t nfbits[] = { 0x7c00, 0xfc00, 0x7e00 };
	const char *path = tmp_path("half.safetensors");
	st_file *f = malloc(sizeof *f);
	ts_vgg *net;
	model m;

	(void)state;
	model_make(&m, 4, 2);
	st_from_model(f, &m, "", "F16");
	for (size_t i = 0; i < sizeof hbits / sizeof hbits[0]; i++) {
		f->t[0].data.p[2 * i] = hbits[i] & 0xff;
		f->t[0].data.p[2 * i + 1] = hbits[i] >> 8;
	}
	st_write(f, path);
	net = ts_weights_load(path);
	if (!net)
		print_error("%s\n", ts_errmsg());
	check_shapes(net, &m);
	for (size_t i = 0; i < sizeof hbits / sizeof hbits[0]; i++)
		assert_int_equal(float_bits(net->w[0][i]), float_bits(hval[i]));
	for (int i = 0; i < m.nconv; i++) {
		size_t nw = (size_t)m.out[i] * m.in[i] * 9;

		for (size_t k = i ? 0 : sizeof hbits / sizeof hbits[0]; k < nw; k++)
			assert_float_equal(net->w[i][k], m.w[i][k], fabsf(m.w[i][k]) * 0x1p-11f + 0x1p-25f);
		for (int k = 0; k < m.out[i]; k++)
			assert_float_equal(net->b[i][k], m.b[i][k], fabsf(m.b[i][k]) * 0x1p-11f + 0x1p-25f);
	}
	ts_vgg_destroy(net);
	for (size_t i = 0; i < 3; i++) {
		f->t[0].data.p[2 * i + 2] = nfbits[i] & 0xff;
		f->t[0].data.p[2 * i + 3] = nfbits[i] >> 8;
	}
	st_write(f, path);
	assert_null(ts_weights_load(path));
	assert_non_null(strstr(ts_errmsg(), "tensor features.0.weight (conv1_1) has 3 non-finite "
	                                    "values of 108 (the first is inf at element 1)"));
	st_free(f);

	/* BF16 (written by truncation): exactly the top half of each float */
	st_from_model(f, &m, "", "BF16");
	st_write(f, path);
	net = ts_weights_load(path);
	check_shapes(net, &m);
	for (int i = 0; i < m.nconv; i++) {
		size_t nw = (size_t)m.out[i] * m.in[i] * 9;

		for (size_t k = 0; k < nw; k++)
			assert_int_equal(float_bits(net->w[i][k]), float_bits(m.w[i][k]) & 0xffff0000u);
		for (int k = 0; k < m.out[i]; k++)
			assert_int_equal(float_bits(net->b[i][k]), float_bits(m.b[i][k]) & 0xffff0000u);
	}
	assert_true(float_bits(net->w[1][3]) != float_bits(m.w[1][3])); /* really truncated */
	ts_vgg_destroy(net);
	unlink(path);
	st_free(f);
	free(f);
	model_free(&m);
}

static void
test_st_prefix_and_short(void **state)
{
	static const char *const prefixes[] = { "vgg19.", "model.", "module.model." };
	const char *path = tmp_path("p.safetensors");
	st_file *f = malloc(sizeof *f);
	ts_vgg *net;
	model m;

	(void)state;
	for (int p = 0; p < 3; p++) {
		model_make(&m, 2 + 3 * p, 10u + (unsigned)p);
		st_from_model(f, &m, prefixes[p], "F32");
		st_write(f, path);
		net = ts_weights_load_safetensors(path);
		if (!net)
			print_error("%s\n", ts_errmsg());
		check_exact(net, &m);
		ts_vgg_destroy(net);
		st_free(f);
		model_free(&m);
	}
	/* a file that stops after conv4_2 (features.21) */
	model_make(&m, 10, 3);
	st_from_model(f, &m, "", "F32");
	st_write(f, path);
	net = ts_weights_load(path);
	check_exact(net, &m);
	assert_int_equal(net->nconv, 10);
	ts_vgg_destroy(net);
	st_free(f);
	model_free(&m);
	/* a single convolution */
	model_make(&m, 1, 4);
	st_from_model(f, &m, "", "F32");
	st_write(f, path);
	net = ts_weights_load(path);
	check_exact(net, &m);
	ts_vgg_destroy(net);
	st_free(f);
	model_free(&m);
	unlink(path);
	free(f);
}

/* ---- safetensors: corruptions ----------------------------------------------------- */

/* A valid 3-convolution file to corrupt (t[0..5] are weight, bias of each). */
static st_file *
st_base(const model *m)
{
	st_file *f = malloc(sizeof *f);

	assert_non_null(f);
	st_from_model(f, m, "", "F32");
	return f;
}

static void
test_st_corrupt_file(void **state)
{
	const char *path = tmp_path("short.safetensors");
	model m;
	st_file *f;

	(void)state;
	model_make(&m, 3, 5);
	f = st_base(&m);
	f->cut = 10; /* truncated in the data */
	st_expect_fail(f, "truncated");
	f = st_base(&m);
	f->cut = f->t[0].data.n; /* and the same through the offsets check */
	st_expect_fail(f, "beyond");
	f = st_base(&m);
	f->hlen = 1 << 20; /* header length larger than the file */
	st_expect_fail(f, "exceeds the file");
	f = st_base(&m);
	f->hlen = 200000000; /* and than the reference's bound */
	st_expect_fail(f, "exceeds the limit");
	f = st_base(&m);
	f->trailing = 16;
	st_expect_fail(f, "16 trailing bytes");
	f = st_base(&m);
	f->raw = "{\"features.0.weight\": {\"dtype\": \"F32\",";
	st_expect_fail(f, "not valid JSON");
	f = st_base(&m);
	f->raw = "{\"a\":1} x";
	st_expect_fail(f, "not valid JSON");
	f = st_base(&m);
	f->raw = "{\"__metadata__\":{\"n\":3}}";
	st_expect_fail(f, "__metadata__");
	f = st_base(&m);
	f->raw = "{\"features.0.weight\":{\"dtype\":\"F32\",\"shape\":[1.5],"
	         "\"data_offsets\":[0,4]}}";
	st_expect_fail(f, "non-negative integer");
	f = st_base(&m);
	f->raw = "{\"features.0.weight\":{\"dtype\":\"F32\",\"shape\":[-1],"
	         "\"data_offsets\":[0,4]}}";
	st_expect_fail(f, "non-negative integer");
	f = st_base(&m);
	f->raw = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
	         "\"data_offsets\":[0,4]}}";
	st_expect_fail(f, "overflows");
	model_free(&m);

	/* tiny and empty files; a missing file */
	write_file(path, "\x08\0\0", 3);
	assert_null(ts_weights_load(path));
	assert_non_null(strstr(ts_errmsg(), "too small"));
	write_file(path, "", 0);
	assert_null(ts_weights_load_safetensors(path));
	assert_non_null(strstr(ts_errmsg(), "too small"));
	unlink(path);
	assert_null(ts_weights_load(tmp_path("none.safetensors")));
	assert_non_null(strstr(ts_errmsg(), "none.safetensors"));
	assert_non_null(strstr(ts_errmsg(), "No such file"));
	assert_null(ts_weights_load_caffe(tmp_path("none.caffemodel")));
	assert_non_null(strstr(ts_errmsg(), "cannot open"));
}

static void
test_st_corrupt_offsets(void **state)
{
	model m;
	st_file *f;

	(void)state;
	model_make(&m, 3, 5);
	/* gap: features.2.weight starts 4 bytes after features.0.bias ends */
	f = st_base(&m);
	st_layout(f);
	for (int i = 2; i < f->n; i++)
		f->t[i].begin += 4, f->t[i].end += 4;
	st_expect_fail(f, "(gap)");
	/* overlap */
	f = st_base(&m);
	for (int i = 2; i < f->n; i++)
		f->t[i].begin -= 4, f->t[i].end -= 4;
	st_expect_fail(f, "(overlap)");
	/* the last tensor ends beyond the data */
	f = st_base(&m);
	st_add(f, "late", "F32", 1, (const long long[]){ 2 }, m.b[0]);
	st_layout(f);
	f->t[f->n - 1].data.n = 0; /* listed, but not written */
	st_expect_fail(f, "beyond");
	/* begin > end */
	f = st_base(&m);
	f->t[1].begin = f->t[1].end + 4;
	st_expect_fail(f, "begin > end");
	/* byte size != dtype x shape */
	f = st_base(&m);
	st_find(f, "features.2.weight")->shape[0] = 5;
	st_expect_fail(f, "features.2.weight has 576 bytes, but F32 x [5,4,3,3] needs 720");
	/* non-float dtype on a convolution (8 bytes per element, so the layout holds) */
	f = st_base(&m);
	{
		st_tensor *t = st_find(f, "features.0.bias");
		float v[4] = { 1, 2, 3, 4 };

		free(t->data.p);
		memset(&t->data, 0, sizeof t->data);
		for (int i = 0; i < 4; i++)
			put_le(&t->data, (uint64_t)v[i], 8);
		snprintf(t->dtype, sizeof t->dtype, "I64");
	}
	st_layout(f);
	st_expect_fail(f, "features.0.bias has dtype I64");
	/* unknown dtype */
	f = st_base(&m);
	snprintf(f->t[0].dtype, sizeof f->t[0].dtype, "Q4");
	st_expect_fail(f, "unknown dtype \"Q4\"");
	/* duplicate names */
	f = st_base(&m);
	f->dup = 1;
	st_expect_fail(f, "duplicate tensor name \"features.0.weight\"");
	/* the same convolution under two prefixes */
	f = st_base(&m);
	snprintf(f->t[6].name, sizeof f->t[6].name, "model.features.0.weight");
	f->t[6].ndim = 4;
	f->t[6].shape[0] = 4, f->t[6].shape[1] = 3, f->t[6].shape[2] = 3, f->t[6].shape[3] = 3;
	free(f->t[6].data.p);
	memset(&f->t[6].data, 0, sizeof f->t[6].data);
	for (int i = 0; i < 108; i++)
		put_le(&f->t[6].data, 0, 4);
	st_layout(f);
	st_expect_fail(f, "are both the weight");
	model_free(&m);
}

static void
test_st_corrupt_shapes(void **state)
{
	model m;
	st_file *f;
	st_tensor *t;

	(void)state;
	model_make(&m, 3, 5);
	/* not 3x3 (same byte size: 4x3x3x3 = 4x3x9x1) */
	f = st_base(&m);
	t = st_find(f, "features.0.weight");
	t->shape[2] = 9, t->shape[3] = 1;
	st_expect_fail(f, "features.0.weight has shape [4,3,9,1], expected [out,in,3,3]");
	/* input channels do not chain */
	f = st_base(&m);
	t = st_find(f, "features.2.weight");
	t->shape[0] = 8, t->shape[1] = 2; /* 8*2 = 4*4 */
	st_expect_fail(f, "features.2.weight has shape [8,2,3,3], expected input channels 4");
	/* bias length mismatch */
	f = st_base(&m);
	t = st_find(f, "features.5.bias");
	t->ndim = 2, t->shape[0] = 4, t->shape[1] = 2;
	st_expect_fail(f, "features.5.bias has shape [4,2], expected [8]");
	/* missing bias (the layout stays contiguous: it is dropped entirely) */
	f = st_base(&m);
	free(f->t[3].data.p);
	memmove(&f->t[3], &f->t[4], (size_t)(f->n - 4) * sizeof f->t[0]);
	f->n--;
	st_layout(f);
	st_expect_fail(f, "features.2.bias is missing");
	/* missing bias, under a prefix */
	f = malloc(sizeof *f);
	st_from_model(f, &m, "vgg19.", "F32");
	free(f->t[1].data.p);
	memmove(&f->t[1], &f->t[2], (size_t)(f->n - 2) * sizeof f->t[0]);
	f->n--;
	st_layout(f);
	st_expect_fail(f, "vgg19.features.0.bias is missing");
	/* a hole: conv 1 missing but conv 2 present */
	f = st_base(&m);
	free(f->t[2].data.p);
	free(f->t[3].data.p);
	memmove(&f->t[2], &f->t[4], (size_t)(f->n - 4) * sizeof f->t[0]);
	f->n -= 2;
	st_layout(f);
	st_expect_fail(f, "features.2 is missing but features.5 is present");
	/* batch-norm VGG names */
	f = st_base(&m);
	snprintf(f->t[f->n - 2].name, sizeof f->t[0].name, "features.1.running_mean");
	st_expect_fail(f, "features.1.running_mean is not a parameter");
	/* nothing of VGG-19 */
	f = st_base(&m);
	for (int i = 0; i < 6; i++)
		snprintf(f->t[i].name, sizeof f->t[0].name, "other.%d", i);
	st_expect_fail(f, "no VGG-19 convolution weights");
	model_free(&m);
}

/* ---- Caffe writer ------------------------------------------------------------------ */

static void
pb_varint(buf *b, uint64_t v)
{
	while (v >= 0x80) {
		buf_byte(b, (unsigned)(v & 0x7f) | 0x80);
		v >>= 7;
	}
	buf_byte(b, (unsigned)v);
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
	buf_put(b, sub->p, sub->n);
}

static void
pb_str(buf *b, unsigned field, const char *s)
{
	buf tmp = { (unsigned char *)s, strlen(s), 0 };

	pb_msg(b, field, &tmp);
}

typedef struct caffe_opts {
	int v1;          /* V1LayerParameter (type enum) instead of LayerParameter */
	int legacy;      /* num/channels/height/width instead of BlobShape */
	int packed_data; /* packed floats (in two runs) instead of one fixed32 each */
	int packed_dims; /* BlobShape dims packed */
	int short_blob;  /* blob 0 of conv1_1 has one float too few */
} caffe_opts;

static void
blob_enc(buf *out, const long long *dims, int ndim, const float *v, size_t n,
         const caffe_opts *o)
{
	buf blob = { 0 }, sh = { 0 }, run = { 0 };

	if (o->legacy) {
		long long d4[4] = { 1, 1, 1, 1 };

		for (int i = 0; i < ndim; i++)
			d4[4 - ndim + i] = dims[i];
		for (int i = 0; i < 4; i++) {
			pb_tag(&blob, (unsigned)i + 1, 0);
			pb_varint(&blob, (uint64_t)d4[i]);
		}
	} else {
		if (o->packed_dims) {
			for (int i = 0; i < ndim; i++)
				pb_varint(&run, (uint64_t)dims[i]);
			pb_msg(&sh, 1, &run);
		} else {
			for (int i = 0; i < ndim; i++) {
				pb_tag(&sh, 1, 0);
				pb_varint(&sh, (uint64_t)dims[i]);
			}
		}
		pb_msg(&blob, 7, &sh);
	}
	if (o->packed_data) {
		for (size_t part = 0; part < 2; part++) {
			size_t a = part ? n / 2 : 0, z = part ? n : n / 2;

			run.n = 0;
			for (size_t i = a; i < z; i++)
				put_le(&run, float_bits(v[i]), 4);
			pb_msg(&blob, 5, &run);
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			pb_tag(&blob, 5, 5);
			put_le(&blob, float_bits(v[i]), 4);
		}
	}
	/* unknown fields of every wire type: skipped */
	pb_tag(&blob, 6, 5); /* diff */
	put_le(&blob, 0, 4);
	pb_tag(&blob, 8, 1); /* double_data */
	put_le(&blob, 0, 8);
	pb_msg(out, o->v1 ? 6 : 7, &blob);
	free(blob.p);
	free(sh.p);
	free(run.p);
}

static void
layer_enc(buf *net, const caffe_opts *o, const char *name, int v1type, const char *type,
          const model *m, int conv)
{
	buf l = { 0 }, param = { 0 };

	if (o->v1) {
		pb_str(&l, 2, "bottom");
		pb_str(&l, 4, name);
		pb_tag(&l, 5, 0);
		pb_varint(&l, (uint64_t)v1type);
	} else {
		pb_str(&l, 1, name);
		pb_str(&l, 2, type);
		pb_str(&l, 3, "bottom");
		pb_tag(&param, 1, 0); /* convolution_param.num_output */
		pb_varint(&param, 7);
		pb_msg(&l, 106, &param);
	}
	if (conv >= 0) {
		long long wd[4] = { m->out[conv], m->in[conv], 3, 3 }, bd[1] = { m->out[conv] };
		size_t nw = (size_t)m->out[conv] * m->in[conv] * 9;

		blob_enc(&l, wd, 4, m->w[conv], nw - (o->short_blob && conv == 0), o);
		blob_enc(&l, bd, 1, m->b[conv], (size_t)m->out[conv], o);
		if (o->v1) {
			pb_tag(&l, 7, 5); /* blobs_lr */
			put_le(&l, float_bits(1.0f), 4);
		}
	}
	pb_msg(net, o->v1 ? 2 : 100, &l);
	free(l.p);
	free(param.p);
}

/* A NetParameter shaped like VGG_ILSVRC_19_layers: input, conv + relu (+ pool) per
 * convolution, then a fully connected layer with a blob of its own. */
static void
caffe_build(buf *net, const model *m, const caffe_opts *o)
{
	static const float fc[4] = { 9, 9, 9, 9 };

	memset(net, 0, sizeof *net);
	pb_str(net, 1, "VGG_ILSVRC_19_layers");
	pb_str(net, 3, "data");
	for (int i = 0; i < 4; i++) {
		pb_tag(net, 4, 0);
		pb_varint(net, i ? 224 : 10);
	}
	for (int i = 0; i < m->nconv; i++) {
		char relu[16];

		layer_enc(net, o, caffe_name[i], 4, "Convolution", m, i);
		snprintf(relu, sizeof relu, "relu%s", caffe_name[i] + 4);
		layer_enc(net, o, relu, 18, "ReLU", m, -1);
		if (i == 1 || i == 3 || i == 7 || i == 11)
			layer_enc(net, o, "pool", 17, "Pooling", m, -1);
	}
	/* fc6 has an odd-sized blob: its shape is never checked, it is skipped */
	{
		buf l = { 0 };
		long long d[1] = { 3 };

		pb_str(&l, o->v1 ? 4 : 1, "fc6");
		blob_enc(&l, d, 1, fc, 4, o);
		pb_msg(net, o->v1 ? 2 : 100, &l);
		free(l.p);
	}
}

/* Whether len is the end of a top-level field of b (fields of wire type 0 or 2). */
static int
top_boundary(const buf *b, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint64_t tag = 0, v = 0;
		int sh = 0;

		do
			tag |= (uint64_t)(b->p[i] & 0x7f) << sh, sh += 7;
		while (b->p[i++] & 0x80);
		sh = 0;
		do
			v |= (uint64_t)(b->p[i] & 0x7f) << sh, sh += 7;
		while (b->p[i++] & 0x80);
		if ((tag & 7) == 2)
			i += v;
	}
	return i == len;
}

static void
check_caffe(const ts_vgg *net, const model *m)
{
	if (!net)
		print_error("%s\n", ts_errmsg());
	check_exact(net, m);
	assert_int_equal(net->input, TS_INPUT_CAFFE);
	assert_float_equal(net->mean[0], 103.939, 1e-4);
	assert_float_equal(net->mean[1], 116.779, 1e-4);
	assert_float_equal(net->mean[2], 123.68, 1e-4);
	assert_float_equal(net->std[0], 1.0, 0);
}

/* ---- Caffe: round trips and corruptions ---------------------------------------------- */

static void
test_caffe_roundtrip(void **state)
{
	const char *path = tmp_path("vgg.caffemodel");
	ts_vgg *net;
	model m;
	buf b;

	(void)state;
	/* every combination of layer format, dims and float encoding */
	for (int k = 0; k < 16; k++) {
		caffe_opts o = { k & 1, (k >> 1) & 1, (k >> 2) & 1, (k >> 3) & 1, 0 };

		if (o.legacy && o.packed_dims)
			continue;
		model_make(&m, k == 0 ? 16 : 2 + k % 5, 20u + (unsigned)k);
		caffe_build(&b, &m, &o);
		write_file(path, b.p, b.n);
		net = k & 1 ? ts_weights_load(path) : ts_weights_load_caffe(path);
		check_caffe(net, &m);
		ts_vgg_destroy(net);
		free(b.p);
		model_free(&m);
	}
	unlink(path);
}

static void
caffe_expect_fail(const buf *b, const char *needle)
{
	const char *path = tmp_path("bad.caffemodel");
	ts_vgg *net;

	write_file(path, b->p, b->n);
	net = ts_weights_load(path);
	if (net || !strstr(ts_errmsg(), needle) || !strstr(ts_errmsg(), path))
		print_error("expected \"%s\", got \"%s\"\n", needle, ts_errmsg());
	assert_null(net);
	assert_non_null(strstr(ts_errmsg(), needle));
	assert_non_null(strstr(ts_errmsg(), path));
	unlink(path);
}

static void
test_caffe_corrupt(void **state)
{
	caffe_opts v1 = { 1, 1, 1, 0, 0 }, nf = { 0, 0, 1, 1, 0 };
	ts_vgg *net;
	model m;
	buf b, l;

	(void)state;
	model_make(&m, 3, 30);

	/* truncated inside a top-level field (a cut between two fields cannot be told
	 * from a shorter model: protobuf has no framing) */
	caffe_build(&b, &m, &v1);
	for (size_t cut = 1; cut < b.n; cut += b.n / 7) {
		buf t = { b.p, b.n - cut, 0 };

		if (!top_boundary(&b, t.n))
			caffe_expect_fail(&t, "truncated");
	}
	caffe_expect_fail(&(buf){ b.p, b.n - 1, 0 }, "truncated");
	caffe_expect_fail(&(buf){ b.p, b.n / 2, 0 }, "truncated");
	/* a varint of 11 bytes at the top level */
	for (int i = 0; i < 10; i++)
		buf_byte(&b, 0x80);
	buf_byte(&b, 0x01);
	caffe_expect_fail(&b, "longer than 10 bytes");
	free(b.p);

	/* a length beyond the end of its message: packed data claims 1000 bytes in a
	 * blob that holds 8 */
	memset(&b, 0, sizeof b);
	memset(&l, 0, sizeof l);
	{
		buf blob = { 0 };

		pb_tag(&blob, 5, 2);
		pb_varint(&blob, 1000);
		put_le(&blob, 0, 8);
		pb_str(&l, 4, "conv1_1");
		pb_tag(&l, 5, 0);
		pb_varint(&l, 4);
		pb_msg(&l, 6, &blob);
		pb_msg(&b, 2, &l);
		pb_str(&b, 1, "after");
		free(blob.p);
	}
	caffe_expect_fail(&b, "length 1000, which runs past the end");
	free(b.p);
	free(l.p);

	/* a group */
	memset(&b, 0, sizeof b);
	pb_tag(&b, 9, 3);
	caffe_expect_fail(&b, "groups are not supported");
	free(b.p);

	/* nesting: net, layer, blob, shape are 4 levels (depth 3) */
	caffe_build(&b, &m, &nf);
	net = ts_weights_caffe_buf(b.p, b.n, "mem.caffemodel", 3);
	check_caffe(net, &m);
	ts_vgg_destroy(net);
	assert_null(ts_weights_caffe_buf(b.p, b.n, "mem.caffemodel", 2));
	assert_non_null(strstr(ts_errmsg(), "mem.caffemodel: protobuf nesting deeper than 2"));
	free(b.p);
	caffe_build(&b, &m, &v1); /* legacy dims: no BlobShape, depth 2 suffices */
	net = ts_weights_caffe_buf(b.p, b.n, "mem.caffemodel", 2);
	check_caffe(net, &m);
	ts_vgg_destroy(net);
	assert_null(ts_weights_caffe_buf(b.p, b.n, "mem.caffemodel", 1));
	assert_non_null(strstr(ts_errmsg(), "nesting deeper than 1"));
	free(b.p);

	/* wrong blob size */
	for (int k = 0; k < 2; k++) {
		caffe_opts o = k ? v1 : nf;

		o.short_blob = 1;
		caffe_build(&b, &m, &o);
		caffe_expect_fail(&b, "conv1_1 blob 0 has 107 floats, but its shape [4,3,3,3] "
		                      "needs 108");
		free(b.p);
	}
	model_free(&m);

	/* chaining, as for safetensors */
	model_make(&m, 3, 31);
	m.in[1] = 2; /* conv1_2 claims 2 input channels (and has fewer weights) */
	caffe_build(&b, &m, &nf);
	caffe_expect_fail(&b, "conv1_2 blob 0 (weights) has shape [4,2,3,3], expected input "
	                      "channels 4");
	free(b.p);
	m.in[1] = 4;
	/* a conv layer name on a layer of another type */
	memset(&b, 0, sizeof b);
	layer_enc(&b, &nf, "conv1_1", 0, "ReLU", &m, 0);
	caffe_expect_fail(&b, "layer conv1_1 (at byte");
	free(b.p);
	/* no convolutions at all; a file that is neither format */
	memset(&b, 0, sizeof b);
	pb_str(&b, 1, "an empty net");
	caffe_expect_fail(&b, "no VGG-19 convolution weights");
	b.n = 0;
	buf_printf(&b, "hello, this is not a model");
	caffe_expect_fail(&b, "neither a safetensors file nor a Caffe model");
	free(b.p);
	model_free(&m);
}

/* ---- non-finite values -------------------------------------------------------------- */

/* A NaN or an infinity anywhere is refused at load, naming the file and the tensor:
 * conv1_1 all NaN (what the audit tried), one infinity in a later bias, in each dtype
 * and in Caffe files. */
static void
test_nonfinite(void **state)
{
	static const char *const dtypes[3] = { "F32", "F16", "BF16" };
	/* a NaN and an infinity in each dtype's bits */
	static const uint32_t nan_bits[3] = { 0x7fc00000u, 0x7e00u, 0x7fc0u };
	static const uint32_t inf_bits[3] = { 0xff800000u, 0xfc00u, 0xff80u };
	caffe_opts o = { 0, 0, 1, 1, 0 };
	model m;
	buf b;

	(void)state;
	model_make(&m, 3, 40);
	for (int d = 0; d < 3; d++) {
		int size = d ? 2 : 4;
		st_file *f;
		st_tensor *t;

		/* conv1_1's weights all NaN */
		f = malloc(sizeof *f);
		assert_non_null(f);
		st_from_model(f, &m, "", dtypes[d]);
		t = st_find(f, "features.0.weight");
		t->data.n = 0;
		for (int k = 0; k < 4 * 3 * 9; k++)
			put_le(&t->data, nan_bits[d], size);
		st_expect_fail(f, "tensor features.0.weight (conv1_1) has 108 non-finite values "
		                  "of 108 (the first is nan at element 0)");
		/* one -inf in conv2_1's bias (element 5) */
		f = malloc(sizeof *f);
		assert_non_null(f);
		st_from_model(f, &m, "model.", dtypes[d]);
		t = st_find(f, "model.features.5.bias");
		t->data.n = 5 * (size_t)size;
		put_le(&t->data, inf_bits[d], size);
		t->data.n = 8 * (size_t)size;
		st_expect_fail(f, "tensor model.features.5.bias (conv2_1) has 1 non-finite value "
		                  "of 8 (the first is -inf at element 5)");
	}
	/* Caffe: conv1_1 all NaN, then one infinity in conv1_2's bias */
	for (int k = 0; k < 4 * 3 * 9; k++)
		m.w[0][k] = NAN;
	caffe_build(&b, &m, &o);
	caffe_expect_fail(&b, "conv1_1 blob 0 (weights) has 108 non-finite values of 108");
	free(b.p);
	model_free(&m);
	model_make(&m, 3, 41);
	m.b[1][3] = INFINITY;
	caffe_build(&b, &m, &o);
	caffe_expect_fail(&b, "conv1_2 blob 1 (bias) has 1 non-finite value of 4 (the first "
	                      "is inf at element 3)");
	free(b.p);
	model_free(&m);
}

/* ---- PyTorch .pth: a writer of torch.save's zip format ---------------------------- */

#define FIX "tests/fixtures/"

/* pickle opcodes, protocol 2 */
static void
pk_str(buf *b, const char *s)
{
	buf_byte(b, 'X');
	put_le(b, strlen(s), 4);
	buf_put(b, s, strlen(s));
}

static void
pk_int(buf *b, long long v)
{
	buf_byte(b, 'J');
	put_le(b, (uint64_t)v, 4);
}

static void
pk_global(buf *b, const char *mod, const char *name)
{
	buf_printf(b, "c%s\n%s\n", mod, name);
}

typedef struct pth_opts {
	const char *prefix;   /* before every tensor name ("" or "module.") */
	const char *storage;  /* storage type name (NULL: FloatStorage) */
	const char *rebuild;  /* the rebuild global's name (NULL: _rebuild_tensor_v2) */
	int transposed;       /* conv 0's weight stored as [in, out, 3, 3], strides to match */
	int shared_bias;      /* conv 0's and conv 1's biases in one storage, at 0 and out0 */
	int short_numel;      /* conv 0's storage declares this many elements fewer */
	int short_entry;      /* conv 0's entry holds this many bytes fewer */
	int drop_entry;       /* conv 1's weight entry is left out */
	int no_pkl;           /* no data.pkl */
	int deflate;          /* entries compressed */
	int little;           /* 1: a byteorder entry "little"; -1: "big" */
} pth_opts;

typedef struct pth_file {
	buf pkl, data[40];
	char key[40][16];
	int n;
} pth_file;

/* One tensor pickled, in a new storage (reuse < 0) or in storage reuse; returns the
 * storage's index. */
static int
pth_tensor(pth_file *f, const pth_opts *o, const char *name, int ndim, const long long *dims,
           const long long *strides, long long offset, long long numel, int reuse)
{
	char full[128];
	int s = reuse;

	if (reuse < 0) {
		s = f->n++;
		snprintf(f->key[s], sizeof f->key[0], "%d", s);
	}
	snprintf(full, sizeof full, "%s%s", o->prefix ? o->prefix : "", name);
	pk_str(&f->pkl, full);
	pk_global(&f->pkl, "torch._utils", o->rebuild ? o->rebuild : "_rebuild_tensor_v2");
	buf_byte(&f->pkl, '(');
	buf_byte(&f->pkl, '(');
	pk_str(&f->pkl, "storage");
	pk_global(&f->pkl, "torch", o->storage ? o->storage : "FloatStorage");
	pk_str(&f->pkl, f->key[s]);
	pk_str(&f->pkl, "cpu");
	pk_int(&f->pkl, numel);
	buf_byte(&f->pkl, 't');
	buf_byte(&f->pkl, 'Q'); /* BINPERSID */
	pk_int(&f->pkl, offset);
	buf_byte(&f->pkl, '(');
	for (int i = 0; i < ndim; i++)
		pk_int(&f->pkl, dims[i]);
	buf_byte(&f->pkl, 't');
	buf_byte(&f->pkl, '(');
	for (int i = 0; i < ndim; i++)
		pk_int(&f->pkl, strides[i]);
	buf_byte(&f->pkl, 't');
	buf_byte(&f->pkl, 0x89); /* NEWFALSE */
	pk_global(&f->pkl, "collections", "OrderedDict");
	buf_byte(&f->pkl, ')');
	buf_byte(&f->pkl, 'R');
	buf_byte(&f->pkl, 't');
	buf_byte(&f->pkl, 'R');
	return s;
}

static void
pth_values(buf *d, const float *v, size_t n, const pth_opts *o)
{
	for (size_t i = 0; i < n; i++) {
		if (o->storage && !strcmp(o->storage, "HalfStorage"))
			put_le(d, float_half(v[i]), 2);
		else if (o->storage && !strcmp(o->storage, "LongStorage"))
			put_le(d, (uint64_t)(int64_t)v[i], 8);
		else
			put_le(d, float_bits(v[i]), 4);
	}
}

/* data.pkl and the storages of the model; the archive folder is "archive". */
static void
pth_build(pth_file *f, const model *m, const pth_opts *o)
{
	int shared = -1;

	memset(f, 0, sizeof *f);
	buf_byte(&f->pkl, 0x80);
	buf_byte(&f->pkl, 2);
	pk_global(&f->pkl, "collections", "OrderedDict");
	buf_byte(&f->pkl, ')');
	buf_byte(&f->pkl, 'R');
	buf_byte(&f->pkl, '(');
	for (int i = 0; i < m->nconv; i++) {
		long long co = m->out[i], ci = m->in[i], nw = co * ci * 9;
		long long wd[4] = { co, ci, 3, 3 }, ws[4] = { ci * 9, 9, 3, 1 };
		char name[64];

		snprintf(name, sizeof name, "features.%d.weight", torch_idx[i]);
		if (i == 0 && o->transposed) {
			/* memory [ci][co][3][3]: element (a, b, y, x) at b*co*9 + a*9 + y*3 + x */
			long long ts[4] = { 9, co * 9, 3, 1 };

			pth_tensor(f, o, name, 4, wd, ts, 0, nw, -1);
			for (long long b = 0; b < ci; b++)
				for (long long a = 0; a < co; a++)
					pth_values(&f->data[f->n - 1], m->w[i] + (a * ci + b) * 9, 9, o);
		} else {
			pth_tensor(f, o, name, 4, wd, ws, 0,
			           nw - (i == 0 ? o->short_numel : 0), -1);
			pth_values(&f->data[f->n - 1], m->w[i], (size_t)nw - (i == 0 ? o->short_numel : 0),
			           o);
		}
		snprintf(name, sizeof name, "features.%d.bias", torch_idx[i]);
		if (o->shared_bias && i < 2) {
			long long tot = m->out[0] + m->out[1];

			shared = pth_tensor(f, o, name, 1, &co, (const long long[]){ 1 },
			                    i ? m->out[0] : 0, tot, shared);
			pth_values(&f->data[shared], m->b[i], (size_t)co, o);
		} else {
			pth_tensor(f, o, name, 1, &co, (const long long[]){ 1 }, 0, co, -1);
			pth_values(&f->data[f->n - 1], m->b[i], (size_t)co, o);
		}
		if (i == 0 && o->short_entry)
			f->data[0].n -= (size_t)o->short_entry;
	}
	/* a classifier tensor and a plain value: ignored */
	pth_tensor(f, &(pth_opts){ .prefix = o->prefix }, "classifier.0.weight", 2,
	           (const long long[]){ 2, 3 }, (const long long[]){ 3, 1 }, 0, 6, -1);
	pth_values(&f->data[f->n - 1], (const float[]){ 1, 2, 3, 4, 5, 6 }, 6, &(pth_opts){ 0 });
	pk_str(&f->pkl, "epoch");
	pk_int(&f->pkl, 7);
	buf_byte(&f->pkl, 'u'); /* SETITEMS */
	/* _metadata, as a state_dict() carries it: BUILD with a dict */
	buf_byte(&f->pkl, '}');
	pk_str(&f->pkl, "_metadata");
	buf_byte(&f->pkl, '}');
	buf_byte(&f->pkl, 's');
	buf_byte(&f->pkl, 'b');
	buf_byte(&f->pkl, '.');
}

/* The archive: entries named archive/..., buffers kept until zip_close. */
static void
pth_zip(const char *path, const pth_file *f, const pth_opts *o)
{
	char name[64];
	zip_t *za;
	int err;

	assert_non_null(za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err));
	for (int i = -2; i < f->n; i++) {
		const void *p;
		size_t n;
		zip_source_t *s;
		zip_int64_t idx;

		if (i == -2) {
			if (o->no_pkl)
				continue;
			snprintf(name, sizeof name, "archive/data.pkl");
			p = f->pkl.p, n = f->pkl.n;
		} else if (i == -1) {
			if (!o->little)
				continue;
			snprintf(name, sizeof name, "archive/byteorder");
			p = o->little > 0 ? "little" : "big", n = strlen(p);
		} else {
			if (o->drop_entry && i == 2)
				continue;
			snprintf(name, sizeof name, "archive/data/%s", f->key[i]);
			p = f->data[i].p ? (const void *)f->data[i].p : "", n = f->data[i].n;
		}
		assert_non_null(s = zip_source_buffer(za, p, n, 0));
		assert_true((idx = zip_file_add(za, name, s, ZIP_FL_ENC_UTF_8)) >= 0);
		assert_int_equal(zip_set_file_compression(za, (zip_uint64_t)idx,
		                                          o->deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0),
		                 0);
	}
	if (zip_close(za))
		fail_msg("zip_close: %s", zip_strerror(za));
}

static void
pth_free(pth_file *f)
{
	free(f->pkl.p);
	for (int i = 0; i < 40; i++)
		free(f->data[i].p);
}

static void
pth_write(const char *path, const model *m, const pth_opts *o)
{
	pth_file *f = malloc(sizeof *f);

	assert_non_null(f);
	pth_build(f, m, o);
	pth_zip(path, f, o);
	pth_free(f);
	free(f);
}

/* ts_weights_load(path) is refused with needle and the path in its message. */
static void
expect_fail(const char *path, const char *needle)
{
	ts_vgg *net = ts_weights_load(path);

	if (net || !strstr(ts_errmsg(), needle) || !strstr(ts_errmsg(), path))
		print_error("expected \"%s\", got \"%s\"\n", needle, ts_errmsg());
	assert_null(net);
	assert_non_null(strstr(ts_errmsg(), needle));
	assert_non_null(strstr(ts_errmsg(), path));
	assert_int_equal(strncmp(ts_errmsg(), "weights: ", 9), 0);
}

static unsigned char *
read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len > 0);
	rewind(f);
	assert_non_null(p = malloc((size_t)len));
	assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return p;
}

/* ---- .pth: the fixture torch.save wrote, and files written here ----------------- */

/* tests/fixtures/narrow_vgg.pth (torch.save of a state_dict(): memo, _metadata, a
 * non-contiguous weight, two biases sharing a storage) holds the first 8
 * convolutions of narrow_vgg.safetensors: the same floats, bit for bit. */
static void
test_pth_fixture(void **state)
{
	ts_vgg *pth, *st;

	(void)state;
	pth = ts_weights_load(FIX "narrow_vgg.pth");
	if (!pth)
		print_error("%s\n", ts_errmsg());
	assert_non_null(pth);
	assert_non_null(st = ts_weights_load(FIX "narrow_vgg.safetensors"));
	assert_int_equal(pth->nconv, 8);
	assert_int_equal(st->nconv, 16);
	assert_int_equal(pth->input, TS_INPUT_TORCH);
	for (int i = 0; i < pth->nconv; i++) {
		assert_int_equal(pth->in_ch[i], st->in_ch[i]);
		assert_int_equal(pth->out_ch[i], st->out_ch[i]);
		assert_memory_equal(pth->w[i], st->w[i], (size_t)st->out_ch[i] * st->in_ch[i] * 9 * 4);
		assert_memory_equal(pth->b[i], st->b[i], (size_t)st->out_ch[i] * 4);
	}
	for (int k = 0; k < 3; k++)
		assert_true(pth->mean[k] == st->mean[k] && pth->std[k] == st->std[k]);
	ts_vgg_destroy(pth);
	ts_vgg_destroy(st);
}

static void
test_pth_written(void **state)
{
	const char *path = tmp_path("w.pth");
	ts_vgg *net;
	model m;

	(void)state;
	/* plain, under a prefix, deflated, non-contiguous, shared storages, byteorder */
	for (int k = 0; k < 6; k++) {
		pth_opts o = { 0 };

		o.prefix = k == 1 ? "module." : "";
		o.deflate = k == 2;
		o.transposed = k == 3 || k == 5;
		o.shared_bias = k == 4 || k == 5;
		o.little = k == 5;
		model_make(&m, k ? 3 + k : 16, 50u + (unsigned)k);
		pth_write(path, &m, &o);
		net = ts_weights_load(path);
		if (!net)
			print_error("case %d: %s\n", k, ts_errmsg());
		check_exact(net, &m);
		assert_int_equal(net->input, TS_INPUT_TORCH);
		ts_vgg_destroy(net);
		model_free(&m);
	}
	/* by content under another name */
	model_make(&m, 2, 60);
	pth_write(tmp_path("vgg.bin"), &m, &(pth_opts){ 0 });
	net = ts_weights_load(tmp_path("vgg.bin"));
	check_exact(net, &m);
	ts_vgg_destroy(net);
	unlink(tmp_path("vgg.bin"));
	/* HalfStorage: converted, within half precision */
	pth_write(path, &m, &(pth_opts){ .storage = "HalfStorage" });
	net = ts_weights_load(path);
	if (!net)
		print_error("%s\n", ts_errmsg());
	check_shapes(net, &m);
	for (int i = 0; i < m.nconv; i++) {
		for (int k = 0; k < m.out[i] * m.in[i] * 9; k++)
			assert_float_equal(net->w[i][k], m.w[i][k], fabsf(m.w[i][k]) * 0x1p-11f + 0x1p-25f);
		for (int k = 0; k < m.out[i]; k++)
			assert_float_equal(net->b[i][k], m.b[i][k], fabsf(m.b[i][k]) * 0x1p-11f + 0x1p-25f);
	}
	assert_true(float_bits(net->w[1][3]) != float_bits(m.w[1][3])); /* really rounded */
	ts_vgg_destroy(net);
	model_free(&m);
	unlink(path);
}

static void
test_pth_corrupt(void **state)
{
	const char *path = tmp_path("bad.pth");
	unsigned char *fx;
	size_t n;
	model m;

	(void)state;
	/* the fixture truncated: at the end, in the middle, after the first entry */
	fx = read_all(FIX "narrow_vgg.pth", &n);
	for (size_t cut = 1; cut < n; cut += n / 5) {
		write_file(path, fx, n - cut);
		expect_fail(path, "not a readable zip archive");
	}
	write_file(path, fx, 0);
	expect_fail(path, "not a readable zip archive");
	/* a byte of a storage changed: libzip's CRC check */
	fx[n / 2] ^= 0x55;
	write_file(path, fx, n);
	expect_fail(path, "cannot read entry narrow_vgg/data/");
	free(fx);

	model_make(&m, 3, 70);
	pth_write(path, &m, &(pth_opts){ .no_pkl = 1 });
	expect_fail(path, "without ARCHIVE/data.pkl");
	pth_write(path, &m, &(pth_opts){ .drop_entry = 1 });
	expect_fail(path, "the archive has no entry archive/data/2 (storage 2");
	/* the storage says 107 elements, the tensor needs 108 */
	pth_write(path, &m, &(pth_opts){ .short_numel = 1 });
	expect_fail(path, "tensor features.0.weight ([4,3,3,3], storage offset 0) reaches beyond "
	                  "its storage 0 of 107 elements");
	/* the entry is 4 bytes shorter than the storage says */
	pth_write(path, &m, &(pth_opts){ .short_entry = 4 });
	expect_fail(path, "entry archive/data/0 holds 428 bytes, but storage 0 of 108 x "
	                  "FloatStorage needs 432");
	pth_write(path, &m, &(pth_opts){ .storage = "LongStorage" });
	expect_fail(path, "tensor features.0.weight is stored as torch.LongStorage");
	pth_write(path, &m, &(pth_opts){ .little = -1 });
	expect_fail(path, "archive/byteorder does not say \"little\"");
	/* the same checks of names and shapes as safetensors */
	m.in[1] = 2;
	pth_write(path, &m, &(pth_opts){ 0 });
	expect_fail(path, "features.2.weight has shape [4,2,3,3], expected input channels 4");
	m.in[1] = 4;
	m.nconv = 0; /* classifier only */
	pth_write(path, &m, &(pth_opts){ 0 });
	expect_fail(path, "no VGG-19 convolution weights");
	m.nconv = 3;
	model_free(&m);

	/* a garbage file named .pth, and stored nothing but a pickle that is no dict */
	write_file(path, "hello", 5);
	expect_fail(path, "not a readable zip archive");
	unlink(path);
}

/* A pickle with a REDUCE of (module, name) and one string argument. */
static void
reduce_pickle(buf *b, const char *mod, const char *name, const char *arg, int stack_global)
{
	memset(b, 0, sizeof *b);
	buf_byte(b, 0x80);
	buf_byte(b, stack_global ? 4 : 2);
	if (stack_global) {
		pk_str(b, mod);
		pk_str(b, name);
		buf_byte(b, 0x93);
	} else {
		pk_global(b, mod, name);
	}
	pk_str(b, arg);
	buf_byte(b, 0x85);
	buf_byte(b, 'R');
	buf_byte(b, '.');
}

static void
pickle_zip(const char *path, const buf *pkl)
{
	pth_file f;

	memset(&f, 0, sizeof f);
	f.pkl = *pkl;
	pth_zip(path, &f, &(pth_opts){ 0 });
}

/* No global but the state dict's own is accepted; none is ever called. */
static void
test_pth_globals(void **state)
{
	static const char *const evil[][2] = {
		{ "os", "system" }, { "posix", "system" }, { "builtins", "eval" },
		{ "subprocess", "Popen" }, { "torch", "load" }, { "collections", "Counter" },
	};
	const char *path = tmp_path("evil.pth"), *marker = tmp_path("pwned");
	char cmd[256], needle[64];
	model m;
	buf b;

	(void)state;
	snprintf(cmd, sizeof cmd, "touch %s", marker);
	for (size_t k = 0; k < sizeof evil / sizeof evil[0]; k++) {
		for (int sg = 0; sg < 2; sg++) {
			reduce_pickle(&b, evil[k][0], evil[k][1], cmd, sg);
			pickle_zip(path, &b);
			free(b.p);
			snprintf(needle, sizeof needle, "names the global %s.%s,", evil[k][0],
			         evil[k][1]);
			expect_fail(path, needle);
			assert_non_null(strstr(ts_errmsg(), "nothing in the file was executed"));
			assert_int_equal(access(marker, F_OK), -1);
		}
	}
	/* inside a valid state dict: a parameter's rebuild, another storage type */
	model_make(&m, 2, 80);
	pth_write(path, &m, &(pth_opts){ .rebuild = "_rebuild_parameter" });
	expect_fail(path, "names the global torch._utils._rebuild_parameter,");
	pth_write(path, &m, &(pth_opts){ .storage = "UntypedStorage" });
	expect_fail(path, "names the global torch.UntypedStorage,");
	model_free(&m);
	/* an allowed global called in a way a state dict never does */
	reduce_pickle(&b, "torch", "FloatStorage", "x", 0);
	pickle_zip(path, &b);
	free(b.p);
	expect_fail(path, "REDUCE calls torch.FloatStorage");
	unlink(path);
}

static void
test_pth_limits(void **state)
{
	const char *path = tmp_path("lim.pth");
	buf b = { 0 };

	(void)state;
	buf_byte(&b, 0x80), buf_byte(&b, 2);
	for (int i = 0; i < 65; i++)
		buf_byte(&b, '(');
	pickle_zip(path, &b);
	expect_fail(path, "more than 64 open MARKs");
	b.n = 2;
	buf_byte(&b, 'N');
	buf_byte(&b, 'r'); /* LONG_BINPUT 2^32 - 1 */
	put_le(&b, 0xffffffffu, 4);
	pickle_zip(path, &b);
	expect_fail(path, "memo index 4294967295 (the limit is");
	b.n = 2;
	buf_byte(&b, 'h'); /* BINGET of nothing */
	buf_byte(&b, 3);
	pickle_zip(path, &b);
	expect_fail(path, "memo 3 was never set");
	b.n = 2;
	buf_printf(&b, "i__main__\nX\n"); /* INST: not a state dict's opcode */
	pickle_zip(path, &b);
	expect_fail(path, "archive/data.pkl, byte 2: opcode 0x69");
	b.n = 2;
	buf_byte(&b, 'X');
	put_le(&b, 1000, 4);
	pickle_zip(path, &b);
	expect_fail(path, "a string of 1000 bytes runs past the end");
	b.n = 2;
	buf_byte(&b, '}');
	pickle_zip(path, &b);
	expect_fail(path, "the pickle ends without STOP");
	b.n = 2;
	buf_byte(&b, 'N'), buf_byte(&b, '.');
	pickle_zip(path, &b);
	expect_fail(path, "holds no dict of tensors");
	/* a stride-0 view larger than its storage */
	b.n = 0;
	{
		pth_file *f = malloc(sizeof *f);
		model m;

		assert_non_null(f);
		model_make(&m, 1, 90);
		memset(f, 0, sizeof *f);
		buf_byte(&f->pkl, 0x80), buf_byte(&f->pkl, 2), buf_byte(&f->pkl, '}');
		pth_tensor(f, &(pth_opts){ 0 }, "features.0.weight", 4,
		           (const long long[]){ 4, 3, 3, 3 }, (const long long[]){ 0, 0, 0, 0 }, 0, 1, -1);
		buf_byte(&f->pkl, 's'), buf_byte(&f->pkl, '.');
		put_le(&f->data[0], 0, 4);
		pth_zip(path, f, &(pth_opts){ 0 });
		pth_free(f);
		free(f);
		model_free(&m);
		expect_fail(path, "more elements than the storage has");
	}
	free(b.p);
	unlink(path);
}

/* PyTorch's legacy format (a bare pickle, before 1.6) stays refused with the way out. */
static void
test_pth_legacy(void **state)
{
	static const unsigned char pickle[] = { 0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46 };
	const char *b = tmp_path("old.pth");

	(void)state;
	write_file(b, pickle, sizeof pickle);
	expect_fail(b, "is a PyTorch checkpoint in the legacy format");
	assert_non_null(strstr(ts_errmsg(), "safetensors"));
	assert_null(strstr(ts_errmsg(), "protobuf"));
	unlink(b);
}

/* ---- group ------------------------------------------------------------------------- */

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tessera_weights_XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;

	(void)state;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlink(tmp_path(e->d_name));
	if (d)
		closedir(d);
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pth_fixture),
		cmocka_unit_test(test_pth_written),
		cmocka_unit_test(test_pth_corrupt),
		cmocka_unit_test(test_pth_globals),
		cmocka_unit_test(test_pth_limits),
		cmocka_unit_test(test_pth_legacy),
		cmocka_unit_test(test_st_f32_roundtrip),
		cmocka_unit_test(test_st_f16_bf16),
		cmocka_unit_test(test_st_prefix_and_short),
		cmocka_unit_test(test_st_corrupt_file),
		cmocka_unit_test(test_st_corrupt_offsets),
		cmocka_unit_test(test_st_corrupt_shapes),
		cmocka_unit_test(test_caffe_roundtrip),
		cmocka_unit_test(test_caffe_corrupt),
		cmocka_unit_test(test_nonfinite),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
