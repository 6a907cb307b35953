/* Unit tests for pcache (canonical JSON by raw text). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "rollupd/json.h"
#include "rollupd/pcache.h"
#include "rollupd/util.h"

/* The cache answers as ru_json_canon does, on a miss and on a hit, in both modes. */
static void same_as_json(struct ru_pcache *c, const char *text, bool obj)
{
    struct ru_buf want = RU_BUF_INIT, got = RU_BUF_INIT;
    char werr[128] = "", gerr[128] = "";
    ru_buf_puts(&want, "pre");
    ru_buf_puts(&got, "pre");
    int wrc = ru_json_canon(text, strlen(text), obj, &want, werr, sizeof(werr));
    for (int pass = 0; pass < 2; pass++) {
        got.len = 3;
        int grc = ru_pcache_canon(c, text, strlen(text), obj, &got, gerr, sizeof(gerr));
        cr_assert_eq(grc, wrc, "%s (pass %d)", text, pass);
        cr_assert_eq(got.len, want.len);
        cr_assert_eq(memcmp(got.p, want.p, got.len), 0);
        if (wrc < 0)
            cr_assert_str_eq(gerr, werr);
    }
    ru_buf_free(&want);
    ru_buf_free(&got);
}

Test(pcache, answers_as_json_canon)
{
    struct ru_pcache *c = ru_pcache_new();
    const char *texts[] = {"{}",       "{\"b\": 1, \"a\": [2, 1.50]}",
                           "[1]",      "{\"a\":",
                           "not json", "{\"sort\": \"name-asc\", \"page_size\": \"20\"}"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        same_as_json(c, texts[i], true);
        same_as_json(c, texts[i], false); /* "[1]" differs between the modes */
    }
    ru_pcache_free(c);
}

Test(pcache, null_cache_and_long_texts_pass_through)
{
    same_as_json(NULL, "{\"a\": 1}", true);
    struct ru_pcache *c = ru_pcache_new();
    char big[RU_PCACHE_MAX_TEXT + 64];
    snprintf(big, sizeof(big), "{\"a\": \"%0*d\"}", RU_PCACHE_MAX_TEXT, 7);
    size_t before = ru_pcache_mem(c);
    same_as_json(c, big, true);
    cr_assert_eq(ru_pcache_mem(c), before, "a text over RU_PCACHE_MAX_TEXT is not kept");
    ru_pcache_free(c);
}

Test(pcache, stays_bounded)
{
    struct ru_pcache *c = ru_pcache_new();
    char text[64];
    for (int i = 0; i < 3 * RU_PCACHE_MAX_ENTRIES; i++) {
        snprintf(text, sizeof(text), "{\"page\": %d}", i);
        same_as_json(c, text, true);
        cr_assert_leq(ru_pcache_mem(c), RU_PCACHE_MAX_BYTES + 2 * RU_PCACHE_MAX_ENTRIES * 8 + 64);
    }
    ru_pcache_free(c);
}
