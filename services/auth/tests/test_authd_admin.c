/*  unit_auth_admin -- what admins and the CLI do to accounts
    (authd_admin.h): create, list, disable / enable, role changes, the
    last-admin rule and the audit rows, on SQLite (or PostgreSQL with
    SAFESHARE_TEST_DB=pg).                                              */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authd_admin.h"
#include "authd_sessions.h"
#include "authd_test_db.h"
#include "authd_users.h"
#include "cm_db.h"
#include "cm_util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOOD_PW "correct horse battery"

/* The store alone (authd_test_db_setup / _teardown). */
typedef authd_test_db_t fixture_t;

static const authd_origin_t s_admin_origin = {"req-admin-1", "192.0.2.7", NULL};

static long
s_gen (cm_db_t *db, const char *id)
{
    return authd_test_count (db, "SELECT token_gen FROM users WHERE id = $1", id);
}

static long
s_audits (cm_db_t *db, const char *event)
{
    return authd_test_count (db, "SELECT COUNT(*) FROM audit_log WHERE event = $1",
                             event);
}

/* A user through the plain store (no audit), id into id_out. */
static void
s_user (cm_db_t *db, const char *email, const char *role, char id_out[33])
{
    const char *code = NULL;
    assert_int_equal (authd_user_create (db, email, GOOD_PW, role, true, id_out, &code),
                      CM_OK);
}

/* A user row straight into the table: chosen created_at, no hashing. */
static void
s_user_row (cm_db_t *db, const char *email, const char *role, uint64_t created,
            char id_out[33])
{
    assert_int_equal (cm_random_hex (id_out, 16), 0);
    char at[24];
    snprintf (at, sizeof at, "%llu", (unsigned long long)created);
    const char *p[] = {id_out, email, role, at};
    assert_int_equal (cm_db_exec (db,
                                  "INSERT INTO users (id, email, password_hash, role,"
                                  " verified, disabled, created_at)"
                                  " VALUES ($1, $2, 'x', $3, 1, 0, $4)",
                                  4, p),
                      CM_DB_OK);
}

static void
s_session (cm_db_t *db, const char *sid, const char *user_id, bool revoked)
{
    const char *p[] = {sid, user_id};
    assert_int_equal (cm_db_exec (db,
                                  revoked
                                      ? "INSERT INTO sessions (id, user_id, created_at,"
                                        " expires_at, revoked_at, revoke_reason)"
                                        " VALUES ($1, $2, 1, 4000000000, 5, 'logout')"
                                      : "INSERT INTO sessions (id, user_id, created_at,"
                                        " expires_at) VALUES ($1, $2, 1, 4000000000)",
                                  2, p),
                      CM_DB_OK);
}

/* The one audit row of `event` on subject: each column checked. */
static void
s_audit_row (cm_db_t *db, const char *event, const char *subject, const char *actor,
             const char *addr, const char *req, const char *detail)
{
    const char *p[] = {event, subject};
    cm_db_res_t *res = cm_db_query (db,
                                    "SELECT outcome, actor, client_addr, request_id,"
                                    " detail, at_ms FROM audit_log"
                                    " WHERE event = $1 AND subject = $2",
                                    2, p);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    assert_int_equal (cm_db_res_rows (res), 1);
    assert_string_equal (cm_db_res_get (res, 0, 0), "ok");
    assert_string_equal (cm_db_res_get (res, 0, 1), actor);
    assert_string_equal (cm_db_res_get (res, 0, 2), addr);
    assert_string_equal (cm_db_res_get (res, 0, 3), req);
    assert_string_equal (cm_db_res_get (res, 0, 4), detail);
    uint64_t at = strtoull (cm_db_res_get (res, 0, 5), NULL, 10);
    assert_true (at + 60000 > cm_now_ms () && at <= cm_now_ms ());
    cm_db_res_free (&res);
}

/* ---- require ------------------------------------------------------------ */

static void
test_require (void **state)
{
    fixture_t *f = *state;
    char admin[33], ops[33], client[33];
    s_user (f->db, "admin@x.org", "admin", admin);
    s_user (f->db, "ops@x.org", "ops", ops);
    s_user (f->db, "client@x.org", "client", client);
    const char *code = "unset";
    assert_int_equal (authd_admin_require (f->db, admin, &code), CM_OK);
    assert_null (code);
    assert_int_equal (authd_admin_require (f->db, ops, &code), CM_FORBIDDEN);
    assert_string_equal (code, "forbidden");
    assert_int_equal (authd_admin_require (f->db, client, &code), CM_FORBIDDEN);
    assert_string_equal (code, "forbidden");
    /* unknown or malformed ids */
    assert_int_equal (
        authd_admin_require (f->db, "0123456789abcdef0123456789abcdef", &code),
        CM_FORBIDDEN);
    assert_string_equal (code, "forbidden");
    assert_int_equal (authd_admin_require (f->db, "cli", &code), CM_FORBIDDEN);
    assert_int_equal (authd_admin_require (f->db, "", &code), CM_FORBIDDEN);
    assert_int_equal (authd_admin_require (f->db, NULL, &code), CM_FORBIDDEN);
    char upper[33];
    for (int i = 0; i < 33; i++) {
        upper[i] = (char)(admin[i] >= 'a' && admin[i] <= 'f' ? admin[i] - 32 : admin[i]);
    }
    if (strcmp (upper, admin) != 0) {
        assert_int_equal (authd_admin_require (f->db, upper, &code), CM_FORBIDDEN);
    }
    /* a disabled admin is no admin */
    const char *p[] = {admin};
    assert_int_equal (
        cm_db_exec (f->db, "UPDATE users SET disabled = 1 WHERE id = $1", 1, p),
        CM_DB_OK);
    assert_int_equal (authd_admin_require (f->db, admin, &code), CM_FORBIDDEN);
    assert_string_equal (code, "forbidden");
}

/* ---- create ------------------------------------------------------------- */

static void
test_create (void **state)
{
    fixture_t *f = *state;
    char admin[33];
    s_user (f->db, "root@x.org", "admin", admin);
    authd_origin_t o = s_admin_origin;
    o.actor = admin;
    authd_user_t u;
    const char *code = "unset";
    uint64_t before = cm_now_s ();
    assert_int_equal (
        authd_admin_create (f->db, &o, "  New.Ops@X.org ", GOOD_PW, "ops", &u, &code),
        CM_OK);
    assert_null (code);
    assert_true (cm_is_hex_id (u.id, 32));
    assert_string_equal (u.email, "new.ops@x.org");
    assert_string_equal (u.role, "ops");
    assert_true (u.verified);
    assert_false (u.disabled);
    assert_true (u.created_at >= before && u.created_at <= cm_now_s ());
    char buf[512];
    authd_test_scalar (f->db, "SELECT password_hash FROM users WHERE id = $1", u.id, buf,
                       sizeof buf);
    assert_true (strncmp (buf, "$argon2id$", 10) == 0);
    authd_test_scalar (f->db, "SELECT verified FROM users WHERE id = $1", u.id, buf,
                       sizeof buf);
    assert_string_equal (buf, "1");
    s_audit_row (f->db, "user_create", u.id, admin, "192.0.2.7", "req-admin-1", "ops");
    /* never the password in the audit log */
    assert_int_equal (
        authd_test_count (f->db,
                          "SELECT COUNT(*) FROM audit_log WHERE detail LIKE $1"
                          " OR subject LIKE $1",
                          "%horse%"),
        0);

    authd_user_t a;
    assert_int_equal (
        authd_admin_create (f->db, &o, "second@x.org", GOOD_PW, "admin", &a, &code),
        CM_OK);
    assert_string_equal (a.role, "admin");
    s_audit_row (f->db, "user_create", a.id, admin, "192.0.2.7", "req-admin-1", "admin");

    /* The CLI's origin: actor "cli", no address or request id. */
    const authd_origin_t cli = {NULL, NULL, "cli"};
    authd_user_t c;
    assert_int_equal (
        authd_admin_create (f->db, &cli, "third@x.org", GOOD_PW, "ops", &c, &code),
        CM_OK);
    s_audit_row (f->db, "user_create", c.id, "cli", "", "", "ops");

    /* Refusals: each code, and nothing stored or audited for any. */
    struct {
        const char *email, *pw, *role, *code;
        cm_status_t st;
    } bad[] = {
        {"client@x.org", GOOD_PW, "client", "invalid_role", CM_INVALID},
        {"root2@x.org", GOOD_PW, "root", "invalid_role", CM_INVALID},
        {"nullrole@x.org", GOOD_PW, NULL, "invalid_role", CM_INVALID},
        {"weak@x.org", "short12", "ops", "weak_password", CM_INVALID},
        {"weak@x.org", "password123", "ops", "weak_password", CM_INVALID},
        {"not-an-email", GOOD_PW, "ops", "invalid_email", CM_INVALID},
        {"", GOOD_PW, "ops", "invalid_email", CM_INVALID},
        {"NEW.OPS@x.org", GOOD_PW, "admin", "email_taken", CM_CONFLICT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        authd_user_t x;
        code = NULL;
        assert_int_equal (authd_admin_create (f->db, &o, bad[i].email, bad[i].pw,
                                              bad[i].role, &x, &code),
                          bad[i].st);
        assert_string_equal (code, bad[i].code);
    }
    assert_int_equal (authd_test_count (f->db, "SELECT COUNT(*) FROM users", NULL), 4);
    assert_int_equal (s_audits (f->db, "user_create"), 3);
    assert_int_equal (authd_test_count (f->db, "SELECT COUNT(*) FROM audit_log", NULL),
                      3);
    /* The connection is still usable after the refused duplicate (on
       PostgreSQL a failed statement aborts its transaction). */
    assert_int_equal (
        authd_admin_create (f->db, &o, "fourth@x.org", GOOD_PW, "ops", &c, &code), CM_OK);
}

/* ---- list --------------------------------------------------------------- */

#define S_LIST_N 23

/* Collects every page of a listing; asserts each page's size. */
static size_t
s_list_all (cm_db_t *db, unsigned limit, const char *email, const char *role,
            authd_user_t *out, size_t max)
{
    char cursor[AUTHD_CURSOR_MAX + 1] = "";
    size_t total = 0;
    for (int pages = 0; pages < 100; pages++) {
        authd_user_t page[AUTHD_LIST_LIMIT_MAX];
        size_t n = 99999;
        char next[AUTHD_CURSOR_MAX + 1];
        memset (next, 'z', sizeof next);
        const char *code = "unset";
        assert_int_equal (
            authd_admin_list (db, limit, cursor, email, role, page, &n, next, &code),
            CM_OK);
        assert_null (code);
        assert_true (n <= (limit ? limit : AUTHD_LIST_LIMIT_DEFAULT));
        assert_true (total + n <= max);
        memcpy (out + total, page, n * sizeof page[0]);
        total += n;
        if (next[0] == '\0') {
            return total;
        }
        /* a next page is only announced after a full one */
        assert_int_equal (n, limit ? limit : AUTHD_LIST_LIMIT_DEFAULT);
        assert_true (strlen (next) <= AUTHD_CURSOR_MAX);
        snprintf (cursor, sizeof cursor, "%s", next);
    }
    fail_msg ("listing never ended");
    return 0;
}

static int
s_cmp_newest_first (const void *a, const void *b)
{
    const authd_user_t *x = a, *y = b;
    if (x->created_at != y->created_at) {
        return x->created_at > y->created_at ? -1 : 1;
    }
    return -strcmp (x->id, y->id);
}

static void
test_list_paging (void **state)
{
    fixture_t *f = *state;
    /* Ties on created_at (seconds) are the normal case: groups of 3. */
    authd_user_t expect[S_LIST_N + 1];
    for (int i = 0; i < S_LIST_N; i++) {
        char email[64];
        snprintf (email, sizeof email, "u%02d@x.org", i);
        expect[i].created_at = 1700000000 + (uint64_t)(i / 3);
        s_user_row (f->db, email, i % 2 ? "ops" : "client", expect[i].created_at,
                    expect[i].id);
        snprintf (expect[i].email, sizeof expect[i].email, "%s", email);
    }
    qsort (expect, S_LIST_N, sizeof expect[0], s_cmp_newest_first);

    unsigned limits[] = {1, 4, 5, 22, 23, 24, 0, AUTHD_LIST_LIMIT_MAX};
    for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
        authd_user_t got[S_LIST_N + 1];
        size_t n = s_list_all (f->db, limits[l], NULL, NULL, got, S_LIST_N);
        assert_int_equal (n, S_LIST_N); /* no gap, no duplicate: same order */
        for (size_t i = 0; i < n; i++) {
            assert_string_equal (got[i].id, expect[i].id);
            assert_string_equal (got[i].email, expect[i].email);
            assert_int_equal (got[i].created_at, expect[i].created_at);
            assert_true (got[i].verified);
            assert_false (got[i].disabled);
        }
    }

    /* A page boundary, then a newer user arrives: the next pages go on
       where the last one ended (the newcomer is on page one only). */
    authd_user_t page[5];
    size_t n;
    char next[AUTHD_CURSOR_MAX + 1], next2[AUTHD_CURSOR_MAX + 1];
    const char *code;
    assert_int_equal (authd_admin_list (f->db, 5, "", "", "", page, &n, next, &code),
                      CM_OK);
    assert_int_equal (n, 5);
    char late[33];
    s_user_row (f->db, "late@x.org", "ops", 1800000000, late);
    assert_int_equal (
        authd_admin_list (f->db, 5, next, NULL, NULL, page, &n, next2, &code), CM_OK);
    assert_int_equal (n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal (page[i].id, expect[5 + i].id);
    }
    /* The same cursor gives the same page again. */
    authd_user_t again[5];
    assert_int_equal (
        authd_admin_list (f->db, 5, next, NULL, NULL, again, &n, next2, &code), CM_OK);
    assert_memory_equal (page, again, sizeof page);
    /* A cursor past the oldest user: an empty last page. */
    authd_user_t one[1];
    char past[AUTHD_CURSOR_MAX + 1];
    snprintf (past, sizeof past, "%016x%s", 1000u, "00000000000000000000000000000000");
    assert_int_equal (
        authd_admin_list (f->db, 1, past, NULL, NULL, one, &n, next2, &code), CM_OK);
    assert_int_equal (n, 0);
    assert_string_equal (next2, "");

    authd_user_t got[S_LIST_N + 1];
    assert_int_equal (s_list_all (f->db, 7, NULL, NULL, got, S_LIST_N + 1), S_LIST_N + 1);
    assert_string_equal (got[0].id, late);
}

static void
test_list_filters (void **state)
{
    fixture_t *f = *state;
    char id[33];
    const char *emails[] = {"a%b@x.example", "a_b@x.example",     "axb@x.example",
                            "a!b@x.example", "aXb@Other.example", "zed@y.example"};
    const char *roles[] = {"ops", "client", "admin", "ops", "client", "ops"};
    /* created_at order = array order, newest last */
    for (int i = 0; i < 6; i++) {
        s_user (f->db, emails[i], roles[i], id);
        char at[8];
        snprintf (at, sizeof at, "%d", 100 + i);
        const char *p[] = {id, at};
        assert_int_equal (
            cm_db_exec (f->db, "UPDATE users SET created_at = $2 WHERE id = $1", 2, p),
            CM_DB_OK);
    }
    authd_user_t got[8];
    struct {
        const char *email, *role;
        const char *expect[7]; /* newest first */
    } cases[] = {
        /* '%' and '_' are literal, not wildcards */
        {"%", NULL, {"a%b@x.example"}},
        {"_", NULL, {"a_b@x.example"}},
        {"!", NULL, {"a!b@x.example"}},
        {"a!b", NULL, {"a!b@x.example"}},
        {"a%", "", {"a%b@x.example"}},
        /* ASCII case-insensitive both ways (stored addresses are lowercase) */
        {"AXB", NULL, {"axb@other.example", "axb@x.example"}},
        {"other.EXAMPLE", NULL, {"axb@other.example"}},
        {"x.example", "ops", {"a!b@x.example", "a%b@x.example"}},
        {"", "ops", {"zed@y.example", "a!b@x.example", "a%b@x.example"}},
        {NULL, "admin", {"axb@x.example"}},
        {"@", "client", {"axb@other.example", "a_b@x.example"}},
        {"nobody", NULL, {NULL}},
        {"zed", "admin", {NULL}},
        {" a", NULL, {NULL}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        /* limit 1: the filters hold across pages too */
        size_t n = s_list_all (f->db, 1, cases[c].email, cases[c].role, got, 8);
        size_t want = 0;
        while (want < 7 && cases[c].expect[want]) {
            want++;
        }
        assert_int_equal (n, want);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal (got[i].email, cases[c].expect[i]);
        }
    }
}

static void
test_list_errors (void **state)
{
    fixture_t *f = *state;
    char id[33];
    s_user_row (f->db, "one@x.org", "ops", 1700000000, id);
    authd_user_t users[AUTHD_LIST_LIMIT_MAX + 1];
    size_t n = 7;
    char next[AUTHD_CURSOR_MAX + 1] = "stale";
    const char *code = NULL;
    assert_int_equal (authd_admin_list (f->db, AUTHD_LIST_LIMIT_MAX + 1, "", NULL, NULL,
                                        users, &n, next, &code),
                      CM_INVALID);
    assert_string_equal (code, "invalid_limit");
    assert_int_equal (n, 0);
    assert_string_equal (next, "");
    assert_int_equal (
        authd_admin_list (f->db, 100000, "", NULL, NULL, users, &n, next, &code),
        CM_INVALID);
    assert_string_equal (code, "invalid_limit");
    assert_int_equal (authd_admin_list (f->db, AUTHD_LIST_LIMIT_MAX, "", NULL, NULL,
                                        users, &n, next, &code),
                      CM_OK);
    assert_int_equal (n, 1);

    char good[AUTHD_CURSOR_MAX + 1];
    snprintf (good, sizeof good, "%016x%s", 1700000000u, id);
    assert_int_equal (
        authd_admin_list (f->db, 1, good, NULL, NULL, users, &n, next, &code), CM_OK);
    assert_int_equal (n, 0);
    char upper[AUTHD_CURSOR_MAX + 1], big[AUTHD_CURSOR_MAX + 1];
    snprintf (upper, sizeof upper, "%016X%s", 0xabcdefu, id);
    snprintf (big, sizeof big, "8%015x%s", 1u, id); /* beyond a signed BIGINT */
    const char *bad_cursors[] = {
        "xyz",
        "not a cursor at all, just some words of text....",
        "0000000065920080", /* time only */
        upper,              /* uppercase hex */
        big,
        "000000006592008g0123456789abcdef0123456789abcdef",  /* not hex */
        "000000006592008000123456789abcdef0123456789abcdef", /* 49 */
        "00000000659200800123456789abcdef0123456789abcde",   /* 47 */
        " 00000006592008000123456789abcdef0123456789abcdef",
        "'; DROP TABLE users; --",
    };
    for (size_t i = 0; i < sizeof bad_cursors / sizeof bad_cursors[0]; i++) {
        code = NULL;
        assert_int_equal (authd_admin_list (f->db, 10, bad_cursors[i], NULL, NULL, users,
                                            &n, next, &code),
                          CM_INVALID);
        assert_string_equal (code, "invalid_cursor");
    }

    char long_part[AUTHD_EMAIL_MAX + 2];
    memset (long_part, 'a', sizeof long_part);
    long_part[AUTHD_EMAIL_MAX + 1] = '\0'; /* 255 */
    assert_int_equal (
        authd_admin_list (f->db, 10, "", long_part, NULL, users, &n, next, &code),
        CM_INVALID);
    assert_string_equal (code, "invalid_request");
    long_part[AUTHD_EMAIL_MAX] = '\0'; /* 254: fine */
    assert_int_equal (
        authd_admin_list (f->db, 10, "", long_part, NULL, users, &n, next, &code), CM_OK);
    assert_int_equal (n, 0);
    const char *bad_parts[] = {"a\nb", "tab\t", "caf\xc3\xa9", "\x7f", NULL};
    for (int i = 0; bad_parts[i]; i++) {
        code = NULL;
        assert_int_equal (
            authd_admin_list (f->db, 10, "", bad_parts[i], NULL, users, &n, next, &code),
            CM_INVALID);
        assert_string_equal (code, "invalid_request");
    }
    const char *bad_roles[] = {"root", "Admin", "admin ", "%", NULL};
    for (int i = 0; bad_roles[i]; i++) {
        code = NULL;
        assert_int_equal (
            authd_admin_list (f->db, 10, "", NULL, bad_roles[i], users, &n, next, &code),
            CM_INVALID);
        assert_string_equal (code, "invalid_role");
    }
}

/* ---- update ------------------------------------------------------------- */

static void
test_disable_enable (void **state)
{
    fixture_t *f = *state;
    char admin[33], ops[33], other[33];
    s_user (f->db, "admin@x.org", "admin", admin);
    s_user (f->db, "ops@x.org", "ops", ops);
    s_user (f->db, "other@x.org", "ops", other);
    s_session (f->db, "s1", ops, false);
    s_session (f->db, "s2", ops, false);
    s_session (f->db, "s3", ops, true); /* logged out before */
    s_session (f->db, "s4", other, false);
    authd_origin_t o = s_admin_origin;
    o.actor = admin;
    authd_user_t u;
    const char *code = "unset";

    assert_int_equal (authd_admin_update (f->db, &o, ops, 1, NULL, &u, &code), CM_OK);
    assert_null (code);
    assert_string_equal (u.id, ops);
    assert_string_equal (u.email, "ops@x.org");
    assert_true (u.disabled);
    assert_string_equal (u.role, "ops");
    assert_int_equal (s_gen (f->db, ops), 1);
    assert_int_equal (s_gen (f->db, other), 0);
    assert_int_equal (s_gen (f->db, admin), 0);
    assert_int_equal (
        authd_test_count (
            f->db,
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NOT"
            " NULL AND revoke_reason = 'disabled'",
            ops),
        2);
    char buf[32];
    authd_test_scalar (f->db, "SELECT revoke_reason FROM sessions WHERE id = $1", "s3",
                       buf, sizeof buf);
    assert_string_equal (buf, "logout"); /* already ended: left as it was */
    authd_test_scalar (f->db, "SELECT revoked_at FROM sessions WHERE id = $1", "s4", buf,
                       sizeof buf);
    assert_string_equal (buf, ""); /* someone else's */
    authd_test_scalar (f->db, "SELECT disabled FROM users WHERE id = $1", ops, buf,
                       sizeof buf);
    assert_string_equal (buf, "1");
    s_audit_row (f->db, "user_disable", ops, admin, "192.0.2.7", "req-admin-1", "");
    const char *none = NULL;
    assert_int_equal (authd_admin_require (f->db, admin, &none), CM_OK);

    /* Disabling again: a no-op, OK, no audit, no new generation. */
    assert_int_equal (authd_admin_update (f->db, &o, ops, 1, NULL, &u, &code), CM_OK);
    assert_true (u.disabled);
    assert_int_equal (s_gen (f->db, ops), 1);
    assert_int_equal (s_audits (f->db, "user_disable"), 1);

    /* Enable: sessions stay ended, the generation stays. */
    assert_int_equal (authd_admin_update (f->db, &o, ops, 0, NULL, &u, &code), CM_OK);
    assert_false (u.disabled);
    authd_test_scalar (f->db, "SELECT disabled FROM users WHERE id = $1", ops, buf,
                       sizeof buf);
    assert_string_equal (buf, "0");
    assert_int_equal (s_gen (f->db, ops), 1);
    assert_int_equal (
        authd_test_count (
            f->db,
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
            ops),
        0);
    s_audit_row (f->db, "user_enable", ops, admin, "192.0.2.7", "req-admin-1", "");
    assert_int_equal (authd_admin_update (f->db, &o, ops, 0, NULL, &u, &code), CM_OK);
    assert_int_equal (s_audits (f->db, "user_enable"), 1);
    assert_int_equal (authd_test_count (f->db, "SELECT COUNT(*) FROM audit_log", NULL),
                      2);
}

static void
test_role_change (void **state)
{
    fixture_t *f = *state;
    char admin[33], user[33];
    s_user (f->db, "admin@x.org", "admin", admin);
    s_user (f->db, "user@x.org", "client", user);
    s_session (f->db, "s1", user, false);
    const authd_origin_t cli = {NULL, NULL, "cli"};
    authd_user_t u;
    const char *code = "unset";

    assert_int_equal (authd_admin_update (f->db, &cli, user, -1, "ops", &u, &code),
                      CM_OK);
    assert_null (code);
    assert_string_equal (u.role, "ops");
    assert_false (u.disabled);
    assert_int_equal (s_gen (f->db, user), 1);
    /* sessions stay: the next refresh carries the new role */
    assert_int_equal (
        authd_test_count (f->db, "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL",
                          NULL),
        1);
    s_audit_row (f->db, "role_change", user, "cli", "", "", "client->ops");

    /* same role: no-op */
    assert_int_equal (authd_admin_update (f->db, &cli, user, -1, "ops", &u, &code),
                      CM_OK);
    assert_int_equal (s_gen (f->db, user), 1);
    assert_int_equal (s_audits (f->db, "role_change"), 1);
    /* same role and same disabled state: still a no-op */
    assert_int_equal (authd_admin_update (f->db, &cli, user, 0, "ops", &u, &code), CM_OK);
    assert_int_equal (authd_test_count (f->db, "SELECT COUNT(*) FROM audit_log", NULL),
                      1);

    /* Promote to admin: the new admin passes require. */
    assert_int_equal (authd_admin_update (f->db, &cli, user, -1, "admin", &u, &code),
                      CM_OK);
    assert_int_equal (s_gen (f->db, user), 2);
    assert_int_equal (authd_admin_require (f->db, user, &code), CM_OK);

    /* Role change and disable at once: both audited, both bump. */
    assert_int_equal (authd_admin_update (f->db, &cli, user, 1, "client", &u, &code),
                      CM_OK);
    assert_string_equal (u.role, "client");
    assert_true (u.disabled);
    assert_true (s_gen (f->db, user) > 2);
    assert_int_equal (s_audits (f->db, "role_change"), 3);
    assert_int_equal (s_audits (f->db, "user_disable"), 1);
    assert_int_equal (
        authd_test_count (
            f->db, "SELECT COUNT(*) FROM audit_log WHERE detail = 'admin->client'", NULL),
        1);
    assert_int_equal (
        authd_test_count (f->db, "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL",
                          NULL),
        0);
}

static void
test_last_admin (void **state)
{
    fixture_t *f = *state;
    char a[33], b[33];
    s_user (f->db, "a@x.org", "admin", a);
    s_user (f->db, "b@x.org", "admin", b);
    const authd_origin_t cli = {NULL, NULL, "cli"};
    authd_user_t u;
    const char *code = NULL;
    /* b disabled: a is the last enabled admin */
    assert_int_equal (authd_admin_update (f->db, &cli, b, 1, NULL, &u, &code), CM_OK);
    long audits = authd_test_count (f->db, "SELECT COUNT(*) FROM audit_log", NULL);

    assert_int_equal (authd_admin_update (f->db, &cli, a, 1, NULL, &u, &code),
                      CM_CONFLICT);
    assert_string_equal (code, "last_admin");
    code = NULL;
    assert_int_equal (authd_admin_update (f->db, &cli, a, -1, "ops", &u, &code),
                      CM_CONFLICT);
    assert_string_equal (code, "last_admin");
    code = NULL;
    assert_int_equal (authd_admin_update (f->db, &cli, a, 1, "client", &u, &code),
                      CM_CONFLICT);
    assert_string_equal (code, "last_admin");
    /* nothing changed, nothing audited */
    assert_int_equal (authd_admin_require (f->db, a, &code), CM_OK);
    assert_int_equal (s_gen (f->db, a), 0);
    assert_int_equal (authd_test_count (f->db, "SELECT COUNT(*) FROM audit_log", NULL),
                      audits);
    /* the last admin may still be "changed" to what it is */
    assert_int_equal (authd_admin_update (f->db, &cli, a, 0, "admin", &u, &code), CM_OK);

    /* A disabled admin is no admin: demoting it is fine. */
    assert_int_equal (authd_admin_update (f->db, &cli, b, -1, "ops", &u, &code), CM_OK);
    assert_int_equal (authd_admin_update (f->db, &cli, b, -1, "admin", &u, &code), CM_OK);
    /* Enable b: now a may go, then b is the last one. */
    assert_int_equal (authd_admin_update (f->db, &cli, b, 0, NULL, &u, &code), CM_OK);
    assert_int_equal (authd_admin_update (f->db, &cli, a, -1, "ops", &u, &code), CM_OK);
    assert_int_equal (authd_admin_update (f->db, &cli, b, -1, "client", &u, &code),
                      CM_CONFLICT);
    assert_string_equal (code, "last_admin");
    assert_int_equal (authd_admin_update (f->db, &cli, b, 1, NULL, &u, &code),
                      CM_CONFLICT);
    assert_string_equal (code, "last_admin");
    assert_int_equal (authd_admin_require (f->db, b, &code), CM_OK);
}

/* Two admins disabling each other at the same time, on two connections:
   never both (on PostgreSQL at READ COMMITTED this needs the lock). */
typedef struct {
    const char *url;
    const char *target;
    pthread_barrier_t *barrier;
    cm_status_t st;
    const char *code;
} s_racer_t;

static void *
s_racer (void *arg)
{
    s_racer_t *r = arg;
    cm_db_t *db = cm_db_open (r->url);
    const authd_origin_t cli = {NULL, NULL, "cli"};
    authd_user_t u;
    pthread_barrier_wait (r->barrier);
    r->code = NULL;
    r->st = db ? authd_admin_update (db, &cli, r->target, 1, NULL, &u, &r->code)
               : CM_INTERNAL;
    cm_db_destroy (&db);
    return NULL;
}

static void
test_last_admin_race (void **state)
{
    fixture_t *f = *state;
    for (int round = 0; round < 8; round++) {
        char a[33], b[33], email[64];
        snprintf (email, sizeof email, "ra%d@x.org", round);
        s_user_row (f->db, email, "admin", 1, a);
        snprintf (email, sizeof email, "rb%d@x.org", round);
        s_user_row (f->db, email, "admin", 1, b);
        /* only a and b are enabled admins */
        const char *p[] = {a, b};
        assert_int_equal (cm_db_exec (f->db,
                                      "UPDATE users SET disabled = 1 WHERE role = 'admin'"
                                      " AND id <> $1 AND id <> $2",
                                      2, p),
                          CM_DB_OK);
        pthread_barrier_t barrier;
        pthread_barrier_init (&barrier, NULL, 2);
        s_racer_t ra = {f->url, a, &barrier, CM_INTERNAL, NULL};
        s_racer_t rb = {f->url, b, &barrier, CM_INTERNAL, NULL};
        pthread_t ta, tb;
        assert_int_equal (pthread_create (&ta, NULL, s_racer, &ra), 0);
        assert_int_equal (pthread_create (&tb, NULL, s_racer, &rb), 0);
        pthread_join (ta, NULL);
        pthread_join (tb, NULL);
        pthread_barrier_destroy (&barrier);
        /* One wins; the other is refused (last_admin, or busy if the
           database gave up waiting: refused either way). */
        assert_true ((ra.st == CM_OK) != (rb.st == CM_OK));
        s_racer_t *loser = ra.st == CM_OK ? &rb : &ra;
        assert_true (loser->st == CM_CONFLICT || loser->st == CM_UNAVAILABLE);
        assert_int_equal (
            authd_test_count (
                f->db, "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0",
                NULL),
            1);
    }
}

static void
test_update_errors (void **state)
{
    fixture_t *f = *state;
    char admin[33], ops[33];
    s_user (f->db, "admin@x.org", "admin", admin);
    s_user (f->db, "ops@x.org", "ops", ops);
    const authd_origin_t cli = {NULL, NULL, "cli"};
    authd_user_t u;
    const char *code = NULL;
    const char *bad_ids[] = {"",
                             "nothex",
                             "0123456789ABCDEF0123456789ABCDEF",
                             "0123456789abcdef0123456789abcde",
                             "0123456789abcdef0123456789abcdef0",
                             "' OR 1=1 --"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        code = NULL;
        assert_int_equal (
            authd_admin_update (f->db, &cli, bad_ids[i], 1, NULL, &u, &code), CM_INVALID);
        assert_string_equal (code, "invalid_user_id");
    }
    assert_int_equal (authd_admin_update (f->db, &cli, NULL, 1, NULL, &u, &code),
                      CM_INVALID);
    assert_string_equal (code, "invalid_user_id");
    assert_int_equal (authd_admin_update (f->db, &cli, "0123456789abcdef0123456789abcdef",
                                          1, NULL, &u, &code),
                      CM_NOT_FOUND);
    assert_string_equal (code, "user_not_found");
    assert_int_equal (authd_admin_update (f->db, &cli, "0123456789abcdef0123456789abcdef",
                                          -1, "ops", &u, &code),
                      CM_NOT_FOUND);
    assert_string_equal (code, "user_not_found");
    /* no change asked */
    assert_int_equal (authd_admin_update (f->db, &cli, ops, -1, NULL, &u, &code),
                      CM_INVALID);
    assert_string_equal (code, "invalid_request");
    assert_int_equal (authd_admin_update (f->db, &cli, ops, 2, NULL, &u, &code),
                      CM_INVALID);
    assert_string_equal (code, "invalid_request");
    assert_int_equal (authd_admin_update (f->db, &cli, ops, -2, "ops", &u, &code),
                      CM_INVALID);
    assert_string_equal (code, "invalid_request");
    const char *bad_roles[] = {"root", "", "Admin", "ops ", NULL};
    for (int i = 0; bad_roles[i]; i++) {
        code = NULL;
        assert_int_equal (
            authd_admin_update (f->db, &cli, ops, 1, bad_roles[i], &u, &code),
            CM_INVALID);
        assert_string_equal (code, "invalid_role");
    }
    /* none of it changed or audited anything */
    assert_int_equal (authd_test_count (f->db, "SELECT COUNT(*) FROM audit_log", NULL),
                      0);
    assert_int_equal (
        authd_test_count (f->db, "SELECT COUNT(*) FROM users WHERE disabled = 1", NULL),
        0);
    assert_int_equal (s_gen (f->db, ops), 0);
}

/* ---- by e-mail ---------------------------------------------------------- */

static void
test_by_email (void **state)
{
    fixture_t *f = *state;
    char id[33];
    s_user (f->db, "found@x.org", "ops", id);
    authd_user_t u;
    const char *code = "unset";
    assert_int_equal (authd_user_by_email (f->db, "  FOUND@x.ORG ", &u, &code), CM_OK);
    assert_null (code);
    assert_string_equal (u.id, id);
    assert_string_equal (u.email, "found@x.org");
    assert_string_equal (u.role, "ops");
    assert_true (u.verified);
    assert_false (u.disabled);
    assert_int_equal (authd_user_by_email (f->db, "lost@x.org", &u, &code), CM_NOT_FOUND);
    assert_string_equal (code, "user_not_found");
    /* a LIKE wildcard is just a character here */
    assert_int_equal (authd_user_by_email (f->db, "fo%@x.org", &u, &code), CM_NOT_FOUND);
    assert_int_equal (authd_user_by_email (f->db, "not-an-email", &u, &code), CM_INVALID);
    assert_string_equal (code, "invalid_email");
    assert_int_equal (authd_user_by_email (f->db, NULL, &u, &code), CM_INVALID);
    assert_string_equal (code, "invalid_email");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        AUTHD_TEST_DB (test_require),         AUTHD_TEST_DB (test_create),
        AUTHD_TEST_DB (test_list_paging),     AUTHD_TEST_DB (test_list_filters),
        AUTHD_TEST_DB (test_list_errors),     AUTHD_TEST_DB (test_disable_enable),
        AUTHD_TEST_DB (test_role_change),     AUTHD_TEST_DB (test_last_admin),
        AUTHD_TEST_DB (test_last_admin_race), AUTHD_TEST_DB (test_update_errors),
        AUTHD_TEST_DB (test_by_email),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
