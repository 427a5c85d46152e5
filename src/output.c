/* output: the finished picture in its file and Deep Zoom folder (see output.h). */
#include "tessera/output.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tessera/dzi.h"
#include "tessera/error.h"
#include "tessera/image.h"

struct ts_output {
	int w, h, y, bits;
	ts_tiff_writer *tif; /* a TIFF output, streamed */
	ts_image *whole;     /* other formats: collected */
	ts_dzi *dzi;         /* --deep-zoom */
	const char *path;
};

static int
is_tiff_name(const char *path)
{
	const char *slash = strrchr(path, '/'), *dot = strrchr(slash ? slash + 1 : path, '.');

	return dot && (!strcasecmp(dot, ".tif") || !strcasecmp(dot, ".tiff"));
}

/* The Deep Zoom name: the output's file name without its extension. */
static void
dzi_name(const char *out, char *buf, size_t size)
{
	const char *slash = strrchr(out, '/'), *base = slash ? slash + 1 : out;
	const char *dot = strrchr(base, '.');
	size_t n = dot && dot > base ? (size_t)(dot - base) : strlen(base);

	if (n >= size)
		n = size - 1;
	memcpy(buf, base, n);
	buf[n] = '\0';
	if (!n)
		snprintf(buf, size, "image");
}

ts_output *
ts_output_open(const ts_config *c, int w, int h, int bits)
{
	ts_output *o = calloc(1, sizeof *o);

	if (!o) {
		ts_error("output", "out of memory");
		return NULL;
	}
	o->w = w, o->h = h, o->bits = bits, o->path = c->out;
	if (is_tiff_name(c->out)) {
		/* the print's resolution: --dpi (with --print-size, the size it was made for) */
		ts_tiff_meta m = { c->dpi > 0 ? c->dpi : 0, 1, 1 };

		if (!(o->tif = ts_tiff_writer_open(c->out, w, h, bits, TS_OUTPUT_BAND)) ||
		    ts_tiff_writer_set_meta(o->tif, &m))
			goto fail;
	} else if (!(o->whole = ts_image_create(w, h))) {
		goto fail;
	}
	if (c->deep_zoom) {
		char name[256];

		dzi_name(c->out, name, sizeof name);
		if (!(o->dzi = ts_dzi_open(c->deep_zoom, name, w, h)))
			goto fail;
	}
	return o;
fail:
	ts_output_close(o, 1);
	return NULL;
}

int
ts_output_band(ts_output *o, const float *band, int rows)
{
	TS_ASSERT(rows > 0 && o->y + rows <= o->h);
	if (o->tif && ts_tiff_writer_band(o->tif, band, rows))
		return -1;
	if (o->whole)
		for (int c = 0; c < 3; c++)
			memcpy(o->whole->px + ((size_t)c * o->h + o->y) * o->w,
			       band + (size_t)c * rows * o->w, (size_t)rows * o->w * sizeof(float));
	if (o->dzi && ts_dzi_band(o->dzi, band, rows))
		return -1;
	o->y += rows;
	return 0;
}

int
ts_output_close(ts_output *o, int abort)
{
	int ret = 0;

	if (!o)
		return 0;
	if (!abort && o->y != o->h) {
		ts_error("output", "%s: only %d of %d rows were written", o->path, o->y, o->h);
		abort = 1;
		ret = -1;
	}
	if (!abort && o->whole) {
		o->whole->bits = o->bits;
		if (ts_image_save(o->whole, o->path, o->bits))
			abort = 1, ret = -1;
	}
	if (o->tif) {
		if (ts_tiff_writer_close(o->tif, abort))
			abort = 1, ret = -1;
	}
	/* the viewer last: a failed image leaves no folder behind */
	if (o->dzi && ts_dzi_close(o->dzi, abort))
		ret = -1;
	ts_image_destroy(o->whole);
	free(o);
	return ret;
}

double
ts_output_bytes(const ts_config *c, int w, int h)
{
	double b = 0;

	if (c->out && is_tiff_name(c->out))
		b += 12.0 * TS_OUTPUT_BAND * w; /* the reduced levels' bands */
	else
		b += 12.0 * w * h;
	if (c->deep_zoom)
		b += 1600.0 * w + 200 * 1024;
	return b;
}
