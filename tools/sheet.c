/* tessera-sheet: the contact sheet of a finished run, from its report.
 *
 *   tessera-sheet REPORT.json OUT.png
 *
 * Draws what --sheet draws at the end of a run (sheet.h): the content, the styles and
 * the output the report's settings name, side by side, and the loss curve from its
 * iterations (a single piece) or levels (a tiled run).  The report's file names are
 * as the run was given them: relative ones are read from the folder the run was
 * started in (the report's "cwd"), so it may be run from anywhere. */
#include <stdio.h>
#include <string.h>

#include "tessera/config.h"
#include "tessera/error.h"
#include "tessera/sheet.h"

int
main(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: tessera-sheet REPORT.json OUT.png\n"
		       "The contact sheet of a tessera run: content, styles, output and the loss\n"
		       "curve side by side, from the run's --report (relative file names in it\n"
		       "are read from the folder the run was started in).  OUT's extension: .png\n"
		       ".jpg .tif .bmp\n");
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("tessera-sheet %s\n", TS_VERSION);
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: tessera-sheet REPORT.json OUT.png\n");
		return 2;
	}
	if (ts_sheet_write_file(argv[1], argv[2])) {
		ts_error_print(stderr, "tessera-sheet", ts_errmsg());
		return 1;
	}
	return 0;
}
