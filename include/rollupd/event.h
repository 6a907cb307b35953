/* event: one stream entry (field/value pairs) -> struct ru_event, with genonaut's defaults
 * and validation. Pure: no I/O, no logging. */
#ifndef ROLLUPD_EVENT_H
#define ROLLUPD_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/util.h"

/* The key columns of an hourly row (route, method, query_params_normalized) sit in the
 * hourly table's unique btree index, whose entries PostgreSQL caps at 2704 bytes (8 kB
 * pages) after compressing each long attribute (pglz or lz4). What fits therefore depends
 * on the bytes, and only PostgreSQL can say; rollupd asks it (the daemon's key probe) for
 * every key that might not fit and refuses only what it refuses.
 *
 * RU_EVENT_MAX_KEY_FIELD: beyond this no compression brings one value under 2704 bytes
 * (pglz encodes at most 273 bytes in 3 bytes plus a control bit, about 87:1; lz4 at most
 * about 255:1, so 2704 bytes hold at most ~690 kB), so a longer route or canonical params
 * is refused without asking. It also bounds the work and memory one entry can cost.
 *
 * RU_EVENT_SURE_KEY: a key whose route + method + 6 x canonical params bytes stay at or
 * below this surely fits uncompressed: the index entry is at most 50 bytes of headers,
 * timestamp and padding plus route, method and the jsonb value, and jsonb's binary form
 * is at most 6 times the canonical text (the worst case is an array of one-digit
 * numbers: "0," is 2 bytes of text and 12 of jsonb). Longer keys are marked key_long. */
#define RU_EVENT_MAX_KEY_FIELD (1024 * 1024) /* bytes of route, of canonical params */
#define RU_EVENT_SURE_KEY      2560          /* route + method + 6 * params, bytes */
#define RU_EVENT_MAX_METHOD    10            /* characters: varchar(10) */
#define RU_EVENT_MAX_CACHE     10    /* characters: route_analytics.cache_status varchar(10) */
#define RU_EVENT_MAX_VALUE     65536 /* bytes of any other field value */

/* Timestamps accepted: 1970-01-01 .. 9999-12-31 (UTC), in microseconds. */
#define RU_EVENT_MIN_TS_US 0LL
#define RU_EVENT_MAX_TS_US 253402300799999999LL
#define RU_USECS_PER_HOUR  3600000000LL

/* A borrowed byte string (not NUL-terminated). */
struct ru_str {
    const char *p;
    size_t len;
};

/* One field/value pair of a stream entry, borrowed from the Redis reply. */
struct ru_field {
    struct ru_str name;
    struct ru_str value;
};

/* A parsed, valid event. Strings are borrowed: either from the fields passed to
 * ru_event_parse (valid as long as they are) or from the scratch buffer passed to it
 * (valid until that buffer is next modified). */
struct ru_event {
    struct ru_str route;
    struct ru_str method;  /* "GET" when the field is missing */
    struct ru_str user_id; /* canonical: UUIDs lower-case 8-4-4-4-12; len 0 = anonymous */
    int64_t ts_us;         /* epoch microseconds, rounded half-to-even from the text */
    int64_t hour_us;       /* ts_us floored to the hour */
    int32_t duration_ms;
    int32_t status_code;        /* smallint range */
    struct ru_str params_canon; /* canonical query_params_normalized ("{}" when missing) */
    struct ru_str query_params; /* query_params as given, "{}" when missing */
    bool query_params_json;     /* query_params is valid JSON PostgreSQL would accept
                                 * (checked with RU_EVENT_RAW only, else false) */
    bool user_is_uuid;          /* user_id parsed as a UUID (raw table's uuid column) */
    int32_t request_size;       /* 0 = none (missing, empty or 0) */
    int32_t response_size;
    bool has_db_query_count;
    int32_t db_query_count;
    struct ru_str error_type;   /* len 0 = NULL */
    struct ru_str cache_status; /* len 0 = NULL */
    /* The key might not fit the hourly table's unique index (above RU_EVENT_SURE_KEY):
     * PostgreSQL's verdict is needed before the event is applied. */
    bool key_long;
};

/* Parses and validates one entry. On success returns 0 and fills ev; derived strings
 * (canonical params, user id) are appended to scratch, which the caller owns and must not
 * modify while ev is in use (ru_buf_reset before each call is fine).
 * On an invalid entry returns -1 and writes a one-line reason to err, e.g.
 * "route is missing", "timestamp is not a number", "field 'route' repeated".
 * Invalid: route missing/empty or over RU_EVENT_MAX_KEY_FIELD bytes; timestamp,
 * duration_ms or status_code missing, not a number or out of range;
 * query_params_normalized present but not a JSON object (or not acceptable to jsonb, or
 * over RU_EVENT_MAX_KEY_FIELD bytes as given or once canonical); any other field over
 * RU_EVENT_MAX_VALUE bytes; any text field not valid UTF-8 or holding a
 * NUL byte; method longer than RU_EVENT_MAX_METHOD characters; a size or db_query_count
 * that is present, not empty and not an integer in int32 range; a repeated field. */
int ru_event_parse(struct ru_event *ev, const struct ru_field *fields, size_t nfields,
                   struct ru_buf *scratch, char *err, size_t errlen) RU_MUSTCHECK;

/* Flags of ru_event_parse_cached. RU_EVENT_RAW: also find whether query_params is JSON
 * PostgreSQL would accept (query_params_json), which only a raw row needs
 * (ru_batch_add_raw). Without it that field is false and the text is not parsed as JSON;
 * which entries are valid does not change. */
#define RU_EVENT_RAW 1u

/* ru_event_parse with the JSON of query_params_normalized and query_params answered from
 * cache (pcache.h) when the same text came before: the same result, each distinct text
 * parsed once. cache may be NULL. ru_event_parse is this with RU_EVENT_RAW. */
struct ru_pcache;
int ru_event_parse_cached(struct ru_event *ev, const struct ru_field *fields, size_t nfields,
                          struct ru_buf *scratch, struct ru_pcache *cache, unsigned flags,
                          char *err, size_t errlen) RU_MUSTCHECK;

/* Exact conversion of a decimal timestamp text (seconds since the epoch, optional fraction
 * and exponent) to microseconds, rounding half to even. Returns 0 or -1 (not a number,
 * or outside RU_EVENT_MIN_TS_US..RU_EVENT_MAX_TS_US). */
int ru_event_parse_ts(const char *s, size_t len, int64_t *us) RU_MUSTCHECK;

/* Canonicalises a UUID in any spelling PostgreSQL's uuid type accepts (upper or lower
 * case, optional braces, optional hyphen after any group of four hex digits) into
 * out[37] as lower-case 8-4-4-4-12. Returns 0, or -1 when s is not a UUID. */
int ru_event_uuid_canon(const char *s, size_t len, char out[37]) RU_MUSTCHECK;

/* Formats epoch microseconds as "YYYY-MM-DD HH:MM:SS[.ffffff]" (UTC) for COPY; returns
 * the length written (buf needs 32 bytes). */
size_t ru_event_format_ts(int64_t us, char *buf);

#endif
