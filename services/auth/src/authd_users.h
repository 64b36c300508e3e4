/*  authd_users -- the user store: accounts, password hashes (Argon2id),
    e-mail verification tokens and the mail outbox rows written with them.

    Every function takes the database handle it works on (borrowed) and
    is independent of sockets, so the CLI calls the same code as the
    service, and a worker pool can call it from several threads later
    (each thread with its own cm_db_t).

    Error codes (*err_code, static strings) are the stable snake_case codes
    of proto/auth.md.                                                    */
#ifndef AUTHD_USERS_H
#define AUTHD_USERS_H

#include "authd_audit.h"
#include "cm_db.h"
#include "cm_status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTHD_EMAIL_MAX    254
#define AUTHD_PASSWORD_MIN 8
#define AUTHD_PASSWORD_MAX 128
/* A verification token is 32 random bytes, base64url without padding. */
#define AUTHD_VERIFY_TOKEN_LEN 43

typedef struct {
    char id[33];
    char email[AUTHD_EMAIL_MAX + 1];
    char role[8]; /* "client" | "ops" | "admin" */
    bool verified;
    bool disabled;
    uint64_t created_at; /* unix seconds */
} authd_user_t;

/* The users columns authd_user_from_row reads, in this order. */
#define AUTHD_USER_COLS "id, email, role, verified, disabled, created_at"

/* Fills user from the AUTHD_USER_COLS at columns col..col+5 of row. */
void authd_user_from_row (const cm_db_res_t *res, int row, int col, authd_user_t *user);

/* Creates or upgrades the auth schema (users, verify_tokens, mail_outbox,
   login_failures, sessions, refresh_tokens, jwt_keys, audit_log). */
int authd_store_migrate (cm_db_t *db);

/* Creates a user (the CLI's `safeshare user add`, and admins later).
   E-mail trimmed + lowercased; err_code: "invalid_email",
   "weak_password", "email_taken" (CM_CONFLICT), "invalid_role".       */
cm_status_t authd_user_create (cm_db_t *db, const char *email, const char *password,
                               const char *role, bool verified, char id_out[33],
                               const char **err_code);

/* SIGNUP: an unverified client, its verification token (stored as its
   SHA-256 only, valid verify_ttl_s) and a "verify_email" job in
   mail_outbox whose link is public_url + "/api/auth/verify?token=...",
   all in one transaction with its `signup` audit row (origin o). The
   token itself is never returned.                                      */
cm_status_t authd_user_signup (cm_db_t *db, const authd_origin_t *o, const char *email,
                               const char *password, const char *public_url,
                               unsigned verify_ttl_s, authd_user_t *user_out,
                               const char **err_code);

/* VERIFY: single use; CM_INVALID "invalid_verification_token" (unknown,
   malformed or used), CM_GONE "verification_token_expired". A success
   is audited (`verify`) in its transaction.                            */
cm_status_t authd_user_verify (cm_db_t *db, const authd_origin_t *o, const char *token,
                               authd_user_t *user_out, const char **err_code);

/* Verification-mail resends granted per address: at most one a minute
   and AUTHD_RESEND_PER_DAY in 24 hours. */
#define AUTHD_RESEND_INTERVAL_S 60
#define AUTHD_RESEND_PER_DAY    5

/* RESEND: CM_INVALID "invalid_email" for a malformed address, else CM_OK
   whatever the address (no enumeration). For an existing, enabled,
   unverified user within the rate limit, one transaction marks its
   unused verification tokens used, stores a new one and queues a new
   "verify_email" job (*mail_queued = true). Unknown, verified or
   disabled addresses and refused (rate-limited) ones: CM_OK, no mail.
   Granted resends count against the address whether or not it exists. */
cm_status_t authd_user_resend (cm_db_t *db, const char *req, const char *email,
                               const char *public_url, unsigned verify_ttl_s,
                               bool *mail_queued, const char **err_code);

/* True if an encoded Argon2id hash uses weaker parameters (m, t or p)
   than the ones new hashes get; LOGIN then rehashes it. */
bool authd_hash_needs_rehash (const char *encoded);

/* LOGIN checks: CM_UNAUTHENTICATED "invalid_credentials" for a wrong
   e-mail or password (an unknown e-mail still spends one Argon2id
   verification), then CM_FORBIDDEN "account_disabled" /
   "email_not_verified". CM_OK fills user_out. After a good password, a
   hash with weaker parameters than today's is replaced (same request).
   Whatever the answer, user_out holds the account the e-mail names
   (id "" when none), for the audit row.                                */
cm_status_t authd_user_login (cm_db_t *db, const char *req, const char *email,
                              const char *password, authd_user_t *user_out,
                              const char **err_code);

/* USER_GET by id: CM_INVALID "invalid_user_id", CM_NOT_FOUND "user_not_found". */
cm_status_t authd_user_get (cm_db_t *db, const char *req, const char *id,
                            authd_user_t *user_out, const char **err_code);

/* Normalises an e-mail (trim, lowercase) into out and validates it. 0/-1. */
int authd_email_normalize (const char *in, char out[AUTHD_EMAIL_MAX + 1]);

#endif
