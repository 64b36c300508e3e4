/*  unit_auth_users -- the user store on a temporary SQLite database.     */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authd_handler.h"
#include "authd_throttle.h"
#include "authd_test_db.h"
#include "authd_users.h"
#include "cm_db.h"
#include "cm_log.h"
#include "cm_util.h"

#include <argon2.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUBLIC_URL "https://share.example.com/"
#define GOOD_PW    "correct horse battery"
/* An origin for audit rows: request id r, no client address, anonymous. */
#define O(r) (&(authd_origin_t){(r), "", ""})

/* The store alone (authd_test_db_setup / _teardown). */
typedef authd_test_db_t fixture_t;

/* A parameterless COUNT(*) query. */
static long
s_count (cm_db_t *db, const char *sql)
{
    return authd_test_count (db, sql, NULL);
}

static void
test_migrate_twice (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (authd_store_migrate (f->db), 0);
    assert_int_equal (
        s_count (f->db, "SELECT COUNT(*) FROM schema_migrations WHERE service = 'auth'"),
        5);
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
    authd_test_scalar (f->db, "SELECT email FROM users WHERE id = $1", id, buf,
                       sizeof buf);
    assert_string_equal (buf, "alice@example.com");
    authd_test_scalar (f->db, "SELECT role FROM users WHERE id = $1", id, buf,
                       sizeof buf);
    assert_string_equal (buf, "ops");

    /* The Argon2id encoded string is stored, never the password. */
    authd_test_scalar (f->db, "SELECT password_hash FROM users WHERE id = $1", id, buf,
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
    /* On the common-password list, in any case. */
    const char *common[] = {"password123", "Password123", "QWERTY123", "iloveyou1", NULL};
    for (int i = 0; common[i]; i++) {
        code = NULL;
        assert_int_equal (
            authd_user_create (f->db, "c@x.org", common[i], "client", true, id, &code),
            CM_INVALID);
        assert_string_equal (code, "weak_password");
    }
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

    /* Wrong password and unknown e-mail: the same answer (user_out names
       the account for the audit row, or nothing). */
    assert_int_equal (
        authd_user_login (f->db, "t2", "ops@x.org", "wrong password", &user, &code),
        CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_credentials");
    assert_string_equal (user.id, id);
    assert_int_equal (
        authd_user_login (f->db, "t3", "nobody@x.org", GOOD_PW, &user, &code),
        CM_UNAUTHENTICATED);
    assert_string_equal (code, "invalid_credentials");
    assert_string_equal (user.id, "");
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
    authd_test_scalar (
        db, "SELECT vars FROM mail_outbox WHERE recipient = $1 AND vars IS NOT NULL",
        email, vars, sizeof vars);
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
    assert_int_equal (authd_user_signup (f->db, O ("r1"), "Carol@X.org", GOOD_PW,
                                         PUBLIC_URL, 3600, &user, &code),
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
    authd_test_scalar (f->db, "SELECT token_hash FROM verify_tokens WHERE user_id = $1",
                       user.id, stored, sizeof stored);
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

    assert_int_equal (authd_user_verify (f->db, O ("r3"), token, &verified, &code),
                      CM_OK);
    assert_string_equal (verified.id, user.id);
    assert_true (verified.verified);
    /* Audited, each with its request id. */
    char buf[64];
    authd_test_scalar (f->db,
                       "SELECT request_id FROM audit_log WHERE event = 'signup'"
                       " AND outcome = 'ok' AND subject = $1",
                       user.id, buf, sizeof buf);
    assert_string_equal (buf, "r1");
    authd_test_scalar (f->db,
                       "SELECT request_id FROM audit_log WHERE event = 'verify'"
                       " AND outcome = 'ok' AND subject = $1",
                       user.id, buf, sizeof buf);
    assert_string_equal (buf, "r3");
    assert_int_equal (
        authd_user_login (f->db, "r4", "carol@x.org", GOOD_PW, &verified, &code), CM_OK);

    /* Single use. */
    assert_int_equal (authd_user_verify (f->db, O ("r5"), token, &verified, &code),
                      CM_INVALID);
    assert_string_equal (code, "invalid_verification_token");

    /* Garbage tokens. */
    const char *garbage[] = {"", "short", "../../etc/passwd", NULL};
    for (int i = 0; garbage[i]; i++) {
        assert_int_equal (
            authd_user_verify (f->db, O ("r6"), garbage[i], &verified, &code),
            CM_INVALID);
        assert_string_equal (code, "invalid_verification_token");
    }
    /* Right shape, unknown. */
    char unknown[64];
    assert_int_equal (cm_random_token (unknown, sizeof unknown, 32), 0);
    assert_int_equal (authd_user_verify (f->db, O ("r7"), unknown, &verified, &code),
                      CM_INVALID);

    /* Signing up again with the same address: taken, and nothing else
       written (the transaction rolled back). */
    assert_int_equal (authd_user_signup (f->db, O ("r8"), "carol@x.org", GOOD_PW,
                                         PUBLIC_URL, 3600, &user, &code),
                      CM_CONFLICT);
    assert_string_equal (code, "email_taken");
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM mail_outbox"), 1);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM verify_tokens"), 1);
    assert_int_equal (
        s_count (f->db, "SELECT COUNT(*) FROM audit_log WHERE event = 'signup'"), 1);

    /* Bad input never reaches the database. */
    assert_int_equal (authd_user_signup (f->db, O ("r9"), "dave@x.org", "short",
                                         PUBLIC_URL, 3600, &user, &code),
                      CM_INVALID);
    assert_string_equal (code, "weak_password");
    assert_int_equal (authd_user_signup (f->db, O ("r10"), "dave@x.org", "Sunshine123",
                                         PUBLIC_URL, 3600, &user, &code),
                      CM_INVALID);
    assert_string_equal (code, "weak_password");
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM users"), 1);
}

static void
test_rehash (void **state)
{
    fixture_t *f = *state;
    char id[33];
    const char *code = NULL;
    authd_user_t user;
    assert_int_equal (
        authd_user_create (f->db, "old@x.org", GOOD_PW, "client", true, id, &code),
        CM_OK);
    /* A hash from the days of weaker parameters: m=8192, t=1. */
    char weak[256];
    const uint8_t salt[16] = "0123456789abcdef";
    assert_int_equal (argon2id_hash_encoded (1, 8192, 1, GOOD_PW, strlen (GOOD_PW), salt,
                                             sizeof salt, 32, weak, sizeof weak),
                      ARGON2_OK);
    assert_true (strncmp (weak, "$argon2id$v=19$m=8192,t=1,p=1$", 30) == 0);
    assert_true (authd_hash_needs_rehash (weak));
    const char *p[] = {id, weak};
    assert_int_equal (
        cm_db_exec (f->db, "UPDATE users SET password_hash = $2 WHERE id = $1", 2, p),
        CM_DB_OK);

    /* A wrong password changes nothing. */
    char stored[256];
    assert_int_equal (
        authd_user_login (f->db, "h1", "old@x.org", "wrong password", &user, &code),
        CM_UNAUTHENTICATED);
    authd_test_scalar (f->db, "SELECT password_hash FROM users WHERE id = $1", id, stored,
                       sizeof stored);
    assert_string_equal (stored, weak);

    /* The right one logs in and leaves a current hash behind. */
    assert_int_equal (authd_user_login (f->db, "h2", "old@x.org", GOOD_PW, &user, &code),
                      CM_OK);
    authd_test_scalar (f->db, "SELECT password_hash FROM users WHERE id = $1", id, stored,
                       sizeof stored);
    assert_true (strncmp (stored, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_false (authd_hash_needs_rehash (stored));
    assert_int_equal (argon2id_verify (stored, GOOD_PW, strlen (GOOD_PW)), ARGON2_OK);

    /* And it keeps working; a current hash is not rewritten. */
    char again[256];
    assert_int_equal (authd_user_login (f->db, "h3", "old@x.org", GOOD_PW, &user, &code),
                      CM_OK);
    authd_test_scalar (f->db, "SELECT password_hash FROM users WHERE id = $1", id, again,
                       sizeof again);
    assert_string_equal (again, stored);

    /* Each parameter counts; stronger ones and garbage are left alone. */
    assert_true (
        authd_hash_needs_rehash ("$argon2id$v=19$m=19456,t=1,p=1$c2FsdA$aGFzaA"));
    assert_true (authd_hash_needs_rehash ("$argon2id$v=19$m=4096,t=3,p=1$c2FsdA$aGFzaA"));
    assert_true (
        authd_hash_needs_rehash ("$argon2id$v=19$m=19456,t=2,p=0$c2FsdA$aGFzaA"));
    assert_false (
        authd_hash_needs_rehash ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"));
    assert_false (authd_hash_needs_rehash ("$argon2i$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"));
    assert_false (authd_hash_needs_rehash (""));
    assert_false (authd_hash_needs_rehash (NULL));
}

/* Marks every pending job sent (vars erased), as the relay does once the
   mailer acked: s_outbox_token then finds only later jobs. */
static void
s_outbox_sent (cm_db_t *db)
{
    assert_int_equal (cm_db_exec (db,
                                  "UPDATE mail_outbox SET sent_at = 1, vars = NULL"
                                  " WHERE sent_at IS NULL",
                                  0, NULL),
                      CM_DB_OK);
}

static long
s_pending (cm_db_t *db)
{
    return s_count (db, "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL");
}

static void
test_resend (void **state)
{
    fixture_t *f = *state;
    authd_user_t user, out;
    const char *code = NULL;
    bool queued = true;
    assert_int_equal (authd_user_signup (f->db, O ("s1"), "hal@x.org", GOOD_PW,
                                         PUBLIC_URL, 3600, &user, &code),
                      CM_OK);
    char old_token[64], new_token[64];
    s_outbox_token (f->db, "hal@x.org", old_token);
    s_outbox_sent (f->db);

    /* A new token and job, in any case of the address. */
    assert_int_equal (
        authd_user_resend (f->db, "s2", " HAL@x.org ", PUBLIC_URL, 3600, &queued, &code),
        CM_OK);
    assert_null (code);
    assert_true (queued);
    assert_int_equal (s_pending (f->db), 1);
    s_outbox_token (f->db, "hal@x.org", new_token);
    assert_string_not_equal (new_token, old_token);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM verify_tokens"), 2);

    /* The old link no longer verifies; the new one does, once. */
    assert_int_equal (authd_user_verify (f->db, O ("s3"), old_token, &out, &code),
                      CM_INVALID);
    assert_string_equal (code, "invalid_verification_token");
    assert_int_equal (authd_user_verify (f->db, O ("s4"), new_token, &out, &code), CM_OK);
    assert_true (out.verified);
    assert_int_equal (authd_user_verify (f->db, O ("s5"), new_token, &out, &code),
                      CM_INVALID);

    /* Verified, unknown, disabled: OK, no mail (and past the minute). */
    s_outbox_sent (f->db);
    char id[33];
    assert_int_equal (
        authd_user_create (f->db, "off@x.org", GOOD_PW, "client", false, id, &code),
        CM_OK);
    const char *pid[] = {id};
    assert_int_equal (
        cm_db_exec (f->db, "UPDATE users SET disabled = 1 WHERE id = $1", 1, pid),
        CM_DB_OK);
    const char *quiet[] = {"hal@x.org", "nobody@x.org", "off@x.org"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal (
            cm_db_exec (f->db, "UPDATE verify_resends SET at = at - 61", 0, NULL),
            CM_DB_OK);
        queued = true;
        code = "unset";
        assert_int_equal (
            authd_user_resend (f->db, "s6", quiet[i], PUBLIC_URL, 3600, &queued, &code),
            CM_OK);
        assert_null (code);
        assert_false (queued);
    }
    assert_int_equal (s_pending (f->db), 0);
    /* Counted all the same: the same work whoever asks. */
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM verify_resends"), 4);

    /* Malformed addresses are the only error. */
    const char *bad[] = {"", "nope", "a@@b", NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal (
            authd_user_resend (f->db, "s7", bad[i], PUBLIC_URL, 3600, &queued, &code),
            CM_INVALID);
        assert_string_equal (code, "invalid_email");
    }
    assert_int_equal (
        authd_user_resend (f->db, "s8", NULL, PUBLIC_URL, 3600, &queued, &code),
        CM_INVALID);
}

static void
test_resend_rate_limit (void **state)
{
    fixture_t *f = *state;
    authd_user_t user;
    const char *code = NULL;
    bool queued = false;
    assert_int_equal (authd_user_signup (f->db, O ("l1"), "ivy@x.org", GOOD_PW,
                                         PUBLIC_URL, 3600, &user, &code),
                      CM_OK);
    s_outbox_sent (f->db);
    for (int i = 0; i < AUTHD_RESEND_PER_DAY; i++) {
        assert_int_equal (authd_user_resend (f->db, "l2", "ivy@x.org", PUBLIC_URL, 3600,
                                             &queued, &code),
                          CM_OK);
        assert_true (queued);
        /* Again within the minute: accepted, no mail, not counted. */
        assert_int_equal (authd_user_resend (f->db, "l3", "ivy@x.org", PUBLIC_URL, 3600,
                                             &queued, &code),
                          CM_OK);
        assert_false (queued);
        assert_int_equal (s_pending (f->db), 1);
        s_outbox_sent (f->db);
        assert_int_equal (
            cm_db_exec (f->db, "UPDATE verify_resends SET at = at - 61", 0, NULL),
            CM_DB_OK);
    }
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM verify_resends"),
                      AUTHD_RESEND_PER_DAY);
    /* The day's five are spent: no mail, whatever the minute. */
    assert_int_equal (
        authd_user_resend (f->db, "l4", "ivy@x.org", PUBLIC_URL, 3600, &queued, &code),
        CM_OK);
    assert_false (queued);
    assert_int_equal (s_pending (f->db), 0);
    /* Other addresses have their own allowance. */
    assert_int_equal (
        authd_user_resend (f->db, "l5", "other@x.org", PUBLIC_URL, 3600, &queued, &code),
        CM_OK);
    /* A day later the old grants are gone (deleted) and mail flows again. */
    assert_int_equal (
        cm_db_exec (f->db, "UPDATE verify_resends SET at = at - 86400", 0, NULL),
        CM_DB_OK);
    assert_int_equal (
        authd_user_resend (f->db, "l6", "ivy@x.org", PUBLIC_URL, 3600, &queued, &code),
        CM_OK);
    assert_true (queued);
    assert_int_equal (s_pending (f->db), 1);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM verify_resends"), 1);
}

static void
test_verify_expired (void **state)
{
    fixture_t *f = *state;
    authd_user_t user, out;
    const char *code = NULL;
    assert_int_equal (authd_user_signup (f->db, O ("e1"), "erin@x.org", GOOD_PW,
                                         PUBLIC_URL, 3600, &user, &code),
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
    assert_int_equal (authd_user_verify (f->db, O ("e2"), token, &out, &code), CM_GONE);
    assert_string_equal (code, "verification_token_expired");
    /* Still expired (not consumed into "unknown"), and the user stays
       unverified. */
    assert_int_equal (authd_user_verify (f->db, O ("e3"), token, &out, &code), CM_GONE);
    assert_int_equal (authd_user_get (f->db, "e4", user.id, &out, &code), CM_OK);
    assert_false (out.verified);
}

static void
test_signup_one_transaction (void **state)
{
    fixture_t *f = *state;
    /* Make the outbox insert fail (portably: the table is not there) and
       the user and token must not remain.                              */
    assert_int_equal (
        cm_db_exec (f->db, "ALTER TABLE mail_outbox RENAME TO mail_outbox_gone", 0, NULL),
        CM_DB_OK);
    authd_user_t user;
    const char *code = NULL;
    assert_int_not_equal (authd_user_signup (f->db, O ("x1"), "frank@x.org", GOOD_PW,
                                             PUBLIC_URL, 3600, &user, &code),
                          CM_OK);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM users"), 0);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM verify_tokens"), 0);
    assert_int_equal (
        cm_db_exec (f->db, "ALTER TABLE mail_outbox_gone RENAME TO mail_outbox", 0, NULL),
        CM_DB_OK);
    assert_int_equal (authd_user_signup (f->db, O ("x2"), "frank@x.org", GOOD_PW,
                                         PUBLIC_URL, 3600, &user, &code),
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

/* ---- login throttling (authd_throttle) ------------------------------- */

static void
test_throttle_delay (void **state)
{
    (void)state;
    assert_int_equal (authd_throttle_delay_s (0, 5), 0);
    assert_int_equal (authd_throttle_delay_s (4, 5), 0);
    assert_int_equal (authd_throttle_delay_s (5, 5), 1);
    assert_int_equal (authd_throttle_delay_s (6, 5), 2);
    assert_int_equal (authd_throttle_delay_s (7, 5), 4);
    assert_int_equal (authd_throttle_delay_s (14, 5), 512);
    assert_int_equal (authd_throttle_delay_s (15, 5), AUTHD_LOGIN_DELAY_CAP_S);
    assert_int_equal (authd_throttle_delay_s (1000, 5), AUTHD_LOGIN_DELAY_CAP_S);
    assert_int_equal (authd_throttle_delay_s (UINT32_MAX, 5), AUTHD_LOGIN_DELAY_CAP_S);
    assert_int_equal (authd_throttle_delay_s (19, 20), 0);
    assert_int_equal (authd_throttle_delay_s (20, 20), 1);
}

static void
s_fail_n (cm_db_t *db, const char *account, const char *addr, int n, uint64_t now)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal (authd_throttle_fail (db, "t", account, addr, now), 0);
    }
}

static cm_status_t
s_check (cm_db_t *db, const char *account, const char *addr, uint64_t now,
         uint32_t *retry)
{
    return authd_throttle_check (db, "t", account, addr, now, retry);
}

/* Per account: the allowance, then 1, 2, 4 s ... from the last failure,
   the cap; a success clears the account, not the address. */
static void
test_throttle_account (void **state)
{
    fixture_t *f = *state;
    const uint64_t t0 = 1700000000;
    uint32_t retry = 99;
    assert_int_equal (s_check (f->db, "a@example.org", "10.0.0.1", t0, &retry), CM_OK);
    assert_int_equal (retry, 0);
    s_fail_n (f->db, "a@example.org", "10.0.0.1", AUTHD_LOGIN_ACCOUNT_FREE - 1, t0);
    assert_int_equal (s_check (f->db, "a@example.org", "10.0.0.1", t0, &retry), CM_OK);
    s_fail_n (f->db, "a@example.org", "10.0.0.1", 1, t0);
    /* Another address, same account: refused; the account is the key. */
    assert_int_equal (s_check (f->db, "a@example.org", "10.9.9.9", t0, &retry),
                      CM_RATE_LIMITED);
    assert_int_equal (retry, 1);
    assert_int_equal (s_check (f->db, "a@example.org", "10.0.0.1", t0 + 1, &retry),
                      CM_OK);
    /* Another account from the same address is not concerned. */
    assert_int_equal (s_check (f->db, "b@example.org", "10.0.0.1", t0, &retry), CM_OK);
    s_fail_n (f->db, "a@example.org", "10.0.0.1", 1, t0 + 1);
    assert_int_equal (s_check (f->db, "a@example.org", NULL, t0 + 1, &retry),
                      CM_RATE_LIMITED);
    assert_int_equal (retry, 2);
    assert_int_equal (s_check (f->db, "a@example.org", NULL, t0 + 2, &retry),
                      CM_RATE_LIMITED);
    assert_int_equal (retry, 1);
    s_fail_n (f->db, "a@example.org", "10.0.0.1", 1, t0 + 3);
    assert_int_equal (s_check (f->db, "a@example.org", NULL, t0 + 3, &retry),
                      CM_RATE_LIMITED);
    assert_int_equal (retry, 4);
    /* The cap. */
    s_fail_n (f->db, "a@example.org", "10.0.0.1", 20, t0 + 10);
    assert_int_equal (s_check (f->db, "a@example.org", NULL, t0 + 10, &retry),
                      CM_RATE_LIMITED);
    assert_int_equal (retry, AUTHD_LOGIN_DELAY_CAP_S);
    /* A clock that went back never waits longer than the delay. */
    assert_int_equal (s_check (f->db, "a@example.org", NULL, t0, &retry),
                      CM_RATE_LIMITED);
    assert_int_equal (retry, AUTHD_LOGIN_DELAY_CAP_S);

    /* Success clears the account; the address (27 failures) stays. */
    assert_int_equal (authd_throttle_clear (f->db, "t", "a@example.org"), 0);
    assert_int_equal (s_check (f->db, "a@example.org", NULL, t0 + 10, &retry), CM_OK);
    assert_int_equal (s_check (f->db, NULL, "10.0.0.1", t0 + 10, &retry),
                      CM_RATE_LIMITED);
    assert_int_equal (retry, authd_throttle_delay_s (27, AUTHD_LOGIN_ADDR_FREE));
    assert_int_equal (s_count (f->db, "SELECT failures FROM login_failures"
                                      " WHERE kind = 'addr' AND subject = '10.0.0.1'"),
                      27);
    /* Idle a day: pruned by the next failure anywhere. */
    s_fail_n (f->db, "c@example.org", NULL, 1, t0 + 10 + AUTHD_LOGIN_FORGET_S);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM login_failures"), 1);
}

/* Per address: AUTHD_LOGIN_ADDR_FREE failures over many accounts (each
   under its own allowance), then refused for any account. */
static void
test_throttle_address (void **state)
{
    fixture_t *f = *state;
    const uint64_t t0 = 1700000000;
    uint32_t retry = 0;
    char email[64];
    for (int i = 0; i < AUTHD_LOGIN_ADDR_FREE; i++) {
        snprintf (email, sizeof email, "u%d@example.org", i);
        assert_int_equal (s_check (f->db, email, "192.0.2.7", t0, &retry), CM_OK);
        s_fail_n (f->db, email, "192.0.2.7", 1, t0);
    }
    assert_int_equal (s_check (f->db, "fresh@example.org", "192.0.2.7", t0, &retry),
                      CM_RATE_LIMITED);
    assert_int_equal (retry, 1);
    assert_int_equal (s_check (f->db, "fresh@example.org", "192.0.2.8", t0, &retry),
                      CM_OK);
    assert_int_equal (s_check (f->db, "fresh@example.org", "192.0.2.7", t0 + 1, &retry),
                      CM_OK);
}

static Safeshare__AuthReply *
s_handler_login (authd_handler_t *h, const char *email, const char *password,
                 const char *addr, authd_reply_t *out)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__LoginRequest b = SAFESHARE__LOGIN_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    meta.client_addr = (char *)addr;
    rq.meta = &meta;
    b.email = (char *)email;
    b.password = (char *)password;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGIN;
    rq.login = &b;
    authd_handler_handle (h, &rq, "t", out);
    return &out->reply;
}

/* Through the handler: unknown addresses are counted like known ones
   (normalised), a throttled account is refused even with the right
   password, with retry_after_s; a success clears the account. */
static void
test_throttle_handler (void **state)
{
    fixture_t *f = *state;
    char id[33];
    const char *code = NULL;
    assert_int_equal (authd_user_create (f->db, "known@example.org", GOOD_PW, "client",
                                         true, id, &code),
                      CM_OK);
    authd_handler_config_t hc = {
        .public_url = PUBLIC_URL, .access_ttl_s = 900, .verify_ttl_s = 3600};
    cm_jwt_signer_t *signer = NULL; /* no success reaches signing here */
    authd_handler_t *h = authd_handler_new (f->db, signer, &hc);
    assert_non_null (h);
    authd_reply_t out;
    for (int i = 0; i < 3; i++) {
        Safeshare__AuthReply *r =
            s_handler_login (h, i ? " Nobody@Example.org" : "nobody@example.org", GOOD_PW,
                             "198.51.100.1", &out);
        assert_int_equal (r->status, CM_UNAUTHENTICATED);
        assert_string_equal (r->error->code, "invalid_credentials");
        assert_int_equal (r->error->retry_after_s, 0);
        authd_reply_release (&out);
    }
    assert_int_equal (s_count (f->db, "SELECT failures FROM login_failures"
                                      " WHERE kind = 'account'"
                                      " AND subject = 'nobody@example.org'"),
                      3);
    assert_int_equal (s_count (f->db, "SELECT failures FROM login_failures"
                                      " WHERE kind = 'addr'"
                                      " AND subject = '198.51.100.1'"),
                      3);
    /* A wrong password on a known account counts the same way. */
    s_handler_login (h, "known@example.org", "wrong password", "198.51.100.2", &out);
    assert_int_equal (out.reply.status, CM_UNAUTHENTICATED);
    authd_reply_release (&out);
    assert_int_equal (s_count (f->db, "SELECT failures FROM login_failures"
                                      " WHERE kind = 'account'"
                                      " AND subject = 'known@example.org'"),
                      1);

    /* Throttled now (10 failures: 32 s): the right password is refused
       before it is checked. */
    s_fail_n (f->db, "known@example.org", NULL, 9, cm_now_s ());
    Safeshare__AuthReply *r =
        s_handler_login (h, "Known@example.org", GOOD_PW, "203.0.113.9", &out);
    assert_int_equal (r->status, CM_RATE_LIMITED);
    assert_string_equal (r->error->code, "too_many_attempts");
    assert_in_range (r->error->retry_after_s, 30, 32);
    authd_reply_release (&out);
    /* The refusal itself was not counted. */
    assert_int_equal (s_count (f->db, "SELECT failures FROM login_failures"
                                      " WHERE kind = 'account'"
                                      " AND subject = 'known@example.org'"),
                      10);

    /* Every refusal audited: outcome = the code, subject = the account
       id when the e-mail names one, else the normalised e-mail; no actor
       (the password did not check out), the client's address. */
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM audit_log"
                                      " WHERE event = 'login'"
                                      " AND outcome = 'invalid_credentials'"
                                      " AND subject = 'nobody@example.org'"
                                      " AND actor = '' AND client_addr = '198.51.100.1'"),
                      3);
    char want[256];
    snprintf (want, sizeof want,
              "SELECT COUNT(*) FROM audit_log WHERE event = 'login'"
              " AND outcome = 'invalid_credentials' AND subject = '%s'"
              " AND client_addr = '198.51.100.2'",
              id);
    assert_int_equal (s_count (f->db, want), 1);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM audit_log"
                                      " WHERE event = 'login'"
                                      " AND outcome = 'too_many_attempts'"
                                      " AND subject = 'known@example.org'"
                                      " AND client_addr = '203.0.113.9'"),
                      1);

    /* meta.client_addr longer than 64 bytes, or not printable: refused
       before anything is looked at or counted. */
    char long_addr[80];
    memset (long_addr, '1', 65);
    long_addr[65] = '\0';
    const char *bad_addrs[] = {long_addr, "10.0.0.1 x", "10.0.0.\x01", NULL};
    for (int i = 0; bad_addrs[i]; i++) {
        r = s_handler_login (h, "other@example.org", GOOD_PW, bad_addrs[i], &out);
        assert_int_equal (r->status, CM_INVALID);
        assert_string_equal (r->error->code, "invalid_client_addr");
        authd_reply_release (&out);
    }
    long_addr[64] = '\0'; /* 64 is fine */
    r = s_handler_login (h, "other@example.org", GOOD_PW, long_addr, &out);
    assert_string_equal (r->error->code, "invalid_credentials");
    authd_reply_release (&out);
    assert_int_equal (s_count (f->db, "SELECT COUNT(*) FROM login_failures"
                                      " WHERE subject = 'other@example.org'"),
                      1);
    authd_handler_destroy (&h);
}

int
main (void)
{
    cm_log_init ("test_authd_users", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        AUTHD_TEST_DB (test_migrate_twice),
        AUTHD_TEST_DB (test_create),
        AUTHD_TEST_DB (test_create_rejects),
        AUTHD_TEST_DB (test_login),
        AUTHD_TEST_DB (test_signup_and_verify),
        AUTHD_TEST_DB (test_verify_expired),
        AUTHD_TEST_DB (test_signup_one_transaction),
        AUTHD_TEST_DB (test_user_get),
        AUTHD_TEST_DB (test_rehash),
        AUTHD_TEST_DB (test_resend),
        AUTHD_TEST_DB (test_resend_rate_limit),
        cmocka_unit_test (test_throttle_delay),
        AUTHD_TEST_DB (test_throttle_account),
        AUTHD_TEST_DB (test_throttle_address),
        AUTHD_TEST_DB (test_throttle_handler),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
