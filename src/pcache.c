#include "rollupd/pcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/json.h"

#define TABLE_CAP (2 * RU_PCACHE_MAX_ENTRIES) /* power of two: at most half full */
#define ERR_MAX   128

struct entry {
    uint64_t hash;
    uint32_t len;    /* of the raw text, data[0..len) */
    uint32_t outlen; /* of the canonical text or the refusal's reason, after the raw text */
    bool obj;        /* require_object */
    bool ok;
    char data[];
};

struct ru_pcache {
    struct entry **table;
    size_t n, bytes;
};

struct ru_pcache *ru_pcache_new(void)
{
    struct ru_pcache *c = ru_xcalloc(1, sizeof(*c));
    c->table = ru_xcalloc(TABLE_CAP, sizeof(*c->table));
    return c;
}

static void clear(struct ru_pcache *c)
{
    for (size_t i = 0; i < TABLE_CAP && c->n > 0; i++) {
        if (c->table[i]) {
            free(c->table[i]);
            c->table[i] = NULL;
            c->n--;
        }
    }
    c->n = 0;
    c->bytes = 0;
}

void ru_pcache_free(struct ru_pcache *c)
{
    if (c == NULL)
        return;
    clear(c);
    free(c->table);
    free(c);
}

size_t ru_pcache_mem(const struct ru_pcache *c)
{
    return c ? sizeof(*c) + TABLE_CAP * sizeof(*c->table) + c->bytes : 0;
}

static int answer(const struct entry *e, struct ru_buf *out, char *err, size_t errlen)
{
    const char *res = e->data + e->len;
    if (e->ok) {
        ru_buf_append(out, res, e->outlen);
        return 0;
    }
    if (errlen > 0) {
        size_t n = e->outlen < errlen - 1 ? e->outlen : errlen - 1;
        memcpy(err, res, n);
        err[n] = '\0';
    }
    return -1;
}

int ru_pcache_canon(struct ru_pcache *c, const char *s, size_t len, bool require_object,
                    struct ru_buf *out, char *err, size_t errlen)
{
    if (c == NULL || len > RU_PCACHE_MAX_TEXT)
        return ru_json_canon(s, len, require_object, out, err, errlen);
    uint64_t h = ru_fhash(s, len, require_object ? 0x9e3779b97f4a7c15ULL : 0);
    size_t i = (size_t)h & (TABLE_CAP - 1);
    for (struct entry *e; (e = c->table[i]) != NULL; i = (i + 1) & (TABLE_CAP - 1))
        if (e->hash == h && e->len == len && e->obj == require_object &&
            memcmp(e->data, s, len) == 0)
            return answer(e, out, err, errlen);

    /* a miss: canonicalise, then keep the answer */
    char why[ERR_MAX];
    size_t mark = out->len;
    int rc = ru_json_canon(s, len, require_object, out, why, sizeof(why));
    const char *res = rc == 0 ? out->p + mark : why;
    size_t reslen = rc == 0 ? out->len - mark : strlen(why);
    if (rc < 0 && errlen > 0)
        ru_strlcpy(err, why, errlen);
    size_t size = sizeof(struct entry) + len + reslen;
    if (c->n + 1 > RU_PCACHE_MAX_ENTRIES || c->bytes + size > RU_PCACHE_MAX_BYTES) {
        clear(c);
        i = (size_t)h & (TABLE_CAP - 1);
    }
    struct entry *e = ru_xmalloc(size);
    e->hash = h;
    e->len = (uint32_t)len;
    e->outlen = (uint32_t)reslen;
    e->obj = require_object;
    e->ok = rc == 0;
    memcpy(e->data, s, len);
    memcpy(e->data + len, res, reslen);
    c->table[i] = e;
    c->n++;
    c->bytes += size;
    return rc;
}
