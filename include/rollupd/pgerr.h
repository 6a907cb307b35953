/* pgerr: what the PostgreSQL writer makes of a failed statement, decided from its SQLSTATE
 * (PQresultErrorField(res, PG_DIAG_SQLSTATE)), never from the message: the message follows
 * the server's lc_messages and may be in any language. Pure.
 *
 * sqlstate is the five-character code, or NULL or "" when there is none (the failure was
 * in libpq itself: a lost connection, an out-of-memory). */
#ifndef ROLLUPD_PGERR_H
#define ROLLUPD_PGERR_H

#include <stdbool.h>

/* After a flush transaction failed and was rolled back. */
enum ru_pgerr_retry {
    /* Anything else (a lost connection, a timeout, a missing privilege): retried after the
     * backoff, so a server in trouble is not hammered. */
    RU_PGERR_RETRY_LATER,
    /* 40001 serialization_failure, 40P01 deadlock_detected: the transaction lost a race
     * with another one and nothing is wrong; retried at once. */
    RU_PGERR_RETRY_NOW,
};
enum ru_pgerr_retry ru_pgerr_retry(const char *sqlstate);

/* Caused by the data of one row, so isolating the row helps: class 22 (data exception),
 * class 23 (integrity constraint violation, e.g. a foreign key to a deleted user) and
 * 54000 (program_limit_exceeded: a value over an index's entry size). */
bool ru_pgerr_bad_row(const char *sqlstate);

/* A key PostgreSQL will never store, however often it is asked: class 22 (data exception)
 * or class 54 (program limit exceeded, e.g. an index row over btree's maximum). */
bool ru_pgerr_key_refused(const char *sqlstate);

/* 55P03 lock_not_available: lock_timeout ran out waiting for a lock another session holds. */
bool ru_pgerr_lock_busy(const char *sqlstate);

/* 42501 insufficient_privilege. */
bool ru_pgerr_denied(const char *sqlstate);

#endif
