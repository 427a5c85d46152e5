/* colorvar: luma / chroma variables (see colorvar.h).  Everything is per pixel and
 * in a fixed order: the same bits for any tiling and thread count. */
#include "tessera/colorvar.h"

#include "tessera/error.h"

/* BT.601 (JPEG) YCbCr without offsets: rows Y, Cb, Cr of RGB, and its inverse. */
static const double to_ycc[3][3] = {
	{ 0.299, 0.587, 0.114 },
	{ -0.168736, -0.331264, 0.5 },
	{ 0.5, -0.418688, -0.081312 },
};

void
ts_colorvar_init(ts_colorvar *m, double s)
{
	double inv[3][3], det;
	const double (*a)[3] = to_ycc;

	TS_ASSERT(s > 0);
	/* inverse of to_ycc by cofactors */
	det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
	      a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
	      a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++) {
			int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;

			inv[i][j] = (a[r0][c0] * a[r1][c1] - a[r0][c1] * a[r1][c0]) / det;
		}
	/* x = inv * diag(1, s, s) v;  v = diag(1, 1/s, 1/s) to_ycc x */
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++) {
			m->a[i][j] = (float)(inv[i][j] * (j ? s : 1.0));
			m->inv[i][j] = (float)(to_ycc[i][j] / (i ? s : 1.0));
		}
}

static void
apply(const float k[3][3], const float *in, float *out, size_t plane, int transpose)
{
	for (size_t p = 0; p < plane; p++) {
		float a = in[p], b = in[plane + p], c = in[2 * plane + p];

		for (int i = 0; i < 3; i++)
			out[i * plane + p] = transpose ? k[0][i] * a + k[1][i] * b + k[2][i] * c
			                               : k[i][0] * a + k[i][1] * b + k[i][2] * c;
	}
}

void
ts_colorvar_to_image(const ts_colorvar *m, const float *v, float *x, size_t plane)
{
	apply(m->a, v, x, plane, 0);
}

void
ts_colorvar_from_image(const ts_colorvar *m, const float *x, float *v, size_t plane)
{
	apply(m->inv, x, v, plane, 0);
}

void
ts_colorvar_adjoint(const ts_colorvar *m, const float *gx, float *gv, size_t plane)
{
	apply(m->a, gx, gv, plane, 1);
}
