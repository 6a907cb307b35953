/* redact: secrets out of Redis URLs and libpq connection strings (see redact.h). */
#include "rollupd/redact.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "rollupd/util.h"

static bool secret_key(const char *k, size_t n)
{
    return n == 8 && strncasecmp(k, "password", 8) == 0;
}

/* Length of a URI scheme followed by ':' at s, or 0. */
static size_t scheme_len(const char *s)
{
    size_t n = 0;
    if (!isalpha((unsigned char)s[0]))
        return 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '+' || s[n] == '-' || s[n] == '.')
        n++;
    return s[n] == ':' ? n : 0;
}

static void redact_pairs(const char *p, struct ru_buf *b)
{
    while (*p != '\0') {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        if (eq != NULL && secret_key(p, (size_t)(eq - p))) {
            ru_buf_append(b, p, (size_t)(eq - p) + 1);
            ru_buf_puts(b, "***");
        } else {
            ru_buf_append(b, p, n);
        }
        p += n;
        if (*p == '&')
            ru_buf_putc(b, *p++);
    }
}

/* The query's key=value pairs, with secret values replaced. Without a '?', the text is
 * still read as pairs: an odd URI must not carry "password=..." through untouched. */
static void redact_query(const char *p, struct ru_buf *b)
{
    const char *q = strchr(p, '?');
    if (q != NULL) {
        ru_buf_append(b, p, (size_t)(q - p) + 1);
        p = q + 1;
    }
    redact_pairs(p, b);
}

static bool redis_scheme(const char *s, size_t slen)
{
    return (slen == 5 && strncasecmp(s, "redis", 5) == 0) ||
           (slen == 6 && strncasecmp(s, "rediss", 6) == 0);
}

/* A Redis URL (rollupd's own format, see ru_redisurl_parse). */
static void redact_uri(const char *s, size_t slen, struct ru_buf *b)
{
    bool redis = redis_scheme(s, slen);
    const char *p = s + slen + 1;

    ru_buf_append(b, s, slen + 1);
    if (p[0] == '/' && p[1] == '/') {
        ru_buf_puts(b, "//");
        p += 2;
        /* The URL parser takes the last '@' before the first '/', '?' or '#'. Redact up
         * to the last '@' before the query (which also covers a password holding an
         * unencoded '/' or '@', a URL the parser refuses but a log may still show), or
         * else up to the first '@' before a '/'; an '@' in the query (unix:...?user=a@b)
         * is left to redact_query. */
        size_t qpos = strcspn(p, "?#");
        const char *at = NULL;
        for (const char *q = p; q < p + qpos; q++)
            if (*q == '@')
                at = q;
        if (at == NULL) {
            size_t spos = strcspn(p, "/");
            at = memchr(p, '@', spos);
        }
        if (at != NULL) {
            size_t alen = strcspn(p, "/?#");
            const char *colon = memchr(p, ':', (size_t)(at - p));
            if (colon != NULL) {
                ru_buf_append(b, p, (size_t)(colon - p) + 1);
                ru_buf_puts(b, "***@");
                p = at + 1;
            } else if (redis && p + alen > at) {
                ru_buf_puts(b, "***@"); /* redis://secret@host: a bare password */
                p = at + 1;
            }
        }
    }
    redact_query(p, b);
}

/* One conninfo value, quoted the way libpq reads it back: bare when it is a plain word,
 * else in single quotes with ' and \ escaped. */
static void put_conninfo_value(struct ru_buf *b, const char *v)
{
    if (v[0] != '\0' && strpbrk(v, " \t\n\r\f\v'\\") == NULL) {
        ru_buf_puts(b, v);
        return;
    }
    ru_buf_putc(b, '\'');
    for (; *v; v++) {
        if (*v == '\'' || *v == '\\')
            ru_buf_putc(b, '\\');
        ru_buf_putc(b, *v);
    }
    ru_buf_putc(b, '\'');
}

/* A libpq connection string, read by libpq itself: rollupd does not re-implement its
 * grammar (a hand-written reader once split a URI where libpq does not and showed a
 * password). Every option libpq marks secret (dispchar '*': password, sslpassword, and
 * whatever a later libpq adds) is shown as "***". */
static void redact_libpq(const char *s, struct ru_buf *b)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(s, &err);
    PQfreemem(err);
    if (opts == NULL) {
        /* libpq connects with a word without '=' as the database name (expand_dbname);
         * anything else it cannot read may hold a secret anywhere */
        const char *w = s + strspn(s, " \t\n\r\f\v");
        if (w[0] != '\0' && strchr(w, '=') == NULL && scheme_len(w) == 0) {
            ru_buf_puts(b, "dbname=");
            put_conninfo_value(b, s);
        } else {
            ru_buf_puts(b, "(not shown: not a connection string libpq can read)");
        }
        return;
    }
    for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL)
            continue;
        if (b->len > 0)
            ru_buf_putc(b, ' ');
        ru_buf_printf(b, "%s=", o->keyword);
        if (o->dispchar != NULL && o->dispchar[0] == '*')
            ru_buf_puts(b, "***");
        else
            put_conninfo_value(b, o->val);
    }
    PQconninfoFree(opts);
}

void ru_redact(const char *s, char *out, size_t outlen)
{
    struct ru_buf b = RU_BUF_INIT;

    if (out == NULL || outlen == 0)
        return;
    if (s == NULL) {
        out[0] = '\0';
        return;
    }
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    size_t slen = scheme_len(p);
    if (slen > 0 && (redis_scheme(p, slen) || (slen == 4 && strncasecmp(p, "unix", 4) == 0))) {
        ru_buf_append(&b, s, (size_t)(p - s));
        redact_uri(p, slen, &b);
    } else {
        redact_libpq(s, &b);
    }
    ru_strlcpy(out, b.p != NULL ? b.p : "", outlen);
    ru_buf_free(&b);
}

bool ru_redact_conninfo_has_secret(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    PQfreemem(err);
    bool found = opts == NULL && strchr(conninfo, '=') != NULL; /* unreadable: assume so */
    for (const PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        if (o->val != NULL && o->val[0] != '\0' && o->dispchar != NULL && o->dispchar[0] == '*')
            found = true;
    PQconninfoFree(opts);
    return found;
}
