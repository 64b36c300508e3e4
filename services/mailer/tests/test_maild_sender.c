/*  unit_mailer_sender -- the backoff: doubles per attempt from the
    minimum, capped, jittered within [half, full]; and the sender thread
    on a real outbox with a scripted transport: delivered -> sent,
    transient -> retried later, permanent -> failed once, a job past
    its give-up time -> failed.                                        */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maild_sender.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
test_backoff (void **state)
{
    (void)state;
    assert_int_equal (maild_sender_backoff (1000, 60000, 1, 1.0), 1000);
    assert_int_equal (maild_sender_backoff (1000, 60000, 2, 1.0), 2000);
    assert_int_equal (maild_sender_backoff (1000, 60000, 3, 1.0), 4000);
    assert_int_equal (maild_sender_backoff (1000, 60000, 7, 1.0), 60000);
    assert_int_equal (maild_sender_backoff (1000, 60000, 1000000, 1.0), 60000);
    assert_int_equal (maild_sender_backoff (1000, 60000, 1, 0.0), 500);
    assert_int_equal (maild_sender_backoff (1000, 60000, 3, 0.5), 3000);
    assert_int_equal (maild_sender_backoff (1000, 60000, 3, 7.0), 4000);
    assert_int_equal (maild_sender_backoff (1, 1, 1, 0.0), 1);
}

/* A transport whose answer per recipient is scripted by its local part. */
typedef struct {
    int calls;
} s_fake_t;

static maild_result_t
s_deliver (void *impl, const char *req, const char *job_id, const char *to,
           const char *data, size_t len, char *err, size_t errlen)
{
    s_fake_t *self = impl;
    self->calls++;
    if (strncmp (to, "ok@", 3) == 0) {
        return MAILD_DELIVERED;
    }
    snprintf (err, errlen, "%s", strncmp (to, "perm@", 5) == 0 ? "550 no" : "451 later");
    return strncmp (to, "perm@", 5) == 0 ? MAILD_FAILED : MAILD_RETRY;
}

static void
s_destroy (void **impl_p)
{
    free (*impl_p);
    *impl_p = NULL;
}

static const maild_transport_ops_t s_ops = {"fake", s_deliver, s_destroy, NULL};

typedef struct {
    char status[16];
    long attempts;
} s_state_t;

static void
s_row (const maild_row_t *row, void *arg)
{
    s_state_t *st = arg;
    snprintf (st->status, sizeof st->status, "%s", row->status);
    st->attempts = row->attempts;
}

/* The one job's state once it reaches `status` (or the last seen). */
static s_state_t
s_wait (maild_outbox_t *box, const char *status, long min_attempts)
{
    s_state_t st = {"", 0};
    uint64_t deadline = cm_mono_ms () + 10000;
    do {
        maild_outbox_list (box, NULL, 1, s_row, &st);
        if (strcmp (st.status, status) == 0 && st.attempts >= min_attempts) {
            break;
        }
        usleep (20000);
    } while (cm_mono_ms () < deadline);
    return st;
}

static void
s_case (const char *to, uint64_t max_age_ms, const char *want, long min_attempts,
        long max_attempts)
{
    char *dir = cm_test_tmpdir ();
    char url[600], err[256];
    snprintf (url, sizeof url, "sqlite:%s/mailer.db", dir);
    maild_outbox_t *mine = maild_outbox_new (url, err, sizeof err);
    maild_outbox_t *theirs = maild_outbox_new (url, err, sizeof err);
    assert_non_null (mine);
    assert_non_null (theirs);
    void *impl = calloc (1, sizeof (s_fake_t));
    maild_transport_t *t = maild_transport_new (&s_ops, &impl);
    assert_non_null (t);
    maild_counters_t counters = {0};
    maild_sender_config_t cfg = {.owner = "test/1/x",
                                 .lease_ms = 60000,
                                 .retry_min_ms = 20,
                                 .retry_max_ms = 40,
                                 .counters = &counters};
    maild_sender_t *sender = maild_sender_new (&cfg, &theirs, &t);
    assert_non_null (sender);
    assert_null (theirs);
    assert_null (t);
    bool dup;
    assert_int_equal (maild_outbox_enqueue (mine, "r", "0123456789abcdef0123456789abcdef",
                                            "verify_email", to, "x\r\n", cm_now_ms (),
                                            max_age_ms, &dup),
                      CM_OK);
    maild_sender_kick (sender);
    s_state_t st = s_wait (mine, want, min_attempts);
    assert_string_equal (st.status, want);
    assert_true (st.attempts >= min_attempts && st.attempts <= max_attempts);
    usleep (300000); /* many backoff periods: a final state stays put */
    s_state_t later = s_wait (mine, want, min_attempts);
    if (strcmp (want, "pending") != 0) {
        assert_int_equal (later.attempts, st.attempts);
    }
    maild_sender_destroy (&sender);
    assert_null (sender);
    if (strcmp (want, "sent") == 0) {
        assert_int_equal (atomic_load (&counters.sent), 1);
    } else if (strcmp (want, "failed") == 0) {
        assert_int_equal (atomic_load (&counters.failed), 1);
    }
    maild_outbox_destroy (&mine);
    cm_test_rmrf (dir);
    free (dir);
}

static void
test_delivered (void **state)
{
    (void)state;
    s_case ("ok@example.com", 60000, "sent", 1, 1);
}

static void
test_permanent (void **state)
{
    (void)state;
    s_case ("perm@example.com", 60000, "failed", 1, 1);
}

static void
test_transient_retried (void **state)
{
    (void)state;
    s_case ("temp@example.com", 60000, "pending", 3, 1000);
}

static void
test_transient_until_max_age (void **state)
{
    (void)state;
    /* Gives up once the job is older than its max age: failed, and then
       not tried again.                                                 */
    s_case ("temp@example.com", 200, "failed", 2, 50);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_backoff),
        cmocka_unit_test (test_delivered),
        cmocka_unit_test (test_permanent),
        cmocka_unit_test (test_transient_retried),
        cmocka_unit_test (test_transient_until_max_age),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
