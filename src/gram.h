/* gram: a Gram kernel for narrow feature maps (few channels, long rows), used by
 * ts_gram in loss.c where it beats BLAS syrk.  Internal to the library.
 *
 * For f [c, ld] (row-major) and a column range [k0, k1) it computes the partial Gram
 * sum_k f[i][k] f[j][k] of every pair i <= j, in a fixed order that depends only on
 * c, k0 and k1, never on the thread or on the data, so a block-parallel Gram built
 * from it is the same bits for any thread count.
 *
 * The result is kept "by tiles": entries come in 4x4 tiles of (i, j) over the upper
 * triangle of tiles, 16 floats each, in a lane order of the kernel's own;
 * ts_gram_tile_at says where (i, j) is. */
#ifndef TESSERA_GRAM_H
#define TESSERA_GRAM_H

#include <stddef.h>

/* Whether the kernel is built in (AVX-512) and pays off for c channels. */
int ts_gram_tiles_use(int c);

/* Floats of one partial Gram by tiles for c channels. */
size_t ts_gram_tiles_floats(int c);

/* Floats of the packing buffer either kernel needs for c channels. */
size_t ts_gram_pack_floats(int c);

/* part (ts_gram_tiles_floats(c) floats) = the partial Gram of f's columns [k0, k1);
 * pack: ts_gram_pack_floats(c) floats of scratch. */
void ts_gram_tiles(const float *f, size_t ld, int c, size_t k0, size_t k1, float *part,
                   float *pack);

/* Index in a partial Gram by tiles of the entry (i, j), i <= j < c. */
size_t ts_gram_tile_at(int c, int i, int j);

/* Whether ts_gram_grad is built in and pays off for c channels (a multiple of 8). */
int ts_gram_grad_use(int c);

/* dy[:, p0:p1] += alpha * s f[:, p0:p1] for s [c, c], f and dy [c, ld] (row-major):
 * the style gradient of a Gram loss; f's columns are copied, block by block, to pack
 * (ts_gram_pack_floats(c) floats of scratch).  Each entry of dy gets its c products
 * in order, so any split of the columns gives the same bits.  With relu, f being a
 * ReLU's output, the ReLU's backward pass follows on the way: dy = 0 where f <= 0. */
void ts_gram_grad(const float *s, const float *f, int c, size_t ld, size_t p0, size_t p1,
                  float alpha, float *dy, float *pack, int relu);

#endif
