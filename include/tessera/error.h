/* error: the thread-local error buffer every module reports into.
 *
 * Functions return 0 / -1 (or NULL) and leave "module: message" here; callers pass
 * -1 up without adding text of their own unless they add context.  Only main.c and
 * sched.c print it and end the process. */
#ifndef TESSERA_ERROR_H
#define TESSERA_ERROR_H

#include <stdio.h>
#include <stdlib.h>

/* Record "module: message" (printf format); replaces any earlier message. */
void ts_error(const char *module, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Same, with ": strerror(errno)" appended (errno is read before anything else). */
void ts_error_errno(const char *module, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The one door for reporting several problems at once (a whole configuration's, say):
 * append "module: message" (module NULL: the message alone) to the current message on
 * a line of its own and count it in *nerr (nerr may be NULL).  Problems are joined by
 * '\n' (a message itself has no newline, so printers split at '\n' and prefix each
 * line, never at "; " inside a message).  A check calls ts_error_clear() first, then
 * ts_error_add for each problem, and fails when *nerr > 0. */
void ts_error_add(int *nerr, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Print msg to f for a user: each problem on its own line as "prefix: problem",
 * without the internal module names "sched: " and "job: " in front. */
void ts_error_print(FILE *f, const char *prefix, const char *msg);
/* The last message ("" if none); valid until the next ts_error* call on this thread. */
const char *ts_errmsg(void);
void ts_error_clear(void);

/* Always-on check of shapes and invariants: a failure is a bug in tessera. */
#define TS_ASSERT(cond)                                                          \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "tessera: assertion failed: %s (%s:%d)\n", \
			        #cond, __FILE__, __LINE__);                      \
			abort();                                                 \
		}                                                                \
	} while (0)

#endif
