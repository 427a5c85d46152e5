/* weights_pickle: the restricted unpickler of PyTorch .pth files (weights_pth.c reads
 * the zip archive around it).  It builds plain values (None, bools, integers, strings,
 * tuples, dicts) and three kinds of object of its own: a global from the allow-list,
 * a storage (BINPERSID of ('storage', type, key, location, numel)) and a tensor
 * (REDUCE of torch._utils._rebuild_tensor_v2).  Nothing is ever called or imported:
 * GLOBAL accepts collections.OrderedDict, _rebuild_tensor_v2 and torch's storage
 * types as names only and refuses every other global (os.system, builtins.eval,
 * torch._utils._rebuild_parameter, ...) before anything else happens.  Opcodes: those
 * torch.save emits (protocol 2) and protocol 4's framing, short strings, MEMOIZE and
 * STACK_GLOBAL; any other opcode is refused.
 *
 * Invariants: every read of the pickle is checked against its length; objects, memo,
 * stack and marks are bounded (weights_internal.h); values live in one array and refer
 * to each other by index, so the memo's sharing needs no ownership and freeing is one
 * free per array. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "weights_internal.h"

const pk_storage_type ts_w_storage_types[] = {
	{ "FloatStorage", 4, PK_F32 }, { "HalfStorage", 2, PK_F16 },
	{ "BFloat16Storage", 2, PK_BF16 }, { "DoubleStorage", 8, PK_OTHER },
	{ "LongStorage", 8, PK_OTHER }, { "IntStorage", 4, PK_OTHER },
	{ "ShortStorage", 2, PK_OTHER }, { "CharStorage", 1, PK_OTHER },
	{ "ByteStorage", 1, PK_OTHER }, { "BoolStorage", 1, PK_OTHER },
};
#define NSTORAGE_TYPES ((int)(sizeof ts_w_storage_types / sizeof ts_w_storage_types[0]))

int
ts_w_pk_error(const unpickler *u, size_t at, const char *fmt, ...)
{
	char m[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	if (at == SIZE_MAX)
		ts_error("weights", "%s: %s: %s", u->path, u->entry, m);
	else
		ts_error("weights", "%s: %s, byte %zu: %s", u->path, u->entry, at, m);
	return -1;
}

int
ts_w_pk_grow(void **arr, size_t *cap, size_t n, size_t k, size_t es, size_t max)
{
	size_t c = *cap ? *cap : 64;
	void *p;

	if (n + k > max)
		return -1;
	if (n + k <= *cap)
		return 0;
	while (c < n + k)
		c *= 2;
	if (c > max)
		c = max;
	if (!(p = realloc(*arr, c * es)))
		return -1;
	*arr = p;
	*cap = c;
	return 0;
}

static int32_t
new_value(unpickler *u, size_t at, int kind)
{
	if (ts_w_pk_grow((void **)&u->val, &u->valcap, u->nval, 1, sizeof *u->val, PTH_MAX_OBJECTS)) {
		ts_w_pk_error(u, at, "more than %u objects, or out of memory", PTH_MAX_OBJECTS);
		return -1;
	}
	memset(&u->val[u->nval], 0, sizeof *u->val);
	u->val[u->nval].kind = kind;
	return (int32_t)u->nval++;
}

/* The stack above the innermost mark. */
static size_t
base(const unpickler *u)
{
	return u->nmarks ? u->marks[u->nmarks - 1] : 0;
}

static int
push(unpickler *u, size_t at, int32_t v)
{
	if (v < 0)
		return -1;
	if (u->sp == PTH_MAX_STACK)
		return ts_w_pk_error(u, at, "stack deeper than %u values", PTH_MAX_STACK);
	u->stack[u->sp++] = v;
	return 0;
}

/* Pops into *v; -1 when nothing is above the innermost mark. */
static int
pop(unpickler *u, size_t at, int32_t *v)
{
	if (u->sp <= base(u))
		return ts_w_pk_error(u, at, "the stack is empty");
	*v = u->stack[--u->sp];
	return 0;
}

static int
need(const unpickler *u, size_t at, size_t k)
{
	if (u->n - u->pos < k)
		return ts_w_pk_error(u, at, "truncated (opcode 0x%02x needs %zu more bytes)", u->p[at], k);
	return 0;
}

static uint64_t
le(const unsigned char *p, int k)
{
	uint64_t v = 0;

	for (int i = k - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int
is_str(const pk_value *v, const unsigned char *p, const char *s)
{
	return v->kind == V_STR && (size_t)v->x == strlen(s) && !memcmp(p + v->v, s, (size_t)v->x);
}

/* The global module.name, or -1 naming it.  Only names: nothing is imported. */
static int
global(unpickler *u, size_t at, const unsigned char *mod, size_t ml, const unsigned char *name,
       size_t nl)
{
	int32_t g;
	int which = -1;

	if (ml == 11 && !memcmp(mod, "collections", 11) && nl == 11 &&
	    !memcmp(name, "OrderedDict", 11))
		which = G_ODICT;
	else if (ml == 12 && !memcmp(mod, "torch._utils", 12) && nl == 18 &&
	         !memcmp(name, "_rebuild_tensor_v2", 18))
		which = G_REBUILD;
	else if (ml == 5 && !memcmp(mod, "torch", 5))
		for (int k = 0; k < NSTORAGE_TYPES; k++)
			if (nl == strlen(ts_w_storage_types[k].name) &&
			    !memcmp(name, ts_w_storage_types[k].name, nl))
				which = G_STORAGE + k;
	if (which < 0) {
		ts_error("weights", "%s: %s, byte %zu: the pickle names the global %.*s.%.*s, "
		         "which a state dict of tensors does not need; refused, nothing in the file "
		         "was executed (accepted: collections.OrderedDict, "
		         "torch._utils._rebuild_tensor_v2, torch.FloatStorage and torch's other "
		         "storage types)", u->path, u->entry, at, (int)(ml < 100 ? ml : 100), mod,
		         (int)(nl < 100 ? nl : 100), name);
		return -1;
	}
	if ((g = new_value(u, at, V_GLOBAL)) < 0)
		return -1;
	u->val[g].v = which;
	return push(u, at, g);
}

/* GLOBAL's argument: "module\nname\n", each line printable ASCII. */
static int
op_global(unpickler *u, size_t at)
{
	const unsigned char *s[2];
	size_t len[2];

	for (int k = 0; k < 2; k++) {
		const unsigned char *nl;

		s[k] = u->p + u->pos;
		if (!(nl = memchr(s[k], '\n', u->n - u->pos)))
			return ts_w_pk_error(u, at, "truncated GLOBAL (no end of line)");
		len[k] = (size_t)(nl - s[k]);
		for (size_t i = 0; i < len[k]; i++)
			if (s[k][i] < 0x20 || s[k][i] > 0x7e)
				return ts_w_pk_error(u, at, "GLOBAL with a byte 0x%02x in its name", s[k][i]);
		u->pos += len[k] + 1;
	}
	return global(u, at, s[0], len[0], s[1], len[1]);
}

static int
op_string(unpickler *u, size_t at, int lenbytes)
{
	uint64_t len;
	int32_t v;

	if (need(u, at, (size_t)lenbytes))
		return -1;
	len = le(u->p + u->pos, lenbytes);
	u->pos += (size_t)lenbytes;
	if (len > u->n - u->pos)
		return ts_w_pk_error(u, at, "a string of %llu bytes runs past the end of the pickle",
		           (unsigned long long)len);
	if (memchr(u->p + u->pos, '\0', (size_t)len))
		return ts_w_pk_error(u, at, "a string holds a NUL byte");
	if ((v = new_value(u, at, V_STR)) < 0)
		return -1;
	u->val[v].v = (int64_t)u->pos;
	u->val[v].x = (int32_t)len; /* len < PTH_MAX_PICKLE */
	u->pos += (size_t)len;
	return push(u, at, v);
}

static int
op_int(unpickler *u, size_t at, int64_t i)
{
	int32_t v = new_value(u, at, V_INT);

	if (v < 0)
		return -1;
	u->val[v].v = i;
	return push(u, at, v);
}

/* A tuple of the k values on top of the stack. */
static int
make_tuple(unpickler *u, size_t at, size_t k)
{
	int32_t t;

	if (u->sp - base(u) < k)
		return ts_w_pk_error(u, at, "a tuple of %zu needs more values than the stack has", k);
	if (ts_w_pk_grow((void **)&u->kids, &u->kidcap, u->nkids, k, sizeof *u->kids, PTH_MAX_OBJECTS))
		return ts_w_pk_error(u, at, "more than %u tuple items, or out of memory", PTH_MAX_OBJECTS);
	if ((t = new_value(u, at, V_TUPLE)) < 0)
		return -1;
	if (k) /* kids is NULL before the first item */
		memcpy(u->kids + u->nkids, u->stack + u->sp - k, k * sizeof *u->kids);
	u->val[t].x = (int32_t)u->nkids;
	u->val[t].y = (int32_t)k;
	u->nkids += k;
	u->sp -= k;
	return push(u, at, t);
}

static int
pop_mark(unpickler *u, size_t at, size_t *mark)
{
	if (!u->nmarks)
		return ts_w_pk_error(u, at, "opcode 0x%02x without a MARK", u->p[at]);
	*mark = u->marks[--u->nmarks];
	return 0;
}

static int
set_item(unpickler *u, size_t at, int32_t d, int32_t k, int32_t v)
{
	int32_t pr;

	if (u->val[d].kind != V_DICT)
		return ts_w_pk_error(u, at, "SETITEM on something that is not a dict");
	if ((pr = new_value(u, at, V_PAIR)) < 0)
		return -1;
	u->val[pr].x = k;
	u->val[pr].y = v;
	u->val[pr].z = -1;
	if (u->val[d].y >= 0)
		u->val[u->val[d].y].z = pr;
	else
		u->val[d].x = pr;
	u->val[d].y = pr;
	return 0;
}

/* BINPERSID: ('storage', torch.<T>Storage, key, location, numel). */
static int
op_persid(unpickler *u, size_t at)
{
	const pk_value *t, *k[5];
	const unsigned char *key;
	int32_t pid = -1, s;
	size_t kl, i;
	int type;

	if (pop(u, at, &pid))
		return -1;
	t = &u->val[pid];
	if (t->kind != V_TUPLE || t->y != 5)
		return ts_w_pk_error(u, at, "a persistent id that is not ('storage', type, key, location, "
		           "numel)");
	for (int j = 0; j < 5; j++)
		k[j] = &u->val[u->kids[t->x + j]];
	if (!is_str(k[0], u->p, "storage") || k[1]->kind != V_GLOBAL || k[1]->v < G_STORAGE ||
	    k[2]->kind != V_STR || k[3]->kind != V_STR || k[4]->kind != V_INT || k[4]->v < 0)
		return ts_w_pk_error(u, at, "a persistent id that is not ('storage', type, key, location, "
		           "numel)");
	type = (int)(k[1]->v - G_STORAGE);
	key = u->p + k[2]->v;
	kl = (size_t)k[2]->x;
	if (kl == 0 || kl >= sizeof u->st->key)
		return ts_w_pk_error(u, at, "a storage key of %zu bytes", kl);
	for (i = 0; i < kl; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'z') ||
		      (key[i] >= 'A' && key[i] <= 'Z') || key[i] == '_'))
			return ts_w_pk_error(u, at, "a storage key with a byte 0x%02x (only letters, digits and "
			           "_ name an entry)", key[i]);
	for (i = 0; i < u->nst; i++)
		if (strlen(u->st[i].key) == kl && !memcmp(u->st[i].key, key, kl))
			break;
	if (i < u->nst) {
		if (u->st[i].type != type || u->st[i].numel != (uint64_t)k[4]->v)
			return ts_w_pk_error(u, at, "storage %s appears twice, as %llu x %s and %llu x %s",
			           u->st[i].key, (unsigned long long)u->st[i].numel,
			           ts_w_storage_types[u->st[i].type].name, (unsigned long long)k[4]->v,
			           ts_w_storage_types[type].name);
	} else {
		if (ts_w_pk_grow((void **)&u->st, &u->stcap, u->nst, 1, sizeof *u->st, PTH_MAX_OBJECTS))
			return ts_w_pk_error(u, at, "out of memory for storages");
		memcpy(u->st[i].key, key, kl);
		u->st[i].key[kl] = '\0';
		u->st[i].type = type;
		u->st[i].numel = (uint64_t)k[4]->v;
		u->nst++;
	}
	if ((s = new_value(u, at, V_STORAGE)) < 0)
		return -1;
	u->val[s].x = (int32_t)i;
	return push(u, at, s);
}

/* A tuple of non-negative integers. */
static int
int_tuple(const unpickler *u, const pk_value *t)
{
	if (t->kind != V_TUPLE)
		return 0;
	for (int32_t i = 0; i < t->y; i++) {
		const pk_value *e = &u->val[u->kids[t->x + i]];

		if (e->kind != V_INT || e->v < 0)
			return 0;
	}
	return 1;
}

/* REDUCE: OrderedDict() or _rebuild_tensor_v2(storage, offset, size, stride,
 * requires_grad, backward_hooks[, metadata]); nothing else is ever called. */
static int
op_reduce(unpickler *u, size_t at)
{
	const pk_value *a, *f, *k[7];
	int32_t args = -1, fn = -1, r;

	if (pop(u, at, &args) || pop(u, at, &fn))
		return -1;
	a = &u->val[args];
	f = &u->val[fn];
	if (f->kind != V_GLOBAL || a->kind != V_TUPLE)
		return ts_w_pk_error(u, at, "REDUCE of something that is not a global and a tuple");
	if (f->v == G_ODICT) {
		if (a->y != 0)
			return ts_w_pk_error(u, at, "OrderedDict with arguments");
		if ((r = new_value(u, at, V_DICT)) < 0)
			return -1;
		u->val[r].x = u->val[r].y = -1;
		return push(u, at, r);
	}
	if (f->v != G_REBUILD)
		return ts_w_pk_error(u, at, "REDUCE calls torch.%s, which a state dict does not call",
		           ts_w_storage_types[f->v - G_STORAGE].name);
	if (a->y != 6 && a->y != 7)
		return ts_w_pk_error(u, at, "_rebuild_tensor_v2 with %d arguments (6 or 7 expected)", a->y);
	for (int j = 0; j < a->y; j++)
		k[j] = &u->val[u->kids[a->x + j]];
	if (k[0]->kind != V_STORAGE || k[1]->kind != V_INT || k[1]->v < 0 ||
	    !int_tuple(u, k[2]) || !int_tuple(u, k[3]) || k[2]->y != k[3]->y ||
	    k[4]->kind != V_BOOL || k[5]->kind != V_DICT ||
	    (a->y == 7 && k[6]->kind != V_DICT && k[6]->kind != V_NONE))
		return ts_w_pk_error(u, at, "_rebuild_tensor_v2 with arguments that are not (storage, "
		           "offset >= 0, size, stride (as many non-negative integers), "
		           "requires_grad, hooks)");
	if ((r = new_value(u, at, V_TENSOR)) < 0)
		return -1;
	u->val[r].x = u->kids[a->x];
	u->val[r].y = u->kids[a->x + 2];
	u->val[r].z = u->kids[a->x + 3];
	u->val[r].v = k[1]->v;
	return push(u, at, r);
}

/* A value of kind (V_NONE, V_BOOL, V_DICT) pushed; v for V_BOOL. */
static int
push_new(unpickler *u, size_t at, int kind, int64_t v)
{
	int32_t i = new_value(u, at, kind);

	if (i < 0)
		return -1;
	u->val[i].v = v;
	u->val[i].x = u->val[i].y = -1; /* V_DICT: no pairs */
	return push(u, at, i);
}

/* BINPUT, LONG_BINPUT (index in k bytes), MEMOIZE (k == 0: the next index). */
static int
op_put(unpickler *u, size_t at, int k)
{
	uint64_t idx;

	if (need(u, at, (size_t)k))
		return -1;
	idx = k ? le(u->p + u->pos, k) : u->nmemo;
	u->pos += (size_t)k;
	if (u->sp <= base(u))
		return ts_w_pk_error(u, at, "memo of an empty stack");
	if (idx >= PTH_MAX_MEMO)
		return ts_w_pk_error(u, at, "memo index %llu (the limit is %u)", (unsigned long long)idx,
		           PTH_MAX_MEMO);
	if (idx >= u->memocap) {
		size_t old = u->memocap;

		if (ts_w_pk_grow((void **)&u->memo, &u->memocap, (size_t)idx, 1, sizeof *u->memo,
		         PTH_MAX_MEMO))
			return ts_w_pk_error(u, at, "out of memory for the memo");
		for (size_t i = old; i < u->memocap; i++)
			u->memo[i] = -1;
	}
	u->nmemo += u->memo[idx] < 0;
	u->memo[idx] = u->stack[u->sp - 1];
	return 0;
}

/* BINGET, LONG_BINGET: the index in k bytes. */
static int
op_get(unpickler *u, size_t at, int k)
{
	uint64_t idx;

	if (need(u, at, (size_t)k))
		return -1;
	idx = le(u->p + u->pos, k);
	u->pos += (size_t)k;
	if (idx >= u->memocap || u->memo[idx] < 0)
		return ts_w_pk_error(u, at, "memo %llu was never set", (unsigned long long)idx);
	return push(u, at, u->memo[idx]);
}

/* BININT1, BININT2, BININT (k = 1, 2, 4 bytes; 4 is signed), LONG1 (k = 0: a length
 * byte, then that many bytes of two's complement). */
static int
op_binint(unpickler *u, size_t at, int k)
{
	uint64_t x;
	int sign = k == 4 || k == 0;

	if (k == 0) {
		if (need(u, at, 1))
			return -1;
		if ((k = u->p[u->pos++]) > 8)
			return ts_w_pk_error(u, at, "an integer of %d bytes", k);
	}
	if (need(u, at, (size_t)k))
		return -1;
	x = k ? le(u->p + u->pos, k) : 0;
	if (sign && k && k < 8 && (u->p[u->pos + k - 1] & 0x80))
		x |= UINT64_MAX << (8 * k); /* sign extension */
	u->pos += (size_t)k;
	return op_int(u, at, (int64_t)x);
}

int
ts_w_unpickle(unpickler *u, int32_t *root)
{
	while (u->pos < u->n) {
		size_t at = u->pos, mark = 0;
		unsigned op = u->p[u->pos++];
		int32_t a = -1, b = -1, c = -1;
		int r = 0;

		switch (op) {
		case 0x80: /* PROTO */
			if (!(r = need(u, at, 1)) && (u->p[u->pos] < 2 || u->p[u->pos] > 5))
				return ts_w_pk_error(u, at, "pickle protocol %u (2 to 5 are read)", u->p[u->pos]);
			u->pos++;
			break;
		case 0x95: /* FRAME: a length only, the data follows in line */
			if (!(r = need(u, at, 8)))
				u->pos += 8;
			break;
		case '(': /* MARK */
			if (u->nmarks == PTH_MAX_MARKS)
				return ts_w_pk_error(u, at, "more than %d open MARKs", PTH_MAX_MARKS);
			u->marks[u->nmarks++] = u->sp;
			break;
		case '}': r = push_new(u, at, V_DICT, 0); break;             /* EMPTY_DICT */
		case 'N': r = push_new(u, at, V_NONE, 0); break;             /* NONE */
		case 0x88: case 0x89: r = push_new(u, at, V_BOOL, op == 0x88); break; /* NEWTRUE */
		case ')': r = make_tuple(u, at, 0); break;                   /* EMPTY_TUPLE */
		case 0x85: case 0x86: case 0x87: r = make_tuple(u, at, op - 0x84); break; /* TUPLE1.. */
		case 't': /* TUPLE: the tuple takes the mark's place */
			if (!u->nmarks)
				return ts_w_pk_error(u, at, "TUPLE without a MARK");
			r = make_tuple(u, at, u->sp - base(u));
			u->nmarks--;
			break;
		case 'X': r = op_string(u, at, 4); break;    /* BINUNICODE */
		case 0x8c: r = op_string(u, at, 1); break;   /* SHORT_BINUNICODE */
		case 'K': r = op_binint(u, at, 1); break;    /* BININT1 */
		case 'M': r = op_binint(u, at, 2); break;    /* BININT2 */
		case 'J': r = op_binint(u, at, 4); break;    /* BININT */
		case 0x8a: r = op_binint(u, at, 0); break;   /* LONG1 */
		case 'q': r = op_put(u, at, 1); break;       /* BINPUT */
		case 'r': r = op_put(u, at, 4); break;       /* LONG_BINPUT */
		case 0x94: r = op_put(u, at, 0); break;      /* MEMOIZE */
		case 'h': r = op_get(u, at, 1); break;       /* BINGET */
		case 'j': r = op_get(u, at, 4); break;       /* LONG_BINGET */
		case 'c': r = op_global(u, at); break;       /* GLOBAL */
		case 0x93: /* STACK_GLOBAL */
			if ((r = pop(u, at, &b) || pop(u, at, &a)))
				break;
			if (u->val[a].kind != V_STR || u->val[b].kind != V_STR)
				return ts_w_pk_error(u, at, "STACK_GLOBAL of something that is not two strings");
			r = global(u, at, u->p + u->val[a].v, (size_t)u->val[a].x, u->p + u->val[b].v,
			           (size_t)u->val[b].x);
			break;
		case 'Q': r = op_persid(u, at); break;       /* BINPERSID */
		case 'R': r = op_reduce(u, at); break;       /* REDUCE */
		case 's': /* SETITEM */
			if ((r = pop(u, at, &c) || pop(u, at, &b)))
				break;
			if (u->sp <= base(u))
				return ts_w_pk_error(u, at, "SETITEM without a dict");
			r = set_item(u, at, u->stack[u->sp - 1], b, c);
			break;
		case 'u': /* SETITEMS */
			if ((r = pop_mark(u, at, &mark)))
				break;
			if ((u->sp - mark) % 2 || mark <= base(u))
				return ts_w_pk_error(u, at, "SETITEMS without a dict or of an odd number of values");
			for (size_t i = mark; i < u->sp && !r; i += 2)
				r = set_item(u, at, u->stack[mark - 1], u->stack[i], u->stack[i + 1]);
			u->sp = mark;
			break;
		case 'b': /* BUILD: a state dict's _metadata; dropped */
			if ((r = pop(u, at, &a)))
				break;
			if (u->sp <= base(u) || u->val[u->stack[u->sp - 1]].kind != V_DICT)
				return ts_w_pk_error(u, at, "BUILD of something that is not a dict");
			break;
		case '.': /* STOP */
			if (u->nmarks || u->sp != 1)
				return ts_w_pk_error(u, at, "STOP with %zu values on the stack and %d open marks",
				           u->sp, u->nmarks);
			if (u->pos != u->n)
				return ts_w_pk_error(u, at, "%zu bytes after STOP", u->n - u->pos);
			*root = u->stack[0];
			return 0;
		default:
			return ts_w_pk_error(u, at, "opcode 0x%02x, which a state dict of tensors does not need",
			           op);
		}
		if (r)
			return -1;
	}
	return ts_w_pk_error(u, u->n, "the pickle ends without STOP (truncated?)");
}

void
ts_w_pickle_fini(unpickler *u)
{
	free(u->val);
	free(u->kids);
	free(u->stack);
	free(u->memo);
	free(u->st);
}
