/* redact: Redis URLs and libpq connection strings with their secrets replaced, for logs,
 * status and the -t report. Pure (libpq reads a connection string; nothing connects). */
#ifndef ROLLUPD_REDACT_H
#define ROLLUPD_REDACT_H

#include <stdbool.h>
#include <stddef.h>

/* Copies a Redis URL or libpq conninfo into out with any password replaced by "***",
 * for logs and status. A Redis URL (redis://, rediss://, unix:) keeps its form with the
 * password replaced. Anything else is read by libpq itself (PQconninfoParse) and written
 * back as key=value pairs, every option libpq marks secret shown as "***"; a string
 * libpq cannot read is not shown at all (only a word without '=', which libpq takes as
 * a database name, is shown as dbname=...). */
void ru_redact(const char *s, char *out, size_t outlen);

/* Whether libpq would read a secret (an option it marks '*') out of conninfo; true too
 * for a string libpq cannot read that holds a '=' (it may hide one anywhere). */
bool ru_redact_conninfo_has_secret(const char *conninfo);

#endif
