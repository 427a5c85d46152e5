/* image_icc: the sRGB ICC profile embedded in print-ready outputs, made by lcms2
 * (-llcms2) rather than carried as bytes: cmsCreate_sRGBProfile's IEC 61966-2.1
 * primaries, white point and tone curve. */
#include "image_internal.h"

#include "tessera/error.h"

#include <stdlib.h>

#include <lcms2.h>

int
image_srgb_profile(void **data, uint32_t *len)
{
	cmsHPROFILE p = cmsCreate_sRGBProfile();
	cmsUInt32Number n = 0;
	void *buf = NULL;
	int ret = -1;

	*data = NULL, *len = 0;
	if (!p || !cmsSaveProfileToMem(p, NULL, &n) || n == 0) {
		ts_error("image", "lcms2 cannot make an sRGB profile");
		goto cleanup;
	}
	if (!(buf = malloc(n))) {
		ts_error("image", "out of memory for an ICC profile");
		goto cleanup;
	}
	if (!cmsSaveProfileToMem(p, buf, &n)) {
		ts_error("image", "lcms2 cannot write an sRGB profile");
		goto cleanup;
	}
	*data = buf, *len = n;
	buf = NULL;
	ret = 0;
cleanup:
	if (p)
		cmsCloseProfile(p);
	free(buf);
	return ret;
}
