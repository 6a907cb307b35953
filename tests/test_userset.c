/* Unit tests for userset: the canonical UUID text. */
#include <criterion/criterion.h>

#include "rollupd/userset.h"

Test(userset, uuid_text)
{
    struct ru_uuid u;
    cr_assert(ru_uuid_from_text("121e194b-4caa-4b81-ad4f-86ca3919d5b9", 36, &u));
    cr_assert_eq(u.hi, 0x121e194b4caa4b81ULL);
    cr_assert_eq(u.lo, 0xad4f86ca3919d5b9ULL);
    cr_assert_not(ru_uuid_from_text("121E194B-4caa-4b81-ad4f-86ca3919d5b9", 36, &u),
                  "upper case is not the canonical text");
    cr_assert_not(ru_uuid_from_text("121e194b4caa-4b81-ad4f-86ca3919d5b9-", 36, &u));
    cr_assert_not(ru_uuid_from_text("121e194b-4caa-4b81-ad4f-86ca3919d5b", 35, &u));
    cr_assert_not(ru_uuid_from_text("121e194b-4caa-4b81-ad4f-86ca3919d5bg", 36, &u));
}
