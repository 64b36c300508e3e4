/*  authd_sessions -- sessions (refresh-token families), refresh tokens,
    users.token_gen and the jwt_keys table (migration 4 in
    authd_users.c). Portable SQL for SQLite and PostgreSQL: every
    function that opens a transaction rolls it back after any failed
    statement (PostgreSQL aborts the transaction on one).               */
#include "authd_sessions.h"
#include "cm_log.h"
#include "cm_util.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A BIGINT column as text -> uint64; false when NULL or not a number. */
static bool
s_u64 (const char *text, uint64_t *out)
{
    if (!text || !*text) {
        return false;
    }
    char *end = NULL;
    unsigned long long v = strtoull (text, &end, 10);
    if (*end != '\0' || text[0] == '-') {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

int
authd_sessions_revoke_user (cm_db_t *db, const char *user_id, const char *reason,
                            bool bump_gen)
{
    char now[24];
    snprintf (now, sizeof now, "%llu", (unsigned long long)cm_now_s ());
    const char *p[] = {user_id, now, reason ? reason : ""};
    if (cm_db_exec (db,
                    "UPDATE sessions SET revoked_at = $2, revoke_reason = $3"
                    " WHERE user_id = $1 AND revoked_at IS NULL",
                    3, p) != CM_DB_OK) {
        cm_error (NULL, "UPDATE sessions (revoke user=%s) failed", user_id);
        return -1;
    }
    if (!bump_gen) {
        return 0;
    }
    cm_db_res_t *res = cm_db_query (
        db, "UPDATE users SET token_gen = token_gen + 1 WHERE id = $1", 1, p);
    int rc = 0;
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "UPDATE users SET token_gen (user=%s) failed", user_id);
        rc = -1;
    } else if (cm_db_res_changes (res) != 1) {
        cm_warn (NULL, "token_gen bump: no user=%s", user_id);
        rc = -1;
    }
    cm_db_res_free (&res);
    return rc;
}

int
authd_user_token_gen (cm_db_t *db, const char *user_id, uint64_t *gen)
{
    const char *p[] = {user_id};
    cm_db_res_t *res =
        cm_db_query (db, "SELECT token_gen FROM users WHERE id = $1", 1, p);
    int rc = -1;
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "SELECT token_gen FROM users failed");
    } else if (cm_db_res_rows (res) == 1 && s_u64 (cm_db_res_get (res, 0, 0), gen)) {
        rc = 0;
    }
    cm_db_res_free (&res);
    return rc;
}

/* ---- helpers --------------------------------------------------------- */

static void
s_num (char out[24], uint64_t v)
{
    snprintf (out, 24, "%llu", (unsigned long long)v);
}

static cm_status_t
s_db_fail (cm_db_status_t st, const char **err_code)
{
    if (st == CM_DB_BUSY) {
        *err_code = "database_busy";
        return CM_UNAVAILABLE;
    }
    *err_code = "internal_error";
    return CM_INTERNAL;
}

/* Opens the transaction of a session function: CM_OK, or
   CM_UNAVAILABLE "database_busy".                                    */
static cm_status_t
s_begin (cm_db_t *db, const char **err_code)
{
    if (cm_db_begin (db) != 0) {
        *err_code = "database_busy";
        return CM_UNAVAILABLE;
    }
    return CM_OK;
}

/* 43 chars of the base64url alphabet (what authd_session_open hands out). */
static bool
s_refresh_shape_ok (const char *token)
{
    if (!token ||
        strnlen (token, AUTHD_REFRESH_TOKEN_LEN + 1) != AUTHD_REFRESH_TOKEN_LEN) {
        return false;
    }
    for (size_t i = 0; i < AUTHD_REFRESH_TOKEN_LEN; i++) {
        char c = token[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* A presented refresh token: its shape checked, its hash into hash, now_s
   as text into now, and the transaction opened. CM_OK, or the refusal
   (CM_UNAUTHENTICATED "invalid_refresh_token", or as s_begin).        */
static cm_status_t
s_token_begin (cm_db_t *db, const char *refresh, uint64_t now_s, char hash[65],
               char now[24], const char **err_code)
{
    if (!s_refresh_shape_ok (refresh)) {
        *err_code = "invalid_refresh_token";
        return CM_UNAUTHENTICATED;
    }
    cm_sha256_hex (hash, refresh, AUTHD_REFRESH_TOKEN_LEN);
    s_num (now, now_s);
    return s_begin (db, err_code);
}

void
authd_tokens_wipe (authd_tokens_t *tokens)
{
    if (!tokens) {
        return;
    }
    if (tokens->access) {
        cm_secret_free (tokens->access, strlen (tokens->access));
        tokens->access = NULL;
    }
    OPENSSL_cleanse (tokens->refresh, sizeof tokens->refresh);
}

/* Inside the caller's transaction: a new refresh token of session_id,
   expiring min (now + refresh_ttl, session_expires). Fills out->refresh
   and out->refresh_expires_in.                                         */
static cm_status_t
s_issue_refresh (cm_db_t *db, const char *req, const char *session_id,
                 uint64_t session_expires, const authd_session_ttl_t *ttl, uint64_t now_s,
                 authd_tokens_t *out, const char **err_code)
{
    char token[64] = "";
    char hash[65], issued[24], expires[24];
    cm_status_t st = CM_OK;
    if (cm_random_token (token, sizeof token, 32) != 0 ||
        strlen (token) != AUTHD_REFRESH_TOKEN_LEN) {
        cm_error (req, "cm_random_token() failed for a refresh token");
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    cm_sha256_hex (hash, token, AUTHD_REFRESH_TOKEN_LEN);
    uint64_t exp = now_s + ttl->refresh_ttl_s;
    if (exp > session_expires) {
        exp = session_expires;
    }
    s_num (issued, now_s);
    s_num (expires, exp);
    const char *p[] = {hash, session_id, issued, expires};
    cm_db_status_t dst = cm_db_exec (db,
                                     "INSERT INTO refresh_tokens (token_hash, session_id,"
                                     " issued_at, expires_at) VALUES ($1, $2, $3, $4)",
                                     4, p);
    if (dst != CM_DB_OK) {
        cm_error (req, "INSERT INTO refresh_tokens failed session=%s", session_id);
        st = s_db_fail (dst, err_code);
        goto cleanup;
    }
    memcpy (out->refresh, token, AUTHD_REFRESH_TOKEN_LEN + 1);
    out->refresh_expires_in =
        exp > now_s ? (uint32_t)(exp - now_s > UINT32_MAX ? UINT32_MAX : exp - now_s) : 0;
    snprintf (out->session_id, sizeof out->session_id, "%s", session_id);
cleanup:
    OPENSSL_cleanse (token, sizeof token);
    return st;
}

static cm_status_t
s_sign (cm_jwt_signer_t *signer, const char *req, const authd_session_ttl_t *ttl,
        uint64_t now_s, authd_tokens_t *out, const char **err_code)
{
    out->access = cm_jwt_sign (signer, out->user.id, out->user.role, out->gen, now_s,
                               ttl->access_ttl_s);
    if (!out->access) {
        cm_error (req, "cm_jwt_sign() failed for user=%s", out->user.id);
        *err_code = "internal_error";
        return CM_INTERNAL;
    }
    return CM_OK;
}

/* Ends the transaction: commit on CM_OK (or when `keep` says the change
   must stay though the answer is an error), else roll back.          */
static cm_status_t
s_finish (cm_db_t *db, const char *req, cm_status_t st, bool keep, const char **err_code)
{
    if (st == CM_OK || keep) {
        if (cm_db_commit (db) != 0) {
            cm_error (req, "cm_db_commit() failed");
            *err_code = "database_busy";
            return CM_UNAVAILABLE;
        }
        return st;
    }
    cm_db_rollback (db);
    return st;
}

/* ---- LOGIN ----------------------------------------------------------- */

cm_status_t
authd_session_open (cm_db_t *db, const authd_origin_t *o, cm_jwt_signer_t *signer,
                    const authd_session_ttl_t *ttl, uint64_t now_s,
                    const authd_user_t *user, authd_tokens_t *out, const char **err_code)
{
    const char *req = o ? o->req_id : NULL;
    memset (out, 0, sizeof *out);
    *err_code = NULL;
    char session_id[33], now[24], expires[24], forget[24];
    if (cm_random_hex (session_id, 16) != 0) {
        *err_code = "internal_error";
        return CM_INTERNAL;
    }
    uint64_t session_expires = now_s + ttl->session_ttl_s;
    s_num (now, now_s);
    s_num (expires, session_expires);
    /* A session revoked longer ago than a refresh token lives has no
       token left that could still be presented. */
    s_num (forget, now_s > ttl->refresh_ttl_s ? now_s - ttl->refresh_ttl_s : 0);

    cm_status_t st = s_begin (db, err_code);
    if (st != CM_OK) {
        return st;
    }
    cm_db_status_t dst;
    const char *pp[] = {user->id, now, forget};
    dst = cm_db_exec (db,
                      "DELETE FROM sessions WHERE user_id = $1"
                      " AND (expires_at <= $2 OR revoked_at <= $3)",
                      3, pp);
    if (dst != CM_DB_OK) {
        cm_error (req, "DELETE FROM sessions (prune user=%s) failed", user->id);
        st = s_db_fail (dst, err_code);
        goto cleanup;
    }
    /* The current state, read in the transaction the session is made in. */
    const char *pu[] = {user->id};
    cm_db_res_t *res = cm_db_query (db,
                                    "SELECT " AUTHD_USER_COLS ", token_gen"
                                    " FROM users WHERE id = $1",
                                    1, pu);
    dst = cm_db_res_status (res);
    if (dst != CM_DB_OK || cm_db_res_rows (res) != 1) {
        cm_error (req, "SELECT FROM users failed for user=%s", user->id);
        cm_db_res_free (&res);
        st = s_db_fail (dst, err_code); /* none found: internal_error */
        goto cleanup;
    }
    authd_user_from_row (res, 0, 0, &out->user);
    bool gen_ok = s_u64 (cm_db_res_get (res, 0, 6), &out->gen);
    cm_db_res_free (&res);
    if (!gen_ok) {
        cm_error (req, "users.token_gen unreadable for user=%s", user->id);
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    /* Disabled since the password was checked: no session. */
    if (out->user.disabled) {
        st = CM_FORBIDDEN, *err_code = "account_disabled";
        goto cleanup;
    }
    const char *ps[] = {session_id, user->id, now, expires};
    dst = cm_db_exec (db,
                      "INSERT INTO sessions (id, user_id, created_at, expires_at)"
                      " VALUES ($1, $2, $3, $4)",
                      4, ps);
    if (dst != CM_DB_OK) {
        cm_error (req, "INSERT INTO sessions failed for user=%s", user->id);
        st = s_db_fail (dst, err_code);
        goto cleanup;
    }
    st =
        s_issue_refresh (db, req, session_id, session_expires, ttl, now_s, out, err_code);
    if (st != CM_OK) {
        goto cleanup;
    }
    authd_origin_t who = {req, o ? o->client_addr : NULL, user->id};
    char detail[48];
    snprintf (detail, sizeof detail, "session=%s", session_id);
    if (authd_audit (db, &who, "login", "ok", user->id, detail) != 0) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    st = s_sign (signer, req, ttl, now_s, out, err_code);
cleanup:
    st = s_finish (db, req, st, false, err_code);
    if (st != CM_OK) {
        authd_tokens_wipe (out);
    }
    return st;
}

/* ---- REFRESH ---------------------------------------------------------- */

/* Inside the transaction: the session and user of the token whose hash
   is given (when spent, only if it was used). CM_OK, CM_UNAUTHENTICATED
   "invalid_refresh_token" if there is none, or the DB failure.        */
static cm_status_t
s_token_session (cm_db_t *db, const char *req, const char *hash, bool spent,
                 char session_id[33], char user_id[33], const char **err_code)
{
    const char *p[] = {hash};
    cm_db_res_t *res = cm_db_query (db,
                                    "SELECT r.session_id, s.user_id, r.used_at"
                                    " FROM refresh_tokens r"
                                    " JOIN sessions s ON s.id = r.session_id"
                                    " WHERE r.token_hash = $1",
                                    1, p);
    cm_status_t st = CM_OK;
    cm_db_status_t dst = cm_db_res_status (res);
    if (dst != CM_DB_OK) {
        cm_error (req, "SELECT FROM refresh_tokens failed");
        st = s_db_fail (dst, err_code);
    } else if (cm_db_res_rows (res) != 1 || !cm_db_res_get (res, 0, 0) ||
               !cm_db_res_get (res, 0, 1) || (spent && !cm_db_res_get (res, 0, 2))) {
        st = CM_UNAUTHENTICATED, *err_code = "invalid_refresh_token";
    } else {
        snprintf (session_id, 33, "%s", cm_db_res_get (res, 0, 0));
        snprintf (user_id, 33, "%s", cm_db_res_get (res, 0, 1));
    }
    cm_db_res_free (&res);
    return st;
}

/* Inside the transaction: ends session_id (revoke_reason `reason`; one
   already ended stays as it was) and audits `event` / `outcome` on
   user_id by who, detail "session=<id>" plus ",already_ended" if so.
   CM_OK or the failure.                                               */
static cm_status_t
s_session_end (cm_db_t *db, const authd_origin_t *who, const char *session_id,
               const char *user_id, const char *now, const char *reason,
               const char *event, const char *outcome, const char **err_code)
{
    const char *p[] = {session_id, now, reason};
    cm_db_res_t *res =
        cm_db_query (db,
                     "UPDATE sessions SET revoked_at = $2, revoke_reason = $3"
                     " WHERE id = $1 AND revoked_at IS NULL",
                     3, p);
    cm_db_status_t dst = cm_db_res_status (res);
    int changed = cm_db_res_changes (res);
    cm_db_res_free (&res);
    if (dst != CM_DB_OK) {
        cm_error (who->req_id, "UPDATE sessions (%s) failed session=%s", reason,
                  session_id);
        return s_db_fail (dst, err_code);
    }
    char detail[64];
    snprintf (detail, sizeof detail, "session=%s%s", session_id,
              changed > 0 ? "" : ",already_ended");
    if (authd_audit (db, who, event, outcome, user_id, detail) != 0) {
        *err_code = "internal_error";
        return CM_INTERNAL;
    }
    return CM_OK;
}

/* The presented token was not claimable: unknown, or spent (reuse: the
   session dies, and that change commits). Inside the transaction.     */
static cm_status_t
s_refresh_unclaimed (cm_db_t *db, const authd_origin_t *o, const char *hash,
                     const char *now, bool *keep, const char **err_code)
{
    const char *req = o ? o->req_id : NULL;
    char session_id[33], user_id[33];
    cm_status_t st = s_token_session (db, req, hash, true, session_id, user_id, err_code);
    if (st != CM_OK) {
        return st;
    }
    /* Whoever presents a spent token may be the thief: no actor. */
    authd_origin_t who = {req, o ? o->client_addr : NULL, ""};
    st = s_session_end (db, &who, session_id, user_id, now, "reuse", "refresh_reuse",
                        "refresh_token_reused", err_code);
    if (st != CM_OK) {
        return st;
    }
    cm_warn (req, "refresh token reused: session=%s of user=%s revoked", session_id,
             user_id);
    *keep = true;
    *err_code = "refresh_token_reused";
    return CM_UNAUTHENTICATED;
}

cm_status_t
authd_session_refresh (cm_db_t *db, const authd_origin_t *o, cm_jwt_signer_t *signer,
                       const authd_session_ttl_t *ttl, uint64_t now_s,
                       const char *refresh, authd_tokens_t *out, const char **err_code)
{
    const char *req = o ? o->req_id : NULL;
    memset (out, 0, sizeof *out);
    *err_code = NULL;
    char hash[65], now[24];
    cm_status_t st = s_token_begin (db, refresh, now_s, hash, now, err_code);
    if (st != CM_OK) {
        return st;
    }
    bool keep = false;
    cm_db_res_t *res = NULL;
    /* The claim is one statement: of two concurrent uses exactly one
       sees used_at NULL (PostgreSQL re-checks the row after the other's
       commit; SQLite's BEGIN IMMEDIATE serialises), the other is reuse. */
    const char *pc[] = {hash, now};
    res = cm_db_query (db,
                       "UPDATE refresh_tokens SET used_at = $2"
                       " WHERE token_hash = $1 AND used_at IS NULL"
                       " RETURNING session_id, expires_at",
                       2, pc);
    cm_db_status_t dst = cm_db_res_status (res);
    if (dst != CM_DB_OK) {
        cm_error (req, "UPDATE refresh_tokens (claim) failed");
        st = s_db_fail (dst, err_code);
        goto cleanup;
    }
    if (cm_db_res_rows (res) != 1) {
        st = s_refresh_unclaimed (db, o, hash, now, &keep, err_code);
        goto cleanup;
    }
    char session_id[33];
    uint64_t token_expires = 0;
    const char *sid = cm_db_res_get (res, 0, 0);
    if (!sid || !cm_is_hex_id (sid, 32) ||
        !s_u64 (cm_db_res_get (res, 0, 1), &token_expires)) {
        cm_error (req, "refresh_tokens row unreadable");
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    snprintf (session_id, sizeof session_id, "%s", sid);
    cm_db_res_free (&res);

    const char *ps[] = {session_id};
    res = cm_db_query (db,
                       "SELECT u.id, u.email, u.role, u.verified, u.disabled,"
                       " u.created_at, u.token_gen, s.expires_at, s.revoked_at"
                       " FROM sessions s JOIN users u ON u.id = s.user_id"
                       " WHERE s.id = $1",
                       1, ps);
    dst = cm_db_res_status (res);
    uint64_t session_expires = 0;
    if (dst != CM_DB_OK || cm_db_res_rows (res) != 1) {
        cm_error (req, "SELECT FROM sessions failed session=%s", session_id);
        st = s_db_fail (dst, err_code); /* none found: internal_error */
        goto cleanup;
    }
    authd_user_from_row (res, 0, 0, &out->user);
    if (!s_u64 (cm_db_res_get (res, 0, 6), &out->gen) ||
        !s_u64 (cm_db_res_get (res, 0, 7), &session_expires)) {
        cm_error (req, "sessions/users row unreadable session=%s", session_id);
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    bool revoked = cm_db_res_get (res, 0, 8) != NULL;
    cm_db_res_free (&res);
    /* Refusals below roll back: the token stays as it was. */
    if (revoked) {
        st = CM_UNAUTHENTICATED, *err_code = "invalid_refresh_token";
        goto cleanup;
    }
    if (token_expires <= now_s || session_expires <= now_s) {
        st = CM_UNAUTHENTICATED, *err_code = "refresh_token_expired";
        goto cleanup;
    }
    if (out->user.disabled) {
        st = CM_FORBIDDEN, *err_code = "account_disabled";
        goto cleanup;
    }
    st =
        s_issue_refresh (db, req, session_id, session_expires, ttl, now_s, out, err_code);
    if (st == CM_OK) {
        st = s_sign (signer, req, ttl, now_s, out, err_code);
    }
cleanup:
    cm_db_res_free (&res);
    st = s_finish (db, req, st, keep, err_code);
    if (st != CM_OK) {
        authd_tokens_wipe (out);
    }
    return st;
}

/* ---- LOGOUT, LOGOUT_ALL ---------------------------------------------- */

cm_status_t
authd_session_logout (cm_db_t *db, const authd_origin_t *o, uint64_t now_s,
                      const char *refresh, const char **err_code)
{
    const char *req = o ? o->req_id : NULL;
    *err_code = NULL;
    char hash[65], now[24];
    cm_status_t st = s_token_begin (db, refresh, now_s, hash, now, err_code);
    if (st != CM_OK) {
        return st;
    }
    char session_id[33], user_id[33];
    st = s_token_session (db, req, hash, false, session_id, user_id, err_code);
    if (st == CM_OK) {
        /* The holder of one of the session's tokens acts for its user. */
        authd_origin_t who = {req, o ? o->client_addr : NULL, user_id};
        st = s_session_end (db, &who, session_id, user_id, now, "logout", "logout", "ok",
                            err_code);
    }
    return s_finish (db, req, st, false, err_code);
}

cm_status_t
authd_session_logout_all (cm_db_t *db, const authd_origin_t *o, const char *user_id,
                          uint64_t *gen_out, const char **err_code)
{
    const char *req = o ? o->req_id : NULL;
    *err_code = NULL;
    if (!cm_is_hex_id (user_id, 32)) {
        *err_code = "invalid_user_id";
        return CM_INVALID;
    }
    cm_status_t st = s_begin (db, err_code);
    if (st != CM_OK) {
        return st;
    }
    uint64_t before = 0;
    /* Unknown user first: revoke_user would fail on it anyway, but that
       must answer NOT_FOUND, not INTERNAL. */
    if (authd_user_token_gen (db, user_id, &before) != 0) {
        const char *p[] = {user_id};
        cm_db_res_t *res = cm_db_query (db, "SELECT id FROM users WHERE id = $1", 1, p);
        bool db_ok = cm_db_res_status (res) == CM_DB_OK;
        bool found = db_ok && cm_db_res_rows (res) > 0;
        cm_db_res_free (&res);
        if (db_ok && !found) {
            st = CM_NOT_FOUND, *err_code = "user_not_found";
        } else {
            st = CM_INTERNAL, *err_code = "internal_error";
        }
        goto cleanup;
    }
    if (authd_sessions_revoke_user (db, user_id, "logout_all", true) != 0 ||
        authd_user_token_gen (db, user_id, gen_out) != 0) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    char detail[48];
    snprintf (detail, sizeof detail, "token_gen=%llu", (unsigned long long)*gen_out);
    authd_origin_t who = {req, o ? o->client_addr : NULL, user_id};
    if (authd_audit (db, &who, "logout_all", "ok", user_id, detail) != 0) {
        st = CM_INTERNAL, *err_code = "internal_error";
    }
cleanup:
    return s_finish (db, req, st, false, err_code);
}

/* ---- jwt_keys ---------------------------------------------------------- */

int
authd_keys_sync (cm_db_t *db, const authd_origin_t *o, const char *kid,
                 const char *public_pem, uint64_t now_s)
{
    const char *req = o ? o->req_id : NULL;
    if (!kid || strlen (kid) != CM_JWT_KID_LEN || !cm_is_hex_id (kid, CM_JWT_KID_LEN) ||
        !public_pem || !*public_pem) {
        cm_error (req, "authd_keys_sync: bad kid or public key");
        return -1;
    }
    char now[24];
    s_num (now, now_s);
    if (cm_db_begin (db) != 0) {
        cm_error (req, "cm_db_begin() failed recording the JWT key");
        return -1;
    }
    int rc = -1;
    cm_db_res_t *res = NULL;
    const char *pi[] = {kid, public_pem, now};
    const char *pk[] = {kid};
    const char *pr[] = {kid, now};
    if (cm_db_exec (db,
                    "INSERT INTO jwt_keys (kid, public_pem, first_used_at)"
                    " VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING",
                    3, pi) != CM_DB_OK ||
        /* An old key put back in place is current again. */
        cm_db_exec (db, "UPDATE jwt_keys SET retired_at = NULL WHERE kid = $1", 1, pk) !=
            CM_DB_OK) {
        cm_error (req, "INSERT/UPDATE jwt_keys failed kid=%s", kid);
        goto cleanup;
    }
    res = cm_db_query (db,
                       "UPDATE jwt_keys SET retired_at = $2"
                       " WHERE kid <> $1 AND retired_at IS NULL RETURNING kid",
                       2, pr);
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (req, "UPDATE jwt_keys (retire) failed kid=%s", kid);
        goto cleanup;
    }
    for (int i = 0; i < cm_db_res_rows (res); i++) {
        const char *old = cm_db_res_get (res, i, 0);
        char detail[48];
        snprintf (detail, sizeof detail, "%.16s->%s", old ? old : "?", kid);
        if (authd_audit (db, o, "jwt_key_rotated", "ok", kid, detail) != 0) {
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    cm_db_res_free (&res);
    if (rc == 0) {
        if (cm_db_commit (db) != 0) {
            cm_error (req, "cm_db_commit() failed recording the JWT key kid=%s", kid);
            rc = -1;
        }
    } else {
        cm_db_rollback (db);
    }
    return rc;
}

int
authd_keys_list (cm_db_t *db, uint64_t now_s, unsigned access_ttl_s, authd_key_t *keys,
                 size_t max, size_t *n_out)
{
    *n_out = 0;
    if (max > CM_JWT_MAX_KEYS) {
        max = CM_JWT_MAX_KEYS;
    }
    uint64_t grace = (uint64_t)access_ttl_s + CM_JWT_LEEWAY_S;
    char since[24], sql[320];
    /* retired_at + grace > now  <=>  retired_at > now - grace */
    s_num (since, now_s > grace ? now_s - grace : 0);
    snprintf (sql, sizeof sql,
              "SELECT kid, public_pem, retired_at FROM jwt_keys"
              " WHERE retired_at IS NULL OR retired_at > $1"
              " ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END,"
              " retired_at DESC, first_used_at DESC LIMIT %zu",
              max);
    const char *p[] = {since};
    cm_db_res_t *res = cm_db_query (db, sql, 1, p);
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (NULL, "SELECT FROM jwt_keys failed");
        cm_db_res_free (&res);
        return -1;
    }
    size_t n = 0;
    for (int i = 0; i < cm_db_res_rows (res) && n < max; i++) {
        const char *kid = cm_db_res_get (res, i, 0);
        const char *pem = cm_db_res_get (res, i, 1);
        const char *retired = cm_db_res_get (res, i, 2);
        uint64_t retired_at = 0;
        if (!kid || !cm_is_hex_id (kid, CM_JWT_KID_LEN) || !pem || !*pem ||
            (retired && !s_u64 (retired, &retired_at))) {
            cm_warn (NULL, "jwt_keys row %d unreadable: skipped", i);
            continue;
        }
        memcpy (keys[n].kid, kid, CM_JWT_KID_LEN + 1);
        keys[n].public_pem = strdup (pem);
        keys[n].not_after = retired ? retired_at + grace : 0;
        if (!keys[n].public_pem) {
            cm_db_res_free (&res);
            authd_keys_free (keys, n);
            return -1;
        }
        n++;
    }
    cm_db_res_free (&res);
    *n_out = n;
    return 0;
}

void
authd_keys_free (authd_key_t *keys, size_t n)
{
    for (size_t i = 0; keys && i < n; i++) {
        free (keys[i].public_pem);
        keys[i].public_pem = NULL;
    }
}
