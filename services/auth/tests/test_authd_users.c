/*  unit_auth_users -- the user store on a temporary SQLite database.     */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authd_users.h"
#include "cm_db.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUBLIC_URL "https://share.example.com/"
#define GOOD_PW    "correct horse battery"

typedef struct {
    char *dir;
    cm_db_t *db;
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->dir = cm_test_tmpdir ();
    assert_non_null (f->dir);
    char url[512];
    snprintf (url, sizeof url, "sqlite:%s/auth.db", f->dir);
    f->db = cm_db_open (url);
    assert_non_null (f->db);
    assert_int_equal (authd_store_migrate (f->db), 0);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *f = *state;
    cm_db_destroy (&f->db);
    cm_test_rmrf (f->dir);
    free (f->dir);
    free (f);
    return 0;
}

/* First column of the first row of a query, copied ("" for none). */
static void
s_scalar (cm_db_t *db, const char *sql, const char *param, char *out, size_t outlen)
{
    const char *p[] = {param};
    cm_db_res_t *res = cm_db_query (db, sql, param ? 1 : 0, param ? p : NULL);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    const char *v = cm_db_res_get (res, 0, 0);
    snprintf (out, outlen, "%s", v ? v : "");
    cm_db_res_free (&res);
}

static long
s_count (cm_db_t *db, const char *sql)
{
    char buf[32];
    s_scalar (db, sql, NULL, buf, sizeof buf);
    return strtol (buf, NULL, 10);
}

static void
test_migrate_twice (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (authd_store_migrate (f->db), 0);
    assert_int_equal (
        s_count (f->db, "SELECT COUNT(*) FROM schema_migrations WHERE service = 'auth'"),
        1);
}

static void
test_create (void **state)
{
    fixture_t *f = *state;
    char id[33] = "";
    const char *code = "unset";
    assert_int_equal (authd_user_create (f->db, "  Alice@Example.COM ", GOOD_PW, "ops",
                                         true, id, &code),
                      CM_OK);
    assert_null (code);
    assert_true (cm_is_hex_id (id, 32));
    char buf[512];
    s_scalar (f->db, "SELECT email FROM users WHERE id = $1", id, buf, sizeof buf);
    assert_string_equal (buf, "alice@example.com");
    s_scalar (f->db, "SELECT role FROM users WHERE id = $1", id, buf, sizeof buf);
    assert_string_equal (buf, "ops");

    /* The Argon2id encoded string is stored, never the password. */
    s_scalar (f->db, "SELECT password_hash FROM users WHERE id = $1", id, buf,
              sizeof buf);
    assert_true (strncmp (buf, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_null (strstr (buf, GOOD_PW));

    /* Same address, other case: taken. */
    char id2[33] = "";
    assert_int_equal (authd_user_create (f->db, "ALICE@example.com", GOOD_PW, "client",
                                         true, id2, &code),
                      CM_CONFLICT);
    assert_string_equal (code, "email_taken");
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM users"), 1);
}

static void
test_create_rejects (void **state)
{
    fixture_t *f = *state;
    const char *code = NULL;
    char id[33];
    const char *bad_emails[] = {"", "   ", "noat", "a@@b", "a@b@c", "@example.com",
                                "bob@", "bo b@x.org", "bob\t@x.org", "bob\x01@x.org",
                                "b\xc3\xa9@x.org",
                                /* what the mailer would refuse (review) */
                                "a,b@example.org", "\"q\"@x.org", "a(b)@x.org",
                                "x@[1.2.3.4]", "a<b>@x.org", "a;b@x.org", NULL};
    for (int i = 0; bad_emails[i]; i++) {
        assert_int_equal (
            authd_user_create (f->db, bad_emails[i], GOOD_PW, "client", true, id, &code),
            CM_INVALID);
        assert_string_equal (code, "invalid_email");
    }
    assert_int_equal (authd_user_create (f->db, NULL, GOOD_PW, "client", true, id, &code),
                      CM_INVALID);
    char long_email[300];
    memset (long_email, 'a', sizeof long_email);
    memcpy (long_email + 250, "@x.org", 7); /* 256 chars */
    assert_int_equal (
        authd_user_create (f->db, long_email, GOOD_PW, "client", true, id, &code),
        CM_INVALID);
    assert_string_equal (code, "invalid_email");
    /* 254 is fine. */
    memcpy (long_email + 248, "@x.org", 7);
    assert_int_equal (
        authd_user_create (f->db, long_email, GOOD_PW, "client", true, id, &code), CM_OK);

    assert_int_equal (
        authd_user_create (f->db, "c@x.org", "short12", "client", true, id, &code),
        CM_INVALID);
    assert_string_equal (code, "weak_password");
    char long_pw[130];
    memset (long_pw, 'p', 129);
    long_pw[129] = '\0';
    assert_int_equal (
        authd_user_create (f->db, "c@x.org", long_pw, "client", true, id, &code),
        CM_INVALID);
    assert_string_equal (code, "weak_password");
    long_pw[128] = '\0'; /* exactly 128 is allowed */
    assert_int_equal (
        authd_user_create (f->db, "c@x.org", long_pw, "client", true, id, &code), CM_OK);

    assert_int_equal (
        authd_user_create (f->db, "d@x.org", GOOD_PW, "root", true, id, &code),
        CM_INVALID);
    assert_string_equal (code, "invalid_role");
    assert_int_equal (
        authd_user_create (f->db, "d@x.org", GOOD_PW, NULL, true, id, &code), CM_INVALID);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM users"), 2);
}

static void
test_login (void **state)
{
    fixture_t *f = *state;
    char id[33];
    const char *code = NULL;
    authd_user_t user;
    assert_int_equal (
        authd_user_create (f->db, "ops@x.org", GOOD_PW, "ops", true, id, &code), CM_OK);
    assert_int_equal (authd_user_login (f->db, "t1", " OPS@x.org", GOOD_PW, &user, &code),
                      CM_OK);
    assert_string_equal (user.id, id);
    assert_string_equal (user.role, "ops");
    assert_true (user.verified);

    /* Wrong password and unknown e-mail: the same answer. */
    assert_int_equal (
        authd_user_login (f->db, "t2", "ops@x.org", "wrong password", &user, &code),
        CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_credentials");
    assert_int_equal (
        authd_user_login (f->db, "t3", "nobody@x.org", GOOD_PW, &user, &code),
        CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_credentials");
    assert_int_equal (
        authd_user_login (f->db, "t4", "not an email", GOOD_PW, &user, &code),
        CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_credentials");
    assert_int_equal (authd_user_login (f->db, "t5", "ops@x.org", "", &user, &code),
                      CM_UNAUTHENTICATED);

    /* Unverified: told only after the password checked out. */
    assert_int_equal (
        authd_user_create (f->db, "new@x.org", GOOD_PW, "client", false, id, &code),
        CM_OK);
    assert_int_equal (
        authd_user_login (f->db, "t6", "new@x.org", "wrong password", &user, &code),
        CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_credentials");
    assert_int_equal (authd_user_login (f->db, "t7", "new@x.org", GOOD_PW, &user, &code),
                      CM_FORBIDDEN);
    assert_string_equal (code, "email_not_verified");

    /* Disabled. */
    const char *p[] = {"ops@x.org"};
    assert_int_equal (
        cm_db_exec (f->db, "UPDATE users SET disabled = 1 WHERE email = $1", 1, p),
        CM_DB_OK);
    assert_int_equal (authd_user_login (f->db, "t8", "ops@x.org", GOOD_PW, &user, &code),
                      CM_FORBIDDEN);
    assert_string_equal (code, "account_disabled");
    assert_int_equal (
        authd_user_login (f->db, "t9", "ops@x.org", "wrong password", &user, &code),
        CM_UNAUTHENTICATED);
}

/* The token inside the pending outbox job of `email` (from its link). */
static void
s_outbox_token (cm_db_t *db, const char *email, char token[64])
{
    char vars[1024];
    s_scalar (db, "SELECT vars FROM mail_outbox WHERE recipient = $1", email, vars,
              sizeof vars);
    json_t *obj = json_loads (vars, 0, NULL);
    assert_non_null (obj);
    const char *link = json_string_value (json_object_get (obj, "link"));
    assert_non_null (link);
    const char *prefix = "https://share.example.com/api/auth/verify?token=";
    assert_true (strncmp (link, prefix, strlen (prefix)) == 0);
    snprintf (token, 64, "%s", link + strlen (prefix));
    assert_int_equal (strlen (token), AUTHD_VERIFY_TOKEN_LEN);
    json_decref (obj);
}

static void
test_signup_and_verify (void **state)
{
    fixture_t *f = *state;
    authd_user_t user, verified;
    const char *code = NULL;
    assert_int_equal (authd_user_signup (f->db, "r1", "Carol@X.org", GOOD_PW, PUBLIC_URL,
                                         3600, &user, &code),
                      CM_OK);
    assert_string_equal (user.email, "carol@x.org");
    assert_string_equal (user.role, "client");
    assert_false (user.verified);

    /* One job in the outbox, addressed to the user, with the link. */
    assert_int_equal (s_count (f->db,
                               "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL"
                               " AND template = 'verify_email'"),
                      1);
    char token[64];
    s_outbox_token (f->db, "carol@x.org", token);

    /* Only the token's SHA-256 is stored. */
    char stored[128], want[65];
    s_scalar (f->db, "SELECT token_hash FROM verify_tokens WHERE user_id = $1", user.id,
              stored, sizeof stored);
    cm_sha256_hex (want, token, strlen (token));
    assert_string_equal (stored, want);
    const char *p[] = {token};
    cm_db_res_t *res =
        cm_db_query (f->db, "SELECT 1 FROM verify_tokens WHERE token_hash = $1", 1, p);
    assert_int_equal (cm_db_res_rows (res), 0);
    cm_db_res_free (&res);

    /* Not verified yet. */
    assert_int_equal (
        authd_user_login (f->db, "r2", "carol@x.org", GOOD_PW, &verified, &code),
        CM_FORBIDDEN);
    assert_string_equal (code, "email_not_verified");

    assert_int_equal (authd_user_verify (f->db, "r3", token, &verified, &code), CM_OK);
    assert_string_equal (verified.id, user.id);
    assert_true (verified.verified);
    assert_int_equal (
        authd_user_login (f->db, "r4", "carol@x.org", GOOD_PW, &verified, &code), CM_OK);

    /* Single use. */
    assert_int_equal (authd_user_verify (f->db, "r5", token, &verified, &code),
                      CM_INVALID);
    assert_string_equal (code, "invalid_verification_token");

    /* Garbage tokens. */
    const char *garbage[] = {"", "short", "../../etc/passwd", NULL};
    for (int i = 0; garbage[i]; i++) {
        assert_int_equal (authd_user_verify (f->db, "r6", garbage[i], &verified, &code),
                          CM_INVALID);
        assert_string_equal (code, "invalid_verification_token");
    }
    /* Right shape, unknown. */
    char unknown[64];
    assert_int_equal (cm_random_token (unknown, sizeof unknown, 32), 0);
    assert_int_equal (authd_user_verify (f->db, "r7", unknown, &verified, &code),
                      CM_INVALID);

    /* Signing up again with the same address: taken, and nothing else
       written (the transaction rolled back). */
    assert_int_equal (authd_user_signup (f->db, "r8", "carol@x.org", GOOD_PW, PUBLIC_URL,
                                         3600, &user, &code),
                      CM_CONFLICT);
    assert_string_equal (code, "email_taken");
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM mail_outbox"), 1);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM verify_tokens"), 1);

    /* Bad input never reaches the database. */
    assert_int_equal (authd_user_signup (f->db, "r9", "dave@x.org", "short", PUBLIC_URL,
                                         3600, &user, &code),
                      CM_INVALID);
    assert_string_equal (code, "weak_password");
}

static void
test_verify_expired (void **state)
{
    fixture_t *f = *state;
    authd_user_t user, out;
    const char *code = NULL;
    assert_int_equal (authd_user_signup (f->db, "e1", "erin@x.org", GOOD_PW, PUBLIC_URL,
                                         3600, &user, &code),
                      CM_OK);
    char token[64];
    s_outbox_token (f->db, "erin@x.org", token);
    const char *p[] = {user.id};
    assert_int_equal (
        cm_db_exec (f->db,
                    "UPDATE verify_tokens SET expires_at = expires_at - 3601"
                    " WHERE user_id = $1",
                    1, p),
        CM_DB_OK);
    assert_int_equal (authd_user_verify (f->db, "e2", token, &out, &code), CM_GONE);
    assert_string_equal (code, "verification_token_expired");
    /* Still expired (not consumed into "unknown"), and the user stays
       unverified. */
    assert_int_equal (authd_user_verify (f->db, "e3", token, &out, &code), CM_GONE);
    assert_int_equal (authd_user_get (f->db, "e4", user.id, &out, &code), CM_OK);
    assert_false (out.verified);
}

static void
test_signup_one_transaction (void **state)
{
    fixture_t *f = *state;
    /* Make the outbox insert fail: the user and token must not remain. */
    assert_int_equal (cm_db_exec (f->db,
                                  "CREATE TRIGGER no_mail BEFORE INSERT ON mail_outbox"
                                  " BEGIN SELECT RAISE(ABORT, 'mail refused'); END",
                                  0, NULL),
                      CM_DB_OK);
    authd_user_t user;
    const char *code = NULL;
    assert_int_not_equal (authd_user_signup (f->db, "x1", "frank@x.org", GOOD_PW,
                                             PUBLIC_URL, 3600, &user, &code),
                          CM_OK);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM users"), 0);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM verify_tokens"), 0);
    assert_int_equal (cm_db_exec (f->db, "DROP TRIGGER no_mail", 0, NULL), CM_DB_OK);
    assert_int_equal (authd_user_signup (f->db, "x2", "frank@x.org", GOOD_PW, PUBLIC_URL,
                                         3600, &user, &code),
                      CM_OK);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM users"), 1);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM verify_tokens"), 1);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM mail_outbox"), 1);
}

static void
test_user_get (void **state)
{
    fixture_t *f = *state;
    char id[33];
    const char *code = NULL;
    authd_user_t user;
    assert_int_equal (
        authd_user_create (f->db, "gina@x.org", GOOD_PW, "admin", true, id, &code),
        CM_OK);
    assert_int_equal (authd_user_get (f->db, "g1", id, &user, &code), CM_OK);
    assert_string_equal (user.email, "gina@x.org");
    assert_string_equal (user.role, "admin");
    assert_true (user.created_at > 0);
    assert_int_equal (
        authd_user_get (f->db, "g2", "00000000000000000000000000000000", &user, &code),
        CM_NOT_FOUND);
    assert_string_equal (code, "user_not_found");
    assert_int_equal (authd_user_get (f->db, "g3", "' OR 1=1 --", &user, &code),
                      CM_INVALID);
    assert_string_equal (code, "invalid_user_id");
}

int
main (void)
{
    cm_log_init ("test_authd_users", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_migrate_twice, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_create, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_create_rejects, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_login, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_signup_and_verify, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_verify_expired, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_signup_one_transaction, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_user_get, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
