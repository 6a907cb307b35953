#include "rollupd/userset.h"

#include <stdlib.h>
#include <string.h>

static uint64_t uuid_hash(const struct ru_uuid *u)
{
    uint64_t x = u->hi ^ (u->lo * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return x;
}

bool ru_userset_uuid_is_zero(const struct ru_uuid *u)
{
    return u->hi == 0 && u->lo == 0;
}

/* Lower case only: the text is the canonical form (ru_event_uuid_canon's), and any other
 * spelling is an identifier of its own (ru_hex_digit takes either case). */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool ru_uuid_from_text(const char *s, size_t len, struct ru_uuid *out)
{
    if (len != 36)
        return false;
    uint64_t w[2] = {0, 0};
    int nib = 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
            continue;
        }
        int v = hexval(s[i]);
        if (v < 0)
            return false;
        w[nib / 16] = (w[nib / 16] << 4) | (uint64_t)v;
        nib++;
    }
    out->hi = w[0];
    out->lo = w[1];
    return true;
}

static void uuid_insert_slot(struct ru_uuid *t, size_t cap, const struct ru_uuid *u)
{
    size_t j = (size_t)uuid_hash(u) & (cap - 1);
    while (!ru_userset_uuid_is_zero(&t[j]))
        j = (j + 1) & (cap - 1);
    t[j] = *u;
}

bool ru_userset_has_uuid(const struct ru_userset *us, const struct ru_uuid *u)
{
    if (ru_userset_uuid_is_zero(u))
        return us->has_zero;
    if (us->uuids_cap == 0)
        return false;
    size_t mask = us->uuids_cap - 1;
    for (size_t j = (size_t)uuid_hash(u) & mask; !ru_userset_uuid_is_zero(&us->uuids[j]);
         j = (j + 1) & mask)
        if (us->uuids[j].hi == u->hi && us->uuids[j].lo == u->lo)
            return true;
    return false;
}

/* Room for n ids in all, at a load of at most 3/4: one rehash however many arrive. */
void ru_userset_reserve_uuids(struct ru_userset *us, size_t n)
{
    if (n * 4 <= us->uuids_cap * 3)
        return;
    size_t cap = us->uuids_cap ? us->uuids_cap : 8;
    while (n * 4 > cap * 3)
        cap *= 2;
    struct ru_uuid *t = ru_xcalloc(cap, sizeof(*t));
    for (size_t i = 0; i < us->uuids_cap; i++)
        if (!ru_userset_uuid_is_zero(&us->uuids[i]))
            uuid_insert_slot(t, cap, &us->uuids[i]);
    free(us->uuids);
    us->uuids = t;
    us->uuids_cap = cap;
}

/* Adds u, known not to be in the set. */
void ru_userset_add_uuid(struct ru_userset *us, const struct ru_uuid *u)
{
    if (ru_userset_uuid_is_zero(u)) {
        us->has_zero = true;
        return;
    }
    ru_userset_reserve_uuids(us, us->uuids_n + 1);
    uuid_insert_slot(us->uuids, us->uuids_cap, u);
    us->uuids_n++;
}

bool ru_userset_has_text(const struct ru_userset *us, const char *s, size_t len, uint64_t h)
{
    if (us->texts_cap == 0)
        return false;
    size_t mask = us->texts_cap - 1;
    for (size_t j = (size_t)h & mask; us->texts[j].text; j = (j + 1) & mask)
        if (us->texts[j].hash == h && us->texts[j].len == len &&
            memcmp(us->texts[j].text, s, len) == 0)
            return true;
    return false;
}

static void text_insert_slot(struct ru_textslot *t, size_t cap, struct ru_textslot v)
{
    size_t j = (size_t)v.hash & (cap - 1);
    while (t[j].text)
        j = (j + 1) & (cap - 1);
    t[j] = v;
}

/* Adds a copy of [s, s+len), known not to be in the set. */
void ru_userset_add_text(struct ru_userset *us, const char *s, size_t len, uint64_t h)
{
    if ((us->texts_n + 1) * 4 > us->texts_cap * 3) {
        size_t cap = us->texts_cap ? us->texts_cap * 2 : 8;
        struct ru_textslot *t = ru_xcalloc(cap, sizeof(*t));
        for (size_t i = 0; i < us->texts_cap; i++)
            if (us->texts[i].text)
                text_insert_slot(t, cap, us->texts[i]);
        free(us->texts);
        us->texts = t;
        us->texts_cap = cap;
    }
    struct ru_textslot v = {h, ru_xstrndup(s, len), (uint32_t)len};
    text_insert_slot(us->texts, us->texts_cap, v);
    us->texts_n++;
    us->text_bytes += len + 1;
}

uint64_t ru_userset_text_hash(const char *s, size_t len)
{
    return ru_fhash(s, len, 0x51afd7ed558ccd);
}

void ru_userset_free(struct ru_userset *us)
{
    for (size_t i = 0; i < us->texts_cap; i++)
        free(us->texts[i].text);
    free(us->texts);
    free(us->uuids);
    memset(us, 0, sizeof(*us));
}

size_t ru_userset_count(const struct ru_userset *us)
{
    return us->uuids_n + (us->has_zero ? 1 : 0) + us->texts_n;
}
