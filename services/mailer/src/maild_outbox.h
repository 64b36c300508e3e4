/*  maild_outbox -- the mailer's durable queue of mail jobs (table
    mail_jobs in SAFESHARE_MAILER_DB: SQLite or PostgreSQL via cm_db).

    A job is one composed RFC 5322 message for one recipient, keyed by
    the caller's job id (the idempotency key). Its life:

      pending --claim--> sending --sent-------> sent    (message erased)
         ^                  |  \--retry_later-> pending (next_attempt_ms)
         |                  \----fail---------> failed  (kept for `mail retry`)
         +---- requeue (operator) <------------ failed

    A claim is a lease: the row says who holds it (owner) and until when
    (next_attempt_ms doubles as the lease end while sending). A claim
    takes only a pending job that is due or a sending job whose lease
    has run out (its sender died), in one UPDATE, so two senders never
    hold one job at once; results are recorded only by the lease holder.
    One object = one DB connection: use one per thread.                */
#ifndef MAILD_OUTBOX_H
#define MAILD_OUTBOX_H

#include "cm_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct maild_outbox_t maild_outbox_t;

/* The states, as stored (and as `safeshare mail list --status` takes). */
#define MAILD_JOB_PENDING "pending"
#define MAILD_JOB_SENDING "sending"
#define MAILD_JOB_SENT    "sent"
#define MAILD_JOB_FAILED  "failed"

/* Longest last_error kept (a server's reply text is cut there). */
#define MAILD_MAX_ERROR 400

/* A claimed job (maild_outbox_claim); free with maild_job_clear. */
typedef struct {
    char id[33];
    char *to;
    char *message; /* holds the link: wiped by maild_job_clear */
    size_t len;
    long attempts;       /* including this one */
    uint64_t expires_ms; /* give up on transient failures after this */
} maild_job_t;

void maild_job_clear (maild_job_t *job);

/* A row for the operator view (borrowed strings, valid in the callback). */
typedef struct {
    const char *id, *status, *to, *template_name, *last_error;
    long attempts;
    uint64_t created_ms, next_attempt_ms, updated_ms, sent_ms;
} maild_row_t;
typedef void (maild_row_fn) (const maild_row_t *row, void *arg);

/* Opens db_url, runs the migrations. NULL with a reason in err.       */
maild_outbox_t *maild_outbox_new (const char *db_url, char *err, size_t errlen);
void maild_outbox_destroy (maild_outbox_t **self_p);

/* Stores a new pending job due now, in one committed statement: when
   this returns CM_OK the job survives a crash. A job id already stored
   (in any state) is CM_OK with *duplicate set, nothing changed.
   CM_UNAVAILABLE: the DB failed (logged with req); retry.            */
cm_status_t maild_outbox_enqueue (maild_outbox_t *self, const char *req,
                                  const char *job_id, const char *template_name,
                                  const char *to, const char *message, uint64_t now_ms,
                                  uint64_t max_age_ms, bool *duplicate);

/* Claims the oldest due job for `owner` until now_ms + lease_ms.
   1 with *job filled, 0 when none is due, -1 on a DB error (logged).  */
int maild_outbox_claim (maild_outbox_t *self, const char *owner, uint64_t now_ms,
                        uint64_t lease_ms, maild_job_t *job);

/* Results, recorded only while `owner` still holds the lease: 0 done,
   1 the lease was lost (another sender has the job now), -1 DB error. */
int maild_outbox_sent (maild_outbox_t *self, const char *job_id, const char *owner,
                       uint64_t now_ms);
int maild_outbox_retry_later (maild_outbox_t *self, const char *job_id, const char *owner,
                              uint64_t now_ms, uint64_t next_ms, const char *error);
int maild_outbox_fail (maild_outbox_t *self, const char *job_id, const char *owner,
                       uint64_t now_ms, const char *error);

/* When the next pending or leased job falls due: 1 with *due_ms, 0 when
   there is none, -1 on error.                                         */
int maild_outbox_next_due (maild_outbox_t *self, uint64_t *due_ms);

/* Rows per state: counts[0..3] = pending, sending, sent, failed. 0/-1. */
int maild_outbox_counts (maild_outbox_t *self, uint64_t counts[4]);

/* Rows in `status` (NULL: all), newest first, at most `limit`. 0 / -1. */
int maild_outbox_list (maild_outbox_t *self, const char *status, long limit,
                       maild_row_fn *fn, void *arg);

/* The operator's `mail retry ID`: a failed job (whose message is still
   held) is pending again, due now, with a new give-up time. 0 done,
   1 no failed job with that id, -1 DB error.                          */
int maild_outbox_requeue (maild_outbox_t *self, const char *job_id, uint64_t now_ms,
                          uint64_t max_age_ms);

/* A valid state name (for the CLI's --status). */
bool maild_outbox_status_valid (const char *status);

#endif
