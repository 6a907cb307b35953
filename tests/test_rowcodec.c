/* Unit tests for rowcodec: chunks that are not a chunk are refused (the round trip through
 * the stored form is test_rowstate's batches_equal_one_pass). */
#include <criterion/criterion.h>

#include <stdint.h>

#include "rollupd/rowcodec.h"
#include "rollupd/rowstate.h"

Test(rowcodec, bad_chunks_refused)
{
    struct ru_rowstate *s = ru_rowstate_new(1);
    /* values must ascend, counts be positive, lengths fit, nothing trail */
    const uint8_t descending[] = {2, 20, 1, 1, 1, 0, 0}; /* 10, then 10 + (-1) */
    const uint8_t zero_count[] = {1, 20, 0, 0, 0};
    const uint8_t truncated[] = {2, 20, 1};
    const uint8_t trailing[] = {0, 0, 0, 7};
    const uint8_t text_too_long[] = {0, 0, 1, 9, 'a'};
    /* a step of INT64_MAX after 10 (zigzag 2^64 - 2) */
    const uint8_t huge_step[] = {2,    20,   1,    0xfe, 0xff, 0xff, 0xff, 0xff,
                                 0xff, 0xff, 0xff, 0xff, 0x01, 1,    0,    0};
    const uint8_t empty_ok[] = {0, 0, 0};
    cr_assert_eq(ru_rowstate_apply_chunk(s, descending, sizeof(descending), false), -1);
    cr_assert_eq(ru_rowstate_apply_chunk(s, zero_count, sizeof(zero_count), false), -1);
    cr_assert_eq(ru_rowstate_apply_chunk(s, truncated, sizeof(truncated), false), -1);
    cr_assert_eq(ru_rowstate_apply_chunk(s, trailing, sizeof(trailing), false), -1);
    cr_assert_eq(ru_rowstate_apply_chunk(s, text_too_long, sizeof(text_too_long), false), -1);
    cr_assert_eq(ru_rowstate_apply_chunk(s, huge_step, sizeof(huge_step), false), -1);
    cr_assert_eq(ru_rowstate_apply_chunk(s, empty_ok, sizeof(empty_ok), false), 0);
    cr_assert_eq(ru_rowstate_apply_chunk(s, NULL, 0, false), -1);
    ru_rowstate_free(s);
}
