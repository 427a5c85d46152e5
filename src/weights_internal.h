/* weights_internal.h: what the weight-file readers share (src/weights.c: files,
 * the checks common to both formats, the public entry points; weights_st.c:
 * safetensors; weights_caffe.c: Caffe protobuf).  Internal to the library. */
#ifndef TESSERA_WEIGHTS_INTERNAL_H
#define TESSERA_WEIGHTS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tessera/vgg.h"

#define ST_MAX_HEADER 100000000u /* the reference implementation's limit */
#define PB_MAX_DEPTH 8           /* Caffe needs 4: net, layer, blob, blob shape */
#define MAX_DIMS 8               /* dims kept for messages; more are counted only */

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

static inline uint32_t
ts_w_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t
ts_w_le64(const unsigned char *p)
{
	return (uint64_t)ts_w_le32(p) | (uint64_t)ts_w_le32(p + 4) << 32;
}

static inline float
ts_w_bits_float(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

/* Product of the dims, or -1 on overflow of uint64.  Needs all dims: callers keep the
 * running product themselves when ndim > MAX_DIMS. */
static inline int
ts_w_mul_u64(uint64_t a, uint64_t b, uint64_t *r)
{
	if (a && b > UINT64_MAX / a)
		return -1;
	*r = a * b;
	return 0;
}

/* "[d0,d1,...]" into buf [n]; returns buf. */
const char *ts_w_shape_str(const shape *s, char *buf, size_t n);
/* Product of the dims, UINT64_MAX on overflow. */
uint64_t ts_w_shape_count(const shape *s);
/* The convolutions present must be a prefix of the 16, each with a [out,in,3,3]
 * weight and an [out] bias (Caffe's legacy [1,1,1,out] too), chaining from 3 input
 * channels.  Sets *nconv and out_ch[0..nconv). */
int ts_w_check_chain(const char *path, const conv_src *src, int caffe, int *nconv,
                     int *out_ch);

/* VGG-19's convolutions by index ("conv1_1", ...). */
extern const char *const ts_w_conv_names[TS_VGG_NCONV];
/* Every value of net's weights and biases is finite; else -1 naming the file, the
 * tensor (src[i].wname / bname) and its convolution (caffe: the names say it). */
int ts_w_check_finite(const char *path, const ts_vgg *net, const conv_src *src, int caffe);

/* The network in a safetensors file held in buf [size]; path names it in messages. */
ts_vgg *ts_w_load_st(const unsigned char *buf, size_t size, const char *path);
/* The network in a Caffe model in buf [size], nesting bounded by max_depth;
 * *nlayers: the layers seen (0: probably not a Caffe model at all). */
ts_vgg *ts_w_load_caffe(const unsigned char *buf, size_t size, const char *path,
                        int max_depth, int *nlayers);
/* For tests (declared in tests/test_weights.c, not public): the Caffe loader on a
 * buffer, with the nesting bound as a parameter.  path only names the buffer in
 * messages. */
ts_vgg *ts_weights_caffe_buf(const unsigned char *buf, size_t size, const char *path,
                             int max_depth);

#endif
