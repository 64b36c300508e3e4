/*  authd_sessions -- login sessions and their refresh tokens (proto/
    auth.md "Sessions"), the per-user access-token generation, and the
    JWT signing keys auth publishes (KEYS).

    A session is a refresh-token family: LOGIN opens one, each REFRESH
    spends the presented token and issues the next one in the same
    session, a spent token presented again revokes the session. Tokens
    are 32 random bytes in base64url (43 chars); only their SHA-256 is
    stored.                                                             */
#ifndef AUTHD_SESSIONS_H
#define AUTHD_SESSIONS_H

#include "authd_audit.h"
#include "authd_users.h"
#include "cm_db.h"
#include "cm_jwt.h"
#include "cm_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTHD_REFRESH_TOKEN_LEN 43

/* Ends every live session of user_id (revoked_at = now, revoke_reason =
   reason) and, when bump_gen, adds 1 to users.token_gen so that every
   access token issued so far is refused by the gateway (within its
   user-cache bound). Runs inside the caller's transaction if one is
   open. 0 / -1.                                                        */
int authd_sessions_revoke_user (cm_db_t *db, const char *user_id, const char *reason,
                                bool bump_gen);

/* users.token_gen of user_id into *gen. 0 / -1 (unknown user or DB). */
int authd_user_token_gen (cm_db_t *db, const char *user_id, uint64_t *gen);

/* ---- sessions (LOGIN, REFRESH, LOGOUT, LOGOUT_ALL) ------------------
   Added by the auth side below the contract above. now_s is the clock
   (injectable for tests); every function is one transaction.          */

typedef struct {
    unsigned access_ttl_s;  /* SAFESHARE_ACCESS_TTL */
    unsigned refresh_ttl_s; /* SAFESHARE_REFRESH_TTL */
    unsigned session_ttl_s; /* SAFESHARE_SESSION_TTL */
} authd_session_ttl_t;

/* A new token pair. access and refresh are secrets: authd_tokens_wipe. */
typedef struct {
    char *access; /* signed JWT (caller's) */
    char refresh[AUTHD_REFRESH_TOKEN_LEN + 1];
    uint32_t refresh_expires_in; /* seconds */
    char session_id[33];
    uint64_t gen;      /* token_gen the access token carries */
    authd_user_t user; /* current state (role as signed) */
} authd_tokens_t;

void authd_tokens_wipe (authd_tokens_t *tokens);

/* LOGIN after the password checked out (user from authd_user_login):
   prunes the user's dead sessions, inserts the session (expires now +
   session_ttl) and its first refresh token (expires min (now +
   refresh_ttl, session end)), audits `login` ok and signs the access
   token with the user's token_gen, in one transaction. CM_FORBIDDEN
   "account_disabled" if disabled meanwhile; CM_INTERNAL
   "internal_error" / CM_UNAVAILABLE "database_busy".                  */
cm_status_t authd_session_open (cm_db_t *db, const authd_origin_t *o,
                                cm_jwt_signer_t *signer, const authd_session_ttl_t *ttl,
                                uint64_t now_s, const authd_user_t *user,
                                authd_tokens_t *out, const char **err_code);

/* REFRESH: CM_UNAUTHENTICATED "invalid_refresh_token" (malformed,
   unknown, session revoked), "refresh_token_reused" (spent: the session
   is revoked 'reuse' and audited, committed), "refresh_token_expired"
   (token or session); CM_FORBIDDEN "account_disabled". CM_OK: out holds
   the next pair of the same session (current role and token_gen).     */
cm_status_t authd_session_refresh (cm_db_t *db, const authd_origin_t *o,
                                   cm_jwt_signer_t *signer,
                                   const authd_session_ttl_t *ttl, uint64_t now_s,
                                   const char *refresh, authd_tokens_t *out,
                                   const char **err_code);

/* LOGOUT: ends the token's session (revoke_reason 'logout'; an ended
   one stays as it was: CM_OK), audited. CM_UNAUTHENTICATED
   "invalid_refresh_token" for a malformed or unknown token.           */
cm_status_t authd_session_logout (cm_db_t *db, const authd_origin_t *o, uint64_t now_s,
                                  const char *refresh, const char **err_code);

/* LOGOUT_ALL: authd_sessions_revoke_user (user_id, "logout_all", bump)
   and audit, one transaction; *gen_out = the new token_gen.
   CM_INVALID "invalid_user_id", CM_NOT_FOUND "user_not_found".        */
cm_status_t authd_session_logout_all (cm_db_t *db, const authd_origin_t *o,
                                      const char *user_id, uint64_t *gen_out,
                                      const char **err_code);

/* ---- JWT signing keys (jwt_keys, KEYS) ------------------------------ */

/* Records the signing key in use: inserts (kid, public_pem,
   first_used_at = now) if new, makes it current (retired_at NULL),
   sets retired_at = now on every other current row and audits
   `jwt_key_rotated` (detail "old->new") when that retired one. One
   transaction. 0 / -1.                                                */
int authd_keys_sync (cm_db_t *db, const authd_origin_t *o, const char *kid,
                     const char *public_pem, uint64_t now_s);

typedef struct {
    char kid[CM_JWT_KID_LEN + 1];
    char *public_pem;   /* caller's: authd_keys_free */
    uint64_t not_after; /* 0 = current */
} authd_key_t;

/* KEYS: the current keys (not_after 0) then each retired key with
   retired_at + access_ttl_s + CM_JWT_LEEWAY_S > now_s (not_after = that
   sum), newest first, at most max (<= CM_JWT_MAX_KEYS). 0 / -1.       */
int authd_keys_list (cm_db_t *db, uint64_t now_s, unsigned access_ttl_s,
                     authd_key_t *keys, size_t max, size_t *n_out);
void authd_keys_free (authd_key_t *keys, size_t n);

#endif
