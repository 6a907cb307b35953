/* Unit tests for utf8: well-formed UTF-8 and its length in characters. */
#include <criterion/criterion.h>

#include "rollupd/utf8.h"
#include "rollupd/util.h"

Test(utf8, utf8_valid)
{
    static const struct {
        const char *s;
        size_t len;
        bool valid;
    } cases[] = {
        {"", 0, true},
        {"plain ascii text that is longer than eight bytes", 48, true},
        {"caf\xc3\xa9", 5, true},
        {"\xe2\x82\xac", 3, true},
        {"\xf0\x9f\x98\x80", 4, true},
        {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
        {"\xef\xbf\xbf", 3, true},     /* U+FFFF */
        {"a\0b", 3, true},             /* NUL is well-formed UTF-8 */
        {"\x80", 1, false},
        {"\xc3", 1, false},
        {"\xc3(", 2, false},
        {"\xc0\x80", 2, false},
        {"\xc1\xbf", 2, false},
        {"\xe0\x9f\xbf", 3, false},
        {"\xed\xa0\x80", 3, false},
        {"\xed\xbf\xbf", 3, false},
        {"\xf0\x8f\xbf\xbf", 4, false},
        {"\xf4\x90\x80\x80", 4, false},
        {"\xf5\x80\x80\x80", 4, false},
        {"\xff", 1, false},
        {"\xe2\x82", 2, false},
        {"0123456789abcdef\xe2\x82", 18, false},
        {"0123456789abcdef\xc3\xa9", 18, true},
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++)
        cr_assert_eq(ru_utf8_valid(cases[i].s, cases[i].len), cases[i].valid, "case %zu", i);
}

Test(utf8, utf8_chars)
{
    cr_assert_eq(ru_utf8_chars("", 0), 0);
    cr_assert_eq(ru_utf8_chars("GET", 3), 3);
    cr_assert_eq(ru_utf8_chars("caf\xc3\xa9", 5), 4);
    cr_assert_eq(ru_utf8_chars("\xe2\x82\xac\xf0\x9f\x98\x80x", 8), 3);
}
