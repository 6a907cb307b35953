/* cfgfile: the configuration file, read by libconfig into struct ru_config (see
 * cfgfile.h). Pure: reads the file (plus anything it @includes), never prints, never
 * exits. Each setting's type is checked here; its value goes through config's key table. */
#include "rollupd/cfgfile.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rollupd/cfgcheck.h"
#include "rollupd/libcfg.h"

struct loader {
    const char *path;
    char *err;
    size_t errlen;
    struct ru_libcfg_wide wide;
    const char *key_file[RU_CONFIG_MAX_KEYS]; /* where each key was set (libconfig memory) */
    unsigned key_line[RU_CONFIG_MAX_KEYS];
};

static void fail(struct loader *ld, const char *file, unsigned line, const char *fmt, ...)
    RU_PRINTF(4, 5);

static void fail(struct loader *ld, const char *file, unsigned line, const char *fmt, ...)
{
    struct ru_buf b = RU_BUF_INIT;
    va_list ap;

    if (ld->err == NULL || ld->errlen == 0)
        return;
    ru_buf_puts(&b, file != NULL ? file : ld->path);
    if (line > 0)
        ru_buf_printf(&b, ":%u", line);
    ru_buf_puts(&b, ": ");
    va_start(ap, fmt);
    ru_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < b.len; i++) /* one line, whatever libconfig said */
        if (b.p[i] == '\n' || b.p[i] == '\r')
            b.p[i] = ' ';
    ru_strlcpy(ld->err, b.p, ld->errlen);
    ru_buf_free(&b);
}

static const char *src_file(const struct loader *ld, const config_setting_t *s)
{
    const char *f = config_setting_source_file(s);
    return f != NULL ? f : ld->path;
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    }
    return "nothing";
}

static int get_integer(struct loader *ld, const config_setting_t *s, const char *key, int64_t *out)
{
    const char *file = src_file(ld, s);
    unsigned line = config_setting_source_line(s);
    int type = config_setting_type(s);

    if (type == CONFIG_TYPE_INT64) {
        *out = config_setting_get_int64(s);
        return 0;
    }
    if (type != CONFIG_TYPE_INT) {
        fail(ld, file, line, "%s: expected an integer, got %s", key, type_name(type));
        return -1;
    }
    *out = config_setting_get_int(s);

    if (ru_libcfg_wide_value(&ld->wide, file, config_setting_name(s), line, out) < 0) {
        fail(ld, file, line, "%s: integer too large", key);
        return -1;
    }
    return 0;
}

/* One key's setting: its libconfig type checked here, its value by config's setters. */
static int apply_key(struct loader *ld, struct ru_config *c, int idx, const config_setting_t *s)
{
    const char *file = src_file(ld, s);
    unsigned line = config_setting_source_line(s);
    char key[128];
    char why[256];
    char where[4200];

    ru_config_key_name((size_t)idx, key, sizeof(key));
    ld->key_file[idx] = file;
    ld->key_line[idx] = line;
    snprintf(where, sizeof(where), "%s:%u", file, line);

    enum ru_config_kind kind = ru_config_key_kind((size_t)idx);
    int rc;
    if (kind == RU_CONFIG_INT || kind == RU_CONFIG_I64) {
        int64_t v;
        if (get_integer(ld, s, key, &v) < 0)
            return -1;
        rc = ru_config_set_int(c, (size_t)idx, v, where, why, sizeof(why));
    } else {
        int type = config_setting_type(s);
        if (kind == RU_CONFIG_BOOL) {
            if (type != CONFIG_TYPE_BOOL) {
                fail(ld, file, line, "%s: expected true or false, got %s", key, type_name(type));
                return -1;
            }
            ru_config_set_bool(c, (size_t)idx, config_setting_get_bool(s) != 0, where);
            return 0;
        }
        if (type != CONFIG_TYPE_STRING) {
            fail(ld, file, line, "%s: expected a string, got %s", key, type_name(type));
            return -1;
        }
        rc = ru_config_set(c, (size_t)idx, config_setting_get_string(s), where, why, sizeof(why));
    }
    if (rc < 0)
        fail(ld, file, line, "%s: %s", key, why);
    return rc;
}

static int apply_file(struct loader *ld, struct ru_config *c, config_t *lc)
{
    config_setting_t *root = config_root_setting(lc);
    int nsec = config_setting_length(root);

    for (int i = 0; i < nsec; i++) {
        config_setting_t *sec = config_setting_get_elem(root, (unsigned)i);
        const char *sname = config_setting_name(sec);
        const char *file = src_file(ld, sec);
        unsigned line = config_setting_source_line(sec);

        if (sname == NULL || !ru_config_section_known(sname)) {
            fail(ld, file, line, "%s: unknown section", sname != NULL ? sname : "?");
            return -1;
        }
        if (!config_setting_is_group(sec)) {
            fail(ld, file, line, "%s: expected a section (%s: { ... };), got %s", sname, sname,
                 type_name(config_setting_type(sec)));
            return -1;
        }
        int nkeys = config_setting_length(sec);
        for (int j = 0; j < nkeys; j++) {
            config_setting_t *s = config_setting_get_elem(sec, (unsigned)j);
            const char *kname = config_setting_name(s);
            int idx = kname != NULL ? ru_config_key_find(sname, kname) : -1;
            if (idx < 0) {
                fail(ld, src_file(ld, s), config_setting_source_line(s), "%s.%s: unknown key",
                     sname, kname != NULL ? kname : "?");
                return -1;
            }
            if (apply_key(ld, c, idx, s) < 0)
                return -1;
        }
    }
    return 0;
}

/* Cross-key checks and defaults that depend on other keys. */
static int resolve(struct loader *ld, struct ru_config *c)
{
    char why[512];
    int url = ru_config_key_find("redis", "url");
    int bad;

    ru_config_derive(c);
    if (ru_cfgcheck_across(c, &bad, why, sizeof(why)) < 0) {
        fail(ld, ld->key_file[bad], ld->key_line[bad], "%s", why);
        return -1;
    }
    ru_redisurl_addr_deinit(&c->redis.addr);
    if (ru_redisurl_parse(c->redis.url, &c->redis.addr, why, sizeof(why)) < 0) {
        fail(ld, ld->key_file[url], ld->key_line[url], "redis.url: %s", why);
        return -1;
    }
    return 0;
}

static int load(struct loader *ld, struct ru_config *c)
{
    char ebuf[128];
    FILE *fp = fopen(ld->path, "r");
    if (fp == NULL) {
        fail(ld, NULL, 0, "cannot open: %s", strerror_r(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    struct stat st;
    bool dir = fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode);
    fclose(fp);
    if (dir) {
        fail(ld, NULL, 0, "cannot open: %s", strerror_r(EISDIR, ebuf, sizeof(ebuf)));
        return -1;
    }

    struct ru_libcfg_include_err ie;
    if (ru_libcfg_check_includes(ld->path, &ie) < 0) {
        fail(ld, ie.file, ie.line, "%s", ie.why);
        return -1;
    }

    config_t lc;
    config_init(&lc);
    /* No include_dir: libconfig 1.5 would prepend it to absolute @include paths too.
     * Relative @include paths are thus relative to the working directory. */

    int rc = -1;
    if (config_read_file(&lc, ld->path) != CONFIG_TRUE) {
        const char *efile = config_error_file(&lc);
        const char *text = config_error_text(&lc);
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            fail(ld, efile, 0, "cannot open: %s", text != NULL ? text : "I/O error");
        else
            fail(ld, efile, (unsigned)config_error_line(&lc), "%s",
                 text != NULL ? text : "syntax error");
    } else if (apply_file(ld, c, &lc) == 0 && resolve(ld, c) == 0) {
        rc = 0;
    }
    config_destroy(&lc);
    return rc;
}

int ru_cfgfile_load(struct ru_config *cfg, const char *path, char *err, size_t errlen)
{
    struct ru_config c;
    struct loader ld;

    memset(&ld, 0, sizeof(ld));
    ld.path = path != NULL ? path : "(null)";
    ld.err = err;
    ld.errlen = errlen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    memset(cfg, 0, sizeof(*cfg));
    if (path == NULL || path[0] == '\0') {
        fail(&ld, "(none)", 0, "no configuration file given");
        return -1;
    }

    ru_config_defaults(&c);
    c.path = ru_xstrdup(path);
    /* "" until the file says otherwise: resolved from other keys at the end */
    free(c.redis.consumer);
    c.redis.consumer = ru_xstrdup("");
    free(c.redis.dead_letter_stream);
    c.redis.dead_letter_stream = ru_xstrdup("");

    int rc = load(&ld, &c);
    ru_libcfg_wide_deinit(&ld.wide);
    if (rc < 0) {
        ru_config_deinit(&c);
        return -1;
    }
    *cfg = c;
    return 0;
}
