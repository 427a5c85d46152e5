/* sheet: a run at a glance, the contact sheet (--sheet FILE.png, tessera-sheet).
 *
 * One picture, drawn with cairo: a header line (version, output size, iterations or
 * levels, the final loss, seconds, the network), then side by side the content, each
 * style, the output (each scaled to a common height, SHEET_PANEL_H px, a very wide
 * one to twice that in width; file name and size beneath) and the loss curve on a
 * log axis with decade ticks: the total of every iteration of a single piece (levels
 * of a coarse-to-fine run marked where the iteration count starts again), or per
 * level of a tiled run the mean total of its tiles (blocks) with their range.
 *
 * Everything comes from the run's report (report.h): the settings name the content,
 * styles and output, the iterations or levels give the curve.  The pictures are read
 * by image.c in bounded memory (rows streamed and box-averaged, then the cubic
 * resize), so a gigapixel output makes a small sheet.  Text is set in DejaVu Sans
 * (fontconfig's match for it: fonts-dejavu-core).  The sheet is written by image.c's
 * writers (the extension of path: .png, .jpg, .tif, .bmp), atomically. */
#ifndef TESSERA_SHEET_H
#define TESSERA_SHEET_H

#include "tessera/config.h"

struct cJSON;

/* Height of a picture in the sheet (px). */
#define TS_SHEET_PANEL_H 256

/* A rectangle of the sheet (px). */
typedef struct ts_sheet_rect {
	int x, y, w, h;
} ts_sheet_rect;

/* Where the sheet puts things, from the pictures' sizes alone. */
typedef struct ts_sheet_layout {
	int w, h;                              /* the whole sheet */
	int npics;                             /* content, styles, output */
	ts_sheet_rect pic[TS_MAX_STYLES + 2];  /* each picture, scaled to exactly this */
	ts_sheet_rect plot;                    /* the curve's area, inside the axes */
} ts_sheet_layout;

/* The layout of a sheet of npics pictures (content, the styles, the output; 2 <= npics
 * <= TS_MAX_STYLES + 2) of sizes w[i] x h[i].  0, or -1 with a message. */
int ts_sheet_layout_for(int npics, const int *w, const int *h, ts_sheet_layout *l);

/* Draw the sheet of the run that report describes (a report.h tree: ts_report_json,
 * or a parsed file) and write it to path atomically.  The pictures are read from
 * the files the settings name ("content", "style", "out"): a relative name from the
 * report's "cwd" (the run's folder), or as given when it is not there (a run's folder
 * moved, or a report without "cwd").  0, or -1 with a message naming what is
 * missing or which file could not be read or written (no path.part left). */
int ts_sheet_write(const struct cJSON *report, const char *path);

/* The same from a report file (tessera-sheet REPORT.json OUT.png). */
int ts_sheet_write_file(const char *report_path, const char *path);

#endif
