/* half: scaled 16-bit float vectors (see half.h). */
#include "half.h"

#include <math.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#endif

float
ts_half_scale(double m)
{
	int e;

	if (!(m > 0.0) || !isfinite(m))
		return 1.0f;
	(void)frexp(m, &e); /* m < 2^e */
	e = e < -100 ? -100 : e > 100 ? 100 : e;
	return ldexpf(1.0f, e - 15);
}

void
ts_half_store(const float *restrict v, size_t n, uint16_t *restrict h)
{
	size_t i = 0;
#if defined(__AVX512F__)
	for (; i + 16 <= n; i += 16)
		_mm256_storeu_si256((__m256i *)(h + i),
		                    _mm512_cvtps_ph(_mm512_loadu_ps(v + i), _MM_FROUND_TO_NEAREST_INT));
#elif defined(__F16C__)
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(h + i),
		                 _mm256_cvtps_ph(_mm256_loadu_ps(v + i), _MM_FROUND_TO_NEAREST_INT));
#endif
	for (; i < n; i++) {
		_Float16 f = (_Float16)v[i];

		memcpy(h + i, &f, sizeof f);
	}
}

void
ts_half_load(const uint16_t *restrict h, size_t n, float scale, float *restrict out)
{
	size_t i = 0;
#if defined(__AVX512F__)
	__m512 v = _mm512_set1_ps(scale);

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(
		                                                (const __m256i *)(h + i))), v));
#elif defined(__F16C__)
	__m256 v = _mm256_set1_ps(scale);

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(
		                                                (const __m128i *)(h + i))), v));
#endif
	for (; i < n; i++) {
		_Float16 f;

		memcpy(&f, h + i, sizeof f);
		out[i] = (float)f * scale;
	}
}
