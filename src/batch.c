#include "rollupd/batch.h"

#include <stdlib.h>

#include "rollupd/event.h"
#include "rollupd/utf8.h"

#define IDS_FIRST_CAP 1024 /* entry ids an id array starts with */

struct ru_batch *ru_batch_new(void)
{
    struct ru_batch *b = ru_xcalloc(1, sizeof(*b));
    b->store = ru_store_new();
    return b;
}

void ru_batch_free(struct ru_batch *b)
{
    if (b == NULL)
        return;
    ru_store_free(b->store);
    free(b->adopt_consumer);
    free(b->raw_ids);
    free(b->rejects);
    free(b->ids);
    ru_buf_free(&b->raw);
    free(b);
}

void ru_batch_add_id(struct ru_batch *b, const struct ru_sid *id)
{
    if (b->nids == b->ids_cap) {
        b->ids_cap = b->ids_cap ? b->ids_cap * 2 : IDS_FIRST_CAP;
        b->ids = ru_xrealloc(b->ids, b->ids_cap * sizeof(*b->ids));
    }
    b->ids[b->nids++] = *id;
    if (ru_sid_cmp(id, &b->checkpoint) > 0)
        b->checkpoint = *id;
}

size_t ru_batch_ids_growth(const struct ru_batch *b, size_t more)
{
    size_t need = b->nids + more, cap = b->ids_cap;
    if (need <= cap)
        return 0;
    size_t prev = cap, next = cap ? cap * 2 : IDS_FIRST_CAP;
    while (next < need) {
        prev = next;
        next *= 2;
    }
    /* the last realloc holds the array it grows from and the new one at once */
    return (next + prev - cap) * sizeof(*b->ids);
}

void ru_batch_keep_ids(struct ru_batch *b, struct ru_batch_ids *spare, size_t max_bytes)
{
    if (spare->ids != NULL || b->ids == NULL || b->ids_cap * sizeof(*b->ids) > max_bytes ||
        b->nids < b->ids_cap / 4)
        return;
    spare->ids = b->ids;
    spare->cap = b->ids_cap;
    b->ids = NULL;
    b->ids_cap = 0;
    b->nids = 0;
}

void ru_batch_use_ids(struct ru_batch *b, struct ru_batch_ids *spare)
{
    if (spare->ids == NULL || b->ids != NULL)
        return;
    b->ids = spare->ids;
    b->ids_cap = spare->cap;
    spare->ids = NULL;
    spare->cap = 0;
}

void ru_batch_ids_release(struct ru_batch *b)
{
    if (b->nids > 0)
        return;
    free(b->ids);
    b->ids = NULL;
    b->ids_cap = 0;
}

size_t ru_batch_ids_mem(const struct ru_batch_ids *spare)
{
    return spare->cap * sizeof(*spare->ids);
}

void ru_batch_ids_free(struct ru_batch_ids *spare)
{
    free(spare->ids);
    spare->ids = NULL;
    spare->cap = 0;
}

bool ru_batch_empty(const struct ru_batch *b)
{
    return b->nids == 0 && ru_store_nevents(b->store) == 0 && b->nraw == 0 &&
           ru_sid_is_zero(&b->checkpoint) && !b->lone_start && !b->force;
}

void ru_batch_note_id(struct ru_batch *b, const struct ru_sid *id)
{
    if (ru_sid_cmp(id, &b->checkpoint) > 0)
        b->checkpoint = *id;
}

size_t ru_batch_mem(const struct ru_batch *b)
{
    return sizeof(*b) + ru_store_mem(b->store) + b->ids_cap * sizeof(*b->ids) + b->raw.cap +
           b->raw_ids_cap * sizeof(*b->raw_ids);
}

void ru_batch_copy_escape(struct ru_buf *out, const char *s, size_t len)
{
    ru_buf_reserve(out, len + 8);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        char esc = 0;
        switch (s[i]) {
        case '\\':
            esc = '\\';
            break;
        case '\t':
            esc = 't';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        default:
            continue;
        }
        ru_buf_append(out, s + start, i - start);
        ru_buf_putc(out, '\\');
        ru_buf_putc(out, esc);
        start = i + 1;
    }
    ru_buf_append(out, s + start, len - start);
}

static void put_str_or_null(struct ru_buf *b, const struct ru_str *s)
{
    if (s->len == 0)
        ru_buf_append(b, "\\N", 2);
    else
        ru_batch_copy_escape(b, s->p, s->len);
}

void ru_batch_put_int_or_null(struct ru_buf *b, int64_t v, bool present)
{
    if (present)
        ru_buf_put_i64(b, v);
    else
        ru_buf_append(b, "\\N", 2);
}

void ru_batch_add_reject(struct ru_batch *b, const struct ru_sid *id, const char *reason)
{
    if (b->nrejects == b->rejects_cap) {
        b->rejects_cap = b->rejects_cap ? b->rejects_cap * 2 : 16;
        b->rejects = ru_xrealloc(b->rejects, b->rejects_cap * sizeof(*b->rejects));
    }
    b->rejects[b->nrejects].id = *id;
    ru_strlcpy(b->rejects[b->nrejects].reason, reason, sizeof(b->rejects[0].reason));
    b->nrejects++;
}

int ru_batch_add_raw(struct ru_batch *b, const struct ru_sid *id, const struct ru_event *ev)
{
    const char *why = NULL;
    if (ev->user_id.len && !ev->user_is_uuid)
        why = "raw row: user_id is not a UUID";
    else if (!ev->query_params_json)
        why = "raw row: query_params is not valid JSON";
    else if (ru_utf8_chars(ev->cache_status.p, ev->cache_status.len) > RU_EVENT_MAX_CACHE)
        why = "raw row: cache_status is longer than 10 characters";
    if (why) {
        ru_batch_add_reject(b, id, why);
        return -1;
    }
    if (b->nraw == b->raw_ids_cap) {
        b->raw_ids_cap = b->raw_ids_cap ? b->raw_ids_cap * 2 : 1024;
        b->raw_ids = ru_xrealloc(b->raw_ids, b->raw_ids_cap * sizeof(*b->raw_ids));
    }
    b->raw_ids[b->nraw] = *id;
    struct ru_buf *o = &b->raw;
    char ts[32];
    ru_batch_copy_escape(o, ev->route.p, ev->route.len);
    ru_buf_putc(o, '\t');
    ru_batch_copy_escape(o, ev->method.p, ev->method.len);
    ru_buf_putc(o, '\t');
    put_str_or_null(o, &ev->user_id);
    ru_buf_putc(o, '\t');
    ru_buf_append(o, ts, ru_event_format_ts(ev->ts_us, ts));
    ru_buf_putc(o, '\t');
    ru_buf_put_i64(o, ev->duration_ms);
    ru_buf_putc(o, '\t');
    ru_buf_put_i64(o, ev->status_code);
    ru_buf_putc(o, '\t');
    ru_batch_copy_escape(o, ev->query_params.p, ev->query_params.len);
    ru_buf_putc(o, '\t');
    ru_batch_copy_escape(o, ev->params_canon.p, ev->params_canon.len);
    ru_buf_putc(o, '\t');
    ru_batch_put_int_or_null(o, ev->request_size, ev->request_size != 0);
    ru_buf_putc(o, '\t');
    ru_batch_put_int_or_null(o, ev->response_size, ev->response_size != 0);
    ru_buf_putc(o, '\t');
    put_str_or_null(o, &ev->error_type);
    ru_buf_putc(o, '\t');
    ru_batch_put_int_or_null(o, ev->db_query_count, ev->has_db_query_count);
    ru_buf_putc(o, '\t');
    put_str_or_null(o, &ev->cache_status);
    ru_buf_putc(o, '\t');
    int64_t now_us = (int64_t)(ru_wall_s() * 1e6);
    ru_buf_append(o, ts, ru_event_format_ts(now_us, ts));
    ru_buf_putc(o, '\n');
    b->nraw++;
    return 0;
}
