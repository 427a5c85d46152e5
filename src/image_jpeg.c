/* image_jpeg: JPEG reading through libjpeg-turbo (-ljpeg), EXIF orientation through
 * libexif (-lexif).
 *
 * The header (SOF, and the APP1 segments kept for EXIF) is read first; its size,
 * after orientation, is checked against the pixel budget before any scan is decoded.
 * Colour: grey is replicated, YCbCr/RGB decoded to RGB, CMYK/YCCK converted naively
 * (no ICC profile: R = (1 - C)(1 - K), Adobe's inverted samples recognized); other
 * colour spaces and 12-bit data are refused by name.
 *
 * Errors: libjpeg's error_exit longjmps back to one place, so a corrupt file becomes
 * one message with libjpeg's own text and never ends the process.  Nothing is printed:
 * warnings that mean missing data (premature end of file or of a segment, a lost
 * restart marker) are errors, the rest are counted and ignored.  A file cut short is
 * therefore an error, never an image completed with grey.  Progressive files with an
 * absurd number of scans (a known denial of service) are refused.
 *
 * Orientation: EXIF IFD0 Orientation 1-8 (phone pictures) is applied while the rows
 * are decoded, each sample written straight to its oriented place; 5-8 swap width and
 * height, and so does the probe.  A missing or invalid tag means 1.
 *
 * setjmp rule: the function that calls setjmp keeps everything that changes after it
 * in a struct owned by its caller, so nothing is indeterminate after a longjmp. */
#include "image_internal.h"

#include "tessera/error.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <libexif/exif-data.h>

/* More scans than any real progressive file has (libjpeg-turbo's own tools use 500). */
enum { MAX_SCANS = 500 };

struct jerr {
	struct jpeg_error_mgr pub;
	jmp_buf jmp;
	char msg[JMSG_LENGTH_MAX]; /* libjpeg's text of the fatal error or warning */
	int truncated;             /* the fatal problem was the end of the file */
};

/* State of one decode; owned by the caller of the setjmp function. */
struct jdec {
	struct jpeg_decompress_struct cinfo;
	struct jerr err;
	struct jpeg_progress_mgr progress;
	int created;     /* cinfo needs jpeg_destroy_decompress */
	int orientation; /* EXIF 1-8 */
	ts_image *im;    /* result; owned until handed over */
};

static void
on_error_exit(j_common_ptr cinfo)
{
	struct jerr *e = (struct jerr *)cinfo->err;

	(*cinfo->err->format_message)(cinfo, e->msg);
	longjmp(e->jmp, 1);
}

/* Warnings (level -1) that mean data is missing end the decode; the rest, and all
 * trace messages, are dropped. */
static void
on_message(j_common_ptr cinfo, int level)
{
	struct jerr *e = (struct jerr *)cinfo->err;
	int code = e->pub.msg_code;

	if (level >= 0)
		return;
	e->pub.num_warnings++;
	if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_MUST_RESYNC) {
		(*cinfo->err->format_message)(cinfo, e->msg);
		e->truncated = code == JWRN_JPEG_EOF;
		longjmp(e->jmp, 1);
	}
}

static void
on_output(j_common_ptr cinfo)
{
	(void)cinfo; /* never print */
}

static void
on_progress(j_common_ptr cinfo)
{
	j_decompress_ptr d = (j_decompress_ptr)cinfo;
	struct jerr *e = (struct jerr *)cinfo->err;

	if (d->input_scan_number > MAX_SCANS) {
		snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", MAX_SCANS);
		longjmp(e->jmp, 1);
	}
}

/* EXIF IFD0 Orientation from the saved APP1 segments; 1 when absent or invalid. */
static int
exif_orientation(j_decompress_ptr cinfo)
{
	jpeg_saved_marker_ptr m;
	int o = 1;

	for (m = cinfo->marker_list; m; m = m->next) {
		ExifData *ed;
		ExifEntry *e;

		if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 ||
		    memcmp(m->data, "Exif\0\0", 6))
			continue;
		if (!(ed = exif_data_new_from_data(m->data, m->data_length)))
			break;
		e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
		if (e && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->size >= 2)
			o = exif_get_short(e->data, exif_data_get_byte_order(ed));
		exif_data_unref(ed);
		break; /* only the first Exif segment counts */
	}
	return o >= 1 && o <= 8 ? o : 1;
}

/* Where source pixel (x, y) of a w x h image goes under orientation o, in an image
 * of width ow (h for o >= 5, else w); returns the index in one plane. */
static size_t
oriented(int o, int w, int h, int x, int y)
{
	int dx, dy, ow = o >= 5 ? h : w;

	switch (o) {
	case 2: dx = w - 1 - x, dy = y; break;
	case 3: dx = w - 1 - x, dy = h - 1 - y; break;
	case 4: dx = x, dy = h - 1 - y; break;
	case 5: dx = y, dy = x; break;
	case 6: dx = h - 1 - y, dy = x; break;
	case 7: dx = h - 1 - y, dy = w - 1 - x; break;
	case 8: dx = y, dy = w - 1 - x; break;
	default: dx = x, dy = y; break;
	}
	return (size_t)dy * ow + dx;
}

/* Store one decoded row (comps 1, 3 or 4 samples per pixel) at its oriented place. */
static void
put_row_to(struct jdec *d, const JSAMPLE *row, int y, float *px, int h)
{
	j_decompress_ptr ci = &d->cinfo;
	int w = (int)ci->output_width, x;
	size_t n = (size_t)w * h;
	/* libjpeg passes Adobe CMYK through as stored: inverted (255 = no ink) */
	int inv = ci->saw_Adobe_marker;

	for (x = 0; x < w; x++) {
		size_t i = oriented(d->orientation, w, h, x, y);
		const JSAMPLE *s = row + (size_t)x * ci->out_color_components;
		float r, g, b;

		if (ci->out_color_space == JCS_GRAYSCALE) {
			r = g = b = s[0] / 255.0f;
		} else if (ci->out_color_space == JCS_CMYK) {
			float k = (inv ? s[3] : 255 - s[3]) / 255.0f;
			r = (inv ? s[0] : 255 - s[0]) / 255.0f * k;
			g = (inv ? s[1] : 255 - s[1]) / 255.0f * k;
			b = (inv ? s[2] : 255 - s[2]) / 255.0f * k;
		} else {
			r = s[0] / 255.0f, g = s[1] / 255.0f, b = s[2] / 255.0f;
		}
		px[i] = r, px[n + i] = g, px[2 * n + i] = b;
	}
}

static void
put_row(struct jdec *d, const JSAMPLE *row, int y)
{
	put_row_to(d, row, y, d->im->px, (int)d->cinfo.output_height);
}

/* Header: size after orientation, checked against the budget.  Called under the
 * caller's setjmp.  0, or -2 with a message recorded. */
static int
read_header(struct jdec *d, FILE *f, const char *path, long long max_pixels, int *w,
            int *h)
{
	j_decompress_ptr ci = &d->cinfo;

	jpeg_create_decompress(ci);
	d->created = 1;
	jpeg_stdio_src(ci, f);
	jpeg_save_markers(ci, JPEG_APP0 + 1, 0xffff);
	jpeg_read_header(ci, TRUE);
	d->orientation = exif_orientation(ci);
	*w = (int)ci->image_width, *h = (int)ci->image_height;
	if (d->orientation >= 5)
		*w = (int)ci->image_height, *h = (int)ci->image_width;
	return image_check_size(path, *w, *h, max_pixels) ? -2 : 0;
}

/* Output colour space and jpeg_start_decompress, under the caller's setjmp.  0, or -2
 * with a message recorded. */
static int
start_decode(struct jdec *d, const char *path)
{
	j_decompress_ptr ci = &d->cinfo;

	switch (ci->jpeg_color_space) {
	case JCS_GRAYSCALE:
		ci->out_color_space = JCS_GRAYSCALE;
		break;
	case JCS_YCbCr:
	case JCS_RGB:
		ci->out_color_space = JCS_RGB;
		break;
	case JCS_CMYK:
	case JCS_YCCK:
		ci->out_color_space = JCS_CMYK;
		break;
	default:
		ts_error("image", "%s: unsupported JPEG colour space (%d components)", path,
		         ci->num_components);
		return -2;
	}
	d->progress.progress_monitor = on_progress;
	ci->progress = &d->progress;
	jpeg_start_decompress(ci);
	/* at 1/denom (the stream's scaling), each side rounded up as libjpeg rounds */
	if (ci->output_width != (ci->image_width + ci->scale_denom - 1) / ci->scale_denom ||
	    ci->output_height != (ci->image_height + ci->scale_denom - 1) / ci->scale_denom) {
		ts_error("image", "%s: libjpeg decodes %ux%u, the header says %ux%u at 1/%u", path,
		         ci->output_width, ci->output_height, ci->image_width, ci->image_height,
		         ci->scale_denom);
		return -2;
	}
	return 0;
}

static void
set_handlers(struct jdec *d)
{
	d->cinfo.err = jpeg_std_error(&d->err.pub);
	d->err.pub.error_exit = on_error_exit;
	d->err.pub.emit_message = on_message;
	d->err.pub.output_message = on_output;
}

/* Read the header, and with load the pixels, under one setjmp.  -1: libjpeg's error
 * (in d->err), -2: a message is already recorded. */
static int
decode(struct jdec *d, FILE *f, const char *path, long long max_pixels, int load,
       int *w, int *h)
{
	j_decompress_ptr ci = &d->cinfo;
	JSAMPARRAY row;

	set_handlers(d);
	if (setjmp(d->err.jmp))
		return -1;
	if (read_header(d, f, path, max_pixels, w, h))
		return -2;
	if (!load)
		return 0;
	if (start_decode(d, path))
		return -2;
	if (!(d->im = ts_image_create(*w, *h)))
		return -2;
	/* one row, in libjpeg's pool: freed by jpeg_destroy_decompress */
	row = (*ci->mem->alloc_sarray)((j_common_ptr)ci, JPOOL_IMAGE,
	                               ci->output_width * ci->output_components, 1);
	while (ci->output_scanline < ci->output_height) {
		int y = (int)ci->output_scanline;

		if (jpeg_read_scanlines(ci, row, 1) != 1)
			ERREXIT(ci, JERR_INPUT_EOF); /* suspension: impossible with stdio */
		put_row(d, row[0], y);
	}
	/* up to EOI: a file cut after its last scan is still a truncated file */
	jpeg_finish_decompress(ci);
	return 0;
}

/* Probe (load 0) or load the JPEG on f; the image is d->im. */
static int
jpeg_open(struct jdec *d, FILE *f, const char *path, long long max_pixels, int load,
          int *w, int *h)
{
	int rc, ret = -1;

	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		goto cleanup;
	}
	if ((rc = decode(d, f, path, max_pixels, load, w, h))) {
		if (rc == -1 && d->err.truncated)
			ts_error("image", "%s: truncated JPEG: the file ends before the image "
			         "does (libjpeg: %s)", path, d->err.msg);
		else if (rc == -1)
			ts_error("image", "%s: cannot decode JPEG (libjpeg: %s)", path, d->err.msg);
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (d->created)
		jpeg_destroy_decompress(&d->cinfo);
	if (ret) {
		ts_image_destroy(d->im);
		d->im = NULL;
	}
	return ret;
}

int
image_jpeg_probe(FILE *f, const char *path, int *w, int *h, int *bits)
{
	struct jdec d;
	int pw, ph;

	memset(&d, 0, sizeof d);
	if (jpeg_open(&d, f, path, 0, 0, &pw, &ph))
		return -1;
	if (w)
		*w = pw;
	if (h)
		*h = ph;
	if (bits)
		*bits = 8;
	return 0;
}

int
image_jpeg_probe_scaled(FILE *f, const char *path, int denom, int *w, int *h, int *applied)
{
	struct jdec d;
	int pw, ph;

	memset(&d, 0, sizeof d);
	if (jpeg_open(&d, f, path, 0, 0, &pw, &ph))
		return -1;
	/* a rotated JPEG is decoded whole (no streaming), so unscaled */
	*applied = d.orientation == 1 ? denom : 1;
	*w = (pw + *applied - 1) / *applied, *h = (ph + *applied - 1) / *applied;
	return 0;
}

ts_image *
image_jpeg_load(FILE *f, const char *path, long long max_pixels)
{
	struct jdec d;
	int w, h;

	memset(&d, 0, sizeof d);
	if (jpeg_open(&d, f, path, max_pixels, 1, &w, &h))
		return NULL;
	return d.im;
}

/* --- streaming: rows in order (orientation 1 only; others are decoded whole) --- */

struct image_jpeg_stream {
	struct jdec d;
	JSAMPARRAY row;
	char *path; /* owned */
	int w, h;
};

void
image_jpeg_stream_close(image_jpeg_stream *s)
{
	if (!s)
		return;
	if (s->d.created)
		jpeg_destroy_decompress(&s->d.cinfo);
	free(s->path);
	free(s);
}

/* Header and start under one setjmp: 0, 1 (orientation: decode whole), -1, -2. */
static int
stream_start(image_jpeg_stream *s, FILE *f, long long max_pixels, int denom)
{
	j_decompress_ptr ci = &s->d.cinfo;

	set_handlers(&s->d);
	if (setjmp(s->d.err.jmp))
		return -1;
	if (read_header(&s->d, f, s->path, max_pixels, &s->w, &s->h))
		return -2;
	if (s->d.orientation != 1)
		return 1;
	/* libjpeg-turbo's scaled inverse DCT: 1/2..1/8 on the way, each block decoded
	 * straight to its smaller size (no full-size row ever made) */
	ci->scale_num = 1;
	ci->scale_denom = (unsigned)denom;
	s->w = (s->w + denom - 1) / denom, s->h = (s->h + denom - 1) / denom;
	if (start_decode(&s->d, s->path))
		return -2;
	s->row = (*ci->mem->alloc_sarray)((j_common_ptr)ci, JPOOL_IMAGE,
	                                  ci->output_width * ci->output_components, 1);
	return 0;
}

static void
report_jpeg(const struct jdec *d, const char *path)
{
	if (d->err.truncated)
		ts_error("image", "%s: truncated JPEG: the file ends before the image does "
		         "(libjpeg: %s)", path, d->err.msg);
	else
		ts_error("image", "%s: cannot decode JPEG (libjpeg: %s)", path, d->err.msg);
}

image_jpeg_stream *
image_jpeg_stream_open(FILE *f, const char *path, long long max_pixels, int denom, int *w,
                       int *h, int *bits, int *whole)
{
	image_jpeg_stream *s = calloc(1, sizeof *s);
	int rc;

	TS_ASSERT(denom == 1 || denom == 2 || denom == 4 || denom == 8);
	*whole = 0;
	if (!s || !(s->path = strdup(path))) {
		ts_error("image", "%s: out of memory", path);
		free(s);
		return NULL;
	}
	if (fseek(f, 0, SEEK_SET)) {
		ts_error_errno("image", "cannot seek in %s", path);
		goto fail;
	}
	if ((rc = stream_start(s, f, max_pixels, denom)) == 1) {
		*whole = 1;
		goto fail;
	}
	if (rc) {
		if (rc == -1)
			report_jpeg(&s->d, path);
		goto fail;
	}
	*w = s->w, *h = s->h, *bits = 8;
	return s;
fail:
	image_jpeg_stream_close(s);
	return NULL;
}

static int
stream_rows(image_jpeg_stream *s, int rows, float *out)
{
	j_decompress_ptr ci = &s->d.cinfo;

	if (setjmp(s->d.err.jmp))
		return -1;
	for (int r = 0; r < rows; r++) {
		if (jpeg_read_scanlines(ci, s->row, 1) != 1)
			ERREXIT(ci, JERR_INPUT_EOF);
		put_row_to(&s->d, s->row[0], r, out, rows);
	}
	if (ci->output_scanline == ci->output_height)
		jpeg_finish_decompress(ci);
	return 0;
}

int
image_jpeg_stream_rows(image_jpeg_stream *s, int rows, float *out)
{
	TS_ASSERT(rows > 0 && (int)s->d.cinfo.output_scanline + rows <= s->h);
	if (stream_rows(s, rows, out)) {
		report_jpeg(&s->d, s->path);
		return -1;
	}
	return 0;
}
