/*  authd_admin -- what admins and the CLI do to accounts: create staff
    users, list, disable / enable, change roles. Each change and its
    audit row commit in one transaction. SQL is the common dialect of
    SQLite and PostgreSQL (authd_users.c).                              */
#include "authd_admin.h"
#include "authd_policy.h"
#include "authd_sessions.h"
#include "cm_log.h"
#include "cm_role.h"
#include "cm_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A cursor: created_at (16 hex) then the id (32 hex) of the last user
   of the previous page. */
#define S_CURSOR_LEN 48

static const authd_origin_t s_no_origin = {NULL, NULL, NULL};

static bool
s_role_ok (const char *role)
{
    return cm_role_parse (role) != SAFESHARE__ROLE__ROLE_NONE;
}

/* A DB row is outside input: every column is checked before
   authd_user_from_row reads it. 0 / -1. */
static int
s_user_from_row (const cm_db_res_t *res, int row, authd_user_t *user)
{
    memset (user, 0, sizeof *user);
    const char *id = cm_db_res_get (res, row, 0);
    const char *email = cm_db_res_get (res, row, 1);
    const char *role = cm_db_res_get (res, row, 2);
    const char *verified = cm_db_res_get (res, row, 3);
    const char *disabled = cm_db_res_get (res, row, 4);
    const char *created = cm_db_res_get (res, row, 5);
    if (!cm_is_hex_id (id, 32) || !email || strlen (email) > AUTHD_EMAIL_MAX ||
        !s_role_ok (role) || !verified || !disabled || !created) {
        return -1;
    }
    /* created_at: a decimal number, not negative */
    char *end = NULL;
    (void)strtoull (created, &end, 10);
    if (end == created || *end != '\0' || created[0] == '-') {
        return -1;
    }
    authd_user_from_row (res, row, 0, user);
    return 0;
}

static cm_status_t
s_db_failed (const char *req, const char *what, cm_db_status_t st, const char **err_code)
{
    cm_error (req, "%s failed", what);
    if (st == CM_DB_BUSY) {
        *err_code = "database_busy";
        return CM_UNAVAILABLE;
    }
    *err_code = "internal_error";
    return CM_INTERNAL;
}

/* One user by a WHERE on one parameter; CM_NOT_FOUND when none. */
static cm_status_t
s_select_user (cm_db_t *db, const char *req, const char *where_sql, const char *value,
               authd_user_t *user, const char **err_code)
{
    char sql[160];
    snprintf (sql, sizeof sql, "SELECT " AUTHD_USER_COLS " FROM users WHERE %s",
              where_sql);
    const char *p[] = {value};
    cm_db_res_t *res = cm_db_query (db, sql, 1, p);
    cm_status_t st = CM_OK;
    if (cm_db_res_status (res) != CM_DB_OK) {
        st = s_db_failed (req, "SELECT FROM users", cm_db_res_status (res), err_code);
    } else if (cm_db_res_rows (res) == 0) {
        st = CM_NOT_FOUND, *err_code = "user_not_found";
    } else if (s_user_from_row (res, 0, user) != 0) {
        cm_error (req, "users row malformed");
        st = CM_INTERNAL, *err_code = "internal_error";
    }
    cm_db_res_free (&res);
    return st;
}

/* ---- require ------------------------------------------------------------ */

cm_status_t
authd_admin_require (cm_db_t *db, const char *actor_id, const char **err_code)
{
    *err_code = "forbidden";
    if (!cm_is_hex_id (actor_id, 32)) {
        return CM_FORBIDDEN;
    }
    const char *p[] = {actor_id};
    cm_db_res_t *res =
        cm_db_query (db, "SELECT role, disabled FROM users WHERE id = $1", 1, p);
    cm_status_t st = CM_FORBIDDEN;
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "SELECT role FROM users failed for actor=%s", actor_id);
        *err_code = "database_busy";
        st = CM_UNAVAILABLE;
    } else if (cm_db_res_rows (res) == 1) {
        const char *role = cm_db_res_get (res, 0, 0);
        const char *disabled = cm_db_res_get (res, 0, 1);
        if (role && strcmp (role, "admin") == 0 && disabled &&
            strcmp (disabled, "0") == 0) {
            st = CM_OK, *err_code = NULL;
        }
    }
    cm_db_res_free (&res);
    return st;
}

/* ---- create ------------------------------------------------------------- */

cm_status_t
authd_admin_create (cm_db_t *db, const authd_origin_t *o, const char *email,
                    const char *password, const char *role, authd_user_t *user_out,
                    const char **err_code)
{
    o = o ? o : &s_no_origin;
    const char *req = o->req_id;
    *err_code = NULL;
    /* Checked here, in authd_user_create's order, before the
       transaction: a refused request never takes the write lock. */
    char norm[AUTHD_EMAIL_MAX + 1];
    if (authd_email_normalize (email, norm) != 0) {
        *err_code = "invalid_email";
        return CM_INVALID;
    }
    if (authd_password_problem (password) != NULL) {
        *err_code = "weak_password";
        return CM_INVALID;
    }
    /* Clients sign up (and verify their address) themselves. */
    if (!role || (strcmp (role, "ops") != 0 && strcmp (role, "admin") != 0)) {
        *err_code = "invalid_role";
        return CM_INVALID;
    }
    if (cm_db_begin (db) != 0) {
        *err_code = "database_busy";
        return CM_UNAVAILABLE;
    }
    char id[33] = "";
    authd_user_t user;
    cm_status_t st = authd_user_create (db, norm, password, role, true, id, err_code);
    if (st != CM_OK) {
        goto cleanup;
    }
    st = s_select_user (db, req, "id = $1", id, &user, err_code);
    if (st != CM_OK) {
        st = CM_INTERNAL, *err_code = "internal_error"; /* we just made it */
        goto cleanup;
    }
    if (authd_audit (db, o, "user_create", "ok", id, role) != 0) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    if (cm_db_commit (db) != 0) {
        cm_error (req, "COMMIT of user_create failed");
        st = CM_INTERNAL, *err_code = "internal_error";
        return st; /* a failed commit has rolled back */
    }
    *user_out = user;
    cm_info (req, "user=%s created role=%s by actor=%s", id, role,
             o->actor ? o->actor : "");
    return CM_OK;
cleanup:
    cm_db_rollback (db);
    return st;
}

/* ---- list --------------------------------------------------------------- */

/* "" -> no cursor; else exactly S_CURSOR_LEN lowercase hex whose time
   fits a signed 64-bit BIGINT. 0 / -1. */
static int
s_cursor_parse (const char *cursor, char created[24], char id[33])
{
    if (!cm_is_hex_id (cursor, S_CURSOR_LEN)) {
        return -1;
    }
    char hex[17];
    memcpy (hex, cursor, 16);
    hex[16] = '\0';
    if (hex[0] > '7') {
        return -1;
    }
    unsigned long long at = strtoull (hex, NULL, 16);
    snprintf (created, 24, "%llu", at);
    memcpy (id, cursor + 16, 32);
    id[32] = '\0';
    return 0;
}

/* '%' + part with '!', '%' and '_' escaped by '!' + '%', lowercased.
   '!' rather than '\': no dependence on standard_conforming_strings. */
static void
s_like_pattern (const char *part, char *out)
{
    size_t n = 0;
    out[n++] = '%';
    for (const char *c = part; *c; c++) {
        if (*c == '!' || *c == '%' || *c == '_') {
            out[n++] = '!';
        }
        out[n++] = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
    }
    out[n++] = '%';
    out[n] = '\0';
}

/* Printable ASCII, 1..AUTHD_EMAIL_MAX bytes: stored addresses are. */
static bool
s_email_part_ok (const char *part)
{
    size_t len = strnlen (part, AUTHD_EMAIL_MAX + 1);
    if (len > AUTHD_EMAIL_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)part[i];
        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

cm_status_t
authd_admin_list (cm_db_t *db, unsigned limit, const char *cursor, const char *email_part,
                  const char *role, authd_user_t *users, size_t *n_out,
                  char next_cursor[AUTHD_CURSOR_MAX + 1], const char **err_code)
{
    *err_code = NULL;
    *n_out = 0;
    next_cursor[0] = '\0';
    if (limit == 0) {
        limit = AUTHD_LIST_LIMIT_DEFAULT;
    } else if (limit > AUTHD_LIST_LIMIT_MAX) {
        *err_code = "invalid_limit";
        return CM_INVALID;
    }
    char created[24] = "", after_id[33] = "";
    bool have_cursor = cursor && cursor[0];
    if (have_cursor && s_cursor_parse (cursor, created, after_id) != 0) {
        *err_code = "invalid_cursor";
        return CM_INVALID;
    }
    bool have_email = email_part && email_part[0];
    if (have_email && !s_email_part_ok (email_part)) {
        *err_code = "invalid_request";
        return CM_INVALID;
    }
    bool have_role = role && role[0];
    if (have_role && !s_role_ok (role)) {
        *err_code = "invalid_role";
        return CM_INVALID;
    }

    /* Keyset pagination: rows strictly after the cursor's (created_at,
       id) in the listing order, so pages neither repeat nor skip rows
       when users are added between calls. */
    char pattern[2 * AUTHD_EMAIL_MAX + 3];
    const char *p[4];
    int np = 0;
    char sql[512];
    int len =
        snprintf (sql, sizeof sql, "SELECT " AUTHD_USER_COLS " FROM users WHERE 1 = 1");
    if (have_cursor) {
        p[np++] = created;
        p[np++] = after_id;
        len += snprintf (sql + len, sizeof sql - (size_t)len,
                         " AND (created_at < $%d OR (created_at = $%d AND id < $%d))",
                         np - 1, np - 1, np);
    }
    if (have_email) {
        s_like_pattern (email_part, pattern);
        p[np++] = pattern;
        len += snprintf (sql + len, sizeof sql - (size_t)len,
                         " AND lower(email) LIKE $%d ESCAPE '!'", np);
    }
    if (have_role) {
        p[np++] = role;
        len += snprintf (sql + len, sizeof sql - (size_t)len, " AND role = $%d", np);
    }
    /* One row more than asked tells whether there is a next page. */
    snprintf (sql + len, sizeof sql - (size_t)len,
              " ORDER BY created_at DESC, id DESC LIMIT %u", limit + 1);

    cm_db_res_t *res = cm_db_query (db, sql, np, np ? p : NULL);
    cm_status_t st = CM_OK;
    if (cm_db_res_status (res) != CM_DB_OK) {
        st = s_db_failed (NULL, "SELECT FROM users (list)", cm_db_res_status (res),
                          err_code);
        goto cleanup;
    }
    int rows = cm_db_res_rows (res);
    size_t n = rows > (int)limit ? limit : (size_t)(rows > 0 ? rows : 0);
    for (size_t i = 0; i < n; i++) {
        if (s_user_from_row (res, (int)i, &users[i]) != 0) {
            cm_error (NULL, "users row malformed (list)");
            st = CM_INTERNAL, *err_code = "internal_error";
            goto cleanup;
        }
    }
    if (rows > (int)limit && n > 0) {
        const authd_user_t *last = &users[n - 1];
        snprintf (next_cursor, AUTHD_CURSOR_MAX + 1, "%016" PRIx64 "%s", last->created_at,
                  last->id);
    }
    *n_out = n;
cleanup:
    cm_db_res_free (&res);
    return st;
}

/* ---- update ------------------------------------------------------------- */

static cm_status_t
s_exec (cm_db_t *db, const char *req, const char *sql, int np, const char *const *p,
        const char **err_code)
{
    cm_db_status_t st = cm_db_exec (db, sql, np, p);
    return st == CM_DB_OK ? CM_OK : s_db_failed (req, sql, st, err_code);
}

cm_status_t
authd_admin_update (cm_db_t *db, const authd_origin_t *o, const char *id, int disabled,
                    const char *role, authd_user_t *user_out, const char **err_code)
{
    o = o ? o : &s_no_origin;
    const char *req = o->req_id;
    *err_code = NULL;
    if (!cm_is_hex_id (id, 32)) {
        *err_code = "invalid_user_id";
        return CM_INVALID;
    }
    if (disabled < -1 || disabled > 1 || (disabled == -1 && !role)) {
        *err_code = "invalid_request";
        return CM_INVALID;
    }
    if (role && !s_role_ok (role)) {
        *err_code = "invalid_role";
        return CM_INVALID;
    }
    if (cm_db_begin (db) != 0) {
        *err_code = "database_busy";
        return CM_UNAVAILABLE;
    }
    const char *pid[] = {id};
    /* Lock the target and every enabled admin first (a no-op write: the
       portable SELECT ... FOR UPDATE). On PostgreSQL at READ COMMITTED,
       two admins demoting each other at once would otherwise each see
       the other still enabled and leave none; here the second waits and
       then counts what the first committed. SQLite's BEGIN IMMEDIATE
       already serialises writers. */
    cm_status_t st = s_exec (db, req,
                             "UPDATE users SET token_gen = token_gen"
                             " WHERE id = $1 OR (role = 'admin' AND disabled = 0)",
                             1, pid, err_code);
    if (st != CM_OK) {
        goto rollback;
    }
    authd_user_t user;
    st = s_select_user (db, req, "id = $1", id, &user, err_code);
    if (st != CM_OK) {
        goto rollback;
    }
    bool new_disabled = disabled == -1 ? user.disabled : disabled == 1;
    char new_role[sizeof user.role]; /* a copy: user.role is rewritten below */
    snprintf (new_role, sizeof new_role, "%s", role ? role : user.role);
    bool change_disabled = new_disabled != user.disabled;
    bool change_role = strcmp (new_role, user.role) != 0;
    if (!change_disabled && !change_role) {
        cm_db_rollback (db); /* only the lock was written */
        *user_out = user;
        return CM_OK;
    }
    bool was_admin = strcmp (user.role, "admin") == 0 && !user.disabled;
    bool stays_admin = strcmp (new_role, "admin") == 0 && !new_disabled;
    if (was_admin && !stays_admin) {
        cm_db_res_t *res =
            cm_db_query (db,
                         "SELECT COUNT(*) FROM users"
                         " WHERE role = 'admin' AND disabled = 0 AND id <> $1",
                         1, pid);
        const char *count = cm_db_res_get (res, 0, 0);
        bool ok = cm_db_res_status (res) == CM_DB_OK && count;
        bool others = ok && strcmp (count, "0") != 0;
        cm_db_status_t dbst = cm_db_res_status (res);
        cm_db_res_free (&res);
        if (!ok) {
            st = s_db_failed (req, "SELECT COUNT(*) of admins", dbst, err_code);
            goto rollback;
        }
        if (!others) {
            st = CM_CONFLICT, *err_code = "last_admin";
            goto rollback;
        }
    }
    const char *pu[] = {id, new_disabled ? "1" : "0", new_role};
    st = s_exec (db, req, "UPDATE users SET disabled = $2, role = $3 WHERE id = $1", 3,
                 pu, err_code);
    if (st != CM_OK) {
        goto rollback;
    }
    if (change_disabled && new_disabled &&
        authd_sessions_revoke_user (db, id, "disabled", true) != 0) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto rollback;
    }
    /* Access tokens carry the role: the old ones must die with it. */
    if (change_role) {
        st = s_exec (db, req, "UPDATE users SET token_gen = token_gen + 1 WHERE id = $1",
                     1, pid, err_code);
        if (st != CM_OK) {
            goto rollback;
        }
    }
    char detail[20];
    snprintf (detail, sizeof detail, "%s->%s", user.role, new_role);
    if ((change_role && authd_audit (db, o, "role_change", "ok", id, detail) != 0) ||
        (change_disabled &&
         authd_audit (db, o, new_disabled ? "user_disable" : "user_enable", "ok", id,
                      NULL) != 0)) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto rollback;
    }
    if (cm_db_commit (db) != 0) {
        cm_error (req, "COMMIT of user update failed");
        *err_code = "internal_error";
        return CM_INTERNAL; /* a failed commit has rolled back */
    }
    user.disabled = new_disabled;
    snprintf (user.role, sizeof user.role, "%s", new_role);
    *user_out = user;
    cm_info (req, "user=%s updated disabled=%d role=%s by actor=%s", id,
             new_disabled ? 1 : 0, new_role, o->actor ? o->actor : "");
    return CM_OK;
rollback:
    cm_db_rollback (db);
    return st;
}

/* ---- lookup ------------------------------------------------------------- */

cm_status_t
authd_user_by_email (cm_db_t *db, const char *email, authd_user_t *user_out,
                     const char **err_code)
{
    *err_code = NULL;
    char norm[AUTHD_EMAIL_MAX + 1];
    if (authd_email_normalize (email, norm) != 0) {
        *err_code = "invalid_email";
        return CM_INVALID;
    }
    return s_select_user (db, NULL, "email = $1", norm, user_out, err_code);
}
