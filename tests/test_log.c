/* Unit tests for src/log.c's formats: journal, logfmt, json, and the choice of one. */
#include <criterion/criterion.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rollupd/log.h"

/* 2026-12-05T16:49:56.123Z */
#define T_MS 1796489396123LL

static void line(enum ru_log_format f, enum ru_log_level lv, const char *msg, char *out, size_t len)
{
    size_t n = ru_log_format_line(f, lv, T_MS, msg, out, len);
    cr_assert_eq(n, strlen(out));
    cr_assert(n > 0 && out[n - 1] == '\n', "no newline: %s", out);
}

Test(log, journal_keeps_the_priority_prefix)
{
    char out[256];
    line(RU_LOG_FMT_JOURNAL, RU_LOG_WARNING, "msg=\"x\" a=1", out, sizeof(out));
    cr_assert_str_eq(out, "<4>warning msg=\"x\" a=1\n");
}

Test(log, logfmt_has_time_and_level_and_no_prefix)
{
    char out[256];
    line(RU_LOG_FMT_LOGFMT, RU_LOG_INFO, "msg=flush hour=2026-12-05T16 rows=3", out, sizeof(out));
    cr_assert_str_eq(out, "time=2026-12-05T16:49:56.123Z level=info msg=flush "
                          "hour=2026-12-05T16 rows=3\n");
}

Test(log, json_members_from_key_value_fields)
{
    char out[512];
    line(RU_LOG_FMT_JSON, RU_LOG_ERR,
         "msg=\"flush failed, batch kept\" rows=12 error=\"server said \"no\"\" ms=1.5 level=x "
         "stray",
         out, sizeof(out));
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    cr_assert_not_null(o, "not JSON (%s): %s", je.text, out);
    cr_assert_str_eq(json_string_value(json_object_get(o, "level")), "error");
    cr_assert_str_eq(json_string_value(json_object_get(o, "time")), "2026-12-05T16:49:56.123Z");
    cr_assert_str_eq(json_string_value(json_object_get(o, "msg")),
                     "flush failed, batch kept stray");
    cr_assert_eq(json_integer_value(json_object_get(o, "rows")), 12);
    cr_assert_str_eq(json_string_value(json_object_get(o, "error")), "server said \"no\"");
    cr_assert_str_eq(json_string_value(json_object_get(o, "ms")), "1.5");
    cr_assert_str_eq(json_string_value(json_object_get(o, "field_level")), "x");
    cr_assert(strncmp(out, "{\"level\":\"error\",\"time\":", 24) == 0, "order: %s", out);
    json_decref(o);
}

Test(log, json_escapes_control_bytes_and_bad_utf8)
{
    char out[512];
    line(RU_LOG_FMT_JSON, RU_LOG_INFO, "msg=\"a\tb\" route=\"/x\xff\" u=\"caf\xc3\xa9\"", out,
         sizeof(out));
    json_t *o = json_loads(out, 0, NULL);
    cr_assert_not_null(o, "not JSON: %s", out);
    cr_assert_str_eq(json_string_value(json_object_get(o, "msg")), "a\tb");
    cr_assert_str_eq(json_string_value(json_object_get(o, "route")), "/x?");
    cr_assert_str_eq(json_string_value(json_object_get(o, "u")), "caf\xc3\xa9");
    json_decref(o);
}

Test(log, truncated_lines_stay_whole)
{
    char out[64];
    size_t n = ru_log_format_line(RU_LOG_FMT_JSON, RU_LOG_INFO, T_MS,
                                  "msg=\"a very long message that does not fit in the buffer\"",
                                  out, sizeof(out));
    cr_assert_eq(n, sizeof(out) - 1);
    cr_assert_eq(out[n - 1], '\n');
    cr_assert_eq(out[n - 2], '}');
}

Test(log, auto_is_journal_only_when_journal_stream_names_stderr)
{
    struct stat st;
    cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
    char js[64];
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    cr_assert(ru_log_stderr_is_journal(js));
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    cr_assert_not(ru_log_stderr_is_journal(js), "another inode");
    cr_assert_not(ru_log_stderr_is_journal(NULL));
    cr_assert_not(ru_log_stderr_is_journal("garbage"));

    enum ru_log_format f;
    cr_assert_eq(ru_log_format_parse("auto", true, &f), 0);
    cr_assert_eq(f, RU_LOG_FMT_JOURNAL);
    cr_assert_eq(ru_log_format_parse("auto", false, &f), 0);
    cr_assert_eq(f, RU_LOG_FMT_LOGFMT);
    cr_assert_eq(ru_log_format_parse(NULL, false, &f), 0);
    cr_assert_eq(f, RU_LOG_FMT_LOGFMT);
    cr_assert_eq(ru_log_format_parse("json", true, &f), 0);
    cr_assert_eq(f, RU_LOG_FMT_JSON);
    cr_assert_eq(ru_log_format_parse("xml", true, &f), -1);
}

Test(log, level_names_and_parse)
{
    static const struct {
        enum ru_log_level level;
        const char *name;
    } cases[] = {{RU_LOG_ERR, "error"},
                 {RU_LOG_WARNING, "warning"},
                 {RU_LOG_NOTICE, "notice"},
                 {RU_LOG_INFO, "info"},
                 {RU_LOG_DEBUG, "debug"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum ru_log_level lv = RU_LOG_ERR;
        cr_assert_str_eq(ru_log_level_name(cases[i].level), cases[i].name);
        cr_assert_eq(ru_log_level_parse(cases[i].name, &lv), 0);
        cr_assert_eq(lv, cases[i].level);
    }
    enum ru_log_level lv = RU_LOG_INFO;
    cr_assert_eq(ru_log_level_parse("DeBuG", &lv), 0);
    cr_assert_eq(lv, RU_LOG_DEBUG);
    cr_assert_eq(ru_log_level_parse("verbose", &lv), -1);
    cr_assert_eq(lv, RU_LOG_DEBUG, "untouched on failure");
}
