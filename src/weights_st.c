/* weights_st: the safetensors reader (src/weights.c says how both readers work: two
 * passes over a read-only mapping, everything validated before anything is
 * allocated). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/weights.h"
#include "weights_internal.h"

/* torchvision / timm index of conv i in `features`. */
static const int torch_index[TS_VGG_NCONV] = {
	0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34,
};

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
		return ts_w_bits_float(sign | 0x7f800000u | m << 13);
	return ts_w_bits_float(sign | (e + 112) << 23 | m << 13); /* rebias 15 -> 127 */
}

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
		if (ts_w_mul_u64(e->count, d, &e->count)) {
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
	if (ts_w_mul_u64(e->count, dtypes[e->dtype].size, &bytes)) {
		ts_error("weights", "%s: tensor %s: byte size overflows", path, e->name);
		return -1;
	}
	if (e->end - e->begin != bytes) {
		ts_error("weights", "%s: tensor %s has %llu bytes, but %s x %s needs %llu bytes",
		         path, e->name, (unsigned long long)(e->end - e->begin),
		         dtypes[e->dtype].name, ts_w_shape_str(&e->sh, sb, sizeof sb),
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
			dst[i] = ts_w_bits_float(ts_w_le32(src + 4 * i));
	else if (dtype == DT_F16)
		for (i = 0; i < count; i++)
			dst[i] = half_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
	else
		for (i = 0; i < count; i++)
			dst[i] = ts_w_bits_float((uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16);
}

ts_vgg *
ts_w_load_st(const unsigned char *buf, size_t size, const char *path)
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
	hlen = ts_w_le64(buf);
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
	if (ts_w_check_chain(path, src, 0, &nconv, out_ch))
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
	if (ts_w_check_finite(path, net, src, 0))
		goto cleanup;
	/* input mode TORCH with ImageNet mean/std: ts_vgg_alloc's default */
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

