#include "rollupd/status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CLIENTS     64
#define LINE_MAX_BYTES  1024
#define READ_TIMEOUT_MS 2000

enum req_state { R_FREE, R_READING, R_HANDLING, R_WRITING };

struct ru_status_req {
    struct ru_status *srv;
    int fd;
    enum req_state state;
    char in[LINE_MAX_BYTES];
    size_t inlen;
    struct ru_buf out;
    size_t outoff;
    int64_t deadline_ms;
};

struct ru_status {
    int lfd;
    char *path; /* set when we created the file */
    const struct ru_status_cmd *cmds;
    size_t ncmds;
    void *ud;
    struct ru_status_req reqs[MAX_CLIENTS];
};

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
    for (size_t i = 0; i < MAX_CLIENTS; i++) {
        s->reqs[i].fd = -1;
        s->reqs[i].srv = s;
    }
    if (listen_fd >= 0) {
        s->lfd = listen_fd;
        int fl = fcntl(listen_fd, F_GETFL);
        fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
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
    if (listen(s->lfd, 64) < 0) {
        snprintf(err, errlen, "%s: listen: %s", path, strerror(errno));
        goto fail;
    }
    return s;
fail:
    ru_status_free(s);
    return NULL;
}

static void req_close(struct ru_status_req *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->state = R_FREE;
    r->inlen = 0;
    r->outoff = 0;
    ru_buf_free(&r->out);
}

void ru_status_free(struct ru_status *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        req_close(&s->reqs[i]);
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->path) {
        unlink(s->path);
        free(s->path);
    }
    free(s);
}

int ru_status_pollfds(struct ru_status *s, struct pollfd *fds, int max)
{
    int n = 0;
    if (n < max && s->lfd >= 0) {
        fds[n].fd = s->lfd;
        fds[n].events = POLLIN;
        fds[n++].revents = 0;
    }
    for (size_t i = 0; i < MAX_CLIENTS && n < max; i++) {
        struct ru_status_req *r = &s->reqs[i];
        if (r->state == R_READING || r->state == R_WRITING) {
            fds[n].fd = r->fd;
            fds[n].events = r->state == R_READING ? POLLIN : POLLOUT;
            fds[n++].revents = 0;
        }
    }
    return n;
}

static void dispatch(struct ru_status_req *r)
{
    struct ru_status *s = r->srv;
    char *line = r->in;
    line[r->inlen] = '\0';
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
    r->state = R_HANDLING;
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

static void on_readable(struct ru_status_req *r)
{
    for (;;) {
        ssize_t n = read(r->fd, r->in + r->inlen, sizeof(r->in) - 1 - r->inlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                req_close(r);
            return;
        }
        if (n == 0) {
            /* the client closed its side: treat what we have as the line */
            if (r->inlen == 0) {
                req_close(r);
                return;
            }
            dispatch(r);
            return;
        }
        r->inlen += (size_t)n;
        if (memchr(r->in, '\n', r->inlen) != NULL) {
            dispatch(r);
            return;
        }
        if (r->inlen >= sizeof(r->in) - 1) {
            r->state = R_HANDLING;
            ru_status_replyf(r, "error: command line too long");
            return;
        }
    }
}

static void on_writable(struct ru_status_req *r)
{
    while (r->outoff < r->out.len) {
        ssize_t n = send(r->fd, r->out.p + r->outoff, r->out.len - r->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                req_close(r);
            return;
        }
        r->outoff += (size_t)n;
    }
    req_close(r);
}

void ru_status_on_ready(struct ru_status *s, int fd, short revents)
{
    if (fd == s->lfd) {
        for (;;) {
            int c = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0)
                return;
            struct ru_status_req *r = NULL;
            for (size_t i = 0; i < MAX_CLIENTS; i++) {
                if (s->reqs[i].state == R_FREE) {
                    r = &s->reqs[i];
                    break;
                }
            }
            if (r == NULL) {
                static const char busy[] = "error: too many clients\n";
                ssize_t w = send(c, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
                (void)w;
                close(c);
                continue;
            }
            r->fd = c;
            r->state = R_READING;
            r->inlen = 0;
            r->deadline_ms = ru_mono_ms() + READ_TIMEOUT_MS;
        }
    }
    for (size_t i = 0; i < MAX_CLIENTS; i++) {
        struct ru_status_req *r = &s->reqs[i];
        if (r->fd != fd || r->state == R_FREE)
            continue;
        if (r->state == R_READING && (revents & (POLLIN | POLLHUP | POLLERR)))
            on_readable(r);
        else if (r->state == R_WRITING && (revents & (POLLOUT | POLLHUP | POLLERR)))
            on_writable(r);
        return;
    }
}

void ru_status_tick(struct ru_status *s)
{
    int64_t now = ru_mono_ms();
    for (size_t i = 0; i < MAX_CLIENTS; i++) {
        struct ru_status_req *r = &s->reqs[i];
        if ((r->state == R_READING || r->state == R_WRITING) && now > r->deadline_ms)
            req_close(r);
    }
}

void ru_status_reply(struct ru_status_req *r, const char *text, size_t len)
{
    ru_buf_reset(&r->out);
    ru_buf_append(&r->out, text, len);
    if (len == 0 || text[len - 1] != '\n')
        ru_buf_putc(&r->out, '\n');
    r->outoff = 0;
    r->state = R_WRITING;
    r->deadline_ms = ru_mono_ms() + READ_TIMEOUT_MS;
    on_writable(r); /* most answers fit the socket buffer at once */
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

size_t ru_status_deferred(const struct ru_status *s)
{
    size_t n = 0;
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        n += s->reqs[i].state == R_HANDLING;
    return n;
}
