/* libcfg: what libconfig 1.5 gets wrong, worked around (see libcfg.h). */
#include "rollupd/libcfg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- wide integer literals ---------------------------------------------------------- */

static void add_wide_lit(struct ru_libcfg_wide *w, const char *file, const char *name,
                         unsigned name_line, unsigned lit_line, int64_t value, bool overflow)
{
    if (w->nlits == w->litcap) {
        w->litcap = w->litcap ? w->litcap * 2 : 8;
        w->lits = ru_xrealloc(w->lits, w->litcap * sizeof(*w->lits));
    }
    struct ru_libcfg_lit *l = &w->lits[w->nlits++];
    memset(l, 0, sizeof(*l));
    l->file = ru_xstrdup(file);
    ru_strlcpy(l->name, name, sizeof(l->name));
    l->name_line = name_line;
    l->lit_line = lit_line;
    l->value = value;
    l->overflow = overflow;
}

/* Classifies the number token [t, t+n) (sign excluded); records it when it is an
 * unsuffixed integer outside the 32-bit range. */
static void scan_number(struct ru_libcfg_wide *w, const char *file, const char *name,
                        unsigned name_line, unsigned line, bool neg, const char *t, size_t n)
{
    bool hex = n > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X');
    size_t start = hex ? 2 : 0;
    size_t i = start;
    uint64_t v = 0;
    bool overflow = false;

    for (; i < n; i++) {
        int d = hex ? ru_hex_digit((unsigned char)t[i])
                    : (isdigit((unsigned char)t[i]) ? t[i] - '0' : -1);
        if (d < 0)
            break;
        uint64_t base = hex ? 16 : 10;
        if (v > (UINT64_MAX - (uint64_t)d) / base)
            overflow = true;
        else
            v = v * base + (uint64_t)d;
    }
    if (i == start || (i < n && t[i] == 'L'))
        return; /* not an integer, or an int64 literal libconfig reads correctly */
    if (i < n)
        return; /* a float or junk: libconfig decides */
    if (!overflow && v > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        overflow = true;
    int64_t sv = 0;
    if (!overflow)
        sv = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (overflow || sv > INT32_MAX || sv < INT32_MIN)
        add_wide_lit(w, file, name, name_line, line, sv, overflow);
}

static void scan_text(struct ru_libcfg_wide *w, const char *file, const char *p, size_t n)
{
    char name[64] = "";
    unsigned name_line = 0;
    unsigned line = 1;
    size_t i = 0;

    while (i < n) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') {
            line++;
            i++;
        } else if (c == '#' || (c == '/' && i + 1 < n && p[i + 1] == '/')) {
            while (i < n && p[i] != '\n')
                i++;
        } else if (c == '/' && i + 1 < n && p[i + 1] == '*') {
            for (i += 2; i < n && !(p[i] == '*' && i + 1 < n && p[i + 1] == '/'); i++)
                if (p[i] == '\n')
                    line++;
            i = i + 2 < n ? i + 2 : n;
        } else if (c == '"') {
            for (i++; i < n && p[i] != '"'; i++) {
                if (p[i] == '\\' && i + 1 < n)
                    i++;
                if (p[i] == '\n')
                    line++;
            }
            i++;
        } else if (isalpha(c) || c == '*') {
            size_t s = i;
            while (i < n &&
                   (isalnum((unsigned char)p[i]) || p[i] == '-' || p[i] == '_' || p[i] == '*'))
                i++;
            size_t len = i - s < sizeof(name) ? i - s : sizeof(name) - 1;
            memcpy(name, p + s, len);
            name[len] = '\0';
            name_line = line;
        } else if (isdigit(c) || ((c == '-' || c == '+' || c == '.') && i + 1 < n &&
                                  (isdigit((unsigned char)p[i + 1]) || p[i + 1] == '.'))) {
            bool neg = c == '-';
            if (c == '-' || c == '+')
                i++;
            size_t s = i;
            while (i < n &&
                   (isalnum((unsigned char)p[i]) || p[i] == '.' ||
                    ((p[i] == '-' || p[i] == '+') && (p[i - 1] == 'e' || p[i - 1] == 'E'))))
                i++;
            scan_number(w, file, name, name_line, line, neg, p + s, i - s);
        } else {
            i++;
        }
    }
}

static void scan_file(struct ru_libcfg_wide *w, const char *file)
{
    for (size_t i = 0; i < w->nscanned; i++)
        if (strcmp(w->scanned[i], file) == 0)
            return;
    w->scanned = ru_xrealloc(w->scanned, (w->nscanned + 1) * sizeof(*w->scanned));
    w->scanned[w->nscanned++] = ru_xstrdup(file);

    FILE *fp = fopen(file, "r");
    if (fp == NULL)
        return;
    struct ru_buf b = RU_BUF_INIT;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        ru_buf_append(&b, chunk, got);
    fclose(fp);
    if (b.p != NULL)
        scan_text(w, file, b.p, b.len);
    ru_buf_free(&b);
}

int ru_libcfg_wide_value(struct ru_libcfg_wide *w, const char *file, const char *name,
                         unsigned line, int64_t *value)
{
    scan_file(w, file);
    for (size_t i = 0; i < w->nlits; i++) {
        struct ru_libcfg_lit *l = &w->lits[i];
        if (l->used || strcmp(l->file, file) != 0 || strcmp(l->name, name) != 0 ||
            (l->name_line != line && l->lit_line != line))
            continue;
        l->used = true;
        if (l->overflow)
            return -1;
        *value = l->value;
        break;
    }
    return 0;
}

void ru_libcfg_wide_deinit(struct ru_libcfg_wide *w)
{
    for (size_t i = 0; i < w->nlits; i++)
        free(w->lits[i].file);
    free(w->lits);
    for (size_t i = 0; i < w->nscanned; i++)
        free(w->scanned[i]);
    free(w->scanned);
    memset(w, 0, sizeof(*w));
}

/* ---- @include ----------------------------------------------------------------------- */

static void include_fail(struct ru_libcfg_include_err *e, const char *file, unsigned line,
                         const char *fmt, ...) RU_PRINTF(4, 5);

static void include_fail(struct ru_libcfg_include_err *e, const char *file, unsigned line,
                         const char *fmt, ...)
{
    va_list ap;
    ru_strlcpy(e->file, file, sizeof(e->file));
    e->line = line;
    va_start(ap, fmt);
    vsnprintf(e->why, sizeof(e->why), fmt, ap);
    va_end(ap);
}

/* libconfig 1.5 exits the process on an @include of a directory and blocks on a FIFO;
 * check every @include (recursively, as libconfig resolves them: relative to the working
 * directory) and refuse anything but a regular file, naming the line. */
static int check_includes(const char *path, int depth, struct ru_libcfg_include_err *e)
{
    if (depth > 10) {
        include_fail(e, path, 0, "@include nested too deeply");
        return -1;
    }
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return 0; /* libconfig reports it with its own message */
    char line[4096];
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
        lineno++;
        const char *q = line + strspn(line, " \t");
        if (strncmp(q, "@include", 8) != 0)
            continue;
        q = strchr(q + 8, '"');
        const char *end = q ? strchr(q + 1, '"') : NULL;
        if (q == NULL || end == NULL)
            continue; /* a syntax error libconfig will name */
        char inc[4096];
        snprintf(inc, sizeof(inc), "%.*s", (int)(end - q - 1), q + 1);
        struct stat st;
        if (stat(inc, &st) == 0 && !S_ISREG(st.st_mode)) {
            include_fail(e, path, lineno, "@include \"%s\": not a regular file", inc);
            rc = -1;
        } else if (stat(inc, &st) == 0) {
            rc = check_includes(inc, depth + 1, e);
        }
    }
    fclose(fp);
    return rc;
}

int ru_libcfg_check_includes(const char *path, struct ru_libcfg_include_err *e)
{
    memset(e, 0, sizeof(*e));
    return check_includes(path, 0, e);
}
