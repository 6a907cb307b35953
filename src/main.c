/* rollupd: argv, configuration check, and wiring. Runs in the foreground.
 *
 * Every message printed here starts with a "<N>" priority prefix like those of log.c,
 * so that journald records a configuration error at start as an error (SD_ERR) rather
 * than as information. */
#include <getopt.h>
#include <systemd/sd-daemon.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/config.h"
#include "rollupd/daemon.h"
#include "rollupd/log.h"
#include "rollupd/pgw.h"

#define DEFAULT_CONFIG "/etc/rollupd/rollupd.conf"

static void usage(FILE *out)
{
    fprintf(out, "usage: rollupd [-c FILE] [-t] [--print-schema] [-h] [--version]\n"
                 "\n"
                 "Reads genonaut's route-analytics Redis stream in a consumer group, aggregates\n"
                 "hourly route statistics in memory and merges them into PostgreSQL exactly once.\n"
                 "\n"
                 "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
                 "  -t, --test          check the configuration and exit (0 = valid)\n"
                 "      --print-schema  print the DDL of the tables for FILE's configuration\n"
                 "  -h, --help          this help\n"
                 "      --version       print the version\n"
                 "\n"
                 "Signals: SIGUSR1 flush now, SIGHUP reload, SIGTERM/SIGINT graceful stop.\n");
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    bool test = false, print_schema = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {"print-schema", no_argument, NULL, 'S'}, {NULL, 0, NULL, 0}};
    int c;
    opterr = 0; /* getopt's own message would have no priority prefix */
    while ((c = getopt_long(argc, argv, "c:th", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("rollupd %s\n", RU_VERSION);
            return 0;
        case 'S':
            print_schema = true;
            break;
        default:
            fprintf(stderr, SD_ERR "rollupd: bad option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, SD_ERR "rollupd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct ru_config cfg;
    char err[1024];
    if (ru_config_load(&cfg, path, err, sizeof(err)) < 0) {
        fprintf(stderr, SD_ERR "rollupd: configuration error: %s\n", err);
        return 1;
    }
    char why[1024];
    if (!print_schema && ru_config_secret_exposed(&cfg, why, sizeof(why)))
        ru_warn("msg=\"%s\"", why);
    if (print_schema) {
        struct ru_buf sql = RU_BUF_INIT;
        ru_pgw_schema_sql(&cfg, &sql);
        fputs(sql.p, stdout);
        ru_buf_free(&sql);
        ru_config_deinit(&cfg);
        return 0;
    }
    if (test) {
        printf(SD_INFO "rollupd: configuration %s is valid\n", path);
        ru_config_deinit(&cfg);
        return 0;
    }
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
