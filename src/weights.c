/* weights: load VGG-19 convolution weights from safetensors and Caffe files.
 *
 * Both loaders work in two passes over a read-only mapping of the file.  The first
 * pass validates everything it reads against the bytes that are really there and
 * notes where each convolution's weights and bias lie; then the convolutions present
 * are checked to be a prefix of VGG-19's 16 that chains (3 -> out[0] -> out[1] ...);
 * only then is the network allocated and the second pass converts the values into
 * it.  The mapping lives in the page cache, so a 550 MB file never costs two heap
 * copies, and it is released before the loader returns.
 *
 * Invariants: nothing is read outside [buf, buf + size); every count is checked for
 * overflow before it is multiplied; every message reads "weights: <file>: ..." and
 * names the tensor or layer where there is one.  Caffe's protobuf reader bounds
 * varints to 10 bytes, checks every length against the bytes left in the enclosing
 * message, bounds message nesting and skips unknown fields by wire type. */
#include "tessera/weights.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"

#define ST_MAX_HEADER 100000000u /* the reference implementation's limit */
#define PB_MAX_DEPTH 8           /* Caffe needs 4: net, layer, blob, blob shape */
#define MAX_DIMS 8               /* dims kept for messages; more are counted only */

/* torchvision / timm index of conv i in `features`, and Caffe's name for it. */
static const int torch_index[TS_VGG_NCONV] = {
	0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34,
};
static const char *const caffe_names[TS_VGG_NCONV] = {
	"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
	"conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2", "conv5_3", "conv5_4",
};

typedef struct shape {
	int ndim;              /* true number of dims (may exceed MAX_DIMS) */
	uint64_t d[MAX_DIMS];  /* the first min(ndim, MAX_DIMS) dims */
} shape;

/* Where one convolution's parameters lie in the file, between the passes. */
typedef struct conv_src {
	int has_w, has_b;
	char lname[96];              /* the convolution, for messages ("features.5") */
	char wname[112], bname[112]; /* its tensors, for messages */
	shape ws, bs;                /* their shapes as the file states them */
	int wdtype, bdtype;          /* safetensors: index into dtypes[] */
	const unsigned char *w, *b;  /* safetensors: raw data; Caffe: BlobProto bytes */
	size_t wlen, blen;           /* bytes at w, b */
} conv_src;

typedef struct mapped {
	const unsigned char *p; /* [size] bytes; NULL when size == 0 */
	size_t size;
} mapped;

/* ---- shared helpers ---------------------------------------------------------- */

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static float
bits_float(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

/* IEEE binary16 -> float, exactly (every half is a float). */
static float
half_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
	float f;

	if (e == 0) {
		/* zero or subnormal: m * 2^-24, exact in float */
		f = (float)m * 0x1p-24f;
		return sign ? -f : f;
	}
	if (e == 31) /* inf or nan, payload kept */
		return bits_float(sign | 0x7f800000u | m << 13);
	return bits_float(sign | (e + 112) << 23 | m << 13); /* rebias 15 -> 127 */
}

static const char *
shape_str(const shape *s, char *buf, size_t n)
{
	size_t len = 0;
	int k = s->ndim < MAX_DIMS ? s->ndim : MAX_DIMS;

	len += (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < k && len < n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%llu", i ? "," : "",
		                        (unsigned long long)s->d[i]);
	if (s->ndim > MAX_DIMS && len < n)
		len += (size_t)snprintf(buf + len, n - len, ",...");
	if (len < n)
		snprintf(buf + len, n - len, "]");
	return buf;
}

/* Product of the dims, or -1 on overflow of uint64.  Needs all dims: callers keep the
 * running product themselves when ndim > MAX_DIMS. */
static int
mul_u64(uint64_t a, uint64_t b, uint64_t *r)
{
	if (a && b > UINT64_MAX / a)
		return -1;
	*r = a * b;
	return 0;
}

static uint64_t
shape_count(const shape *s)
{
	uint64_t n = 1;

	for (int i = 0; i < s->ndim && i < MAX_DIMS; i++)
		if (mul_u64(n, s->d[i], &n))
			return UINT64_MAX;
	return n;
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

/* Map path read-only.  The mapping is private and never written; it must be released
 * with unmap_file.  An empty file maps to p == NULL, size == 0. */
static int
map_file(const char *path, mapped *m)
{
	struct stat st;
	void *p;
	int fd = -1, ret = -1;

	m->p = NULL;
	m->size = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		ts_error_errno("weights", "cannot open \"%s\"", path);
		goto cleanup;
	}
	if (fstat(fd, &st)) {
		ts_error_errno("weights", "cannot stat \"%s\"", path);
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		ts_error("weights", "%s: not a regular file", path);
		goto cleanup;
	}
	if ((uint64_t)st.st_size > SIZE_MAX) {
		ts_error("weights", "%s: too large to map", path);
		goto cleanup;
	}
	if (st.st_size > 0) {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			ts_error_errno("weights", "cannot map \"%s\"", path);
			goto cleanup;
		}
		m->p = p;
		m->size = (size_t)st.st_size;
	}
	ret = 0;
cleanup:
	if (fd >= 0)
		close(fd);
	return ret;
}

static void
unmap_file(mapped *m)
{
	if (m->p)
		munmap((void *)m->p, m->size);
	m->p = NULL;
	m->size = 0;
}

/* The convolutions present must be a prefix of the 16, each with a [out,in,3,3]
 * weight and an [out] bias (Caffe's legacy [1,1,1,out] too), chaining from 3 input
 * channels.  Sets *nconv and out_ch[0..nconv). */
static int
check_chain(const char *path, const conv_src *src, int caffe, int *nconv, int *out_ch)
{
	char sb[160];
	uint64_t in = 3;
	int n = 0;

	while (n < TS_VGG_NCONV && (src[n].has_w || src[n].has_b))
		n++;
	if (n == 0) {
		ts_error("weights", "%s: no VGG-19 convolution weights found (expected %s)", path,
		         caffe ? "Caffe layers conv1_1, conv1_2, ..."
		               : "tensors features.0.weight, features.0.bias, ...");
		return -1;
	}
	for (int i = n + 1; i < TS_VGG_NCONV; i++) {
		if (src[i].has_w || src[i].has_b) {
			ts_error("weights", "%s: convolution %s is missing but %s is present (the "
			         "file must hold a prefix of VGG-19's 16 convolutions)",
			         path, src[n].lname, src[i].lname);
			return -1;
		}
	}
	for (int i = 0; i < n; i++) {
		const conv_src *c = &src[i];
		int bias_ok;

		if (!c->has_w || !c->has_b) {
			ts_error("weights", "%s: %s is missing", path, c->has_w ? c->bname : c->wname);
			return -1;
		}
		if (c->ws.ndim != 4 || c->ws.d[2] != 3 || c->ws.d[3] != 3 || c->ws.d[0] < 1 ||
		    c->ws.d[0] > 65536) {
			ts_error("weights", "%s: %s has shape %s, expected [out,in,3,3]", path,
			         c->wname, shape_str(&c->ws, sb, sizeof sb));
			return -1;
		}
		if (c->ws.d[1] != in) {
			ts_error("weights", "%s: %s has shape %s, expected input channels %llu", path,
			         c->wname, shape_str(&c->ws, sb, sizeof sb), (unsigned long long)in);
			return -1;
		}
		bias_ok = c->bs.ndim == 1 && c->bs.d[0] == c->ws.d[0];
		if (caffe && c->bs.ndim == 4) /* legacy num, channels, height, width */
			bias_ok = c->bs.d[0] == 1 && c->bs.d[1] == 1 && c->bs.d[2] == 1 &&
			          c->bs.d[3] == c->ws.d[0];
		if (!bias_ok) {
			ts_error("weights", "%s: %s has shape %s, expected [%llu]", path, c->bname,
			         shape_str(&c->bs, sb, sizeof sb), (unsigned long long)c->ws.d[0]);
			return -1;
		}
		in = c->ws.d[0];
		out_ch[i] = (int)in;
	}
	*nconv = n;
	return 0;
}

/* ---- safetensors --------------------------------------------------------------- */

/* Every dtype the reference implementation accepts (its sizes are needed to validate
 * the layout); only F32, F16 and BF16 can be loaded. */
enum { DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2 };
static const struct {
	const char *name;
	unsigned size;
} dtypes[] = {
	{ "F32", 4 }, { "F16", 2 }, { "BF16", 2 }, { "F64", 8 }, { "I64", 8 },
	{ "U64", 8 }, { "I32", 4 }, { "U32", 4 }, { "I16", 2 }, { "U16", 2 },
	{ "I8", 1 }, { "U8", 1 }, { "BOOL", 1 }, { "F8_E5M2", 1 }, { "F8_E4M3", 1 },
};

typedef struct st_entry {
	const char *name;   /* borrowed from the cJSON tree */
	int dtype;          /* index into dtypes[] */
	shape sh;
	uint64_t count;     /* elements */
	uint64_t begin, end; /* byte offsets into the data section */
} st_entry;

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int
json_u64(const cJSON *j, uint64_t *v)
{
	double d;

	if (!cJSON_IsNumber(j))
		return -1;
	d = j->valuedouble;
	if (!(d >= 0.0) || d > 9007199254740992.0)
		return -1;
	*v = (uint64_t)d;
	return (double)*v == d ? 0 : -1;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF), as the
 * reference requires of the header. */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], k, min;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (n - i <= k)
			return 0;
		for (unsigned j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
cmp_offsets(const void *a, const void *b)
{
	const st_entry *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* One tensor entry of the header: dtype, shape, data_offsets, and its byte size. */
static int
parse_entry(const char *path, const cJSON *j, st_entry *e)
{
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
	const cJSON *it;
	char sb[160];
	uint64_t bytes;
	size_t k;

	if (!cJSON_IsObject(j)) {
		ts_error("weights", "%s: header entry \"%s\" is not an object", path, e->name);
		return -1;
	}
	if (!cJSON_IsString(dt)) {
		ts_error("weights", "%s: tensor %s has no \"dtype\" string", path, e->name);
		return -1;
	}
	e->dtype = -1;
	for (k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
		if (!strcmp(dt->valuestring, dtypes[k].name))
			e->dtype = (int)k;
	if (e->dtype < 0) {
		ts_error("weights", "%s: tensor %s has unknown dtype \"%s\"", path, e->name,
		         dt->valuestring);
		return -1;
	}
	if (!cJSON_IsArray(sh)) {
		ts_error("weights", "%s: tensor %s has no \"shape\" array", path, e->name);
		return -1;
	}
	e->sh.ndim = 0;
	e->count = 1;
	cJSON_ArrayForEach(it, sh) {
		uint64_t d;

		if (json_u64(it, &d)) {
			ts_error("weights", "%s: tensor %s: shape holds something other than a "
			         "non-negative integer", path, e->name);
			return -1;
		}
		if (mul_u64(e->count, d, &e->count)) {
			ts_error("weights", "%s: tensor %s: shape overflows", path, e->name);
			return -1;
		}
		if (e->sh.ndim < MAX_DIMS)
			e->sh.d[e->sh.ndim] = d;
		e->sh.ndim++;
	}
	if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
	    json_u64(off->child, &e->begin) || json_u64(off->child->next, &e->end)) {
		ts_error("weights", "%s: tensor %s: \"data_offsets\" is not a pair of "
		         "non-negative integers", path, e->name);
		return -1;
	}
	if (e->begin > e->end) {
		ts_error("weights", "%s: tensor %s: data_offsets [%llu,%llu] has begin > end",
		         path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
		return -1;
	}
	if (mul_u64(e->count, dtypes[e->dtype].size, &bytes)) {
		ts_error("weights", "%s: tensor %s: byte size overflows", path, e->name);
		return -1;
	}
	if (e->end - e->begin != bytes) {
		ts_error("weights", "%s: tensor %s has %llu bytes, but %s x %s needs %llu bytes",
		         path, e->name, (unsigned long long)(e->end - e->begin),
		         dtypes[e->dtype].name, shape_str(&e->sh, sb, sizeof sb),
		         (unsigned long long)bytes);
		return -1;
	}
	return 0;
}

/* Which convolution parameter a tensor name is: [prefix.]features.N.weight|bias.
 * Returns 1 and sets *conv, *bias, *prefix_len for one; 0 for a tensor that is not
 * under `features` (ignored); -1 for one under `features` that VGG-19 has no place
 * for (batch-norm VGG, say). */
static int
feature_param(const char *name, int *conv, int *bias, size_t *prefix_len)
{
	const char *p = name;

	while ((p = strstr(p, "features."))) {
		const char *q = p + 9;
		int idx = 0, nd = 0;

		if (p != name && p[-1] != '.') {
			p++;
			continue;
		}
		while (*q >= '0' && *q <= '9' && nd < 4)
			idx = idx * 10 + (*q++ - '0'), nd++;
		if (nd == 0 || *q != '.' || strchr(q + 1, '.')) {
			p++;
			continue;
		}
		*prefix_len = (size_t)(p - name);
		*bias = !strcmp(q + 1, "bias");
		if (!*bias && strcmp(q + 1, "weight"))
			return -1;
		for (int i = 0; i < TS_VGG_NCONV; i++) {
			if (torch_index[i] == idx) {
				*conv = i;
				return 1;
			}
		}
		return -1;
	}
	return 0;
}

static void
convert(float *dst, const unsigned char *src, size_t count, int dtype)
{
	size_t i;

	if (dtype == DT_F32)
		for (i = 0; i < count; i++)
			dst[i] = bits_float(le32(src + 4 * i));
	else if (dtype == DT_F16)
		for (i = 0; i < count; i++)
			dst[i] = half_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
	else
		for (i = 0; i < count; i++)
			dst[i] = bits_float((uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16);
}

static ts_vgg *
load_st(const unsigned char *buf, size_t size, const char *path)
{
	conv_src src[TS_VGG_NCONV];
	const char **names = NULL;
	st_entry *ent = NULL;
	char *hdr = NULL;
	cJSON *root = NULL;
	const cJSON *it;
	const char *parse_end = NULL;
	ts_vgg *net = NULL, *ret = NULL;
	uint64_t hlen, data_len, expect = 0;
	size_t nkeys = 0, nent = 0, prefix_len = 0;
	const char *prefix = "";
	int out_ch[TS_VGG_NCONV], nconv;

	memset(src, 0, sizeof src);
	if (size < 8) {
		ts_error("weights", "%s: %zu bytes, too small for a safetensors file (truncated?)",
		         path, size);
		goto cleanup;
	}
	hlen = le64(buf);
	if (hlen > ST_MAX_HEADER) {
		ts_error("weights", "%s: safetensors header length %llu exceeds the limit of %u",
		         path, (unsigned long long)hlen, ST_MAX_HEADER);
		goto cleanup;
	}
	if (hlen > size - 8) {
		ts_error("weights", "%s: safetensors header length %llu exceeds the file (%zu "
		         "bytes after the length; truncated?)", path, (unsigned long long)hlen,
		         size - 8);
		goto cleanup;
	}
	/* A NUL-terminated copy for cJSON; the header is small next to the data. */
	if (!(hdr = malloc((size_t)hlen + 1))) {
		ts_error("weights", "%s: out of memory for the header", path);
		goto cleanup;
	}
	memcpy(hdr, buf + 8, (size_t)hlen);
	hdr[hlen] = '\0';
	if (hlen == 0 || hdr[0] != '{') {
		ts_error("weights", "%s: safetensors header does not start with '{'", path);
		goto cleanup;
	}
	if (memchr(hdr, '\0', (size_t)hlen) || !utf8_valid((unsigned char *)hdr, (size_t)hlen)) {
		ts_error("weights", "%s: safetensors header is not valid UTF-8 text", path);
		goto cleanup;
	}
	root = cJSON_ParseWithOpts(hdr, &parse_end, 0);
	if (root && parse_end)
		parse_end += strspn(parse_end, " \t\r\n"); /* the format pads with spaces */
	if (!root || !cJSON_IsObject(root) || !parse_end || *parse_end) {
		const char *at = root ? parse_end : cJSON_GetErrorPtr();

		ts_error("weights", "%s: safetensors header is not valid JSON (near byte %ld of "
		         "the header)", path, at ? (long)(at - hdr) : 0L);
		goto cleanup;
	}

	/* Names: cJSON keeps duplicate keys in the list, so sort and compare. */
	cJSON_ArrayForEach(it, root)
		nkeys++;
	if (!(names = malloc((nkeys + 1) * sizeof *names)) ||
	    !(ent = malloc((nkeys + 1) * sizeof *ent))) {
		ts_error("weights", "%s: out of memory for %zu header entries", path, nkeys);
		goto cleanup;
	}
	nkeys = 0;
	cJSON_ArrayForEach(it, root)
		names[nkeys++] = it->string;
	qsort(names, nkeys, sizeof *names, cmp_name);
	for (size_t i = 1; i < nkeys; i++) {
		if (!strcmp(names[i - 1], names[i])) {
			ts_error("weights", "%s: duplicate tensor name \"%s\" in the header", path,
			         names[i]);
			goto cleanup;
		}
	}

	cJSON_ArrayForEach(it, root) {
		if (!strcmp(it->string, "__metadata__")) {
			const cJSON *kv;

			if (!cJSON_IsObject(it)) {
				ts_error("weights", "%s: __metadata__ is not an object", path);
				goto cleanup;
			}
			cJSON_ArrayForEach(kv, it) {
				if (!cJSON_IsString(kv)) {
					ts_error("weights", "%s: __metadata__ value \"%s\" is not a "
					         "string", path, kv->string);
					goto cleanup;
				}
			}
			continue;
		}
		ent[nent].name = it->string;
		if (parse_entry(path, it, &ent[nent]))
			goto cleanup;
		nent++;
	}

	/* Layout: sorted by offsets, the tensors tile the data section from 0 exactly. */
	qsort(ent, nent, sizeof *ent, cmp_offsets);
	for (size_t i = 0; i < nent; i++) {
		if (ent[i].begin != expect) {
			ts_error("weights", "%s: tensor %s starts at byte %llu of the data but the "
			         "previous tensor ends at %llu (%s)", path, ent[i].name,
			         (unsigned long long)ent[i].begin, (unsigned long long)expect,
			         ent[i].begin > expect ? "gap" : "overlap");
			goto cleanup;
		}
		expect = ent[i].end;
	}
	data_len = size - 8 - hlen;
	if (expect > data_len) {
		ts_error("weights", "%s: tensor data ends at byte %llu, beyond the %llu bytes "
		         "after the header (truncated file?)", path, (unsigned long long)expect,
		         (unsigned long long)data_len);
		goto cleanup;
	}
	if (expect < data_len) {
		ts_error("weights", "%s: %llu trailing bytes after the last tensor", path,
		         (unsigned long long)(data_len - expect));
		goto cleanup;
	}

	/* Map names to convolutions. */
	for (size_t i = 0; i < nent; i++) {
		const st_entry *e = &ent[i];
		size_t pl;
		int conv, bias, r = feature_param(e->name, &conv, &bias, &pl);
		conv_src *c;

		if (r == 0)
			continue;
		if (r < 0) {
			ts_error("weights", "%s: tensor %s is not a parameter of a VGG-19 "
			         "convolution (batch-norm VGG is not supported)", path, e->name);
			goto cleanup;
		}
		c = &src[conv];
		if (bias ? c->has_b : c->has_w) {
			ts_error("weights", "%s: tensors %s and %s are both the %s of convolution "
			         "features.%d", path, bias ? c->bname : c->wname, e->name,
			         bias ? "bias" : "weight", torch_index[conv]);
			goto cleanup;
		}
		if (e->dtype != DT_F32 && e->dtype != DT_F16 && e->dtype != DT_BF16) {
			ts_error("weights", "%s: tensor %s has dtype %s (supported: F32, F16, BF16)",
			         path, e->name, dtypes[e->dtype].name);
			goto cleanup;
		}
		if (bias) {
			c->has_b = 1, c->bs = e->sh, c->bdtype = e->dtype;
			c->b = buf + 8 + hlen + e->begin, c->blen = (size_t)(e->end - e->begin);
			snprintf(c->bname, sizeof c->bname, "%s", e->name);
		} else {
			c->has_w = 1, c->ws = e->sh, c->wdtype = e->dtype;
			c->w = buf + 8 + hlen + e->begin, c->wlen = (size_t)(e->end - e->begin);
			snprintf(c->wname, sizeof c->wname, "%s", e->name);
		}
		prefix = e->name;
		prefix_len = pl;
	}
	/* Names of what is absent, with the prefix the file uses. */
	for (int i = 0; i < TS_VGG_NCONV; i++) {
		conv_src *c = &src[i];
		int pl = (int)(prefix_len < 40 ? prefix_len : 40);

		snprintf(c->lname, sizeof c->lname, "%.*sfeatures.%d", pl, prefix, torch_index[i]);
		if (!c->has_w)
			snprintf(c->wname, sizeof c->wname, "%.*sfeatures.%d.weight", pl, prefix,
			         torch_index[i]);
		if (!c->has_b)
			snprintf(c->bname, sizeof c->bname, "%.*sfeatures.%d.bias", pl, prefix,
			         torch_index[i]);
	}
	if (check_chain(path, src, 0, &nconv, out_ch))
		goto cleanup;
	if (!(net = ts_vgg_alloc(nconv, out_ch)))
		goto cleanup;
	for (int i = 0; i < nconv; i++) {
		size_t nw = (size_t)net->out_ch[i] * net->in_ch[i] * 9;

		/* the layout check made wlen = count x dtype size */
		TS_ASSERT(src[i].wlen == nw * dtypes[src[i].wdtype].size);
		TS_ASSERT(src[i].blen == (size_t)net->out_ch[i] * dtypes[src[i].bdtype].size);
		convert(net->w[i], src[i].w, nw, src[i].wdtype);
		convert(net->b[i], src[i].b, (size_t)net->out_ch[i], src[i].bdtype);
	}
	net->input = TS_INPUT_TORCH;
	net->mean[0] = 0.485f, net->mean[1] = 0.456f, net->mean[2] = 0.406f;
	net->std[0] = 0.229f, net->std[1] = 0.224f, net->std[2] = 0.225f;
	ret = net;
	net = NULL;
cleanup:
	ts_vgg_destroy(net);
	cJSON_Delete(root);
	free(hdr);
	free(names);
	free(ent);
	return ret;
}

/* ---- Caffe protobuf ------------------------------------------------------------ */

/* A window of one message's bytes. */
typedef struct pb {
	const unsigned char *p, *end; /* the unread part of this message */
	const unsigned char *base;    /* the file's first byte, for offsets in messages */
	const char *path;
	int depth, max_depth;         /* this message's nesting level, and the bound */
} pb;

/* One field as read: value for wire types 0, 1, 5; sub for 2. */
typedef struct pb_field {
	uint32_t num;
	int wt;
	uint64_t val;
	const unsigned char *at; /* where the field's tag starts */
	const unsigned char *data;
	size_t len;
} pb_field;

static size_t
pb_off(const pb *r, const unsigned char *p)
{
	return (size_t)(p - r->base);
}

static int
pb_varint(pb *r, uint64_t *out)
{
	const unsigned char *start = r->p;
	uint64_t v = 0;

	for (int i = 0; i < 10; i++) {
		unsigned b;

		if (r->p >= r->end) {
			ts_error("weights", "%s: varint at byte %zu runs past the end of its message "
			         "(truncated file?)", r->path, pb_off(r, start));
			return -1;
		}
		b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	ts_error("weights", "%s: varint at byte %zu is longer than 10 bytes", r->path,
	         pb_off(r, start));
	return -1;
}

/* Read the next field of r.  Returns 1 with *f filled, 0 at the end, -1 on error. */
static int
pb_next(pb *r, pb_field *f)
{
	uint64_t tag, len;

	if (r->p == r->end)
		return 0;
	f->at = r->p;
	if (pb_varint(r, &tag))
		return -1;
	f->num = (uint32_t)(tag >> 3);
	f->wt = (int)(tag & 7);
	if (tag >> 3 == 0 || tag >> 3 > 0x1fffffff) {
		ts_error("weights", "%s: invalid protobuf field number %llu at byte %zu", r->path,
		         (unsigned long long)(tag >> 3), pb_off(r, f->at));
		return -1;
	}
	switch (f->wt) {
	case 0:
		return pb_varint(r, &f->val) ? -1 : 1;
	case 1:
	case 5:
		len = f->wt == 1 ? 8 : 4;
		if ((size_t)(r->end - r->p) < len) {
			ts_error("weights", "%s: field %u at byte %zu runs past the end of its "
			         "message (truncated file?)", r->path, f->num, pb_off(r, f->at));
			return -1;
		}
		f->val = len == 8 ? le64(r->p) : le32(r->p);
		r->p += len;
		return 1;
	case 2:
		if (pb_varint(r, &len))
			return -1;
		if (len > (uint64_t)(r->end - r->p)) {
			ts_error("weights", "%s: field %u at byte %zu has length %llu, which runs "
			         "past the end of its message (%zu bytes left; truncated file?)",
			         r->path, f->num, pb_off(r, f->at), (unsigned long long)len,
			         (size_t)(r->end - r->p));
			return -1;
		}
		f->data = r->p;
		f->len = (size_t)len;
		r->p += len;
		return 1;
	default:
		ts_error("weights", "%s: field %u at byte %zu has wire type %d (%s)", r->path,
		         f->num, pb_off(r, f->at), f->wt,
		         f->wt == 3 || f->wt == 4 ? "groups are not supported" : "invalid");
		return -1;
	}
}

/* Enter the sub-message a length-delimited field holds. */
static int
pb_enter(const pb *r, const pb_field *f, pb *sub)
{
	if (r->depth + 1 > r->max_depth) {
		ts_error("weights", "%s: protobuf nesting deeper than %d levels at byte %zu",
		         r->path, r->max_depth, pb_off(r, f->at));
		return -1;
	}
	*sub = *r;
	sub->p = f->data;
	sub->end = f->data + f->len;
	sub->depth = r->depth + 1;
	return 0;
}

static int
pb_expect(const pb *r, const pb_field *f, int wt, const char *what)
{
	if (f->wt == wt)
		return 0;
	ts_error("weights", "%s: %s (field %u) at byte %zu has wire type %d, expected %d",
	         r->path, what, f->num, pb_off(r, f->at), f->wt, wt);
	return -1;
}

/* BlobShape: dim = 1, int64, packed or not. */
static int
blob_shape(pb *r, shape *s)
{
	pb_field f;
	int k;

	s->ndim = 0;
	while ((k = pb_next(r, &f)) == 1) {
		pb packed;
		uint64_t d;

		if (f.num != 1)
			continue;
		if (f.wt == 0) {
			d = f.val;
			if ((int64_t)d < 0)
				goto negative;
			if (s->ndim < MAX_DIMS)
				s->d[s->ndim] = d;
			s->ndim++;
			continue;
		}
		if (pb_expect(r, &f, 2, "BlobShape.dim"))
			return -1;
		/* a packed run of varints is not a message: no nesting level */
		packed = *r;
		packed.p = f.data;
		packed.end = f.data + f.len;
		while (packed.p < packed.end) {
			if (pb_varint(&packed, &d))
				return -1;
			if ((int64_t)d < 0)
				goto negative;
			if (s->ndim < MAX_DIMS)
				s->d[s->ndim] = d;
			s->ndim++;
		}
	}
	return k;
negative:
	ts_error("weights", "%s: negative blob dimension in the message at byte %zu", r->path,
	         pb_off(r, f.at));
	return -1;
}

/* BlobProto: the shape (legacy num/channels/height/width win over `shape`, as in
 * Caffe) and the number of floats in `data`; with dst, also the floats themselves
 * (cap of them; the caller has checked the count). */
static int
blob_scan(pb *r, shape *s, uint64_t *nfloat, float *dst, size_t cap)
{
	uint64_t legacy[4] = { 0, 0, 0, 0 };
	shape fs = { 0, { 0 } };
	pb_field f;
	int has_legacy = 0, k;

	*nfloat = 0;
	while ((k = pb_next(r, &f)) == 1) {
		pb sub;

		switch (f.num) {
		case 1: case 2: case 3: case 4:
			if (pb_expect(r, &f, 0, "BlobProto legacy dimension"))
				return -1;
			if ((int64_t)f.val < 0 || f.val > INT32_MAX) {
				ts_error("weights", "%s: negative blob dimension at byte %zu", r->path,
				         pb_off(r, f.at));
				return -1;
			}
			legacy[f.num - 1] = f.val;
			has_legacy = 1;
			break;
		case 5:
			if (f.wt == 5) {
				if (dst && *nfloat < cap)
					dst[*nfloat] = bits_float((uint32_t)f.val);
				(*nfloat)++;
				break;
			}
			if (pb_expect(r, &f, 2, "BlobProto.data"))
				return -1;
			if (f.len % 4) {
				ts_error("weights", "%s: packed float data at byte %zu has %zu bytes, "
				         "not a multiple of 4", r->path, pb_off(r, f.at), f.len);
				return -1;
			}
			if (dst)
				for (size_t i = 0; i < f.len / 4 && *nfloat + i < cap; i++)
					dst[*nfloat + i] = bits_float(le32(f.data + 4 * i));
			*nfloat += f.len / 4;
			break;
		case 7:
			if (pb_expect(r, &f, 2, "BlobProto.shape") || pb_enter(r, &f, &sub) ||
			    blob_shape(&sub, &fs))
				return -1;
			break;
		default: /* diff, double data: not ours */
			break;
		}
	}
	if (k < 0)
		return -1;
	if (has_legacy) {
		s->ndim = 4;
		for (int i = 0; i < 4; i++)
			s->d[i] = legacy[i];
	} else {
		*s = fs;
	}
	return 0;
}

/* One layer, new (LayerParameter: name 1, type 2 string, blobs 7) or V1
 * (V1LayerParameter: name 4, type 5 enum with CONVOLUTION = 4, blobs 6).  Notes the
 * blobs of the convolutions VGG-19 has; others are skipped unread. */
static int
layer_scan(pb *r, int v1, conv_src *src)
{
	const unsigned name_f = v1 ? 4 : 1, type_f = v1 ? 5 : 2, blobs_f = v1 ? 6 : 7;
	const unsigned char *name = NULL, *blob[2] = { NULL, NULL };
	size_t name_len = 0, blob_len[2] = { 0, 0 };
	const unsigned char *at = r->p;
	int is_conv = 0, nblobs = 0, k, idx = -1;
	pb_field f;

	while ((k = pb_next(r, &f)) == 1) {
		if (f.num == name_f) {
			if (pb_expect(r, &f, 2, "layer name"))
				return -1;
			name = f.data, name_len = f.len;
		} else if (f.num == type_f) {
			if (pb_expect(r, &f, v1 ? 0 : 2, "layer type"))
				return -1;
			is_conv = v1 ? f.val == 4
			             : f.len == 11 && !memcmp(f.data, "Convolution", 11);
		} else if (f.num == blobs_f) {
			if (pb_expect(r, &f, 2, "layer blob"))
				return -1;
			if (nblobs < 2)
				blob[nblobs] = f.data, blob_len[nblobs] = f.len;
			nblobs++;
		}
	}
	if (k < 0)
		return -1;
	for (int i = 0; i < TS_VGG_NCONV && name; i++)
		if (strlen(caffe_names[i]) == name_len && !memcmp(name, caffe_names[i], name_len))
			idx = i;
	if (idx < 0)
		return 0;
	if (!is_conv) {
		ts_error("weights", "%s: layer %s (at byte %zu) is not a convolution", r->path,
		         caffe_names[idx], pb_off(r, at));
		return -1;
	}
	if (src[idx].has_w || src[idx].has_b) {
		ts_error("weights", "%s: layer %s appears twice", r->path, caffe_names[idx]);
		return -1;
	}
	for (int b = 0; b < 2 && b < nblobs; b++) {
		pb_field bf = { 0, 2, 0, blob[b], blob[b], blob_len[b] };
		shape *s = b ? &src[idx].bs : &src[idx].ws;
		uint64_t n, need;
		char sb[160];
		pb sub;

		if (pb_enter(r, &bf, &sub) || blob_scan(&sub, s, &n, NULL, 0))
			return -1;
		need = shape_count(s);
		if (n != need) {
			ts_error("weights", "%s: %s blob %d has %llu floats, but its shape %s needs "
			         "%llu", r->path, caffe_names[idx], b, (unsigned long long)n,
			         shape_str(s, sb, sizeof sb), (unsigned long long)need);
			return -1;
		}
		if (b == 0)
			src[idx].has_w = 1, src[idx].w = blob[0], src[idx].wlen = blob_len[0];
		else
			src[idx].has_b = 1, src[idx].b = blob[1], src[idx].blen = blob_len[1];
	}
	return 0;
}

/* The Caffe loader on a buffer.  *nlayers counts the layers seen (0 suggests the file
 * is no Caffe model at all). */
static ts_vgg *
load_caffe(const unsigned char *buf, size_t size, const char *path, int max_depth,
           int *nlayers)
{
	conv_src src[TS_VGG_NCONV];
	pb r = { buf, buf + size, buf, path, 0, max_depth };
	ts_vgg *net = NULL, *ret = NULL;
	pb_field f;
	int out_ch[TS_VGG_NCONV], nconv, k;

	memset(src, 0, sizeof src);
	*nlayers = 0;
	if (size == 0) {
		ts_error("weights", "%s: empty file", path);
		goto cleanup;
	}
	/* NetParameter: layer = 100 (new format), layers = 2 (V1). */
	while ((k = pb_next(&r, &f)) == 1) {
		pb sub;

		if (f.num != 100 && f.num != 2)
			continue;
		(*nlayers)++;
		if (pb_expect(&r, &f, 2, f.num == 100 ? "NetParameter.layer" : "NetParameter.layers") ||
		    pb_enter(&r, &f, &sub) || layer_scan(&sub, f.num == 2, src))
			goto cleanup;
	}
	if (k < 0)
		goto cleanup;
	for (int i = 0; i < TS_VGG_NCONV; i++) {
		snprintf(src[i].lname, sizeof src[i].lname, "%s", caffe_names[i]);
		snprintf(src[i].wname, sizeof src[i].wname, "%s blob 0 (weights)", caffe_names[i]);
		snprintf(src[i].bname, sizeof src[i].bname, "%s blob 1 (bias)", caffe_names[i]);
	}
	if (check_chain(path, src, 1, &nconv, out_ch))
		goto cleanup;
	if (!(net = ts_vgg_alloc(nconv, out_ch)))
		goto cleanup;
	for (int i = 0; i < nconv; i++) {
		/* blobs at depth 2 passed pb_enter in the first pass */
		pb wb = { src[i].w, src[i].w + src[i].wlen, buf, path, 2, max_depth };
		pb bb = { src[i].b, src[i].b + src[i].blen, buf, path, 2, max_depth };
		size_t nw = (size_t)net->out_ch[i] * net->in_ch[i] * 9;
		uint64_t n;
		shape s;

		if (blob_scan(&wb, &s, &n, net->w[i], nw) ||
		    blob_scan(&bb, &s, &n, net->b[i], (size_t)net->out_ch[i]))
			goto cleanup;
	}
	net->input = TS_INPUT_CAFFE;
	net->mean[0] = 103.939f, net->mean[1] = 116.779f, net->mean[2] = 123.68f;
	net->std[0] = net->std[1] = net->std[2] = 1.0f;
	ret = net;
	net = NULL;
cleanup:
	ts_vgg_destroy(net);
	return ret;
}

/* For tests (declared in tests/test_weights.c, not public): the Caffe loader on a
 * buffer, with the nesting bound as a parameter.  path only names the buffer in
 * messages. */
ts_vgg *ts_weights_caffe_buf(const unsigned char *buf, size_t size, const char *path,
                             int max_depth);

ts_vgg *
ts_weights_caffe_buf(const unsigned char *buf, size_t size, const char *path, int max_depth)
{
	int nlayers;

	return load_caffe(buf, size, path, max_depth, &nlayers);
}

/* ---- public -------------------------------------------------------------------- */

ts_vgg *
ts_weights_load_safetensors(const char *path)
{
	mapped m;
	ts_vgg *net;

	if (map_file(path, &m))
		return NULL;
	net = load_st(m.p, m.size, path);
	unmap_file(&m);
	return net;
}

ts_vgg *
ts_weights_load_caffe(const char *path)
{
	mapped m;
	ts_vgg *net;

	if (map_file(path, &m))
		return NULL;
	net = ts_weights_caffe_buf(m.p, m.size, path, PB_MAX_DEPTH);
	unmap_file(&m);
	return net;
}

ts_vgg *
ts_weights_load(const char *path)
{
	mapped m;
	ts_vgg *net;
	uint64_t hlen;
	int st, nlayers;

	if (map_file(path, &m))
		return NULL;
	hlen = m.size >= 8 ? le64(m.p) : 0;
	st = m.size >= 9 && hlen <= ST_MAX_HEADER && hlen <= m.size - 8 && m.p[8] == '{';
	/* A damaged file that is named as safetensors gets safetensors' message. */
	if (st || ends_with(path, ".safetensors"))
		net = load_st(m.p, m.size, path);
	else if (!(net = load_caffe(m.p, m.size, path, PB_MAX_DEPTH, &nlayers)) && !nlayers)
		ts_error_append("neither a safetensors file nor a Caffe model with layers");
	unmap_file(&m);
	return net;
}
