/* rollupctl: command-line client of rollupd's status socket. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rollupd/util.h"

#define DEFAULT_SOCKET "/run/rollupd/rollupd.sock"

static void usage(FILE *out)
{
    fprintf(out, "usage: rollupctl [-s SOCKET] [-t TIMEOUT_MS] COMMAND [ARGS]\n"
                 "commands: status, flush, help (see rollupctl(1))\n");
}

/* Sends one line, reads the answer until the server closes. Returns 0 or -1. */
static int ask(const char *path, const char *line, int timeout_ms, struct ru_buf *out)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "rollupctl: %s: socket path too long\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "rollupctl: cannot connect to %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t len = strlen(line);
    if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
        fprintf(stderr, "rollupctl: %s: write failed: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    int64_t deadline = ru_mono_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        int left = (int)(deadline - ru_mono_ms());
        if (left <= 0) {
            fprintf(stderr, "rollupctl: %s: no answer within %d ms\n", path, timeout_ms);
            close(fd);
            return -1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "rollupctl: %s: read failed: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        ru_buf_append(out, buf, (size_t)n);
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = getenv("ROLLUPD_SOCKET") ? getenv("ROLLUPD_SOCKET") : DEFAULT_SOCKET;
    int timeout_ms = 0;
    int c;
    while ((c = getopt(argc, argv, "+s:t:h")) != -1) {
        switch (c) {
        case 's':
            path = optarg;
            break;
        case 't':
            timeout_ms = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    struct ru_buf line = RU_BUF_INIT;
    for (int i = optind; i < argc; i++) {
        if (i > optind)
            ru_buf_putc(&line, ' ');
        ru_buf_puts(&line, argv[i]);
    }
    ru_buf_putc(&line, '\n');
    if (timeout_ms <= 0)
        timeout_ms = strcmp(argv[optind], "flush") == 0 ? 600000 : 5000;
    struct ru_buf out = RU_BUF_INIT;
    int rc = ask(path, line.p, timeout_ms, &out);
    if (rc == 0) {
        fwrite(out.p ? out.p : "", 1, out.len, stdout);
        if (out.len >= 6 && strncmp(out.p, "error:", 6) == 0)
            rc = 1;
    } else {
        rc = 2;
    }
    ru_buf_free(&line);
    ru_buf_free(&out);
    return rc;
}
