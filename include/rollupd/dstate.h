/* dstate: the daemon's state, shared by the files that make up the daemon. Not for use
 * outside the daemon: main sees only daemon.h.
 *
 * The daemon is one loop (daemon.c: its pollable sources and post-poll steps, signals,
 * sd_notify, the writer's events dispatched, lifecycle) and what it does on that loop's
 * thread: when it reads (reading.c), each delivered entry carried out as ingest decides and
 * long keys parked for PostgreSQL's verdict (entries.c), when to flush and what a commit
 * acknowledges (schedule.c), the memory bound (backpressure.c), a consumer's takeover
 * (takeover.c), SIGHUP's reload (reload.c), health and the metric values (observe.c).
 * Everything runs on the loop's thread: nothing here is locked. */
#ifndef ROLLUPD_DSTATE_H
#define ROLLUPD_DSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/batch.h"
#include "rollupd/config.h"
#include "rollupd/keycheck.h"
#include "rollupd/log.h"
#include "rollupd/report.h"
#include "rollupd/stream.h"
#include "rollupd/util.h"

#define RU_DAEMON_REASON_LEN 320 /* an invalid entry's reason, PostgreSQL's included */

struct ru_daemon_counters {
    uint64_t consumed;     /* valid events taken into memory */
    uint64_t invalid;      /* dead-lettered entries */
    uint64_t trimmed;      /* pending entries the producer trimmed away */
    uint64_t raw_rejected; /* events whose raw row PostgreSQL would refuse */
    uint64_t replay_acked; /* replayed entries already committed: acknowledged only */
    uint64_t recovered;    /* valid entries counted after a recovery read them again */
    uint64_t dead_known;   /* invalid entries recovery found already dead-lettered */
    uint64_t gaps;         /* recoveries that found entries deleted before being read */
    uint64_t key_probes;   /* long keys PostgreSQL was asked about */
    uint64_t key_refused;  /* entries dead-lettered because PostgreSQL cannot store their key */
    uint64_t group_recreated;
    int64_t last_trim_ms; /* monotonic time of the last trimmed entry, 0 = never */
    uint64_t flush_bucket[RU_REPORT_NBUCKETS + 1]; /* cumulative at render time; +Inf last */
    double flush_seconds_sum;
};

/* Taking over the pending entries of a consumer that is gone for good (takeover.c). */
enum ru_takeover_phase {
    RU_TAKEOVER_IDLE,
    RU_TAKEOVER_CKPT_WANTED,
    RU_TAKEOVER_CKPT,
    RU_TAKEOVER_FETCH_WANTED,
    RU_TAKEOVER_FETCH,
    RU_TAKEOVER_READY,
    RU_TAKEOVER_FLUSHING,
};

struct ru_takeover {
    enum ru_takeover_phase phase;
    char *consumer;
    struct ru_sid ck; /* the adopted consumer's checkpoint */
    struct ru_batch *b;
    struct ru_status_req *req; /* NULL for an automatic one */
    uint64_t applied, acked_only, invalid, trimmed;
};

struct ru_daemon {
    struct ru_config cfg;
    struct ru_stream *stream;
    struct ru_pgw *pgw;
    struct ru_status *status;
    struct ru_http *http;
    int sfd, tfd;

    struct ru_batch *cur; /* filling */
    /* The last committed batch's id array, for the batch the next flush starts (counted as
     * held) */
    struct ru_batch_ids spare_ids;
    /* Entries whose long key waits for PostgreSQL's verdict (keycheck.h), and the verdicts
     * known. No flush is submitted while one of our own entries is parked: the checkpoint
     * must not pass an entry that is neither applied nor dead-lettered. */
    struct ru_keycheck_parked parked;
    struct ru_keycheck *verdicts;
    uint64_t inflight_events; /* events of the batch in the writer's hands */
    size_t inflight_mem;
    bool flush_due;           /* the timer fired or a size limit was reached */
    uint64_t backlog_entries; /* entries of the live reads in a row that came back full */
    bool flush_asked;         /* SIGUSR1 or the status command */
    bool stopping, stop_final_sent, ready_sent, paused, fatal;
    bool dl_wait;       /* a flush waits for dead-letter copies to be confirmed */
    bool stream_paused; /* what the stream was told: paused, stopping or dl_wait */
    int exit_code;
    int64_t started_ms, stop_deadline_ms;
    uint64_t watchdog_us;
    int64_t last_watchdog_ms;

    struct ru_status_req **flush_waiters;
    size_t nwaiters, waiters_cap;
    struct ru_status_req **after_waiters; /* asked while a flush was in flight */
    size_t nafter, after_cap;

    size_t base_rss; /* RSS once Redis and PostgreSQL were first up: the fixed footprint */
    struct ru_daemon_counters c;
    struct ru_takeover adopt;
    uint64_t adoptions;
    int64_t next_claim_check_ms;
    bool stream_started;
    /* Ownership: the PostgreSQL session (generation) the stream reads under; reading is
     * suspended while the writer has no session holding the locks; a new Redis connection
     * waits at its gate until a probe made after it proves the session alive. */
    unsigned pg_gen, gate_ticket;
    bool suspended, gate_wait;
    bool tail_owed; /* shared-group consumer: a lone consumer's entries to recover, and the
                     * group's mark to clear with a commit once they are */
    struct ru_buf scratch;
    struct ru_pcache *pcache; /* canonical params by raw text */
    struct ru_ratelimit rl_invalid, rl_trim;
    /* events/s since the previous STATUS= line, and when the next one is due */
    uint64_t rate_mark_events;
    int64_t rate_mark_ms, next_status_ms;
    double rate;
};

#endif
