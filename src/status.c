#include "rollupd/status.h"

#include "rollupd/listener.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CLIENTS    64
#define LINE_MAX_BYTES 1024
#define REQUEST_MS     2000 /* a command line must be whole this long after the connect */
#define WRITE_MS       2000

/* The request of one connection slot (same index as the listener's slot). */
struct ru_status_req {
    struct ru_status *srv;
    struct ru_lconn *c;
};

struct ru_status {
    int lfd; /* until the listener owns it */
    struct ru_listener *l;
    char *path; /* set when we created the file */
    const struct ru_status_cmd *cmds;
    size_t ncmds;
    void *ud;
    struct ru_status_req reqs[MAX_CLIENTS];
};

static bool whole_line(const char *in, size_t len, bool eof)
{
    return eof || memchr(in, '\n', len) != NULL;
}

static void on_request(void *ud, struct ru_lconn *c, bool too_long);

static void start_listener(struct ru_status *s)
{
    const struct ru_listener_ops ops = {
        .max_conns = MAX_CLIENTS,
        .max_request = LINE_MAX_BYTES - 1,
        .request_ms = REQUEST_MS,
        .write_ms = WRITE_MS,
        .whole = whole_line,
        .handle = on_request,
        .ud = s,
        .full_text = "error: too many clients\n",
    };
    s->l = ru_listener_new(s->lfd, &ops);
    s->lfd = -1;
}

/* Whether something still answers on the socket file sa names: a second rollupd started
 * with the same configuration must not take the socket of the one running (after it
 * exits, the file would be gone and the running one unreachable). Connecting tells: a
 * listener accepts (or its backlog is full); a file left by a process that is gone
 * refuses (ECONNREFUSED). Returns 0 when the file is stale and may be replaced, -1 with
 * the reason in err otherwise. */
static int refuse_live_socket(const struct sockaddr_un *sa, char *err, size_t errlen)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    int e = errno;
    if (rc == 0 || e == EAGAIN) {
        char who[32] = "";
        struct ucred peer;
        socklen_t len = sizeof(peer);
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 && peer.pid > 0)
            snprintf(who, sizeof(who), " (pid %d)", (int)peer.pid);
        close(fd);
        snprintf(err, errlen,
                 "status socket %s is in use by a running rollupd%s: another instance with the "
                 "same configuration? stop it, or give this one its own status.socket",
                 sa->sun_path, who);
        return -1;
    }
    close(fd);
    if (e == ECONNREFUSED || e == ENOENT)
        return 0; /* nobody listens (ENOENT: the file went away meanwhile) */
    snprintf(err, errlen,
             "status socket %s exists and cannot be checked (connect: %s); not replaced",
             sa->sun_path, strerror(e));
    return -1;
}

struct ru_status *ru_status_new(const char *path, int listen_fd, unsigned mode,
                                const struct ru_status_cmd *cmds, size_t ncmds, void *ud, char *err,
                                size_t errlen)
{
    struct ru_status *s = ru_xcalloc(1, sizeof(*s));
    s->cmds = cmds;
    s->ncmds = ncmds;
    s->ud = ud;
    s->lfd = -1;
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        s->reqs[i].srv = s;
    if (listen_fd >= 0) {
        s->lfd = listen_fd;
        start_listener(s);
        return s;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "%s: socket path too long", path);
        goto fail;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto fail;
    }
    struct stat stt;
    if (lstat(path, &stt) == 0) {
        if (!S_ISSOCK(stt.st_mode)) {
            snprintf(err, errlen, "%s: exists and is not a socket", path);
            goto fail;
        }
        if (refuse_live_socket(&sa, err, errlen) < 0)
            goto fail;
        unlink(path); /* a stale socket from a previous run */
    }
    /* create it with no permissions for others from the start, then set the mode */
    mode_t old = umask(0177);
    int rc = bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0) {
        snprintf(err, errlen, "%s: bind: %s", path, strerror(errno));
        goto fail;
    }
    s->path = ru_xstrdup(path);
    if (chmod(path, (mode_t)mode) < 0) {
        snprintf(err, errlen, "%s: chmod: %s", path, strerror(errno));
        goto fail;
    }
    /* a deep backlog: the loop accepts quickly and evicts idle clients, so connections
     * never wait long in it, and a new one is not refused while a flood is accepted */
    if (listen(s->lfd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "%s: listen: %s", path, strerror(errno));
        goto fail;
    }
    start_listener(s);
    return s;
fail:
    ru_status_free(s);
    return NULL;
}

void ru_status_free(struct ru_status *s)
{
    if (s == NULL)
        return;
    ru_listener_free(s->l);
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->path) {
        unlink(s->path);
        free(s->path);
    }
    free(s);
}

struct ru_listener *ru_status_listener(struct ru_status *s)
{
    return s->l;
}

static void dispatch(struct ru_status_req *r)
{
    struct ru_status *s = r->srv;
    char *line = r->c->in;
    char *nl = strpbrk(line, "\r\n");
    if (nl)
        *nl = '\0';
    while (*line == ' ' || *line == '\t')
        line++;
    char *args = line + strcspn(line, " \t");
    if (*args) {
        *args++ = '\0';
        while (*args == ' ' || *args == '\t')
            args++;
    }
    for (size_t i = 0; i < s->ncmds; i++) {
        if (strcmp(s->cmds[i].word, line) == 0) {
            s->cmds[i].fn(s->ud, r, args);
            return;
        }
    }
    if (strcmp(line, "help") == 0) {
        struct ru_buf b = RU_BUF_INIT;
        for (size_t i = 0; i < s->ncmds; i++)
            ru_buf_printf(&b, "%-10s %s\n", s->cmds[i].word, s->cmds[i].help);
        ru_buf_printf(&b, "%-10s %s\n", "help", "this list");
        ru_status_reply(r, b.p, b.len);
        ru_buf_free(&b);
        return;
    }
    ru_status_replyf(r, "error: unknown command '%.64s' (try 'help')", line);
}

static void on_request(void *ud, struct ru_lconn *c, bool too_long)
{
    struct ru_status *s = ud;
    struct ru_status_req *r = &s->reqs[c->slot];
    r->c = c;
    if (too_long)
        ru_status_replyf(r, "error: command line too long");
    else
        dispatch(r);
}

void ru_status_reply(struct ru_status_req *r, const char *text, size_t len)
{
    if (len > 0 && text[len - 1] == '\n') {
        ru_listener_reply(r->c, text, len);
        return;
    }
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_append(&b, text, len);
    ru_buf_putc(&b, '\n');
    ru_listener_reply(r->c, b.p, b.len);
    ru_buf_free(&b);
}

void ru_status_replyf(struct ru_status_req *r, const char *fmt, ...)
{
    struct ru_buf b = RU_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    ru_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    ru_status_reply(r, b.p ? b.p : "", b.len);
    ru_buf_free(&b);
}
