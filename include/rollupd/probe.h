/* probe: what the writer's thread answers the loop besides batches, each in a session of
 * its own making: whether long keys fit PostgreSQL's unique index (a savepoint per key in
 * a transaction rolled back; ru_pgw_request_keycheck), and an adoption's checkpoint with
 * the adoption lock (ru_pgw_request_checkpoint). Part of the writer (writer.h). */
#ifndef ROLLUPD_PROBE_H
#define ROLLUPD_PROBE_H

#include <stddef.h>

#include "rollupd/keycheck.h"

struct ru_pgw;

/* Asks PostgreSQL about each key; keys left RU_KEY_UNKNOWN are asked again by the loop,
 * after this backs off. */
void ru_probe_keys(struct ru_pgw *w, struct ru_keycheck_probe *probes, size_t n);
/* One attempt at the checkpoint of consumer ck_req under the adoption lock; the answer
 * goes to the mailbox (ck_done) and the loop is woken. */
void ru_probe_checkpoint(struct ru_pgw *w, const char *ck_req);

#endif
