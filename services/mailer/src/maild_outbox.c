/*  maild_outbox -- mail_jobs: enqueue, lease-based claim, results.
    SQL is the common dialect of SQLite and PostgreSQL (cm_db).          */
#include "maild_outbox.h"
#include "cm_db.h"
#include "cm_log.h"
#include "cm_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_migrations[] = {
    /* 1: the jobs. `message` is the composed message (it holds the
       verification link, a bearer secret): set to NULL once sent.
       next_attempt_ms is when a pending job is due, and while sending
       the end of the lease, so one index finds both kinds of due job. */
    "CREATE TABLE mail_jobs ("
    " id TEXT PRIMARY KEY,"
    " template TEXT NOT NULL,"
    " recipient TEXT NOT NULL,"
    " message TEXT,"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " created_ms BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL,"
    " next_attempt_ms BIGINT NOT NULL,"
    " expires_ms BIGINT NOT NULL,"
    " lease_owner TEXT,"
    " sent_ms BIGINT,"
    " last_error TEXT);"
    "CREATE INDEX mail_jobs_due ON mail_jobs (status, next_attempt_ms);",
};

struct maild_outbox_t {
    cm_db_t *db;
};

void
maild_job_clear (maild_job_t *job)
{
    if (!job) {
        return;
    }
    if (job->message) {
        cm_secret_free (job->message, strlen (job->message));
    }
    free (job->to);
    memset (job, 0, sizeof *job);
}

bool
maild_outbox_status_valid (const char *status)
{
    return status && (strcmp (status, MAILD_JOB_PENDING) == 0 ||
                      strcmp (status, MAILD_JOB_SENDING) == 0 ||
                      strcmp (status, MAILD_JOB_SENT) == 0 ||
                      strcmp (status, MAILD_JOB_FAILED) == 0);
}

maild_outbox_t *
maild_outbox_new (const char *db_url, char *err, size_t errlen)
{
    maild_outbox_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->db = cm_db_open (db_url);
    if (!self->db) {
        snprintf (err, errlen,
                  "cannot open SAFESHARE_MAILER_DB (see the log line above)");
        goto fail;
    }
    if (cm_db_migrate (self->db, "mailer", s_migrations,
                       sizeof s_migrations / sizeof s_migrations[0]) != 0) {
        snprintf (err, errlen, "migrating SAFESHARE_MAILER_DB failed");
        goto fail;
    }
    return self;
fail:
    maild_outbox_destroy (&self);
    return NULL;
}

void
maild_outbox_destroy (maild_outbox_t **self_p)
{
    if (self_p && *self_p) {
        cm_db_destroy (&(*self_p)->db);
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_u64 (char out[24], uint64_t v)
{
    snprintf (out, 24, "%" PRIu64, v);
}

static uint64_t
s_get_u64 (const cm_db_res_t *res, int row, int col)
{
    const char *v = cm_db_res_get (res, row, col);
    return v ? strtoull (v, NULL, 10) : 0;
}

cm_status_t
maild_outbox_enqueue (maild_outbox_t *self, const char *req, const char *job_id,
                      const char *template_name, const char *to, const char *message,
                      uint64_t now_ms, uint64_t max_age_ms, bool *duplicate)
{
    *duplicate = false;
    char now[24], expires[24];
    s_u64 (now, now_ms);
    s_u64 (expires, now_ms + max_age_ms);
    const char *p[] = {job_id, template_name, to, message, now, expires};
    /* One statement in autocommit: committed (synchronous=FULL on
       SQLite) before it returns, so the ack that follows is true.     */
    cm_db_res_t *res = cm_db_query (
        self->db,
        "INSERT INTO mail_jobs (id, template, recipient, message, status, created_ms,"
        " updated_ms, next_attempt_ms, expires_ms)"
        " VALUES ($1, $2, $3, $4, 'pending', $5, $5, $5, $6)"
        " ON CONFLICT (id) DO NOTHING",
        6, p);
    cm_status_t st = CM_OK;
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (req, "INSERT INTO mail_jobs failed job=%s", job_id);
        st = CM_UNAVAILABLE;
    } else {
        *duplicate = cm_db_res_changes (res) == 0;
    }
    cm_db_res_free (&res);
    return st;
}

int
maild_outbox_claim (maild_outbox_t *self, const char *owner, uint64_t now_ms,
                    uint64_t lease_ms, maild_job_t *job)
{
    memset (job, 0, sizeof *job);
    char now[24], until[24];
    s_u64 (now, now_ms);
    s_u64 (until, now_ms + lease_ms);
    const char *p[] = {owner, now, until};
    /* The outer WHERE repeats the condition: on PostgreSQL a concurrent
       claimer that locked the row first makes it false here (the row is
       re-checked after the lock), so the loser gets no row, not the job. */
    cm_db_res_t *res =
        cm_db_query (self->db,
                     "UPDATE mail_jobs SET status = 'sending', lease_owner = $1,"
                     " next_attempt_ms = $3, updated_ms = $2, attempts = attempts + 1"
                     " WHERE id = (SELECT id FROM mail_jobs"
                     "   WHERE status IN ('pending', 'sending') AND next_attempt_ms <= $2"
                     "   ORDER BY next_attempt_ms, id LIMIT 1)"
                     " AND status IN ('pending', 'sending') AND next_attempt_ms <= $2"
                     " RETURNING id, recipient, message, attempts, expires_ms",
                     3, p);
    int rc = -1;
    if (cm_db_res_status (res) == CM_DB_BUSY) {
        rc = 0; /* another sender is claiming: look again soon */
        goto cleanup;
    }
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "UPDATE mail_jobs (claim) failed");
        goto cleanup;
    }
    if (cm_db_res_rows (res) == 0) {
        rc = 0;
        goto cleanup;
    }
    const char *id = cm_db_res_get (res, 0, 0);
    const char *to = cm_db_res_get (res, 0, 1);
    const char *message = cm_db_res_get (res, 0, 2);
    if (!cm_is_hex_id (id, 32) || !to || !message) {
        /* Not a row we wrote: park it so it cannot block the queue. */
        cm_error (NULL, "mail_jobs row unreadable, marked failed job=%.32s",
                  id ? id : "?");
        if (id) {
            const char *pf[] = {id, now};
            cm_db_exec (self->db,
                        "UPDATE mail_jobs SET status = 'failed', lease_owner = NULL,"
                        " updated_ms = $2, last_error = 'unreadable row' WHERE id = $1",
                        2, pf);
        }
        rc = 0;
        goto cleanup;
    }
    snprintf (job->id, sizeof job->id, "%s", id);
    job->to = strdup (to);
    job->message = strdup (message);
    job->len = strlen (message);
    job->attempts =
        strtol (cm_db_res_get (res, 0, 3) ? cm_db_res_get (res, 0, 3) : "0", NULL, 10);
    job->expires_ms = s_get_u64 (res, 0, 4);
    if (!job->to || !job->message) {
        maild_job_clear (job);
        goto cleanup; /* the lease runs out and the job is claimed again */
    }
    rc = 1;
cleanup:
    cm_db_res_free (&res);
    return rc;
}

/* One result UPDATE guarded by the lease. 0 / 1 lost / -1. */
static int
s_record (maild_outbox_t *self, const char *what, const char *sql, int n,
          const char *const *p, const char *job_id)
{
    cm_db_res_t *res = cm_db_query (self->db, sql, n, p);
    int rc = -1;
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "UPDATE mail_jobs (%s) failed job=%s", what, job_id);
    } else if (cm_db_res_changes (res) == 0) {
        cm_warn (NULL, "mail job=%s lease lost before its result (%s) was recorded",
                 job_id, what);
        rc = 1;
    } else {
        rc = 0;
    }
    cm_db_res_free (&res);
    return rc;
}

/* last_error is a server's text: printable ASCII only, bounded. */
static void
s_clean_error (char out[MAILD_MAX_ERROR + 1], const char *error)
{
    size_t n = 0;
    for (const char *e = error ? error : ""; *e && n < MAILD_MAX_ERROR; e++) {
        unsigned char c = (unsigned char)*e;
        out[n++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
    }
    out[n] = '\0';
}

int
maild_outbox_sent (maild_outbox_t *self, const char *job_id, const char *owner,
                   uint64_t now_ms)
{
    char now[24];
    s_u64 (now, now_ms);
    const char *p[] = {job_id, owner, now};
    int rc = s_record (self, "sent",
                       "UPDATE mail_jobs SET status = 'sent', message = NULL,"
                       " lease_owner = NULL, sent_ms = $3, updated_ms = $3,"
                       " last_error = NULL"
                       " WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
                       3, p, job_id);
    /* The link must not stay readable in the file's free pages or WAL. */
    cm_db_scrub (self->db);
    return rc;
}

int
maild_outbox_retry_later (maild_outbox_t *self, const char *job_id, const char *owner,
                          uint64_t now_ms, uint64_t next_ms, const char *error)
{
    char now[24], next[24], err[MAILD_MAX_ERROR + 1];
    s_u64 (now, now_ms);
    s_u64 (next, next_ms);
    s_clean_error (err, error);
    const char *p[] = {job_id, owner, now, next, err};
    return s_record (self, "retry",
                     "UPDATE mail_jobs SET status = 'pending', lease_owner = NULL,"
                     " next_attempt_ms = $4, updated_ms = $3, last_error = $5"
                     " WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
                     5, p, job_id);
}

int
maild_outbox_fail (maild_outbox_t *self, const char *job_id, const char *owner,
                   uint64_t now_ms, const char *error)
{
    char now[24], err[MAILD_MAX_ERROR + 1];
    s_u64 (now, now_ms);
    s_clean_error (err, error);
    const char *p[] = {job_id, owner, now, err};
    return s_record (self, "failed",
                     "UPDATE mail_jobs SET status = 'failed', lease_owner = NULL,"
                     " updated_ms = $3, last_error = $4"
                     " WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
                     4, p, job_id);
}

int
maild_outbox_next_due (maild_outbox_t *self, uint64_t *due_ms)
{
    cm_db_res_t *res = cm_db_query (self->db,
                                    "SELECT MIN(next_attempt_ms) FROM mail_jobs"
                                    " WHERE status IN ('pending', 'sending')",
                                    0, NULL);
    int rc = -1;
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "SELECT FROM mail_jobs (next due) failed");
    } else if (cm_db_res_get (res, 0, 0)) {
        *due_ms = s_get_u64 (res, 0, 0);
        rc = 1;
    } else {
        rc = 0;
    }
    cm_db_res_free (&res);
    return rc;
}

int
maild_outbox_counts (maild_outbox_t *self, uint64_t counts[4])
{
    static const char *names[] = {MAILD_JOB_PENDING, MAILD_JOB_SENDING, MAILD_JOB_SENT,
                                  MAILD_JOB_FAILED};
    memset (counts, 0, 4 * sizeof counts[0]);
    cm_db_res_t *res = cm_db_query (
        self->db, "SELECT status, COUNT(*) FROM mail_jobs GROUP BY status", 0, NULL);
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "SELECT FROM mail_jobs (counts) failed");
        cm_db_res_free (&res);
        return -1;
    }
    for (int r = 0; r < cm_db_res_rows (res); r++) {
        const char *status = cm_db_res_get (res, r, 0);
        for (int i = 0; status && i < 4; i++) {
            if (strcmp (status, names[i]) == 0) {
                counts[i] = s_get_u64 (res, r, 1);
            }
        }
    }
    cm_db_res_free (&res);
    return 0;
}

int
maild_outbox_list (maild_outbox_t *self, const char *status, long limit, maild_row_fn *fn,
                   void *arg)
{
    char lim[24];
    s_u64 (lim, limit > 0 ? (uint64_t)limit : 1);
    const char *p[] = {status ? status : "", lim};
    cm_db_res_t *res = cm_db_query (
        self->db,
        "SELECT id, status, recipient, template, attempts, created_ms, next_attempt_ms,"
        " updated_ms, sent_ms, last_error FROM mail_jobs"
        " WHERE $1 = '' OR status = $1 ORDER BY created_ms DESC, id LIMIT $2",
        2, p);
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "SELECT FROM mail_jobs (list) failed");
        cm_db_res_free (&res);
        return -1;
    }
    for (int r = 0; r < cm_db_res_rows (res); r++) {
        maild_row_t row = {
            .id = cm_db_res_get (res, r, 0),
            .status = cm_db_res_get (res, r, 1),
            .to = cm_db_res_get (res, r, 2),
            .template_name = cm_db_res_get (res, r, 3),
            .attempts = (long)s_get_u64 (res, r, 4),
            .created_ms = s_get_u64 (res, r, 5),
            .next_attempt_ms = s_get_u64 (res, r, 6),
            .updated_ms = s_get_u64 (res, r, 7),
            .sent_ms = s_get_u64 (res, r, 8),
            .last_error = cm_db_res_get (res, r, 9),
        };
        if (row.id && row.status && row.to && row.template_name) {
            fn (&row, arg);
        }
    }
    cm_db_res_free (&res);
    return 0;
}

int
maild_outbox_requeue (maild_outbox_t *self, const char *job_id, uint64_t now_ms,
                      uint64_t max_age_ms)
{
    char now[24], expires[24];
    s_u64 (now, now_ms);
    s_u64 (expires, now_ms + max_age_ms);
    const char *p[] = {job_id, now, expires};
    cm_db_res_t *res =
        cm_db_query (self->db,
                     "UPDATE mail_jobs SET status = 'pending', next_attempt_ms = $2,"
                     " updated_ms = $2, expires_ms = $3"
                     " WHERE id = $1 AND status = 'failed' AND message IS NOT NULL",
                     3, p);
    int rc = -1;
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "UPDATE mail_jobs (requeue) failed job=%s", job_id);
    } else {
        rc = cm_db_res_changes (res) == 0 ? 1 : 0;
    }
    cm_db_res_free (&res);
    return rc;
}
