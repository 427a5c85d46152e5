/* weights_pth: PyTorch's own files, as torch.save writes them since PyTorch 1.6: a
 * zip archive (read through libzip) holding ARCHIVE/data.pkl, the pickled state dict
 * (read by weights_pickle.c's restricted unpickler: nothing is executed), and one
 * entry ARCHIVE/data/KEY per storage (its elements back to back, little-endian,
 * usually stored uncompressed).  src/weights.c says how every reader works: validate
 * everything first, then allocate and convert.
 *
 * Invariants: every tensor's offset, sizes and strides are checked, without
 * overflow, to stay inside its storage, and its element count not to exceed the
 * storage's (an expanded, stride-0 view could otherwise make a huge network out of a
 * few bytes); every storage's entry must exist and hold exactly numel elements, and a
 * compressed one no more than deflate can give from its bytes.  Strides are honoured:
 * a non-contiguous tensor is gathered element by element.  Storages are read through
 * libzip (which checks their CRC) one at a time, only those of the convolutions. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "half.h"
#include "tessera/error.h"
#include "tessera/weights.h"
#include "weights_internal.h"

/* One tensor of the state dict, under its dotted name. */
typedef struct pth_tensor {
	char name[PTH_MAX_NAME];
	const pk_value *t; /* V_TENSOR */
	shape sh;
	uint64_t count; /* elements */
} pth_tensor;

/* ---- the state dict --------------------------------------------------------------- */

typedef struct tensors {
	pth_tensor *t;
	size_t n, cap;
} tensors;

/* The tensors of dict d, under prefix (nested dicts add "key."), into *out. */
static int
collect(const unpickler *u, int32_t d, const char *prefix, int depth, tensors *out)
{
	for (int32_t pr = u->val[d].x; pr >= 0; pr = u->val[pr].z) {
		const pk_value *k = &u->val[u->val[pr].x], *v = &u->val[u->val[pr].y];
		char name[PTH_MAX_NAME];
		int len;

		if (k->kind != V_STR) {
			if (v->kind == V_TENSOR)
				return ts_w_pk_error(u, SIZE_MAX, "a tensor under a key that is not a string");
			continue;
		}
		if (v->kind != V_TENSOR && v->kind != V_DICT)
			continue; /* a checkpoint's epoch, say */
		len = snprintf(name, sizeof name, "%s%.*s", prefix, k->x, (const char *)u->p + k->v);
		if (len < 0 || (size_t)len >= sizeof name)
			return ts_w_pk_error(u, SIZE_MAX, "a tensor name of more than %d bytes", PTH_MAX_NAME - 1);
		if (v->kind == V_DICT) {
			if (depth == PTH_MAX_NEST)
				return ts_w_pk_error(u, SIZE_MAX, "dicts nested deeper than %d (at %s)", PTH_MAX_NEST, name);
			if (len + 1 >= PTH_MAX_NAME)
				return ts_w_pk_error(u, SIZE_MAX, "a tensor name of more than %d bytes", PTH_MAX_NAME - 1);
			name[len] = '.';
			name[len + 1] = '\0';
			if (collect(u, u->val[pr].y, name, depth + 1, out))
				return -1;
			continue;
		}
		if (ts_w_pk_grow((void **)&out->t, &out->cap, out->n, 1, sizeof *out->t, PTH_MAX_OBJECTS))
			return ts_w_pk_error(u, SIZE_MAX, "out of memory for the tensor list");
		memcpy(out->t[out->n].name, name, (size_t)len + 1);
		out->t[out->n].t = v;
		out->n++;
	}
	return 0;
}

/* The tensor's shape and count, and its extent within its storage: offset +
 * sum (size_k - 1) * stride_k < numel, and count <= numel. */
static int
check_extent(const unpickler *u, pth_tensor *pt)
{
	const pk_value *sz = &u->val[pt->t->y], *sd = &u->val[pt->t->z];
	const pk_storage *s = &u->st[u->val[pt->t->x].x];
	uint64_t last = (uint64_t)pt->t->v, count = 1, term;
	int overflow = 0;

	pt->sh.ndim = sz->y;
	for (int32_t i = 0; i < sz->y; i++) {
		uint64_t d = (uint64_t)u->val[u->kids[sz->x + i]].v;

		if (i < MAX_DIMS)
			pt->sh.d[i] = d;
		if (ts_w_mul_u64(count, d, &count))
			overflow = 1;
	}
	pt->count = overflow ? UINT64_MAX : count;
	if (!overflow && count == 0)
		return 0; /* nothing to read */
	for (int32_t i = 0; i < sz->y && !overflow; i++) {
		uint64_t d = (uint64_t)u->val[u->kids[sz->x + i]].v;
		uint64_t st = (uint64_t)u->val[u->kids[sd->x + i]].v;

		if (ts_w_mul_u64(d - 1, st, &term) || last > UINT64_MAX - term)
			overflow = 1;
		else
			last += term;
	}
	if (overflow || last >= s->numel || count > s->numel) {
		char sb[160];

		ts_error("weights", "%s: tensor %s (%s, storage offset %lld) reaches beyond its "
		         "storage %s of %llu elements (%s)", u->path, pt->name,
		         ts_w_shape_str(&pt->sh, sb, sizeof sb), (long long)pt->t->v, s->key,
		         (unsigned long long)s->numel,
		         overflow ? "its sizes and strides overflow"
		         : count > s->numel ? "more elements than the storage has"
		                            : "the storage is too short");
		return -1;
	}
	return 0;
}

/* Entry ARCHIVE/data/KEY of every storage: present, holding numel elements exactly,
 * and, if compressed, no more than deflate can expand its bytes to. */
static int
check_entries(zip_t *za, const unpickler *u, const char *prefix, size_t fsize,
              zip_int64_t *idx)
{
	char name[PTH_MAX_NAME + 48];

	for (size_t i = 0; i < u->nst; i++) {
		const pk_storage *s = &u->st[i];
		uint64_t bytes = 0;
		zip_stat_t zs;

		snprintf(name, sizeof name, "%s/data/%s", prefix, s->key);
		if ((idx[i] = zip_name_locate(za, name, 0)) < 0) {
			ts_error("weights", "%s: the archive has no entry %s (storage %s of the state "
			         "dict; truncated or damaged file?)", u->path, name, s->key);
			return -1;
		}
		zip_stat_init(&zs);
		if (zip_stat_index(za, (zip_uint64_t)idx[i], 0, &zs) ||
		    !(zs.valid & ZIP_STAT_SIZE) || !(zs.valid & ZIP_STAT_COMP_SIZE)) {
			ts_error("weights", "%s: cannot read the size of entry %s (%s)", u->path, name,
			         zip_strerror(za));
			return -1;
		}
		if (ts_w_mul_u64(s->numel, ts_w_storage_types[s->type].size, &bytes) ||
		    zs.size != bytes) {
			char need[32];

			snprintf(need, sizeof need, bytes || !s->numel ? "%llu" : "more than 2^64",
			         (unsigned long long)bytes);
			ts_error("weights", "%s: entry %s holds %llu bytes, but storage %s of %llu x "
			         "%s needs %s", u->path, name, (unsigned long long)zs.size, s->key,
			         (unsigned long long)s->numel, ts_w_storage_types[s->type].name, need);
			return -1;
		}
		if (zs.comp_size > fsize || (zs.size && zs.size / 1032 > zs.comp_size)) {
			ts_error("weights", "%s: entry %s claims %llu bytes from %llu compressed (more "
			         "than deflate gives, or more than the file)", u->path, name,
			         (unsigned long long)zs.size, (unsigned long long)zs.comp_size);
			return -1;
		}
	}
	return 0;
}

/* Entry index into a new buffer [size] (the caller frees it); the whole entry, its
 * CRC checked by libzip. */
static unsigned char *
read_entry(zip_t *za, zip_int64_t index, const char *name, size_t size, const char *path)
{
	unsigned char *b = malloc(size ? size : 1), extra;
	zip_file_t *zf = NULL;
	zip_int64_t got = -1;

	if (!b) {
		ts_error("weights", "%s: out of memory for entry %s (%zu bytes)", path, name, size);
		return NULL;
	}
	if (!(zf = zip_fopen_index(za, (zip_uint64_t)index, 0))) {
		ts_error("weights", "%s: cannot open entry %s (%s)", path, name, zip_strerror(za));
		goto fail;
	}
	/* one byte more than expected: the read reaches the end, where the CRC is checked */
	if ((got = zip_fread(zf, b, size)) != (zip_int64_t)size ||
	    (got = zip_fread(zf, &extra, 1)) != 0) {
		ts_error("weights", "%s: cannot read entry %s (%s)", path, name,
		         got < 0 ? zip_file_strerror(zf) : "its size differs from the directory's");
		goto fail;
	}
	zip_fclose(zf);
	return b;
fail:
	if (zf)
		zip_fclose(zf);
	free(b);
	return NULL;
}

/* dst [pt->count] = the tensor's elements in row-major order, from its storage's
 * bytes data (stride by stride: contiguous or not). */
static void
gather(const unpickler *u, const pth_tensor *pt, const unsigned char *data, float *dst)
{
	const pk_value *sz = &u->val[pt->t->y], *sd = &u->val[pt->t->z];
	int nd = sz->y, dt = ts_w_storage_types[u->st[u->val[pt->t->x].x].type].dtype;
	uint64_t dim[MAX_DIMS], stride[MAX_DIMS], at[MAX_DIMS] = { 0 };
	uint64_t off = (uint64_t)pt->t->v;
	uint16_t h[256]; /* F16: halves gathered here, widened by ts_half_load */
	size_t nh = 0;

	TS_ASSERT(nd >= 1 && nd <= MAX_DIMS);
	for (int i = 0; i < nd; i++) {
		dim[i] = (uint64_t)u->val[u->kids[sz->x + i]].v;
		stride[i] = (uint64_t)u->val[u->kids[sd->x + i]].v;
	}
	for (uint64_t k = 0; k < pt->count; k++) {
		if (dt == PK_F32) {
			dst[k] = ts_w_bits_float(ts_w_le32(data + 4 * off));
		} else if (dt == PK_F16) {
			h[nh++] = (uint16_t)(data[2 * off] | data[2 * off + 1] << 8);
			if (nh == 256 || k + 1 == pt->count) {
				ts_half_load(h, nh, 1.0f, dst + k + 1 - nh);
				nh = 0;
			}
		} else {
			dst[k] = ts_w_bits_float((uint32_t)(data[2 * off] | data[2 * off + 1] << 8)
			                         << 16);
		}
		for (int i = nd - 1; i >= 0; i--) { /* the next index, last dim fastest */
			off += stride[i];
			if (++at[i] < dim[i])
				break;
			off -= stride[i] * dim[i];
			at[i] = 0;
		}
	}
}

ts_vgg *
ts_w_load_pth(const unsigned char *buf, size_t size, const char *path)
{
	conv_src src[TS_VGG_NCONV];
	const pth_tensor *par[TS_VGG_NCONV][2]; /* weight, bias */
	char prefix[PTH_MAX_NAME], pkl_name[PTH_MAX_NAME + 16];
	unpickler u;
	tensors ts = { 0 };
	zip_error_t ze;
	zip_source_t *zsrc = NULL;
	zip_t *za = NULL;
	zip_int64_t pkl = -1, *entry = NULL;
	unsigned char *pickle = NULL, *data = NULL;
	size_t data_st = SIZE_MAX, name_prefix_len = 0;
	const char *name_prefix = "";
	ts_vgg *net = NULL, *ret = NULL;
	int32_t root = -1;
	int out_ch[TS_VGG_NCONV], nconv;
	zip_stat_t zs;

	memset(src, 0, sizeof src);
	memset(par, 0, sizeof par);
	memset(&u, 0, sizeof u);
	u.path = path;
	u.entry = pkl_name;
	zip_error_init(&ze);
	if (size < 22) { /* libzip reads an empty source as an empty archive */
		ts_error("weights", "%s: not a readable zip archive (%zu bytes, less than a zip's "
		         "end record), so not a PyTorch .pth written by torch.save (truncated or "
		         "damaged file?)", path, size);
		goto cleanup;
	}
	if (!(zsrc = zip_source_buffer_create(buf, size, 0, &ze)) ||
	    !(za = zip_open_from_source(zsrc, ZIP_RDONLY | ZIP_CHECKCONS, &ze))) {
		ts_error("weights", "%s: not a readable zip archive (%s), so not a PyTorch .pth "
		         "written by torch.save (truncated or damaged file?)", path,
		         zip_error_strerror(&ze));
		goto cleanup;
	}
	zsrc = NULL; /* the archive owns it */

	/* ARCHIVE/data.pkl: exactly one, at the top of a folder */
	for (zip_int64_t i = 0, n = zip_get_num_entries(za, 0); i < n; i++) {
		const char *e = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW), *slash;

		if (!e || !(slash = strchr(e, '/')) || strcmp(slash, "/data.pkl"))
			continue;
		if (pkl >= 0) {
			ts_error("weights", "%s: the archive holds two pickles, %s and %s", path,
			         pkl_name, e);
			goto cleanup;
		}
		if ((size_t)(slash - e) >= sizeof prefix) {
			ts_error("weights", "%s: an archive folder name of %zu bytes", path,
			         (size_t)(slash - e));
			goto cleanup;
		}
		pkl = i;
		snprintf(prefix, sizeof prefix, "%.*s", (int)(slash - e), e);
		snprintf(pkl_name, sizeof pkl_name, "%s", e);
	}
	if (pkl < 0) {
		ts_error("weights", "%s: a zip archive without ARCHIVE/data.pkl, so not a PyTorch "
		         ".pth written by torch.save", path);
		goto cleanup;
	}
	{ /* torch.save writes "little" here since 1.10; none means little too */
		char bo[PTH_MAX_NAME + 16];
		zip_int64_t i;

		snprintf(bo, sizeof bo, "%s/byteorder", prefix);
		if ((i = zip_name_locate(za, bo, 0)) >= 0) {
			unsigned char *b;
			int little;

			zip_stat_init(&zs);
			if (zip_stat_index(za, (zip_uint64_t)i, 0, &zs) || zs.size != 6) {
				ts_error("weights", "%s: %s does not say \"little\" (big-endian "
				         "archives are not read)", path, bo);
				goto cleanup;
			}
			if (!(b = read_entry(za, i, bo, 6, path)))
				goto cleanup;
			little = !memcmp(b, "little", 6);
			free(b);
			if (!little) {
				ts_error("weights", "%s: %s does not say \"little\" (big-endian "
				         "archives are not read)", path, bo);
				goto cleanup;
			}
		}
	}
	zip_stat_init(&zs);
	if (zip_stat_index(za, (zip_uint64_t)pkl, 0, &zs) || !(zs.valid & ZIP_STAT_SIZE)) {
		ts_error("weights", "%s: cannot read the size of %s (%s)", path, pkl_name,
		         zip_strerror(za));
		goto cleanup;
	}
	if (zs.size > PTH_MAX_PICKLE) {
		ts_error("weights", "%s: %s has %llu bytes, more than the limit of %u for a state "
		         "dict", path, pkl_name, (unsigned long long)zs.size, PTH_MAX_PICKLE);
		goto cleanup;
	}
	if (!(pickle = read_entry(za, pkl, pkl_name, (size_t)zs.size, path)))
		goto cleanup;

	/* pass 1: the pickle, every tensor's layout, every storage's entry */
	u.p = pickle;
	u.n = (size_t)zs.size;
	if (!(u.stack = malloc(PTH_MAX_STACK * sizeof *u.stack))) {
		ts_error("weights", "%s: out of memory for the unpickler", path);
		goto cleanup;
	}
	if (ts_w_unpickle(&u, &root))
		goto cleanup;
	if (u.val[root].kind != V_DICT) {
		ts_error("weights", "%s: %s holds no dict of tensors (a state dict)", path, pkl_name);
		goto cleanup;
	}
	if (collect(&u, root, "", 0, &ts))
		goto cleanup;
	for (size_t i = 0; i < ts.n; i++)
		if (check_extent(&u, &ts.t[i]))
			goto cleanup;
	if (!(entry = malloc((u.nst + 1) * sizeof *entry))) {
		ts_error("weights", "%s: out of memory for %zu storages", path, u.nst);
		goto cleanup;
	}
	if (check_entries(za, &u, prefix, size, entry))
		goto cleanup;

	/* names to convolutions, as the safetensors reader maps them */
	for (size_t i = 0; i < ts.n; i++) {
		const pth_tensor *t = &ts.t[i];
		const pk_storage *s = &u.st[u.val[t->t->x].x];
		int conv, bias, r = ts_w_note_param(path, src, t->name, &t->sh, &conv, &bias,
		                                    &name_prefix, &name_prefix_len);

		if (r < 0)
			goto cleanup;
		if (r && ts_w_storage_types[s->type].dtype == PK_OTHER) {
			ts_error("weights", "%s: tensor %s is stored as torch.%s (supported: "
			         "FloatStorage, HalfStorage, BFloat16Storage)", path, t->name,
			         ts_w_storage_types[s->type].name);
			goto cleanup;
		}
		if (r)
			par[conv][bias] = t;
	}
	ts_w_name_absent(src, name_prefix, name_prefix_len);
	if (ts_w_check_chain(path, src, 0, &nconv, out_ch))
		goto cleanup;

	/* pass 2: each storage read once in turn (views of one storage are usually
	 * neighbours), converted, freed */
	if (!(net = ts_vgg_alloc(nconv, out_ch)))
		goto cleanup;
	for (int i = 0; i < nconv; i++) {
		for (int b = 0; b < 2; b++) {
			const pth_tensor *t = par[i][b];
			size_t si = (size_t)u.val[t->t->x].x;
			const pk_storage *s = &u.st[si];
			char ename[PTH_MAX_NAME + 64];

			TS_ASSERT(t->count == (b ? (uint64_t)net->out_ch[i]
			                         : (uint64_t)net->out_ch[i] * net->in_ch[i] * 9));
			if (si != data_st) {
				free(data);
				data_st = SIZE_MAX;
				snprintf(ename, sizeof ename, "%s/data/%s", prefix, s->key);
				if (!(data = read_entry(za, entry[si], ename,
				                        (size_t)(s->numel * ts_w_storage_types[s->type].size),
				                        path)))
					goto cleanup;
				data_st = si;
			}
			gather(&u, t, data, b ? net->b[i] : net->w[i]);
		}
	}
	if (ts_w_check_finite(path, net, src, 0))
		goto cleanup;
	/* input mode TORCH with ImageNet mean/std: ts_vgg_alloc's default */
	ret = net;
	net = NULL;
cleanup:
	ts_vgg_destroy(net);
	free(data);
	free(entry);
	free(ts.t);
	ts_w_pickle_fini(&u);
	free(pickle);
	if (za)
		zip_discard(za);
	zip_source_free(zsrc);
	zip_error_fini(&ze);
	return ret;
}
