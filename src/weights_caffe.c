/* weights_caffe: the Caffe protobuf reader (src/weights.c says how both readers
 * work).  Varints are bounded to 10 bytes, every length is checked against the bytes
 * left in the enclosing message, nesting is bounded and unknown fields are skipped by
 * wire type. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/weights.h"
#include "weights_internal.h"

/* Caffe's names of the 16 convolutions. */
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
		f->val = len == 8 ? ts_w_le64(r->p) : ts_w_le32(r->p);
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
					dst[*nfloat] = ts_w_bits_float((uint32_t)f.val);
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
					dst[*nfloat + i] = ts_w_bits_float(ts_w_le32(f.data + 4 * i));
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
		if (strlen(ts_w_conv_names[i]) == name_len &&
		    !memcmp(name, ts_w_conv_names[i], name_len))
			idx = i;
	if (idx < 0)
		return 0;
	if (!is_conv) {
		ts_error("weights", "%s: layer %s (at byte %zu) is not a convolution", r->path,
		         ts_w_conv_names[idx], pb_off(r, at));
		return -1;
	}
	if (src[idx].has_w || src[idx].has_b) {
		ts_error("weights", "%s: layer %s appears twice", r->path, ts_w_conv_names[idx]);
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
		need = ts_w_shape_count(s);
		if (n != need) {
			ts_error("weights", "%s: %s blob %d has %llu floats, but its shape %s needs "
			         "%llu", r->path, ts_w_conv_names[idx], b, (unsigned long long)n,
			         ts_w_shape_str(s, sb, sizeof sb), (unsigned long long)need);
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
ts_vgg *
ts_w_load_caffe(const unsigned char *buf, size_t size, const char *path, int max_depth,
                int *nlayers)
{
	conv_src src[TS_VGG_NCONV];
	pb r;
	ts_vgg *net = NULL, *ret = NULL;
	pb_field f;
	int out_ch[TS_VGG_NCONV], nconv, k;

	memset(src, 0, sizeof src);
	*nlayers = 0;
	/* before any pointer arithmetic: an empty file is never mapped (buf NULL) */
	if (size == 0 || !buf) {
		ts_error("weights", "%s: empty file", path);
		goto cleanup;
	}
	r = (pb){ buf, buf + size, buf, path, 0, max_depth };
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
		snprintf(src[i].lname, sizeof src[i].lname, "%s", ts_w_conv_names[i]);
		snprintf(src[i].wname, sizeof src[i].wname, "%s blob 0 (weights)", ts_w_conv_names[i]);
		snprintf(src[i].bname, sizeof src[i].bname, "%s blob 1 (bias)", ts_w_conv_names[i]);
	}
	if (ts_w_check_chain(path, src, 1, &nconv, out_ch))
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
	if (ts_w_check_finite(path, net, src, 1))
		goto cleanup;
	net->input = TS_INPUT_CAFFE;
	net->mean[0] = 103.939f, net->mean[1] = 116.779f, net->mean[2] = 123.68f;
	net->std[0] = net->std[1] = net->std[2] = 1.0f;
	ret = net;
	net = NULL;
cleanup:
	ts_vgg_destroy(net);
	return ret;
}

ts_vgg *
ts_weights_caffe_buf(const unsigned char *buf, size_t size, const char *path, int max_depth)
{
	int nlayers;

	return ts_w_load_caffe(buf, size, path, max_depth, &nlayers);
}

