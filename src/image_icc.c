/* image_icc: the sRGB ICC profile embedded in print-ready outputs, made by lcms2
 * (-llcms2) rather than carried as bytes: cmsCreate_sRGBProfile's IEC 61966-2.1
 * primaries, white point and tone curve.  lcms2 stamps a profile with the time it
 * was made; the stamp is set to a fixed date (and the profile's MD5 ID recomputed), so
 * that the same picture gives the same file bytes on every run and resume. */
#include "image_internal.h"

#include "tessera/error.h"

#include <stdlib.h>
#include <string.h>

#include <lcms2.h>

/* Save p to a new buffer.  NULL with a message. */
static void *
save(cmsHPROFILE p, cmsUInt32Number *n)
{
	void *buf;

	*n = 0;
	if (!cmsSaveProfileToMem(p, NULL, n) || *n < 128) {
		ts_error("image", "lcms2 cannot write an sRGB profile");
		return NULL;
	}
	if (!(buf = malloc(*n))) {
		ts_error("image", "out of memory for an ICC profile");
		return NULL;
	}
	if (!cmsSaveProfileToMem(p, buf, n)) {
		ts_error("image", "lcms2 cannot write an sRGB profile");
		free(buf);
		return NULL;
	}
	return buf;
}

int
image_srgb_profile(void **data, uint32_t *len)
{
	/* the header's dateTimeNumber (bytes 24..35, big-endian u16 each) */
	static const unsigned char date[12] = { 0x07, 0xea, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0 };
	cmsHPROFILE p = cmsCreate_sRGBProfile(), q = NULL;
	cmsUInt32Number n = 0;
	unsigned char *first = NULL;
	void *buf = NULL;
	int ret = -1;

	*data = NULL, *len = 0;
	if (!p) {
		ts_error("image", "lcms2 cannot make an sRGB profile");
		goto cleanup;
	}
	if (!(first = save(p, &n)))
		goto cleanup;
	memcpy(first + 24, date, sizeof date); /* 2026-01-01 00:00:00 */
	if (!(q = cmsOpenProfileFromMem(first, n)) || !cmsMD5computeID(q)) {
		ts_error("image", "lcms2 cannot reread its sRGB profile");
		goto cleanup;
	}
	if (!(buf = save(q, &n)))
		goto cleanup;
	*data = buf, *len = n;
	buf = NULL;
	ret = 0;
cleanup:
	if (p)
		cmsCloseProfile(p);
	if (q)
		cmsCloseProfile(q);
	free(first);
	free(buf);
	return ret;
}
