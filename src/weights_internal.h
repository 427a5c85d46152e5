/* weights_internal.h: what the weight-file readers share (src/weights.c: files,
 * the checks common to all formats, the public entry points; weights_st.c:
 * safetensors; weights_pth.c: PyTorch's torch.save zip archives; weights_caffe.c:
 * Caffe protobuf).  Internal to the library. */
#ifndef TESSERA_WEIGHTS_INTERNAL_H
#define TESSERA_WEIGHTS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tessera/vgg.h"

#define ST_MAX_HEADER 100000000u /* the reference implementation's limit */
#define PB_MAX_DEPTH 8           /* Caffe needs 4: net, layer, blob, blob shape */
#define MAX_DIMS 8               /* dims kept for messages; more are counted only */

/* Bounds of the .pth reader (weights_pth.c, weights_pickle.c).  VGG-19's state dict
 * in torchvision's layout (classifier included) pickles to about 5 KB: some 1600
 * opcodes, memo indices up to about 410, marks 3 deep. */
#define PTH_MAX_PICKLE (16u << 20) /* bytes of data.pkl */
#define PTH_MAX_OBJECTS (1u << 20) /* objects the unpickler builds, tuple items too */
#define PTH_MAX_MEMO (1u << 20)    /* highest memo index + 1 */
#define PTH_MAX_STACK (1u << 16)   /* values on the stack */
#define PTH_MAX_MARKS 64           /* open MARKs */
#define PTH_MAX_NEST 4             /* dicts in the state dict ({"model": {...}}) */
#define PTH_MAX_NAME 512           /* bytes of a tensor's dotted name */

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

/* Records tensor name (shape sh) in src when it names a parameter of a VGG-19
 * convolution, [prefix.]features.N.weight|bias: returns 1 and sets *conv, *bias,
 * *prefix (name) and *prefix_len; 0 for a tensor outside `features` (ignored); -1
 * with a message for one VGG-19 has no place for (batch-norm VGG) or a second tensor
 * for the same parameter.  (weights_pth.c uses it; weights_st.c still has a copy of
 * its own of the same mapping and messages.) */
int ts_w_note_param(const char *path, conv_src *src, const char *name, const shape *sh,
                    int *conv, int *bias, const char **prefix, size_t *prefix_len);
/* src[i].lname for every convolution, wname / bname for the absent parameters, as
 * the file would name them (with its prefix, prefix_len bytes of prefix). */
void ts_w_name_absent(conv_src *src, const char *prefix, size_t prefix_len);

/* VGG-19's convolutions by index ("conv1_1", ...). */
extern const char *const ts_w_conv_names[TS_VGG_NCONV];
/* Every value of net's weights and biases is finite; else -1 naming the file, the
 * tensor (src[i].wname / bname) and its convolution (caffe: the names say it). */
int ts_w_check_finite(const char *path, const ts_vgg *net, const conv_src *src, int caffe);

/* The network in a safetensors file held in buf [size]; path names it in messages. */
ts_vgg *ts_w_load_st(const unsigned char *buf, size_t size, const char *path);
/* The network in a torch.save zip archive (PyTorch 1.6 and later) held in buf
 * [size]; path names it in messages.  Nothing in the file is executed: data.pkl is
 * read by a restricted unpickler that knows only what a state dict of tensors needs
 * and refuses every other global. */
ts_vgg *ts_w_load_pth(const unsigned char *buf, size_t size, const char *path);
/* The network in a Caffe model in buf [size], nesting bounded by max_depth;
 * *nlayers: the layers seen (0: probably not a Caffe model at all). */
ts_vgg *ts_w_load_caffe(const unsigned char *buf, size_t size, const char *path,
                        int max_depth, int *nlayers);
/* For tests (declared in tests/test_weights.c, not public): the Caffe loader on a
 * buffer, with the nesting bound as a parameter.  path only names the buffer in
 * messages. */
ts_vgg *ts_weights_caffe_buf(const unsigned char *buf, size_t size, const char *path,
                             int max_depth);

/* ---- weights_pickle.c: the restricted unpickler of .pth files ---------------------- */

/* Element types of torch's storages; only the first three are loaded. */
enum { PK_F32, PK_F16, PK_BF16, PK_OTHER };
/* The globals a state dict names; storage type k is G_STORAGE + k. */
enum { G_ODICT, G_REBUILD, G_STORAGE };

typedef struct pk_storage_type {
	const char *name; /* "FloatStorage", ... (module torch) */
	unsigned size;    /* bytes per element */
	int dtype;        /* PK_* */
} pk_storage_type;

/* torch's storage types (FloatStorage, HalfStorage, BFloat16Storage, then the
 * integer, double and bool ones, which are names only). */
extern const pk_storage_type ts_w_storage_types[];

enum { V_NONE, V_BOOL, V_INT, V_STR, V_TUPLE, V_DICT, V_PAIR, V_GLOBAL, V_STORAGE,
       V_TENSOR };

/* One value.  V_BOOL, V_INT: v.  V_STR: the bytes at pickle + v, x long.  V_TUPLE:
 * kids[x .. x + y).  V_DICT: pairs x (first) .. y (last), -1 when empty.  V_PAIR: key
 * x, value y, next pair z.  V_GLOBAL: v is G_*.  V_STORAGE: x indexes st[].
 * V_TENSOR: storage value x, size tuple y, stride tuple z, storage offset v. */
typedef struct pk_value {
	int kind;
	int32_t x, y, z;
	int64_t v;
} pk_value;

typedef struct pk_storage {
	char key[32];      /* the entry is ARCHIVE/data/<key> */
	int type;          /* index into ts_w_storage_types[] */
	uint64_t numel;    /* elements, as the pickle states */
} pk_storage;

typedef struct unpickler {
	const char *path, *entry;  /* for messages: the file, "ARCHIVE/data.pkl" */
	const unsigned char *p;    /* the pickle [n] */
	size_t n, pos;
	pk_value *val;             /* [nval] of cap */
	size_t nval, valcap;
	int32_t *kids;             /* tuple items [nkids] of cap */
	size_t nkids, kidcap;
	int32_t *stack;            /* [PTH_MAX_STACK] */
	size_t sp;
	size_t marks[PTH_MAX_MARKS];
	int nmarks;
	int32_t *memo;             /* [memocap], -1: unset */
	size_t memocap, nmemo;
	pk_storage *st;            /* [nst] of cap */
	size_t nst, stcap;
} unpickler;


/* Unpickles u->p [u->n] (u zeroed but for path, entry, p, n; u->stack allocated with
 * PTH_MAX_STACK entries): *root gets the value STOP returns.  -1 with a message
 * naming u->path, u->entry and the byte.  ts_w_pickle_fini frees u's arrays either
 * way. */
int ts_w_unpickle(unpickler *u, int32_t *root);
void ts_w_pickle_fini(unpickler *u);
/* "weights: FILE: ARCHIVE/data.pkl, byte AT: message" (at SIZE_MAX: without the
 * byte); returns -1. */
int ts_w_pk_error(const unpickler *u, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Room for k more elements of size es in *arr (n used of *cap), up to max in all;
 * -1 beyond max or out of memory (*arr unchanged). */
int ts_w_pk_grow(void **arr, size_t *cap, size_t n, size_t k, size_t es, size_t max);

#endif
