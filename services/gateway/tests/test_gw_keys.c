/*  unit_gateway_keys -- the verifier's key set from auth: fetched on
    first need, again after GW_KEYS_MAX_AGE_MS, once more for an unknown
    kid (then one more verify), never more than once per
    GW_KEYS_RETRY_MS for unknown kids or after failures, one fetch for
    many threads; no keys and no auth = unavailable. Real ES256 keys
    and tokens (cm_jwt); the fetch is a fake standing in for auth.    */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cm_testing.h"
#include "cm_util.h"
#include "gw_keys.h"

#define SUB "0123456789abcdef0123456789abcdef"
#define ISS "safeshare"
#define AUD "safeshare-api"

static char *s_dir;
static cm_jwt_signer_t *s_signer[3]; /* A, B, C */

/* ---- the fake auth ----------------------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    cm_jwt_key_t keys[CM_JWT_MAX_KEYS];
    size_t n;
    bool fail;    /* auth unreachable */
    int calls;    /* fetches asked for */
    int delay_ms; /* each fetch takes this long, really */
    int took_ms;  /* ... and this long on the test's clock */
} s_auth_t;

static s_auth_t s_auth = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The clock gw_keys reads: the test sets it; a slow fetch moves it. */
static uint64_t s_clock_ms;
static pthread_mutex_t s_clock_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t
s_clock (void)
{
    pthread_mutex_lock (&s_clock_lock);
    uint64_t now = s_clock_ms;
    pthread_mutex_unlock (&s_clock_lock);
    return now;
}

static void
s_clock_set (uint64_t ms)
{
    pthread_mutex_lock (&s_clock_lock);
    s_clock_ms = ms;
    pthread_mutex_unlock (&s_clock_lock);
}

static int
s_fetch (gw_keys_t *keys, void *arg)
{
    s_auth_t *auth = arg;
    pthread_mutex_lock (&auth->lock);
    auth->calls++;
    bool fail = auth->fail;
    int delay = auth->delay_ms;
    cm_jwt_key_t set[CM_JWT_MAX_KEYS];
    size_t n = auth->n;
    memcpy (set, auth->keys, sizeof set);
    pthread_mutex_unlock (&auth->lock);
    if (delay > 0) {
        poll (NULL, 0, delay);
    }
    /* Auth answers (or the RPC times out) this much later. */
    pthread_mutex_lock (&s_clock_lock);
    s_clock_ms += auth->took_ms;
    pthread_mutex_unlock (&s_clock_lock);
    return fail ? -1 : gw_keys_install (keys, set, n);
}

/* auth's set becomes the given signers' keys, newest first. */
static void
s_auth_serve (int n, const int *which, bool fail)
{
    pthread_mutex_lock (&s_auth.lock);
    s_auth.n = (size_t)n;
    for (int i = 0; i < n; i++) {
        s_auth.keys[i] = (cm_jwt_key_t){cm_jwt_signer_kid (s_signer[which[i]]),
                                        cm_jwt_signer_public_pem (s_signer[which[i]]), 0};
    }
    s_auth.fail = fail;
    s_auth.calls = 0;
    s_auth.delay_ms = 0;
    s_auth.took_ms = 0;
    pthread_mutex_unlock (&s_auth.lock);
}

static int
s_calls (void)
{
    pthread_mutex_lock (&s_auth.lock);
    int calls = s_auth.calls;
    pthread_mutex_unlock (&s_auth.lock);
    return calls;
}

static char *
s_token (int which, uint64_t gen)
{
    char *t = cm_jwt_sign (s_signer[which], SUB, "ops", gen, cm_now_s (), 600);
    assert_non_null (t);
    return t;
}

/* Verifies token with the test's clock at mono. */
static cm_status_t
s_verify (gw_keys_t *keys, const char *token, uint64_t mono, const char **reason)
{
    cm_jwt_claims_t claims;
    s_clock_set (mono);
    return gw_keys_verify (keys, token, cm_now_s (), s_fetch, &s_auth, &claims, reason);
}

static int
s_setup (void **state)
{
    s_dir = cm_test_tmpdir ();
    for (int i = 0; s_dir && i < 3; i++) {
        char priv[600], pub[600];
        snprintf (priv, sizeof priv, "%s/k%d.pem", s_dir, i);
        snprintf (pub, sizeof pub, "%s/k%d.pub", s_dir, i);
        if (cm_jwt_keygen (priv, pub) != 0) {
            return -1;
        }
        s_signer[i] = cm_jwt_signer_new (priv, ISS, AUD);
        if (s_signer[i] == NULL) {
            return -1;
        }
    }
    return s_dir ? 0 : -1;
}

static int
s_teardown (void **state)
{
    for (int i = 0; i < 3; i++) {
        cm_jwt_signer_destroy (&s_signer[i]);
    }
    if (s_dir) {
        cm_test_rmrf (s_dir);
        free (s_dir);
    }
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_first_need (void **state)
{
    int a[] = {0};
    s_auth_serve (1, a, false);
    gw_keys_t *keys = gw_keys_new (ISS, AUD, s_clock);
    assert_non_null (keys);
    assert_int_equal (s_calls (), 0); /* nothing asked before a token comes */
    char *t = s_token (0, 0);
    const char *reason = NULL;
    cm_jwt_claims_t claims;
    s_clock_set (100000);
    assert_int_equal (
        gw_keys_verify (keys, t, cm_now_s (), s_fetch, &s_auth, &claims, &reason), CM_OK);
    assert_string_equal (claims.sub, SUB);
    assert_string_equal (claims.kid, cm_jwt_signer_kid (s_signer[0]));
    assert_int_equal (s_calls (), 1);
    /* The set is kept: no more fetches while it is young. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal (s_verify (keys, t, 100000 + (uint64_t)i * 10000, &reason),
                          CM_OK);
    }
    assert_int_equal (s_calls (), 1);
    assert_int_equal (gw_keys_fetches (keys), 1);
    /* Tokens that fail for other reasons never cause a fetch. */
    char *bad = strdup (t);
    bad[strlen (bad) - 3] = bad[strlen (bad) - 3] == 'A' ? 'B' : 'A';
    assert_int_equal (s_verify (keys, bad, 150000, &reason), CM_UNAUTHENTICATED);
    assert_string_not_equal (reason, "unknown_kid");
    assert_int_equal (s_verify (keys, "not.a.token", 150000, &reason),
                      CM_UNAUTHENTICATED);
    assert_int_equal (s_calls (), 1);
    free (bad);
    free (t);
    gw_keys_destroy (&keys);
    assert_null (keys);
}

static void
test_no_auth (void **state)
{
    int a[] = {0};
    s_auth_serve (1, a, true);
    gw_keys_t *keys = gw_keys_new (ISS, AUD, s_clock);
    char *t = s_token (0, 0);
    const char *reason = NULL;
    assert_int_equal (s_verify (keys, t, 100000, &reason), CM_UNAVAILABLE);
    assert_string_equal (reason, "no_keys");
    assert_int_equal (s_calls (), 1);
    /* Within the retry interval auth is not asked again. */
    assert_int_equal (s_verify (keys, t, 100999, &reason), CM_UNAVAILABLE);
    assert_int_equal (s_calls (), 1);
    assert_int_equal (s_verify (keys, t, 101000, &reason), CM_UNAVAILABLE);
    assert_int_equal (s_calls (), 2);
    /* Auth back: the next attempt after the interval gets the keys. */
    pthread_mutex_lock (&s_auth.lock);
    s_auth.fail = false;
    pthread_mutex_unlock (&s_auth.lock);
    assert_int_equal (s_verify (keys, t, 101500, &reason), CM_UNAVAILABLE);
    assert_int_equal (s_verify (keys, t, 102000, &reason), CM_OK);
    assert_int_equal (s_calls (), 3);
    free (t);
    gw_keys_destroy (&keys);

    /* An attempt that waits out a 1 s RPC timeout: the interval starts
       when it gives up, so the request right after does not ask.     */
    s_auth_serve (1, a, true);
    pthread_mutex_lock (&s_auth.lock);
    s_auth.took_ms = 1000;
    pthread_mutex_unlock (&s_auth.lock);
    keys = gw_keys_new (ISS, AUD, s_clock);
    t = s_token (0, 0);
    assert_int_equal (s_verify (keys, t, 200000, &reason), CM_UNAVAILABLE);
    assert_int_equal (s_calls (), 1);
    assert_int_equal (s_verify (keys, t, 201010, &reason), CM_UNAVAILABLE);
    assert_int_equal (s_calls (), 1);
    assert_int_equal (s_verify (keys, t, 202000, &reason), CM_UNAVAILABLE);
    assert_int_equal (s_calls (), 2);
    free (t);
    gw_keys_destroy (&keys);
}

static void
test_refresh_by_age (void **state)
{
    int a[] = {0};
    s_auth_serve (1, a, false);
    gw_keys_t *keys = gw_keys_new (ISS, AUD, s_clock);
    char *t = s_token (0, 0);
    const char *reason = NULL;
    assert_int_equal (s_verify (keys, t, 100000, &reason), CM_OK);
    assert_int_equal (s_verify (keys, t, 100000 + GW_KEYS_MAX_AGE_MS - 1, &reason),
                      CM_OK);
    assert_int_equal (s_calls (), 1);
    assert_int_equal (s_verify (keys, t, 100000 + GW_KEYS_MAX_AGE_MS, &reason), CM_OK);
    assert_int_equal (s_calls (), 2);
    /* A failed refresh keeps the set it had (and waits to retry). */
    pthread_mutex_lock (&s_auth.lock);
    s_auth.fail = true;
    pthread_mutex_unlock (&s_auth.lock);
    uint64_t later = 100000 + 2 * GW_KEYS_MAX_AGE_MS;
    assert_int_equal (s_verify (keys, t, later, &reason), CM_OK);
    assert_int_equal (s_calls (), 3);
    assert_int_equal (s_verify (keys, t, later + 10, &reason), CM_OK);
    assert_int_equal (s_calls (), 3);
    assert_int_equal (s_verify (keys, t, later + GW_KEYS_RETRY_MS, &reason), CM_OK);
    assert_int_equal (s_calls (), 4);
    /* A refresh drops keys auth no longer lists. */
    int b[] = {1};
    s_auth_serve (1, b, false);
    later += 2 * GW_KEYS_MAX_AGE_MS;
    char *tb = s_token (1, 0);
    assert_int_equal (s_verify (keys, tb, later, &reason), CM_OK);
    assert_int_equal (s_calls (), 1);
    assert_int_equal (s_verify (keys, t, later + 1, &reason), CM_UNAUTHENTICATED);
    assert_string_equal (reason, "unknown_kid");
    free (tb);
    free (t);
    gw_keys_destroy (&keys);
}

static void
test_rotation (void **state)
{
    int a[] = {0};
    s_auth_serve (1, a, false);
    gw_keys_t *keys = gw_keys_new (ISS, AUD, s_clock);
    char *ta = s_token (0, 0);
    char *tb = s_token (1, 0);
    const char *reason = NULL;
    assert_int_equal (s_verify (keys, ta, 100000, &reason), CM_OK);
    /* auth rotates to B; A stays in its grace period. */
    int ba[] = {1, 0};
    s_auth_serve (2, ba, false);
    /* Right after the last fetch a new kid waits for the interval... */
    assert_int_equal (s_verify (keys, tb, 100500, &reason), CM_UNAUTHENTICATED);
    assert_string_equal (reason, "unknown_kid");
    assert_int_equal (s_calls (), 0);
    /* ...then exactly one refetch, and the token passes. */
    assert_int_equal (s_verify (keys, tb, 101000, &reason), CM_OK);
    assert_int_equal (s_calls (), 1);
    assert_int_equal (s_verify (keys, ta, 101001, &reason), CM_OK);
    assert_int_equal (s_verify (keys, tb, 102500, &reason), CM_OK);
    assert_int_equal (s_calls (), 1);
    free (ta);
    free (tb);
    gw_keys_destroy (&keys);
}

static void
test_forged_kid (void **state)
{
    int a[] = {0};
    s_auth_serve (1, a, false);
    gw_keys_t *keys = gw_keys_new (ISS, AUD, s_clock);
    char *ta = s_token (0, 0);
    char *tc = s_token (2, 0); /* C: auth never lists it */
    const char *reason = NULL;
    assert_int_equal (s_verify (keys, ta, 100000, &reason), CM_OK);
    /* One refetch, still unknown: refused. */
    assert_int_equal (s_calls (), 1);
    assert_int_equal (s_verify (keys, tc, 101000, &reason), CM_UNAUTHENTICATED);
    assert_string_equal (reason, "unknown_kid");
    assert_int_equal (s_calls (), 2);
    /* A stream of them costs auth at most one fetch a second. */
    for (uint64_t ms = 101000; ms < 104000; ms += 50) {
        assert_int_equal (s_verify (keys, tc, ms, &reason), CM_UNAUTHENTICATED);
    }
    assert_int_equal (s_calls (), 4); /* at 102000 and 103000 */
    assert_int_equal (s_verify (keys, ta, 104000, &reason), CM_OK);
    free (ta);
    free (tc);
    gw_keys_destroy (&keys);
}

typedef struct {
    gw_keys_t *keys;
    const char *token;
    uint64_t mono;
    cm_status_t rc;
} s_worker_t;

static void *
s_worker (void *arg)
{
    s_worker_t *w = arg;
    const char *reason;
    w->rc = s_verify (w->keys, w->token, w->mono, &reason);
    return NULL;
}

/* Many workers at once: the first need, then a rotation, each one
   fetch; everyone waits for it and passes.                           */
static void
test_threads (void **state)
{
    int a[] = {0};
    s_auth_serve (1, a, false);
    pthread_mutex_lock (&s_auth.lock);
    s_auth.delay_ms = 100;
    pthread_mutex_unlock (&s_auth.lock);
    gw_keys_t *keys = gw_keys_new (ISS, AUD, s_clock);
    char *ta = s_token (0, 0);
    char *tb = s_token (1, 0);
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            int ba[] = {1, 0};
            s_auth_serve (2, ba, false);
            pthread_mutex_lock (&s_auth.lock);
            s_auth.delay_ms = 100;
            pthread_mutex_unlock (&s_auth.lock);
        }
        pthread_t t[8];
        s_worker_t w[8];
        for (int i = 0; i < 8; i++) {
            w[i] = (s_worker_t){keys, round ? tb : ta, 100000 + (uint64_t)round * 5000,
                                CM_INTERNAL};
            assert_int_equal (pthread_create (&t[i], NULL, s_worker, &w[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
            pthread_join (t[i], NULL);
            assert_int_equal (w[i].rc, CM_OK);
        }
        assert_int_equal (s_calls (), 1);
    }
    free (ta);
    free (tb);
    gw_keys_destroy (&keys);
}

static void
test_install (void **state)
{
    gw_keys_t *keys = gw_keys_new (ISS, AUD, s_clock);
    cm_jwt_key_t good = {cm_jwt_signer_kid (s_signer[0]),
                         cm_jwt_signer_public_pem (s_signer[0]), 0};
    assert_int_equal (gw_keys_install (keys, &good, 0), -1);
    assert_int_equal (gw_keys_install (keys, &good, 1), 0);
    /* A key whose kid does not match it: refused, the set unchanged. */
    cm_jwt_key_t bad[2] = {
        {cm_jwt_signer_kid (s_signer[1]), cm_jwt_signer_public_pem (s_signer[0]), 0},
        good};
    assert_int_equal (gw_keys_install (keys, bad, 2), -1);
    char *t = s_token (0, 0);
    const char *reason = NULL;
    int a[] = {0};
    s_auth_serve (1, a, true); /* any fetch would fail */
    assert_int_equal (s_verify (keys, t, 1000, &reason), CM_OK);
    /* A whole set, each key usable; a set with junk is refused whole. */
    cm_jwt_key_t three[3];
    for (int i = 0; i < 3; i++) {
        three[i] = (cm_jwt_key_t){cm_jwt_signer_kid (s_signer[i]),
                                  cm_jwt_signer_public_pem (s_signer[i]), 0};
    }
    assert_int_equal (gw_keys_install (keys, three, 3), 0);
    for (int i = 0; i < 3; i++) {
        char *ti = s_token (i, 7);
        assert_int_equal (s_verify (keys, ti, 1000, &reason), CM_OK);
        free (ti);
    }
    three[2].public_pem = "not a key";
    assert_int_equal (gw_keys_install (keys, three, 3), -1);
    char *tc = s_token (2, 0);
    assert_int_equal (s_verify (keys, tc, 1000, &reason), CM_OK);
    free (tc);
    assert_int_equal (s_calls (), 0);
    free (t);
    gw_keys_destroy (&keys);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_first_need),     cmocka_unit_test (test_no_auth),
        cmocka_unit_test (test_refresh_by_age), cmocka_unit_test (test_rotation),
        cmocka_unit_test (test_forged_kid),     cmocka_unit_test (test_threads),
        cmocka_unit_test (test_install),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
