/* image_resize: resampling with stb_image_resize (v1 API, compiled into libstb).
 *
 * Each of the three planes is resized on its own as a one-channel float image; the
 * values are treated as linear (no sRGB conversion).  Per axis, Mitchell (B = C = 1/3)
 * when shrinking, Catmull-Rom when enlarging; edges clamp.  The cubic filters can
 * overshoot a little near hard edges, so the result is clamped to [0,1]. */
#include "tessera/image.h"

#include "tessera/error.h"

#include <stb/stb_image_resize.h>

static stbir_filter
filter_for(int from, int to)
{
	return to < from ? STBIR_FILTER_MITCHELL : STBIR_FILTER_CATMULLROM;
}

ts_image *
ts_image_resize(const ts_image *src, int w, int h)
{
	ts_image *im = NULL;
	size_t sn, dn;
	int c;

	TS_ASSERT(src && src->px);
	if (w <= 0 || h <= 0) {
		ts_error("image", "cannot resize to %dx%d", w, h);
		goto cleanup;
	}
	if (!(im = ts_image_create(w, h)))
		goto cleanup;
	im->bits = src->bits;
	sn = (size_t)src->w * src->h;
	dn = (size_t)w * h;
	for (c = 0; c < 3; c++) {
		if (!stbir_resize(src->px + c * sn, src->w, src->h, 0, im->px + c * dn, w, h, 0,
		                  STBIR_TYPE_FLOAT, 1, STBIR_ALPHA_CHANNEL_NONE, 0,
		                  STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
		                  filter_for(src->w, w), filter_for(src->h, h),
		                  STBIR_COLORSPACE_LINEAR, NULL)) {
			ts_error("image", "cannot resize %dx%d to %dx%d (out of memory)", src->w,
			         src->h, w, h);
			ts_image_destroy(im);
			im = NULL;
			goto cleanup;
		}
	}
	ts_image_clamp(im);
cleanup:
	return im;
}
