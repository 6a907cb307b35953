/* Unit tests for pgerr: the writer's decisions come from the SQLSTATE alone. */
#include <criterion/criterion.h>

#include "rollupd/pgerr.h"

Test(pgerr, retry_now_only_for_lost_races)
{
    cr_assert_eq(ru_pgerr_retry("40001"), RU_PGERR_RETRY_NOW); /* serialization_failure */
    cr_assert_eq(ru_pgerr_retry("40P01"), RU_PGERR_RETRY_NOW); /* deadlock_detected */
    const char *later[] = {
        "40000", /* transaction_rollback: not a race */
        "40002", /* transaction_integrity_constraint_violation */
        "40003", /* statement_completion_unknown */
        "08006", /* connection_failure */
        "08003", /* connection_does_not_exist */
        "57P01", /* admin_shutdown */
        "57P02", /* crash_shutdown */
        "57014", /* query_canceled: statement_timeout */
        "55P03", /* lock_not_available: lock_timeout */
        "53100", /* disk_full */
        "42501", /* insufficient_privilege */
        "23505", /* unique_violation */
        "XX000", /* internal_error */
        "",      /* libpq's own failure */
        "4000",  /* not a SQLSTATE */
        "40P011",
    };
    for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++)
        cr_assert_eq(ru_pgerr_retry(later[i]), RU_PGERR_RETRY_LATER, "%s", later[i]);
    cr_assert_eq(ru_pgerr_retry(NULL), RU_PGERR_RETRY_LATER);
}

/* The decision never looks at a message: what English messages say, in any language, is
 * not a SQLSTATE and is retried later like any other unknown failure. */
Test(pgerr, messages_decide_nothing)
{
    const char *texts[] = {"deadlock detected",
                           "could not serialize access due to concurrent update",
                           "Verklemmung (Deadlock) entdeckt", "interblocage détecté"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        cr_assert_eq(ru_pgerr_retry(texts[i]), RU_PGERR_RETRY_LATER, "%s", texts[i]);
        cr_assert_not(ru_pgerr_bad_row(texts[i]));
        cr_assert_not(ru_pgerr_key_refused(texts[i]));
    }
}

Test(pgerr, bad_row)
{
    const char *yes[] = {"22001", "22P02", "22021", "23503", "23505", "23514", "54000"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        cr_assert(ru_pgerr_bad_row(yes[i]), "%s", yes[i]);
    const char *no[] = {"54001", "08006", "40P01", "57014", "42P01", "", "2", "22"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_assert_not(ru_pgerr_bad_row(no[i]), "%s", no[i]);
    cr_assert_not(ru_pgerr_bad_row(NULL));
}

Test(pgerr, key_refused)
{
    const char *yes[] = {"22001", "22P02", "54000", "54001", "54011"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        cr_assert(ru_pgerr_key_refused(yes[i]), "%s", yes[i]);
    const char *no[] = {"23505", "08006", "40001", "57014", "", "54"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_assert_not(ru_pgerr_key_refused(no[i]), "%s", no[i]);
    cr_assert_not(ru_pgerr_key_refused(NULL));
}

Test(pgerr, lock_busy_and_denied)
{
    cr_assert(ru_pgerr_lock_busy("55P03"));
    cr_assert_not(ru_pgerr_lock_busy("55000"));
    cr_assert_not(ru_pgerr_lock_busy(NULL));
    cr_assert(ru_pgerr_denied("42501"));
    cr_assert_not(ru_pgerr_denied("42P01"));
    cr_assert_not(ru_pgerr_denied(NULL));
}
