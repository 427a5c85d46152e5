/* half: vectors of IEEE 754 half-precision floats (16 bits), scaled by powers of two,
 * for the L-BFGS history of optim_lbfgs.c (--lbfgs-precision half).  Internal to the
 * library.  The AVX-512, F16C and plain-C paths give the same bits: rounding is to
 * nearest, ties to even (as a C cast to _Float16), and scaling by a power of two is
 * exact. */
#ifndef TESSERA_HALF_H
#define TESSERA_HALF_H

#include <stddef.h>
#include <stdint.h>

/* What a vector whose largest magnitude is m is divided by before it is rounded to
 * half: the power of two that puts its entries below 2^15 (the largest finite half
 * is 65504), so that entries down to 2^-29 of the largest keep half's 11 bits.
 * 1 for m = 0 or not finite. */
float ts_half_scale(double m);

/* h[i] = v[i] rounded to half, for n values (already divided by their scale). */
void ts_half_store(const float *restrict v, size_t n, uint16_t *restrict h);

/* out[i] = h[i] * scale, for n halves. */
void ts_half_load(const uint16_t *restrict h, size_t n, float scale, float *restrict out);

#endif
