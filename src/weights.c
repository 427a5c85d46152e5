/* weights: load VGG-19 convolution weights from safetensors, PyTorch .pth and Caffe
 * files (the readers are weights_st.c, weights_pth.c and weights_caffe.c; this file
 * maps the files, holds the checks they share and the public entry points).
 *
 * The loaders work in two passes over a read-only mapping of the file.  The first
 * pass validates everything it reads against the bytes that are really there and
 * notes where each convolution's weights and bias lie; then the convolutions present
 * are checked to be a prefix of VGG-19's 16 that chains (3 -> out[0] -> out[1] ...);
 * only then is the network allocated and the second pass converts the values into
 * it.  The mapping lives in the page cache, so a 550 MB file never costs two heap
 * copies, and it is released before the loader returns (a .pth's storages are read
 * through libzip one at a time, each only as long as it is converted).
 *
 * Invariants: nothing is read outside [buf, buf + size); every count is checked for
 * overflow before it is multiplied; every message reads "weights: <file>: ..." and
 * names the tensor or layer where there is one.  Caffe's protobuf reader bounds
 * varints to 10 bytes, checks every length against the bytes left in the enclosing
 * message, bounds message nesting and skips unknown fields by wire type.  The .pth
 * reader never executes anything: its unpickler knows a state dict's opcodes only. */
#include "tessera/weights.h"

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "weights_internal.h"

/* ---- checks both formats share -------------------------------------------------- */

const char *
ts_w_shape_str(const shape *s, char *buf, size_t n)
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

uint64_t
ts_w_shape_count(const shape *s)
{
	uint64_t n = 1;

	for (int i = 0; i < s->ndim && i < MAX_DIMS; i++)
		if (ts_w_mul_u64(n, s->d[i], &n))
			return UINT64_MAX;
	return n;
}

/* The convolutions present must be a prefix of the 16, each with a [out,in,3,3]
 * weight and an [out] bias (Caffe's legacy [1,1,1,out] too), chaining from 3 input
 * channels.  Sets *nconv and out_ch[0..nconv). */
int
ts_w_check_chain(const char *path, const conv_src *src, int caffe, int *nconv, int *out_ch)
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
			         c->wname, ts_w_shape_str(&c->ws, sb, sizeof sb));
			return -1;
		}
		if (c->ws.d[1] != in) {
			ts_error("weights", "%s: %s has shape %s, expected input channels %llu", path,
			         c->wname, ts_w_shape_str(&c->ws, sb, sizeof sb), (unsigned long long)in);
			return -1;
		}
		bias_ok = c->bs.ndim == 1 && c->bs.d[0] == c->ws.d[0];
		if (caffe && c->bs.ndim == 4) /* legacy num, channels, height, width */
			bias_ok = c->bs.d[0] == 1 && c->bs.d[1] == 1 && c->bs.d[2] == 1 &&
			          c->bs.d[3] == c->ws.d[0];
		if (!bias_ok) {
			ts_error("weights", "%s: %s has shape %s, expected [%llu]", path, c->bname,
			         ts_w_shape_str(&c->bs, sb, sizeof sb), (unsigned long long)c->ws.d[0]);
			return -1;
		}
		in = c->ws.d[0];
		out_ch[i] = (int)in;
	}
	*nconv = n;
	return 0;
}

/* torchvision / timm index of convolution i in `features`. */
static const int torch_index[TS_VGG_NCONV] = {
	0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34,
};

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

int
ts_w_note_param(const char *path, conv_src *src, const char *name, const shape *sh, int *conv,
                int *bias, const char **prefix, size_t *prefix_len)
{
	size_t pl;
	int r = feature_param(name, conv, bias, &pl);
	conv_src *c;

	if (r <= 0) {
		if (r < 0)
			ts_error("weights", "%s: tensor %s is not a parameter of a VGG-19 "
			         "convolution (batch-norm VGG is not supported)", path, name);
		return r;
	}
	c = &src[*conv];
	if (*bias ? c->has_b : c->has_w) {
		ts_error("weights", "%s: tensors %s and %s are both the %s of convolution "
		         "features.%d", path, *bias ? c->bname : c->wname, name,
		         *bias ? "bias" : "weight", torch_index[*conv]);
		return -1;
	}
	if (*bias) {
		c->has_b = 1, c->bs = *sh;
		snprintf(c->bname, sizeof c->bname, "%s", name);
	} else {
		c->has_w = 1, c->ws = *sh;
		snprintf(c->wname, sizeof c->wname, "%s", name);
	}
	*prefix = name;
	*prefix_len = pl;
	return 1;
}

void
ts_w_name_absent(conv_src *src, const char *prefix, size_t prefix_len)
{
	int pl = (int)(prefix_len < 40 ? prefix_len : 40);

	for (int i = 0; i < TS_VGG_NCONV; i++) {
		conv_src *c = &src[i];

		snprintf(c->lname, sizeof c->lname, "%.*sfeatures.%d", pl, prefix, torch_index[i]);
		if (!c->has_w)
			snprintf(c->wname, sizeof c->wname, "%.*sfeatures.%d.weight", pl, prefix,
			         torch_index[i]);
		if (!c->has_b)
			snprintf(c->bname, sizeof c->bname, "%.*sfeatures.%d.bias", pl, prefix,
			         torch_index[i]);
	}
}

/* ---- files ----------------------------------------------------------------------- */

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

const char *const ts_w_conv_names[TS_VGG_NCONV] = {
	"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
	"conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2", "conv5_3", "conv5_4",
};

/* Every weight and bias must be finite: one NaN or infinity makes every loss NaN, and
 * the optimizer would stop at once and write the start image as if it were done. */
int
ts_w_check_finite(const char *path, const ts_vgg *net, const conv_src *src, int caffe)
{
	for (int i = 0; i < net->nconv; i++) {
		size_t nw = (size_t)net->out_ch[i] * net->in_ch[i] * 9;

		for (int b = 0; b < 2; b++) {
			const float *v = b ? net->b[i] : net->w[i];
			size_t n = b ? (size_t)net->out_ch[i] : nw, bad = 0, first = 0;

			for (size_t k = 0; k < n; k++)
				if (!isfinite(v[k]) && bad++ == 0)
					first = k;
			if (!bad)
				continue;
			ts_error("weights", "%s: %s%s%s%s%s has %zu non-finite value%s of %zu (the first "
			         "is %g at element %zu)", path, caffe ? "" : "tensor ",
			         b ? src[i].bname : src[i].wname, caffe ? "" : " (",
			         caffe ? "" : ts_w_conv_names[i], caffe ? "" : ")", bad,
			         bad == 1 ? "" : "s", n, (double)v[first], first);
			return -1;
		}
	}
	return 0;
}

/* ---- public -------------------------------------------------------------------- */

ts_vgg *
ts_weights_load_safetensors(const char *path)
{
	mapped m;
	ts_vgg *net;

	if (map_file(path, &m))
		return NULL;
	net = ts_w_load_st(m.p, m.size, path);
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
	hlen = m.size >= 8 ? ts_w_le64(m.p) : 0;
	st = m.size >= 9 && hlen <= ST_MAX_HEADER && hlen <= m.size - 8 && m.p[8] == '{';
	/* PyTorch's legacy format (torch.save before 1.6): a bare pickle (protocol 2,
	 * 0x80 0x02) followed by raw storages; not read */
	if (!st && m.size >= 2 && m.p[0] == 0x80 && m.p[1] >= 2 && m.p[1] <= 5) {
		ts_error("weights", "%s is a PyTorch checkpoint in the legacy format (a bare "
		         "pickle, torch.save before 1.6), which tessera does not read; convert it "
		         "once to safetensors: python3 -c \"import torch, safetensors.torch as s; "
		         "s.save_file(torch.load('%s'), 'vgg19.safetensors')\" and pass --weights "
		         "vgg19.safetensors (or re-save it with torch.save: a .pth of PyTorch 1.6 "
		         "and later loads directly)", path, path);
		unmap_file(&m);
		return NULL;
	}
	/* torch.save since 1.6: a zip archive; a damaged file named .pth or .pt gets the
	 * archive's message */
	if (!st && ((m.size >= 2 && !memcmp(m.p, "PK", 2)) || ends_with(path, ".pth") ||
	            ends_with(path, ".pt"))) {
		net = ts_w_load_pth(m.p, m.size, path);
		unmap_file(&m);
		return net;
	}
	/* A damaged file that is named as safetensors gets safetensors' message. */
	if (st || ends_with(path, ".safetensors"))
		net = ts_w_load_st(m.p, m.size, path);
	else if (!(net = ts_w_load_caffe(m.p, m.size, path, PB_MAX_DEPTH, &nlayers)) &&
	         !nlayers) {
		/* one message: what the Caffe reader saw, as the reason */
		char why[1024];
		const char *w = ts_errmsg();
		size_t pl = strlen(path);

		if (!strncmp(w, "weights: ", 9) && !strncmp(w + 9, path, pl) &&
		    !strncmp(w + 9 + pl, ": ", 2))
			w += 9 + pl + 2;
		snprintf(why, sizeof why, "%s", w);
		ts_error("weights", "%s: neither a safetensors file nor a Caffe model with layers "
		         "(read as Caffe: %s)", path, why);
	}
	unmap_file(&m);
	return net;
}
