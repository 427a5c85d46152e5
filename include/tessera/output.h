/* output: the finished picture, written band by band, in every form asked for:
 *   the output file: a .tif/.tiff as a tiled, deflate-compressed BigTIFF with the
 *     print's resolution (--dpi; with --print-size the print's own), an embedded sRGB
 *     ICC profile and reduced-resolution SubIFDs (image.h's ts_tiff_meta); any other
 *     format collected whole and saved by ts_image_save;
 *   --deep-zoom DIR: Deep Zoom tiles and a viewer (dzi.h), named after the output.
 * Used by the tiled assembly's last level and by the single-piece render, so both
 * write the same files.  Nothing appears under a real name until close succeeds. */
#ifndef TESSERA_OUTPUT_H
#define TESSERA_OUTPUT_H

#include "tessera/config.h"

/* Rows a band holds (the last band: what is left). */
#define TS_OUTPUT_BAND 256

typedef struct ts_output ts_output;

/* w x h at bits (8 or 16) to c->out (and c->deep_zoom).  NULL with a message. */
ts_output *ts_output_open(const ts_config *c, int w, int h, int bits);
/* The next rows: band [3, rows, w] in [0, 1] (clamped already), rows =
 * min(TS_OUTPUT_BAND, rows left). */
int ts_output_band(ts_output *o, const float *band, int rows);
/* Finish every file (abort = 1, or any failure: remove them).  Frees o. */
int ts_output_close(ts_output *o, int abort);

/* Bytes the writer holds for a w-wide output (the reduced levels' bands, the Deep
 * Zoom levels, or the whole picture for formats written whole): for --plan. */
double ts_output_bytes(const ts_config *c, int w, int h);

#endif
