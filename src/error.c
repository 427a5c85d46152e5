/* error: thread-local "module: message" buffer (see error.h). */
#include "tessera/error.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

static _Thread_local char errbuf[2048];

void
ts_error(const char *module, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(errbuf, sizeof errbuf, "%s: ", module);

	if (n < 0 || (size_t)n >= sizeof errbuf)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf + n, sizeof errbuf - (size_t)n, fmt, ap);
	va_end(ap);
}

void
ts_error_errno(const char *module, const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	size_t len;
	int n = snprintf(errbuf, sizeof errbuf, "%s: ", module);

	if (n < 0 || (size_t)n >= sizeof errbuf)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf + n, sizeof errbuf - (size_t)n, fmt, ap);
	va_end(ap);
	len = strlen(errbuf);
	snprintf(errbuf + len, sizeof errbuf - len, ": %s", strerror(e));
}

void
ts_error_add(int *nerr, const char *module, const char *fmt, ...)
{
	size_t len = strlen(errbuf);
	va_list ap;
	int n = 0;

	if (len && len + 1 < sizeof errbuf) {
		memcpy(errbuf + len, "\n", 2);
		len += 1;
	}
	if (module && len < sizeof errbuf)
		n = snprintf(errbuf + len, sizeof errbuf - len, "%s: ", module);
	if (n >= 0 && len + (size_t)n < sizeof errbuf) {
		va_start(ap, fmt);
		vsnprintf(errbuf + len + (size_t)n, sizeof errbuf - len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	if (nerr)
		(*nerr)++;
}

/* The scheduler's and the job's bookkeeping are no part of what the user gave: their
 * names say nothing to a user (a job's messages name the job directory). */
static const char *const internal[] = { "sched: ", "job: " };

void
ts_error_print(FILE *f, const char *prefix, const char *msg)
{
	for (const char *p = msg; p && *p;) {
		const char *q = strchr(p, '\n');
		int len = q ? (int)(q - p) : (int)strlen(p);

		for (size_t i = 0; i < sizeof internal / sizeof internal[0]; i++) {
			int il = (int)strlen(internal[i]);

			if (len > il && !strncmp(p, internal[i], (size_t)il)) {
				p += il;
				len -= il;
				i = (size_t)-1; /* "sched: job: ..." loses both */
			}
		}
		if (len > 0)
			fprintf(f, "%s: %.*s\n", prefix, len, p);
		p = q ? q + 1 : NULL;
	}
}

const char *
ts_errmsg(void)
{
	return errbuf;
}

void
ts_error_clear(void)
{
	errbuf[0] = '\0';
}
