/* cfgcheck: what a valid configuration is beyond each key's type and range: the check of
 * a string key's value (config's key table names it for the key) and the checks across
 * keys. Pure. */
#ifndef ROLLUPD_CFGCHECK_H
#define ROLLUPD_CFGCHECK_H

#include <stddef.h>

#include "rollupd/config.h"

/* One value: -1 with the reason (without the key) in why, or 0. */
typedef int (*ru_cfgcheck_fn)(const char *v, char *why, size_t whylen);

int ru_cfgcheck_url(const char *v, char *why, size_t whylen);        /* redis.url */
int ru_cfgcheck_nonempty(const char *v, char *why, size_t whylen);   /* stream, group */
int ru_cfgcheck_start(const char *v, char *why, size_t whylen);      /* "0" or "$" */
int ru_cfgcheck_table(const char *v, char *why, size_t whylen);      /* [schema.]table */
int ru_cfgcheck_table_opt(const char *v, char *why, size_t whylen);  /* the same, or "" */
int ru_cfgcheck_socket(const char *v, char *why, size_t whylen);     /* a Unix socket path */
int ru_cfgcheck_cluster(const char *v, char *why, size_t whylen);    /* auto, on, off */
int ru_cfgcheck_seeds(const char *v, char *why, size_t whylen);      /* host:port list */
int ru_cfgcheck_log_format(const char *v, char *why, size_t whylen); /* auto ... json */
int ru_cfgcheck_listen(const char *v, char *why, size_t whylen);     /* "" or host:port */

/* The checks across keys: -1 with the index of the key at fault in *bad and "key: reason"
 * in why, or 0. */
int ru_cfgcheck_across(const struct ru_config *c, int *bad, char *why, size_t whylen) RU_MUSTCHECK;

#endif
