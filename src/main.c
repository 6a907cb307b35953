/* rollupd: argv, configuration check, and wiring. Runs in the foreground.
 *
 * Messages printed here follow the log format (log.c): under journald they start with a
 * "<N>" priority prefix, so that journald records a configuration error at start as an
 * error (SD_ERR) rather than as information; elsewhere they are logfmt or JSON lines. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <systemd/sd-daemon.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rollupd/config.h"
#include "rollupd/daemon.h"
#include "rollupd/envcfg.h"
#include "rollupd/log.h"
#include "rollupd/pgw.h"
#include "rollupd/util.h"

#define DEFAULT_CONFIG "/etc/rollupd/rollupd.conf"

/* One message before the log level is known: "<N>rollupd: text" under journald, else a
 * log line of the chosen format with text as msg. */
static void say(enum ru_log_level level, const char *fmt, ...) RU_PRINTF(2, 3);
static void say(enum ru_log_level level, const char *fmt, ...)
{
    char text[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (ru_log_get_format() == RU_LOG_FMT_JOURNAL)
        fprintf(stderr, "<%d>rollupd: %s\n", (int)level, text);
    else
        ru_log(level, "msg=\"%s\"", text);
}

/* Blocks of MMAP_THRESHOLD bytes or more get a mapping of their own, given back when they are
 * freed. glibc's default starts there but raises the threshold to the size of each such block
 * freed (up to 32 MiB), and from then on the large blocks that flushes make and free again (a
 * batch's arrays and buffers) come from the heap, between small blocks that live longer (row
 * states, user sets, keys). Those keep the freed pages around them in use, and RSS settles
 * megabytes above what rollupd holds. Fixed, such blocks stay out of the heap. So that they
 * are not mapped and unmapped every flush either, hiredis' output buffer is kept below the
 * threshold (the XACKs are written chunk by chunk) and a steady stream's entry-id arrays are
 * kept from batch to batch (batch.h). Fixing it also keeps the heap's trim threshold at its
 * 128 KiB default instead of twice the raised mmap threshold, so free space at the heap's top
 * goes back to the system sooner. An operator's own setting (GLIBC_TUNABLES
 * glibc.malloc.mmap_threshold, MALLOC_MMAP_THRESHOLD_) is left alone. */
#define MMAP_THRESHOLD (128 * 1024)

static void fix_mmap_threshold(void)
{
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (getenv("MALLOC_MMAP_THRESHOLD_") != NULL ||
        (tunables != NULL && strstr(tunables, "glibc.malloc.mmap_threshold") != NULL))
        return;
    /* 0 under an allocator that is not glibc's (the sanitizers'): nothing to fix there */
    if (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1)
        ru_debug("msg=\"the allocator does not take an mmap threshold\"");
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rollupd [-c FILE] [-t] [--print-schema] [-h] [--version]\n"
            "\n"
            "Reads genonaut's route-analytics Redis stream in a consumer group, aggregates\n"
            "hourly route statistics in memory and merges them into PostgreSQL exactly once.\n"
            "\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ",\n"
            "                      which may be absent: defaults and ROLLUPD_* variables)\n"
            "  -t, --test          check the configuration, show each value and where it\n"
            "                      came from (file:line, environment, default); exit 0 = valid\n"
            "      --print-schema  print the DDL of the tables for this configuration\n"
            "  -h, --help          this help\n"
            "      --version       print the version\n"
            "\n"
            "Signals: SIGUSR1 flush now, SIGHUP reload, SIGTERM/SIGINT graceful stop.\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool test = false, print_schema = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {"print-schema", no_argument, NULL, 'S'}, {NULL, 0, NULL, 0}};
    int c;
    opterr = 0; /* getopt's own message would have no priority prefix */
    /* the format of messages before the configuration is read: the variable's, if valid */
    if (ru_log_use_format(getenv("ROLLUPD_LOG_FORMAT")) < 0)
        (void)ru_log_use_format("auto");
    while ((c = getopt_long(argc, argv, "c:th", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'S':
            print_schema = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("rollupd %s\n", RU_VERSION);
            return 0;
        default:
            say(RU_LOG_ERR, "bad option '%s'", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        say(RU_LOG_ERR, "unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* without -c, the default file is optional: a container passes only variables */
    if (path == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
        path = DEFAULT_CONFIG;
    else if (path == NULL && errno != ENOENT)
        path = DEFAULT_CONFIG; /* exists but cannot be seen: let the load say why */

    struct ru_config cfg;
    char err[1024];
    if (ru_envcfg_load(&cfg, path, environ, err, sizeof(err)) < 0) {
        say(RU_LOG_ERR, "configuration error: %s", err);
        return 1;
    }
    (void)ru_log_use_format(cfg.log.format); /* checked by the configuration */
    if (print_schema) {
        struct ru_buf sql = RU_BUF_INIT;
        ru_pgw_schema_sql(&cfg, &sql);
        fputs(sql.p, stdout);
        ru_buf_free(&sql);
        ru_config_deinit(&cfg);
        return 0;
    }
    char why[1024];
    if (path != NULL && ru_config_secret_exposed(&cfg, why, sizeof(why)))
        ru_warn("msg=\"%s\"", why);
    if (test) {
        struct ru_buf report = RU_BUF_INIT;
        ru_envcfg_report(&cfg, environ, &report);
        printf("%srollupd: configuration %s is valid\n%s",
               ru_log_get_format() == RU_LOG_FMT_JOURNAL ? SD_INFO : "",
               path != NULL ? path : "(no file: defaults and environment)",
               report.p != NULL ? report.p : "");
        ru_buf_free(&report);
        ru_config_deinit(&cfg);
        return 0;
    }
    ru_log_set_level(cfg.log.level); /* for fix_mmap_threshold's line; the daemon sets it too */
    fix_mmap_threshold();
    struct ru_daemon *d = ru_daemon_new(&cfg, err, sizeof(err));
    if (d == NULL) {
        ru_err("msg=\"cannot start\" error=\"%s\"", err);
        ru_config_deinit(&cfg);
        return 1;
    }
    int rc = ru_daemon_run(d);
    ru_daemon_free(d);
    return rc;
}
