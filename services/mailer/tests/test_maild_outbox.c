/*  unit_mailer_outbox(_pg) -- the outbox on SQLite, or with
    SAFESHARE_TEST_DB=pg on a fresh PostgreSQL schema: enqueue is
    idempotent by job id; a claim is a lease nobody else gets until it
    runs out; only the lease holder records a result; sent erases the
    message; failed is never claimed again until requeued; two claimers
    racing on one table never get the same job.                        */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maild_outbox.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG "From: a@b\r\nTo: c@d\r\n\r\nhttp://x/verify?token=secret\r\n"
#define T0  1700000000000ULL
#define AGE 60000ULL

typedef struct {
    char *tmp;
    char url[800];
    char schema[40];
    maild_outbox_t *box;
} fixture_t;

static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->tmp = cm_test_tmpdir ();
    assert_non_null (f->tmp);
    snprintf (f->url, sizeof f->url, "sqlite:%s/mailer.db", f->tmp);
    assert_int_not_equal (cm_test_pg_schema_url (f->schema, f->url, sizeof f->url), -1);
    char err[256];
    f->box = maild_outbox_new (f->url, err, sizeof err);
    assert_non_null (f->box);
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    maild_outbox_destroy (&f->box);
    maild_outbox_destroy (&f->box);
    assert_int_equal (cm_test_pg_schema_drop (f->schema), 0);
    cm_test_rmrf (f->tmp);
    free (f->tmp);
    free (f);
    return 0;
}

static void
s_job (char id[33], int n)
{
    snprintf (id, 33, "%032x", n);
}

static void
s_enqueue (maild_outbox_t *box, const char *id, uint64_t now)
{
    bool dup = true;
    assert_int_equal (
        maild_outbox_enqueue (box, "r", id, "verify_email", "c@d", MSG, now, AGE, &dup),
        CM_OK);
    assert_false (dup);
}

static void
s_counts (maild_outbox_t *box, uint64_t p, uint64_t s, uint64_t d, uint64_t f)
{
    uint64_t c[4];
    assert_int_equal (maild_outbox_counts (box, c), 0);
    assert_int_equal (c[0], p);
    assert_int_equal (c[1], s);
    assert_int_equal (c[2], d);
    assert_int_equal (c[3], f);
}

typedef struct {
    char status[16];
    long attempts;
    char last_error[MAILD_MAX_ERROR + 1];
    int rows;
} s_seen_t;

static void
s_row (const maild_row_t *row, void *arg)
{
    s_seen_t *seen = arg;
    snprintf (seen->status, sizeof seen->status, "%s", row->status);
    seen->attempts = row->attempts;
    snprintf (seen->last_error, sizeof seen->last_error, "%s",
              row->last_error ? row->last_error : "");
    seen->rows++;
}

static void
test_enqueue_claim_sent (void **state)
{
    fixture_t *f = *state;
    char id[33];
    s_job (id, 1);
    s_enqueue (f->box, id, T0);
    /* The same job id again: acked as a duplicate, nothing changed. */
    bool dup = false;
    assert_int_equal (maild_outbox_enqueue (f->box, "r", id, "verify_email", "x@y",
                                            "other", T0 + 5, AGE, &dup),
                      CM_OK);
    assert_true (dup);
    s_counts (f->box, 1, 0, 0, 0);

    maild_job_t job;
    assert_int_equal (maild_outbox_claim (f->box, "A", T0, 10000, &job), 1);
    assert_string_equal (job.id, id);
    assert_string_equal (job.to, "c@d");
    assert_string_equal (job.message, MSG);
    assert_int_equal (job.len, strlen (MSG));
    assert_int_equal (job.attempts, 1);
    assert_int_equal (job.expires_ms, T0 + AGE);
    s_counts (f->box, 0, 1, 0, 0);
    /* Leased: nobody else gets it before the lease ends. */
    maild_job_t other;
    assert_int_equal (maild_outbox_claim (f->box, "B", T0 + 9999, 10000, &other), 0);
    uint64_t due = 0;
    assert_int_equal (maild_outbox_next_due (f->box, &due), 1);
    assert_int_equal (due, T0 + 10000);
    assert_int_equal (maild_outbox_sent (f->box, id, "A", T0 + 100), 0);
    maild_job_clear (&job);
    assert_null (job.message);
    s_counts (f->box, 0, 0, 1, 0);
    assert_int_equal (maild_outbox_next_due (f->box, &due), 0);
    /* Sent is final: never claimed again, and the message is gone. */
    assert_int_equal (maild_outbox_claim (f->box, "B", T0 + 1000000, 10000, &other), 0);
    s_seen_t seen = {0};
    assert_int_equal (maild_outbox_list (f->box, MAILD_JOB_SENT, 10, s_row, &seen), 0);
    assert_int_equal (seen.rows, 1);
    assert_int_equal (seen.attempts, 1);
    assert_int_equal (maild_outbox_requeue (f->box, id, T0, AGE), 1);
}

static void
test_lease_expiry_and_lost_lease (void **state)
{
    fixture_t *f = *state;
    char id[33];
    s_job (id, 2);
    s_enqueue (f->box, id, T0);
    maild_job_t a, b;
    assert_int_equal (maild_outbox_claim (f->box, "A", T0, 5000, &a), 1);
    /* A dies; after its lease B takes the job (attempt 2). */
    assert_int_equal (maild_outbox_claim (f->box, "B", T0 + 5000, 5000, &b), 1);
    assert_string_equal (b.id, id);
    assert_int_equal (b.attempts, 2);
    assert_string_equal (b.message, MSG);
    /* A late result from A is not recorded. */
    assert_int_equal (maild_outbox_sent (f->box, id, "A", T0 + 6000), 1);
    assert_int_equal (maild_outbox_fail (f->box, id, "A", T0 + 6000, "x"), 1);
    assert_int_equal (
        maild_outbox_retry_later (f->box, id, "A", T0 + 6000, T0 + 7000, "x"), 1);
    s_counts (f->box, 0, 1, 0, 0);
    assert_int_equal (maild_outbox_sent (f->box, id, "B", T0 + 6000), 0);
    s_counts (f->box, 0, 0, 1, 0);
    maild_job_clear (&a);
    maild_job_clear (&b);
}

static void
test_retry_fail_requeue (void **state)
{
    fixture_t *f = *state;
    char id[33];
    s_job (id, 3);
    s_enqueue (f->box, id, T0);
    maild_job_t job;
    assert_int_equal (maild_outbox_claim (f->box, "A", T0, 5000, &job), 1);
    maild_job_clear (&job);
    /* Transient: pending again, due later, the reason kept (made printable). */
    assert_int_equal (maild_outbox_retry_later (f->box, id, "A", T0 + 10, T0 + 2000,
                                                "connect: refused\r\nX"),
                      0);
    s_counts (f->box, 1, 0, 0, 0);
    assert_int_equal (maild_outbox_claim (f->box, "A", T0 + 1999, 5000, &job), 0);
    uint64_t due = 0;
    assert_int_equal (maild_outbox_next_due (f->box, &due), 1);
    assert_int_equal (due, T0 + 2000);
    s_seen_t seen = {0};
    assert_int_equal (maild_outbox_list (f->box, MAILD_JOB_PENDING, 10, s_row, &seen), 0);
    assert_int_equal (seen.rows, 1);
    assert_string_equal (seen.last_error, "connect: refused  X");
    assert_int_equal (maild_outbox_claim (f->box, "A", T0 + 2000, 5000, &job), 1);
    assert_int_equal (job.attempts, 2);
    maild_job_clear (&job);
    /* Permanent: failed, never claimed again however late. */
    assert_int_equal (maild_outbox_fail (f->box, id, "A", T0 + 2100, "RCPT TO: 550 no"),
                      0);
    s_counts (f->box, 0, 0, 0, 1);
    assert_int_equal (maild_outbox_claim (f->box, "B", T0 + 99999999, 5000, &job), 0);
    assert_int_equal (maild_outbox_next_due (f->box, &due), 0);
    memset (&seen, 0, sizeof seen);
    assert_int_equal (maild_outbox_list (f->box, MAILD_JOB_FAILED, 10, s_row, &seen), 0);
    assert_int_equal (seen.rows, 1);
    assert_int_equal (seen.attempts, 2);
    assert_string_equal (seen.last_error, "RCPT TO: 550 no");
    /* The operator's retry: pending now, with a new give-up time. */
    assert_int_equal (
        maild_outbox_requeue (f->box, "00000000000000000000000000000099", T0 + 5000, AGE),
        1);
    assert_int_equal (maild_outbox_requeue (f->box, id, T0 + 5000, AGE), 0);
    assert_int_equal (maild_outbox_requeue (f->box, id, T0 + 5000, AGE),
                      1); /* not failed */
    assert_int_equal (maild_outbox_claim (f->box, "B", T0 + 5000, 5000, &job), 1);
    assert_int_equal (job.attempts, 3);
    assert_int_equal (job.expires_ms, T0 + 5000 + AGE);
    assert_string_equal (job.message, MSG);
    maild_job_clear (&job);
    /* All rows, newest first; the state filter is exact. */
    memset (&seen, 0, sizeof seen);
    assert_int_equal (maild_outbox_list (f->box, NULL, 10, s_row, &seen), 0);
    assert_int_equal (seen.rows, 1);
    assert_true (maild_outbox_status_valid ("failed"));
    assert_false (maild_outbox_status_valid ("FAILED"));
    assert_false (maild_outbox_status_valid ("x' OR 1=1 --"));
}

/* Two connections claiming from one table at once. */
typedef struct {
    const char *url;
    const char *owner;
    int claimed[64];
} s_racer_t;

static void *
s_race (void *arg)
{
    s_racer_t *r = arg;
    char err[256];
    maild_outbox_t *box = maild_outbox_new (r->url, err, sizeof err);
    if (!box) {
        return NULL;
    }
    for (int misses = 0; misses < 20;) {
        maild_job_t job;
        int rc = maild_outbox_claim (box, r->owner, T0, 600000, &job);
        if (rc == 1) {
            int n = (int)strtol (job.id + 24, NULL, 16);
            if (n >= 0 && n < 64) {
                r->claimed[n]++;
            }
            maild_job_clear (&job);
        } else {
            misses++;
        }
    }
    maild_outbox_destroy (&box);
    return NULL;
}

static void
test_racing_claims_never_share (void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 64; i++) {
        char id[33];
        s_job (id, i);
        s_enqueue (f->box, id, T0 - 1000 + i);
    }
    s_racer_t a = {.url = f->url, .owner = "A"}, b = {.url = f->url, .owner = "B"};
    pthread_t ta, tb;
    assert_int_equal (pthread_create (&ta, NULL, s_race, &a), 0);
    assert_int_equal (pthread_create (&tb, NULL, s_race, &b), 0);
    pthread_join (ta, NULL);
    pthread_join (tb, NULL);
    for (int i = 0; i < 64; i++) {
        if (a.claimed[i] + b.claimed[i] != 1) {
            fail_msg ("job %d claimed %d + %d times", i, a.claimed[i], b.claimed[i]);
        }
    }
    s_counts (f->box, 0, 64, 0, 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_enqueue_claim_sent, setup, teardown),
        cmocka_unit_test_setup_teardown (test_lease_expiry_and_lost_lease, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_retry_fail_requeue, setup, teardown),
        cmocka_unit_test_setup_teardown (test_racing_claims_never_share, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
