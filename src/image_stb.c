/* image_stb: BMP reading, JPEG and BMP writing through Debian's compiled stb (libstb,
 * -lstb).  PNG and JPEG are read by image_png.c and image_jpeg.c, PNG written there.
 *
 * The caller has already recognized a BMP by its magic bytes, so stb never sees
 * GIF/PSD/HDR/PNM/PIC data.  Before stb runs, the BMP headers are parsed here: the
 * size is checked against the pixel budget, and the file must be as long as the
 * headers say (stb fills a short file with black).  stb uses int sizes, so images
 * bigger than its own limits fail cleanly with stb's reason.  Flip-on-load is never
 * used.  Writers are 8-bit RGB and write through a FILE * opened on the ".part"
 * name. */
#include "image_internal.h"

#include "tessera/error.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

static const char *
reason(void)
{
	const char *r = stbi_failure_reason();

	return r ? r : "corrupt data";
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Read a BMP's headers, check the size against the budget (max_pixels <= 0: none)
 * and check that the file holds every byte the headers promise: the pixel data starts
 * at the header's offset and has |h| rows of ceil(w * bpp / 32) * 4 bytes.  stb would
 * silently decode the missing rows as black.  Leaves f at the start. */
static int
bmp_header(FILE *f, const char *path, long long max_pixels, int *w, int *h)
{
	unsigned char b[14 + 40];
	long long bw, bh, off, hsz, bpp, comp, stride, need, have;
	struct stat st;
	size_t n;

	n = fread(b, 1, sizeof b, f);
	if (ferror(f) || fstat(fileno(f), &st) || fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot read %s", path);
		return -1;
	}
	have = (long long)st.st_size;
	hsz = n >= 18 ? le32(b + 14) : 0;
	if (n < 26 || (hsz != 12 && n < 14 + 40) || have < 14 + hsz) {
		ts_error("image", "%s: truncated BMP: %lld bytes, shorter than its headers",
		         path, have);
		return -1;
	}
	off = le32(b + 10);
	if (hsz == 12) { /* OS/2 BITMAPCOREHEADER: 16-bit sizes, no compression */
		bw = b[18] | b[19] << 8;
		bh = b[20] | b[21] << 8;
		bpp = b[24] | b[25] << 8;
		comp = 0;
	} else if (hsz >= 40) {
		bw = (int32_t)le32(b + 18);
		bh = (int32_t)le32(b + 22);
		bpp = b[28] | b[29] << 8;
		comp = le32(b + 30);
	} else {
		ts_error("image", "%s: unsupported BMP header (%lld bytes)", path, hsz);
		return -1;
	}
	if (bh < 0) /* top-down */
		bh = -bh;
	if (comp != 0 && comp != 3) {
		ts_error("image", "%s: unsupported BMP compression %lld (only uncompressed "
		         "and bit fields)", path, comp);
		return -1;
	}
	if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32) {
		ts_error("image", "%s: unsupported BMP depth of %lld bits", path, bpp);
		return -1;
	}
	if (image_check_size(path, bw, bh, max_pixels))
		return -1;
	/* bw, bh <= INT_MAX: stride < 2^34, so stride * bh is checked by division */
	stride = (bw * bpp + 31) / 32 * 4;
	if (off < 14 + hsz || stride > (LLONG_MAX - off) / bh) {
		ts_error("image", "%s: corrupt BMP header (pixel data at offset %lld)", path,
		         off);
		return -1;
	}
	need = off + stride * bh;
	if (have < need) {
		ts_error("image", "%s: truncated BMP: %lldx%lld at %lld bits needs %lld bytes "
		         "(pixel data at offset %lld), the file has %lld", path, bw, bh, bpp,
		         need, off, have);
		return -1;
	}
	*w = (int)bw, *h = (int)bh;
	return 0;
}

int
image_stb_probe(FILE *f, const char *path, int *w, int *h, int *bits)
{
	int pw, ph;

	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		return -1;
	}
	if (bmp_header(f, path, 0, &pw, &ph))
		return -1;
	if (w)
		*w = pw;
	if (h)
		*h = ph;
	if (bits)
		*bits = 8;
	return 0;
}

ts_image *
image_stb_load(FILE *f, const char *path, long long max_pixels)
{
	uint8_t *data = NULL; /* [h, w, 3] interleaved */
	ts_image *im = NULL;
	int w, h, dw = 0, dh = 0, comp;
	size_t i, n;

	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		goto cleanup;
	}
	if (bmp_header(f, path, max_pixels, &w, &h))
		goto cleanup;
	/* req_comp 3: stb replicates grey and drops alpha (no premultiplication) */
	if (!(data = stbi_load_from_file(f, &dw, &dh, &comp, 3))) {
		ts_error("image", "%s: cannot decode BMP (%s)", path, reason());
		goto cleanup;
	}
	if (dw != w || dh != h) {
		ts_error("image", "%s: header says %dx%d, decoded %dx%d", path, w, h, dw, dh);
		goto cleanup;
	}
	if (!(im = ts_image_create(w, h)))
		goto cleanup;
	n = (size_t)w * h;
	for (i = 0; i < n; i++) {
		im->px[i] = data[3 * i] / 255.0f;
		im->px[n + i] = data[3 * i + 1] / 255.0f;
		im->px[2 * n + i] = data[3 * i + 2] / 255.0f;
	}
cleanup:
	stbi_image_free(data);
	return im;
}

/* stb_image_write sink: append to a FILE, remember the first short write. */
struct sink {
	FILE *f;
	int err; /* errno of the first failed write (EIO if it set none), or 0 */
};

static void
sink_write(void *ctx, void *data, int size)
{
	struct sink *s = ctx;

	if (s->err || size <= 0)
		return;
	if (fwrite(data, 1, (size_t)size, s->f) != (size_t)size)
		s->err = errno ? errno : EIO;
}

int
image_stb_write(const ts_image *im, const char *part, const char *path,
                enum image_format fmt)
{
	struct sink s = { NULL, 0 };
	uint8_t *rgb = NULL; /* [h, w, 3] interleaved */
	size_t i, n = (size_t)im->w * im->h;
	int ok, ret = -1;

	/* stb_image_write computes sizes in int */
	if (n > (size_t)INT_MAX / 4) {
		ts_error("image", "cannot write %s: %dx%d is too large for JPEG/BMP "
		         "(write a .tif or .png)", path, im->w, im->h);
		goto cleanup;
	}
	if (!(rgb = malloc(n * 3))) {
		ts_error("image", "cannot write %s: out of memory", path);
		goto cleanup;
	}
	for (i = 0; i < n; i++) {
		rgb[3 * i] = image_to_u8(im->px[i]);
		rgb[3 * i + 1] = image_to_u8(im->px[n + i]);
		rgb[3 * i + 2] = image_to_u8(im->px[2 * n + i]);
	}
	if (!(s.f = fopen(part, "wb"))) {
		ts_error_errno("image", "cannot write %s", path);
		goto cleanup;
	}
	errno = 0;
	if (fmt == IMAGE_JPEG)
		ok = stbi_write_jpg_to_func(sink_write, &s, im->w, im->h, 3, rgb, 95);
	else if (fmt == IMAGE_BMP)
		ok = stbi_write_bmp_to_func(sink_write, &s, im->w, im->h, 3, rgb);
	else
		ok = 0;
	if (!ok) {
		ts_error("image", "cannot write %s: encoder failed", path);
		goto cleanup;
	}
	if (s.err || fflush(s.f)) {
		if (s.err)
			errno = s.err;
		ts_error_errno("image", "cannot write %s", path);
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (s.f && fclose(s.f) && ret == 0) {
		ts_error_errno("image", "cannot write %s", path);
		ret = -1;
	}
	if (ret && s.f)
		unlink(part);
	free(rgb);
	return ret;
}
