/*  unit_auth_sessions -- sessions, refresh-token rotation and reuse,
    logout, logout-all, the audit log and the jwt_keys bookkeeping, on a
    temporary SQLite database (or a PostgreSQL schema: SAFESHARE_TEST_DB=pg).
    The clock is passed in, so expiry is tested without waiting.         */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authd_audit.h"
#include "authd_handler.h"
#include "authd_sessions.h"
#include "authd_test_db.h"
#include "authd_users.h"
#include "cm_db.h"
#include "cm_jwt.h"
#include "cm_log.h"
#include "cm_util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUBLIC_URL "https://share.example.com/"
#define GOOD_PW    "correct horse battery"
#define WRONG_PW   "wrong horse battery staple"
#define ISS        "safeshare"
#define AUD        "safeshare-api"
#define T0         1700000000ull

typedef struct {
    authd_test_db_t store;
    cm_jwt_signer_t *signer;
    cm_jwt_verifier_t *verifier;
    char priv[600], pub[600];
} fixture_t;

static const authd_origin_t s_origin = {"req-1", "192.0.2.10", ""};
static const authd_session_ttl_t s_ttl = {900, 1209600, 2592000};

static int
s_setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    authd_test_db_open (&f->store);
    snprintf (f->priv, sizeof f->priv, "%s/jwt-es256.pem", f->store.dir);
    snprintf (f->pub, sizeof f->pub, "%s/jwt-es256.pub", f->store.dir);
    assert_int_equal (cm_jwt_keygen (f->priv, f->pub), 0);
    f->signer = cm_jwt_signer_new (f->priv, ISS, AUD);
    assert_non_null (f->signer);
    f->verifier = cm_jwt_verifier_new (ISS, AUD);
    assert_non_null (f->verifier);
    assert_int_equal (cm_jwt_verifier_load_file (f->verifier, f->pub), 0);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *f = *state;
    cm_jwt_verifier_destroy (&f->verifier);
    cm_jwt_signer_destroy (&f->signer);
    authd_test_db_close (&f->store);
    free (f);
    return 0;
}

static void
s_user (fixture_t *f, const char *email, const char *role, authd_user_t *user)
{
    char id[33];
    const char *code = NULL;
    assert_int_equal (
        authd_user_create (f->store.db, email, GOOD_PW, role, true, id, &code), CM_OK);
    assert_int_equal (authd_user_get (f->store.db, "t", id, user, &code), CM_OK);
}

/* Verifies an access token; returns its claims. */
static cm_jwt_claims_t
s_claims (fixture_t *f, const char *access, uint64_t now)
{
    cm_jwt_claims_t c;
    const char *reason = NULL;
    int rc = cm_jwt_verify (f->verifier, access, now, &c, &reason);
    if (rc != 0) {
        fail_msg ("access token refused: %s", reason ? reason : "?");
    }
    return c;
}

static void
s_open (fixture_t *f, const authd_user_t *user, uint64_t now, authd_tokens_t *t)
{
    const char *code = NULL;
    assert_int_equal (authd_session_open (f->store.db, &s_origin, f->signer, &s_ttl, now,
                                          user, t, &code),
                      CM_OK);
    assert_null (code);
}

static cm_status_t
s_refresh (fixture_t *f, const authd_session_ttl_t *ttl, uint64_t now, const char *token,
           authd_tokens_t *t, const char **code)
{
    return authd_session_refresh (f->store.db, &s_origin, f->signer, ttl, now, token, t,
                                  code);
}

/* ---- LOGIN through the handler ------------------------------------- */

static authd_handler_t *
s_handler (fixture_t *f)
{
    authd_handler_config_t hc = {.public_url = PUBLIC_URL,
                                 .access_ttl_s = 900,
                                 .verify_ttl_s = 3600,
                                 .refresh_ttl_s = 1209600,
                                 .session_ttl_s = 2592000};
    authd_handler_t *h = authd_handler_new (f->store.db, f->signer, &hc);
    assert_non_null (h);
    return h;
}

static void
s_handle (authd_handler_t *h, Safeshare__AuthRequest *rq, const char *addr,
          authd_reply_t *out)
{
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    meta.client_addr = (char *)addr;
    meta.request_id = "req-h";
    rq->meta = &meta;
    authd_handler_handle (h, rq, "req-h", out);
}

static void
s_handler_login (authd_handler_t *h, const char *email, const char *password,
                 authd_reply_t *out)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__LoginRequest b = SAFESHARE__LOGIN_REQUEST__INIT;
    b.email = (char *)email;
    b.password = (char *)password;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGIN;
    rq.login = &b;
    s_handle (h, &rq, "198.51.100.7", out);
}

static void
test_login_opens_session (void **state)
{
    fixture_t *f = *state;
    authd_user_t user;
    s_user (f, "ann@x.org", "ops", &user);
    authd_handler_t *h = s_handler (f);
    authd_reply_t out;
    uint64_t before = cm_now_s ();
    s_handler_login (h, "Ann@x.org", GOOD_PW, &out);
    assert_int_equal (out.reply.status, CM_OK);
    assert_int_equal (out.reply.body_case, SAFESHARE__AUTH_REPLY__BODY_LOGIN);
    Safeshare__LoginReply *lr = out.reply.login;
    assert_int_equal (lr->expires_in, 900);
    assert_int_equal (strlen (lr->refresh), AUTHD_REFRESH_TOKEN_LEN);
    assert_int_equal (lr->refresh_expires_in, 1209600);
    assert_string_equal (lr->user->id, user.id);
    cm_jwt_claims_t c = s_claims (f, lr->access, cm_now_s ());
    assert_string_equal (c.sub, user.id);
    assert_string_equal (c.role, "ops");
    assert_int_equal (c.gen, 0);
    assert_string_equal (c.kid, cm_jwt_signer_kid (f->signer));

    /* One session, one refresh token: its SHA-256 only. */
    char hash[65], buf[128];
    cm_sha256_hex (hash, lr->refresh, strlen (lr->refresh));
    assert_int_equal (
        authd_test_count (f->store.db, "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
                          user.id),
        1);
    authd_test_scalar (f->store.db,
                       "SELECT session_id FROM refresh_tokens WHERE token_hash = $1",
                       hash, buf, sizeof buf);
    assert_true (cm_is_hex_id (buf, 32));
    char sid[33];
    snprintf (sid, sizeof sid, "%.32s", buf);
    authd_test_scalar (f->store.db, "SELECT expires_at FROM sessions WHERE id = $1", sid,
                       buf, sizeof buf);
    uint64_t exp = strtoull (buf, NULL, 10);
    assert_true (exp >= before + 2592000 && exp <= cm_now_s () + 2592000);
    assert_int_equal (
        authd_test_count (f->store.db,
                          "SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = $1",
                          lr->refresh),
        0);
    /* Audited with the client's address and the user as actor. */
    assert_int_equal (
        authd_test_count (f->store.db,
                          "SELECT COUNT(*) FROM audit_log WHERE event = 'login'"
                          " AND outcome = 'ok' AND actor = $1 AND subject = actor"
                          " AND client_addr = '198.51.100.7'"
                          " AND request_id = 'req-h'",
                          user.id),
        1);
    authd_reply_release (&out);
    /* Released: the secrets are gone from the reply. */
    assert_null (out.tokens.access);
    assert_int_equal (out.tokens.refresh[0], '\0');

    /* A refused login opens nothing. */
    s_handler_login (h, "ann@x.org", WRONG_PW, &out);
    assert_int_equal (out.reply.status, CM_UNAUTHENTICATED);
    authd_reply_release (&out);
    assert_int_equal (
        authd_test_count (f->store.db, "SELECT COUNT(*) FROM sessions", NULL), 1);
    authd_handler_destroy (&h);
}

/* ---- REFRESH ---------------------------------------------------------- */

static void
test_refresh_rotates_and_reuse (void **state)
{
    fixture_t *f = *state;
    authd_user_t user;
    s_user (f, "bob@x.org", "client", &user);
    authd_tokens_t t1, t2, t3;
    const char *code = NULL;
    s_open (f, &user, T0, &t1);

    assert_int_equal (s_refresh (f, &s_ttl, T0 + 60, t1.refresh, &t2, &code), CM_OK);
    assert_string_not_equal (t2.refresh, t1.refresh);
    assert_string_equal (t2.session_id, t1.session_id);
    assert_int_equal (t2.refresh_expires_in, 1209600);
    cm_jwt_claims_t c = s_claims (f, t2.access, T0 + 60);
    assert_string_equal (c.sub, user.id);
    assert_int_equal (c.iat, T0 + 60);
    assert_string_equal (t2.user.role, "client");
    assert_int_equal (authd_test_count (f->store.db,
                                        "SELECT COUNT(*) FROM refresh_tokens"
                                        " WHERE used_at IS NOT NULL",
                                        NULL),
                      1);

    /* The spent token again: reuse. The whole family dies, so the
       newest token (t2) is refused too. */
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 70, t1.refresh, &t3, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "refresh_token_reused");
    assert_null (t3.access);
    char buf[64];
    authd_test_scalar (f->store.db, "SELECT revoke_reason FROM sessions WHERE id = $1",
                       t1.session_id, buf, sizeof buf);
    assert_string_equal (buf, "reuse");
    assert_int_equal (
        authd_test_count (f->store.db,
                          "SELECT COUNT(*) FROM audit_log WHERE event = 'refresh_reuse'"
                          " AND subject = $1 AND actor = ''"
                          " AND client_addr = '192.0.2.10'",
                          user.id),
        1);
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 80, t2.refresh, &t3, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_refresh_token");
    /* Reused again: still reuse, the session stays ended as it was. */
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 90, t1.refresh, &t3, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "refresh_token_reused");

    /* Malformed and unknown tokens. */
    char unknown[64];
    assert_int_equal (cm_random_token (unknown, sizeof unknown, 32), 0);
    const char *bad[] = {"", "short", unknown,
                         "'; DROP TABLE sessions; --xxxxxxxxxxxxxxxxx", NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal (s_refresh (f, &s_ttl, T0 + 90, bad[i], &t3, &code),
                          CM_UNAUTHENTICATED);
        assert_string_equal (code, "invalid_refresh_token");
    }
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 90, NULL, &t3, &code),
                      CM_UNAUTHENTICATED);
    authd_tokens_wipe (&t1);
    authd_tokens_wipe (&t2);
    authd_tokens_wipe (&t3);
}

/* A refresh token past its expiry: refused, and not spent by the
   refusal (presenting it is not reuse). */
static void
test_refresh_expired (void **state)
{
    fixture_t *f = *state;
    authd_user_t user;
    s_user (f, "cat@x.org", "client", &user);
    authd_session_ttl_t ttl = {900, 100, 10000};
    authd_tokens_t t1, t2;
    const char *code = NULL;
    assert_int_equal (authd_session_open (f->store.db, &s_origin, f->signer, &ttl, T0,
                                          &user, &t1, &code),
                      CM_OK);
    assert_int_equal (t1.refresh_expires_in, 100);
    assert_int_equal (s_refresh (f, &ttl, T0 + 100, t1.refresh, &t2, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "refresh_token_expired");
    assert_int_equal (s_refresh (f, &ttl, T0 + 5000, t1.refresh, &t2, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "refresh_token_expired");
    assert_int_equal (authd_test_count (f->store.db,
                                        "SELECT COUNT(*) FROM refresh_tokens"
                                        " WHERE used_at IS NULL",
                                        NULL),
                      1);
    assert_int_equal (authd_test_count (f->store.db,
                                        "SELECT COUNT(*) FROM sessions"
                                        " WHERE revoked_at IS NULL",
                                        NULL),
                      1);
    /* One second before: fine. */
    assert_int_equal (s_refresh (f, &ttl, T0 + 99, t1.refresh, &t2, &code), CM_OK);
    authd_tokens_wipe (&t1);
    authd_tokens_wipe (&t2);
}

/* Refreshing never outlives the session: tokens are cut at its end. */
static void
test_session_absolute_expiry (void **state)
{
    fixture_t *f = *state;
    authd_user_t user;
    s_user (f, "dan@x.org", "client", &user);
    authd_session_ttl_t ttl = {900, 100, 250};
    authd_tokens_t t1, t2, t3, t4;
    const char *code = NULL;
    assert_int_equal (authd_session_open (f->store.db, &s_origin, f->signer, &ttl, T0,
                                          &user, &t1, &code),
                      CM_OK);
    assert_int_equal (s_refresh (f, &ttl, T0 + 90, t1.refresh, &t2, &code), CM_OK);
    assert_int_equal (t2.refresh_expires_in, 100);
    assert_int_equal (s_refresh (f, &ttl, T0 + 180, t2.refresh, &t3, &code), CM_OK);
    assert_int_equal (t3.refresh_expires_in, 70); /* T0 + 250 - (T0 + 180) */
    char hash[65], buf[32];
    cm_sha256_hex (hash, t3.refresh, strlen (t3.refresh));
    authd_test_scalar (f->store.db,
                       "SELECT expires_at FROM refresh_tokens WHERE token_hash = $1",
                       hash, buf, sizeof buf);
    assert_int_equal (strtoull (buf, NULL, 10), T0 + 250);
    assert_int_equal (s_refresh (f, &ttl, T0 + 250, t3.refresh, &t4, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "refresh_token_expired");
    /* A login after the end prunes the dead session, opens a new one. */
    authd_tokens_t t5;
    assert_int_equal (authd_session_open (f->store.db, &s_origin, f->signer, &ttl,
                                          T0 + 300, &user, &t5, &code),
                      CM_OK);
    assert_int_equal (
        authd_test_count (f->store.db, "SELECT COUNT(*) FROM sessions", NULL), 1);
    assert_int_equal (
        authd_test_count (f->store.db, "SELECT COUNT(*) FROM refresh_tokens", NULL), 1);
    authd_tokens_wipe (&t1);
    authd_tokens_wipe (&t2);
    authd_tokens_wipe (&t3);
    authd_tokens_wipe (&t5);
}

/* ---- LOGOUT, LOGOUT_ALL ---------------------------------------------- */

static void
test_logout (void **state)
{
    fixture_t *f = *state;
    authd_user_t user;
    s_user (f, "eve@x.org", "client", &user);
    authd_tokens_t t1, t2, other;
    const char *code = NULL;
    s_open (f, &user, T0, &t1);
    s_open (f, &user, T0, &other);
    assert_int_equal (
        authd_session_logout (f->store.db, &s_origin, T0 + 5, t1.refresh, &code), CM_OK);
    char buf[64];
    authd_test_scalar (f->store.db, "SELECT revoke_reason FROM sessions WHERE id = $1",
                       t1.session_id, buf, sizeof buf);
    assert_string_equal (buf, "logout");
    authd_test_scalar (f->store.db, "SELECT revoked_at FROM sessions WHERE id = $1",
                       t1.session_id, buf, sizeof buf);
    assert_int_equal (strtoull (buf, NULL, 10), T0 + 5);
    /* Idempotent: OK again, the first end stands. */
    assert_int_equal (
        authd_session_logout (f->store.db, &s_origin, T0 + 9, t1.refresh, &code), CM_OK);
    authd_test_scalar (f->store.db, "SELECT revoked_at FROM sessions WHERE id = $1",
                       t1.session_id, buf, sizeof buf);
    assert_int_equal (strtoull (buf, NULL, 10), T0 + 5);
    assert_int_equal (
        authd_test_count (f->store.db,
                          "SELECT COUNT(*) FROM audit_log WHERE event = 'logout'"
                          " AND actor = $1 AND subject = $1",
                          user.id),
        2);
    /* Ended: its token no longer refreshes; the other session lives. */
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 10, t1.refresh, &t2, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_refresh_token");
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 10, other.refresh, &t2, &code), CM_OK);
    /* Malformed / unknown. */
    assert_int_equal (authd_session_logout (f->store.db, &s_origin, T0, "nope", &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_refresh_token");
    char unknown[64];
    assert_int_equal (cm_random_token (unknown, sizeof unknown, 32), 0);
    assert_int_equal (authd_session_logout (f->store.db, &s_origin, T0, unknown, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_refresh_token");
    authd_tokens_wipe (&t1);
    authd_tokens_wipe (&t2);
    authd_tokens_wipe (&other);
}

static void
test_logout_all (void **state)
{
    fixture_t *f = *state;
    authd_user_t user, bystander;
    s_user (f, "fay@x.org", "client", &user);
    s_user (f, "gus@x.org", "client", &bystander);
    authd_tokens_t a, b, c, x, t;
    const char *code = NULL;
    s_open (f, &user, T0, &a);
    s_open (f, &user, T0, &b);
    s_open (f, &bystander, T0, &c);
    uint64_t gen = 99;
    assert_int_equal (
        authd_session_logout_all (f->store.db, &s_origin, user.id, &gen, &code), CM_OK);
    assert_int_equal (gen, 1);
    assert_int_equal (authd_user_token_gen (f->store.db, user.id, &gen), 0);
    assert_int_equal (gen, 1);
    assert_int_equal (authd_user_token_gen (f->store.db, bystander.id, &gen), 0);
    assert_int_equal (gen, 0);
    assert_int_equal (authd_test_count (f->store.db,
                                        "SELECT COUNT(*) FROM sessions WHERE user_id = $1"
                                        " AND revoke_reason = 'logout_all'",
                                        user.id),
                      2);
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 1, a.refresh, &t, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_refresh_token");
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 1, b.refresh, &t, &code),
                      CM_UNAUTHENTICATED);
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 1, c.refresh, &t, &code), CM_OK);
    authd_tokens_wipe (&t);
    assert_int_equal (
        authd_test_count (f->store.db,
                          "SELECT COUNT(*) FROM audit_log WHERE event = 'logout_all'"
                          " AND actor = $1 AND subject = $1",
                          user.id),
        1);
    /* New tokens carry the new generation. */
    s_open (f, &user, T0 + 2, &x);
    assert_int_equal (x.gen, 1);
    assert_int_equal (s_claims (f, x.access, T0 + 2).gen, 1);

    /* Through the handler: LOGOUT_ALL answers the generation, USER_GET
       reports it. */
    authd_handler_t *h = s_handler (f);
    authd_reply_t out;
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__LogoutAllRequest la = SAFESHARE__LOGOUT_ALL_REQUEST__INIT;
    la.user_id = user.id;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGOUT_ALL;
    rq.logout_all = &la;
    s_handle (h, &rq, "", &out);
    assert_int_equal (out.reply.status, CM_OK);
    assert_int_equal (out.reply.logout_all->token_gen, 2);
    authd_reply_release (&out);
    Safeshare__UserGetRequest ug = SAFESHARE__USER_GET_REQUEST__INIT;
    ug.id = user.id;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_USER_GET;
    rq.user_get = &ug;
    s_handle (h, &rq, "", &out);
    assert_int_equal (out.reply.status, CM_OK);
    assert_int_equal (out.reply.user_get->token_gen, 2);
    authd_reply_release (&out);
    la.user_id = "nope";
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGOUT_ALL;
    rq.logout_all = &la; /* a oneof: user_get shared the pointer */
    s_handle (h, &rq, "", &out);
    assert_int_equal (out.reply.status, CM_INVALID);
    assert_string_equal (out.reply.error->code, "invalid_user_id");
    authd_reply_release (&out);
    la.user_id = "0123456789abcdef0123456789abcdef";
    s_handle (h, &rq, "", &out);
    assert_int_equal (out.reply.status, CM_NOT_FOUND);
    assert_string_equal (out.reply.error->code, "user_not_found");
    authd_reply_release (&out);
    authd_handler_destroy (&h);
    authd_tokens_wipe (&a);
    authd_tokens_wipe (&b);
    authd_tokens_wipe (&c);
    authd_tokens_wipe (&x);
}

/* A disabled user's live session: refused FORBIDDEN, token not spent.
   Disabling through authd_sessions_revoke_user ends the session. */
static void
test_disabled_refresh (void **state)
{
    fixture_t *f = *state;
    authd_user_t user;
    s_user (f, "hal@x.org", "client", &user);
    authd_tokens_t t1, t2;
    const char *code = NULL;
    s_open (f, &user, T0, &t1);
    const char *p[] = {user.id};
    assert_int_equal (
        cm_db_exec (f->store.db, "UPDATE users SET disabled = 1 WHERE id = $1", 1, p),
        CM_DB_OK);
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 1, t1.refresh, &t2, &code),
                      CM_FORBIDDEN);
    assert_string_equal (code, "account_disabled");
    assert_int_equal (authd_test_count (f->store.db,
                                        "SELECT COUNT(*) FROM refresh_tokens"
                                        " WHERE used_at IS NULL",
                                        NULL),
                      1);
    assert_int_equal (authd_sessions_revoke_user (f->store.db, user.id, "disabled", true),
                      0);
    assert_int_equal (s_refresh (f, &s_ttl, T0 + 2, t1.refresh, &t2, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_refresh_token");
    uint64_t gen = 0;
    assert_int_equal (authd_user_token_gen (f->store.db, user.id, &gen), 0);
    assert_int_equal (gen, 1);
    /* Unknown users: -1. */
    assert_int_equal (
        authd_user_token_gen (f->store.db, "0123456789abcdef0123456789abcdef", &gen), -1);
    assert_int_equal (authd_sessions_revoke_user (f->store.db,
                                                  "0123456789abcdef0123456789abcdef",
                                                  "disabled", true),
                      -1);
    authd_tokens_wipe (&t1);
}

/* ---- the concurrent claim --------------------------------------------- */

typedef struct {
    fixture_t *f;
    cm_db_t *db;
    const char *token;
    pthread_barrier_t *barrier;
    cm_status_t st;
    const char *code;
    authd_tokens_t out;
} racer_t;

static void *
s_racer (void *arg)
{
    racer_t *r = arg;
    pthread_barrier_wait (r->barrier);
    r->st = authd_session_refresh (r->db, &s_origin, r->f->signer, &s_ttl, T0 + 10,
                                   r->token, &r->out, &r->code);
    return NULL;
}

/* Two replicas (two DB handles) refresh one token at the same instant:
   exactly one wins, the other is reuse, and the winner's new token dies
   with the family. */
static void
test_concurrent_claim (void **state)
{
    fixture_t *f = *state;
    authd_user_t user;
    s_user (f, "ida@x.org", "client", &user);
    cm_db_t *db2 = cm_db_open (f->store.url);
    assert_non_null (db2);
    for (int round = 0; round < 5; round++) {
        authd_tokens_t t;
        s_open (f, &user, T0, &t);
        pthread_barrier_t barrier;
        pthread_barrier_init (&barrier, NULL, 2);
        racer_t r[2] = {
            {.f = f, .db = f->store.db, .token = t.refresh, .barrier = &barrier},
            {.f = f, .db = db2, .token = t.refresh, .barrier = &barrier}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            assert_int_equal (pthread_create (&th[i], NULL, s_racer, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++) {
            pthread_join (th[i], NULL);
        }
        pthread_barrier_destroy (&barrier);
        int winner = r[0].st == CM_OK ? 0 : 1;
        int loser = 1 - winner;
        assert_int_equal (r[winner].st, CM_OK);
        assert_int_equal (r[loser].st, CM_UNAUTHENTICATED);
        assert_string_equal (r[loser].code, "refresh_token_reused");
        authd_tokens_t t2;
        const char *code = NULL;
        assert_int_equal (
            s_refresh (f, &s_ttl, T0 + 11, r[winner].out.refresh, &t2, &code),
            CM_UNAUTHENTICATED);
        assert_string_equal (code, "invalid_refresh_token");
        for (int i = 0; i < 2; i++) {
            authd_tokens_wipe (&r[i].out);
        }
        authd_tokens_wipe (&t);
    }
    assert_int_equal (authd_test_count (f->store.db,
                                        "SELECT COUNT(*) FROM sessions"
                                        " WHERE revoke_reason = 'reuse'",
                                        NULL),
                      5);
    cm_db_destroy (&db2);
}

/* ---- audit: every event, never a secret -------------------------------- */

/* Every column of every audit_log row, concatenated. */
static char *
s_audit_dump (cm_db_t *db)
{
    cm_db_res_t *res = cm_db_query (db,
                                    "SELECT id, at_ms, event, outcome, actor, subject,"
                                    " client_addr, request_id, detail FROM audit_log",
                                    0, NULL);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    size_t cap = 1024, len = 0;
    char *all = calloc (1, cap);
    for (int i = 0; i < cm_db_res_rows (res); i++) {
        for (int c = 0; c < 9; c++) {
            const char *v = cm_db_res_get (res, i, c);
            size_t n = v ? strlen (v) : 0;
            while (len + n + 2 > cap) {
                cap *= 2;
                all = realloc (all, cap);
            }
            memcpy (all + len, v ? v : "", n);
            len += n;
            all[len++] = '|';
            all[len] = '\0';
        }
    }
    cm_db_res_free (&res);
    return all;
}

static void
s_no_secret (const char *dump, const char *secret)
{
    if (secret && *secret && strstr (dump, secret)) {
        fail_msg ("audit_log holds a secret: %.12s...", secret);
    }
}

static void
test_audit_no_secrets (void **state)
{
    fixture_t *f = *state;
    authd_handler_t *h = s_handler (f);
    authd_reply_t out;
    char secrets[16][1100];
    int n = 0;
    memset (secrets, 0, sizeof secrets);
    snprintf (secrets[n++], sizeof secrets[0], "%s", GOOD_PW);
    snprintf (secrets[n++], sizeof secrets[0], "%s", WRONG_PW);

    /* signup (the verification token from the outbox), verify. */
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__SignupRequest su = SAFESHARE__SIGNUP_REQUEST__INIT;
    su.email = "jo@x.org";
    su.password = GOOD_PW;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_SIGNUP;
    rq.signup = &su;
    s_handle (h, &rq, "203.0.113.1", &out);
    assert_int_equal (out.reply.status, CM_OK);
    char user_id[33];
    snprintf (user_id, sizeof user_id, "%s", out.reply.signup->user->id);
    authd_reply_release (&out);
    char vars[1024];
    authd_test_scalar (f->store.db,
                       "SELECT vars FROM mail_outbox WHERE recipient = 'jo@x.org'", NULL,
                       vars, sizeof vars);
    json_t *obj = json_loads (vars, 0, NULL);
    assert_non_null (obj);
    const char *link = json_string_value (json_object_get (obj, "link"));
    const char *tok = strstr (link, "token=") + 6;
    snprintf (secrets[n++], sizeof secrets[0], "%s", tok);
    cm_sha256_hex (secrets[n++], tok, strlen (tok));
    json_decref (obj);
    Safeshare__VerifyRequest ve = SAFESHARE__VERIFY_REQUEST__INIT;
    ve.token = secrets[2];
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_VERIFY;
    rq.verify = &ve;
    s_handle (h, &rq, "203.0.113.1", &out);
    assert_int_equal (out.reply.status, CM_OK);
    authd_reply_release (&out);

    /* Login: a failure, then a success (access + refresh). */
    s_handler_login (h, "jo@x.org", WRONG_PW, &out);
    assert_int_equal (out.reply.status, CM_UNAUTHENTICATED);
    authd_reply_release (&out);
    s_handler_login (h, "jo@x.org", GOOD_PW, &out);
    assert_int_equal (out.reply.status, CM_OK);
    char r1[64];
    snprintf (r1, sizeof r1, "%s", out.reply.login->refresh);
    snprintf (secrets[n++], sizeof secrets[0], "%s", out.reply.login->access);
    snprintf (secrets[n++], sizeof secrets[0], "%s", r1);
    cm_sha256_hex (secrets[n++], r1, strlen (r1));
    authd_reply_release (&out);

    /* Refresh (not audited), then reuse of r1, then logout, logout_all. */
    Safeshare__RefreshRequest rf = SAFESHARE__REFRESH_REQUEST__INIT;
    rf.refresh = r1;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_REFRESH;
    rq.refresh = &rf;
    s_handle (h, &rq, "203.0.113.1", &out);
    assert_int_equal (out.reply.status, CM_OK);
    assert_int_equal (out.reply.body_case, SAFESHARE__AUTH_REPLY__BODY_REFRESH);
    char r2[64];
    snprintf (r2, sizeof r2, "%s", out.reply.refresh->refresh);
    snprintf (secrets[n++], sizeof secrets[0], "%s", out.reply.refresh->access);
    snprintf (secrets[n++], sizeof secrets[0], "%s", r2);
    cm_sha256_hex (secrets[n++], r2, strlen (r2));
    assert_int_equal (s_claims (f, out.reply.refresh->access, cm_now_s ()).gen, 0);
    authd_reply_release (&out);
    s_handle (h, &rq, "203.0.113.1", &out);
    assert_int_equal (out.reply.status, CM_UNAUTHENTICATED);
    assert_string_equal (out.reply.error->code, "refresh_token_reused");
    authd_reply_release (&out);

    s_handler_login (h, "jo@x.org", GOOD_PW, &out);
    char r3[64];
    snprintf (r3, sizeof r3, "%s", out.reply.login->refresh);
    snprintf (secrets[n++], sizeof secrets[0], "%s", r3);
    authd_reply_release (&out);
    Safeshare__LogoutRequest lo = SAFESHARE__LOGOUT_REQUEST__INIT;
    lo.refresh = r3;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGOUT;
    rq.logout = &lo;
    s_handle (h, &rq, "203.0.113.1", &out);
    assert_int_equal (out.reply.status, CM_OK);
    assert_int_equal (out.reply.body_case, SAFESHARE__AUTH_REPLY__BODY_LOGOUT);
    authd_reply_release (&out);
    Safeshare__LogoutAllRequest la = SAFESHARE__LOGOUT_ALL_REQUEST__INIT;
    la.user_id = user_id;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGOUT_ALL;
    rq.logout_all = &la;
    s_handle (h, &rq, "203.0.113.1", &out);
    assert_int_equal (out.reply.status, CM_OK);
    authd_reply_release (&out);

    /* Each event once (login: the failure, two successes). */
    const struct {
        const char *event, *outcome;
        long count;
    } want[] = {{"signup", "ok", 1},
                {"verify", "ok", 1},
                {"login", "invalid_credentials", 1},
                {"login", "ok", 2},
                {"refresh_reuse", "refresh_token_reused", 1},
                {"logout", "ok", 1},
                {"logout_all", "ok", 1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char sql[256];
        snprintf (sql, sizeof sql,
                  "SELECT COUNT(*) FROM audit_log WHERE event = '%s' AND outcome = '%s'"
                  " AND subject = $1",
                  want[i].event, want[i].outcome);
        if (authd_test_count (f->store.db, sql, user_id) != want[i].count) {
            fail_msg ("audit event %s/%s: want %ld", want[i].event, want[i].outcome,
                      want[i].count);
        }
    }
    assert_int_equal (
        authd_test_count (f->store.db, "SELECT COUNT(*) FROM audit_log", NULL), 8);
    assert_int_equal (authd_test_count (f->store.db,
                                        "SELECT COUNT(*) FROM audit_log"
                                        " WHERE client_addr <> '203.0.113.1'"
                                        " AND client_addr <> '198.51.100.7'",
                                        NULL),
                      0);
    char *dump = s_audit_dump (f->store.db);
    for (int i = 0; i < n; i++) {
        s_no_secret (dump, secrets[i]);
    }
    free (dump);
    authd_handler_destroy (&h);
}

/* ---- jwt_keys and KEYS --------------------------------------------------- */

static void
s_kid (const char *path, char kid[CM_JWT_KID_LEN + 1], char **pem)
{
    size_t len = 0;
    *pem = cm_file_read (path, 8192, &len);
    assert_non_null (*pem);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)*pem, len, kid), 0);
}

static void
test_keys_rotation (void **state)
{
    fixture_t *f = *state;
    char pub2[700], priv2[700], kid1[17], kid2[17];
    char *pem1 = NULL, *pem2 = NULL;
    snprintf (priv2, sizeof priv2, "%s/k2.pem", f->store.dir);
    snprintf (pub2, sizeof pub2, "%s/k2.pub", f->store.dir);
    assert_int_equal (cm_jwt_keygen (priv2, pub2), 0);
    s_kid (f->pub, kid1, &pem1);
    s_kid (pub2, kid2, &pem2);
    assert_string_equal (kid1, cm_jwt_signer_kid (f->signer));
    const authd_origin_t sys = {"", "", ""};
    authd_key_t keys[CM_JWT_MAX_KEYS];
    size_t n = 0;

    assert_int_equal (authd_keys_sync (f->store.db, &sys, kid1, pem1, T0), 0);
    assert_int_equal (authd_keys_sync (f->store.db, &sys, kid1, pem1, T0 + 5),
                      0); /* no-op */
    assert_int_equal (
        authd_keys_list (f->store.db, T0 + 10, 900, keys, CM_JWT_MAX_KEYS, &n), 0);
    assert_int_equal (n, 1);
    assert_string_equal (keys[0].kid, kid1);
    assert_string_equal (keys[0].public_pem, pem1);
    assert_int_equal (keys[0].not_after, 0);
    authd_keys_free (keys, n);
    assert_int_equal (
        authd_test_count (f->store.db, "SELECT COUNT(*) FROM audit_log", NULL), 0);
    char buf[64];
    authd_test_scalar (f->store.db, "SELECT first_used_at FROM jwt_keys WHERE kid = $1",
                       kid1, buf, sizeof buf);
    assert_int_equal (strtoull (buf, NULL, 10), T0);

    /* Rotation at T0 + 100: the old key stays for ACCESS_TTL + leeway. */
    assert_int_equal (authd_keys_sync (f->store.db, &sys, kid2, pem2, T0 + 100), 0);
    char detail[64];
    snprintf (detail, sizeof detail, "%s->%s", kid1, kid2);
    assert_int_equal (authd_test_count (f->store.db,
                                        "SELECT COUNT(*) FROM audit_log WHERE event ="
                                        " 'jwt_key_rotated' AND detail = $1",
                                        detail),
                      1);
    uint64_t grace_end = T0 + 100 + 900 + CM_JWT_LEEWAY_S;
    assert_int_equal (
        authd_keys_list (f->store.db, T0 + 100, 900, keys, CM_JWT_MAX_KEYS, &n), 0);
    assert_int_equal (n, 2);
    assert_string_equal (keys[0].kid, kid2);
    assert_int_equal (keys[0].not_after, 0);
    assert_string_equal (keys[1].kid, kid1);
    assert_int_equal (keys[1].not_after, grace_end);
    authd_keys_free (keys, n);
    assert_int_equal (
        authd_keys_list (f->store.db, grace_end - 1, 900, keys, CM_JWT_MAX_KEYS, &n), 0);
    assert_int_equal (n, 2);
    authd_keys_free (keys, n);
    assert_int_equal (
        authd_keys_list (f->store.db, grace_end, 900, keys, CM_JWT_MAX_KEYS, &n), 0);
    assert_int_equal (n, 1);
    assert_string_equal (keys[0].kid, kid2);
    authd_keys_free (keys, n);

    /* The old key put back: current again, the other retired. */
    assert_int_equal (authd_keys_sync (f->store.db, &sys, kid1, pem1, T0 + 5000), 0);
    assert_int_equal (
        authd_keys_list (f->store.db, T0 + 5000, 900, keys, CM_JWT_MAX_KEYS, &n), 0);
    assert_int_equal (n, 2);
    assert_string_equal (keys[0].kid, kid1);
    assert_int_equal (keys[0].not_after, 0);
    assert_string_equal (keys[1].kid, kid2);
    authd_keys_free (keys, n);

    /* Many rotations inside one grace period: at most CM_JWT_MAX_KEYS. */
    for (int i = 0; i < 12; i++) {
        char kid[17];
        snprintf (kid, sizeof kid, "%016x", 0xabc000 + i);
        assert_int_equal (authd_keys_sync (f->store.db, &sys, kid,
                                           "-----BEGIN PUBLIC KEY-----", T0 + 6000 + i),
                          0);
    }
    assert_int_equal (
        authd_keys_list (f->store.db, T0 + 6020, 900, keys, CM_JWT_MAX_KEYS, &n), 0);
    assert_int_equal (n, CM_JWT_MAX_KEYS);
    assert_string_equal (keys[0].kid, "0000000000abc00b"); /* newest first */
    assert_int_equal (keys[0].not_after, 0);
    assert_string_equal (keys[1].kid, "0000000000abc00a");
    authd_keys_free (keys, n);
    /* Bad input refused. */
    assert_int_equal (authd_keys_sync (f->store.db, &sys, "not-a-kid", pem1, T0), -1);
    assert_int_equal (authd_keys_sync (f->store.db, &sys, kid1, "", T0), -1);
    free (pem1);
    free (pem2);
}

/* KEYS through the handler (real clock): the current key and one in
   grace, answered from the table. */
static void
test_keys_handler (void **state)
{
    fixture_t *f = *state;
    const authd_origin_t sys = {"", "", ""};
    char kid1[17];
    char *pem1 = NULL;
    s_kid (f->pub, kid1, &pem1);
    uint64_t now = cm_now_s ();
    assert_int_equal (
        authd_keys_sync (f->store.db, &sys, "00000000000000aa", "OLD PEM", now - 2000),
        0);
    assert_int_equal (
        authd_keys_sync (f->store.db, &sys, "00000000000000bb", "OLDER PEM", now - 1000),
        0);
    assert_int_equal (authd_keys_sync (f->store.db, &sys, kid1, pem1, now - 10), 0);
    authd_handler_t *h = s_handler (f);
    authd_reply_t out;
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__KeysRequest k = SAFESHARE__KEYS_REQUEST__INIT;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_KEYS;
    rq.keys = &k;
    s_handle (h, &rq, "", &out);
    assert_int_equal (out.reply.status, CM_OK);
    assert_int_equal (out.reply.body_case, SAFESHARE__AUTH_REPLY__BODY_KEYS);
    /* aa retired at now-1000 (grace ended at now-70): gone; bb retired
       at now-10: until now+920. */
    assert_int_equal (out.reply.keys->n_keys, 2);
    assert_string_equal (out.reply.keys->keys[0]->kid, kid1);
    assert_string_equal (out.reply.keys->keys[0]->public_pem, pem1);
    assert_int_equal (out.reply.keys->keys[0]->not_after, 0);
    assert_string_equal (out.reply.keys->keys[1]->kid, "00000000000000bb");
    assert_int_equal (out.reply.keys->keys[1]->not_after,
                      now - 10 + 900 + CM_JWT_LEEWAY_S);
    authd_reply_release (&out);
    authd_handler_destroy (&h);
    free (pem1);
}

int
main (void)
{
    cm_log_init ("test_authd_sessions", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_login_opens_session, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refresh_rotates_and_reuse, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_refresh_expired, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_session_absolute_expiry, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_logout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_logout_all, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_disabled_refresh, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_concurrent_claim, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_audit_no_secrets, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_keys_rotation, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_keys_handler, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
