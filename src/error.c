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
ts_error_append(const char *fmt, ...)
{
	size_t len = strlen(errbuf);
	va_list ap;

	if (len && len + 2 < sizeof errbuf) {
		memcpy(errbuf + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(errbuf + len, sizeof errbuf - len, fmt, ap);
	va_end(ap);
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
