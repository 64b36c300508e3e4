/*  unit_gateway_users -- the user-state cache: TTL, bounded size,
    eviction of the oldest, drops, and the epoch that keeps an answer
    older than a drop out.                                             */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "gw_users.h"

#define A "0123456789abcdef0123456789abcdef"
#define B "fedcba9876543210fedcba9876543210"

static gw_user_state_t
s_state (uint64_t gen, bool disabled, const char *role)
{
    gw_user_state_t st;
    memset (&st, 0, sizeof st);
    st.token_gen = gen;
    st.disabled = disabled;
    snprintf (st.role, sizeof st.role, "%s", role);
    return st;
}

static void
test_ttl (void **state)
{
    gw_users_t *users = gw_users_new (64, 5);
    assert_non_null (users);
    gw_user_state_t got;
    assert_false (gw_users_get (users, A, 1000, &got));
    gw_user_state_t st = s_state (3, false, "ops");
    gw_users_put (users, A, &st, 1000, gw_users_epoch (users));
    assert_true (gw_users_get (users, A, 1000, &got));
    assert_int_equal (got.token_gen, 3);
    assert_false (got.disabled);
    assert_string_equal (got.role, "ops");
    /* Fresh for 5 s to the millisecond, stale after. */
    assert_true (gw_users_get (users, A, 5999, &got));
    assert_false (gw_users_get (users, A, 6000, &got));
    assert_false (gw_users_get (users, B, 1000, &got));
    /* A new answer replaces the entry, in place. */
    st = s_state (4, true, "client");
    gw_users_put (users, A, &st, 7000, gw_users_epoch (users));
    assert_true (gw_users_get (users, A, 7000, &got));
    assert_int_equal (got.token_gen, 4);
    assert_true (got.disabled);
    assert_string_equal (got.role, "client");
    assert_int_equal (gw_users_count (users), 1);
    gw_users_destroy (&users);
    assert_null (users);
    gw_users_destroy (&users);
}

static void
test_ttl_zero (void **state)
{
    gw_users_t *users = gw_users_new (64, 0);
    assert_non_null (users);
    gw_user_state_t st = s_state (0, false, "client");
    gw_users_put (users, A, &st, 1000, gw_users_epoch (users));
    gw_user_state_t got;
    assert_false (gw_users_get (users, A, 1000, &got));
    assert_int_equal (gw_users_count (users), 0);
    gw_users_destroy (&users);
}

static void
test_drop_and_epoch (void **state)
{
    gw_users_t *users = gw_users_new (64, 60);
    gw_user_state_t st = s_state (0, false, "admin");
    gw_user_state_t got;
    gw_users_put (users, A, &st, 1000, gw_users_epoch (users));
    gw_users_put (users, B, &st, 1000, gw_users_epoch (users));
    gw_users_drop (users, A);
    assert_false (gw_users_get (users, A, 1000, &got));
    assert_true (gw_users_get (users, B, 1000, &got));
    /* An answer asked for before a drop is not kept: it may predate the
       change the drop stands for.                                      */
    uint64_t epoch = gw_users_epoch (users);
    gw_users_drop (users, B);
    gw_users_put (users, A, &st, 2000, epoch);
    assert_false (gw_users_get (users, A, 2000, &got));
    gw_users_put (users, A, &st, 2000, gw_users_epoch (users));
    assert_true (gw_users_get (users, A, 2000, &got));
    /* Dropping what is not there is harmless. */
    gw_users_drop (users, "00000000000000000000000000000000");
    assert_true (gw_users_get (users, A, 2000, &got));
    /* Only user ids are stored. */
    char long_id[64];
    memset (long_id, 'a', 40);
    long_id[40] = '\0';
    gw_users_put (users, long_id, &st, 2000, gw_users_epoch (users));
    assert_false (gw_users_get (users, long_id, 2000, &got));
    gw_users_destroy (&users);
}

static void
s_id (char out[33], unsigned n)
{
    snprintf (out, 33, "%032x", n);
}

static void
test_bounded (void **state)
{
    assert_null (gw_users_new (GW_USERS_WAYS - 1, 5));
    gw_users_t *users = gw_users_new (16, 60);
    gw_user_state_t st = s_state (0, false, "client");
    gw_user_state_t got;
    char id[33];
    for (unsigned i = 0; i < 5000; i++) {
        s_id (id, i);
        st.token_gen = i;
        gw_users_put (users, id, &st, 1000 + i, gw_users_epoch (users));
        /* What was just stored is there, whatever it displaced. */
        assert_true (gw_users_get (users, id, 1000 + i, &got));
        assert_int_equal (got.token_gen, i);
        assert_true (gw_users_count (users) <= 16);
    }
    assert_int_equal (gw_users_count (users), 16);
    gw_users_destroy (&users);

    /* With as many slots as one neighbourhood, every id competes for
       all of them: exactly the GW_USERS_WAYS most recent stay, so the
       oldest entry is the one that goes.                               */
    users = gw_users_new (GW_USERS_WAYS, 60);
    for (unsigned i = 0; i < 100; i++) {
        s_id (id, i);
        gw_users_put (users, id, &st, 1000 + i, gw_users_epoch (users));
    }
    assert_int_equal (gw_users_count (users), GW_USERS_WAYS);
    for (unsigned i = 0; i < 100; i++) {
        s_id (id, i);
        assert_int_equal (gw_users_get (users, id, 1100, &got), i >= 100 - GW_USERS_WAYS);
    }
    gw_users_destroy (&users);
}

typedef struct {
    gw_users_t *users;
    unsigned seed;
} s_worker_t;

static void *
s_worker (void *arg)
{
    s_worker_t *w = arg;
    gw_user_state_t st = s_state (w->seed, false, "ops");
    gw_user_state_t got;
    char id[33];
    for (unsigned i = 0; i < 20000; i++) {
        s_id (id, (i * 7 + w->seed) % 300);
        switch (i % 4) {
            case 0:
                gw_users_drop (w->users, id);
                break;
            case 1:
                if (gw_users_get (w->users, id, i, &got) &&
                    strcmp (got.role, "ops") != 0) {
                    return (void *)1;
                }
                break;
            default:
                gw_users_put (w->users, id, &st, i, gw_users_epoch (w->users));
        }
    }
    return NULL;
}

/* Workers share one cache: no torn entry, never more than its slots. */
static void
test_threads (void **state)
{
    gw_users_t *users = gw_users_new (128, 60);
    pthread_t t[8];
    s_worker_t w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (s_worker_t){users, (unsigned)i};
        assert_int_equal (pthread_create (&t[i], NULL, s_worker, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        void *rc = NULL;
        pthread_join (t[i], &rc);
        assert_null (rc);
    }
    assert_true (gw_users_count (users) <= 128);
    gw_users_destroy (&users);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_ttl),
        cmocka_unit_test (test_ttl_zero),
        cmocka_unit_test (test_drop_and_epoch),
        cmocka_unit_test (test_bounded),
        cmocka_unit_test (test_threads),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
