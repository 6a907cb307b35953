#include "rollupd/pgerr.h"

#include <string.h>

static bool is(const char *sqlstate, const char *code)
{
    return sqlstate != NULL && strcmp(sqlstate, code) == 0;
}

/* The first two characters of a SQLSTATE are its class. */
static bool in_class(const char *sqlstate, const char *cls)
{
    return sqlstate != NULL && strlen(sqlstate) == 5 && sqlstate[0] == cls[0] &&
           sqlstate[1] == cls[1];
}

enum ru_pgerr_retry ru_pgerr_retry(const char *sqlstate)
{
    if (is(sqlstate, "40001") || is(sqlstate, "40P01"))
        return RU_PGERR_RETRY_NOW;
    return RU_PGERR_RETRY_LATER;
}

bool ru_pgerr_bad_row(const char *sqlstate)
{
    return in_class(sqlstate, "22") || in_class(sqlstate, "23") || is(sqlstate, "54000");
}

bool ru_pgerr_key_refused(const char *sqlstate)
{
    return in_class(sqlstate, "22") || in_class(sqlstate, "54");
}

bool ru_pgerr_lock_busy(const char *sqlstate)
{
    return is(sqlstate, "55P03");
}

bool ru_pgerr_denied(const char *sqlstate)
{
    return is(sqlstate, "42501");
}
