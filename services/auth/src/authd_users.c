/*  authd_users -- accounts, Argon2id passwords, verification tokens and the
    outbox rows written with them. SQL is the common dialect of SQLite and
    PostgreSQL (text parameters, RETURNING, no AUTOINCREMENT).           */
#include "authd_users.h"
#include "authd_audit.h"
#include "authd_policy.h"
#include "cm_log.h"
#include "cm_role.h"
#include "cm_util.h"

#include <argon2.h>
#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OWASP minimum for Argon2id (PLATFORM.md: ~46 ms a hash here). */
#define S_ARGON2_T       2
#define S_ARGON2_M       19456
#define S_ARGON2_P       1
#define S_ARGON2_SALT    16
#define S_ARGON2_HASHLEN 32

static const char *const s_migrations[] = {
    /* 1: users, verification tokens (hashes only), the mail outbox. */
    "CREATE TABLE users ("
    " id TEXT PRIMARY KEY,"
    " email TEXT NOT NULL UNIQUE,"
    " password_hash TEXT NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('client', 'ops', 'admin')),"
    " verified INTEGER NOT NULL DEFAULT 0,"
    " disabled INTEGER NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE verify_tokens ("
    " token_hash TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    " expires_at BIGINT NOT NULL,"
    " used_at BIGINT);"
    "CREATE INDEX verify_tokens_user ON verify_tokens (user_id);"
    /* vars holds the mailed link (with the token) only until the mailer
       acked the job (sent_at) or refused it for good (last_error); then
       it is set to NULL. */
    "CREATE TABLE mail_outbox ("
    " id TEXT PRIMARY KEY,"
    " template TEXT NOT NULL,"
    " recipient TEXT NOT NULL,"
    " vars TEXT,"
    " created_ms BIGINT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " sent_at BIGINT,"
    " last_error TEXT);"
    "CREATE INDEX mail_outbox_pending ON mail_outbox (sent_at, created_ms);",
    /* 2: verification-mail resends granted per address (the rate limit);
       rows older than a day are deleted as resends come in. Kept for any
       address asked for, known or not, so both cost the same. */
    "CREATE TABLE verify_resends ("
    " email TEXT NOT NULL,"
    " at BIGINT NOT NULL);"
    "CREATE INDEX verify_resends_email ON verify_resends (email, at);",
    /* 3: failed logins per account ('account', normalised e-mail, known
       or not) and per client address ('addr'); see authd_throttle.h.
       Rows idle for a day are deleted as failures come in. */
    "CREATE TABLE login_failures ("
    " kind TEXT NOT NULL CHECK (kind IN ('account', 'addr')),"
    " subject TEXT NOT NULL,"
    " failures INTEGER NOT NULL,"
    " last_at BIGINT NOT NULL,"
    " PRIMARY KEY (kind, subject));"
    "CREATE INDEX login_failures_last ON login_failures (last_at);",
    /* 4: sessions (refresh-token families), refresh tokens (hashes
       only), the per-user access-token generation, the JWT public keys
       auth has signed with, and the audit log (authd_sessions.h,
       authd_admin.h, authd_audit.h). */
    "ALTER TABLE users ADD COLUMN token_gen BIGINT NOT NULL DEFAULT 0;"
    "CREATE TABLE sessions ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    " created_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL,"
    " revoked_at BIGINT,"
    " revoke_reason TEXT);"
    "CREATE INDEX sessions_user ON sessions (user_id);"
    "CREATE TABLE refresh_tokens ("
    " token_hash TEXT PRIMARY KEY,"
    " session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,"
    " issued_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL,"
    " used_at BIGINT);"
    "CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);"
    "CREATE TABLE jwt_keys ("
    " kid TEXT PRIMARY KEY,"
    " public_pem TEXT NOT NULL,"
    " first_used_at BIGINT NOT NULL,"
    " retired_at BIGINT);"
    "CREATE TABLE audit_log ("
    " id TEXT PRIMARY KEY,"
    " at_ms BIGINT NOT NULL,"
    " event TEXT NOT NULL,"
    " outcome TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " client_addr TEXT NOT NULL,"
    " request_id TEXT NOT NULL,"
    " detail TEXT NOT NULL);"
    "CREATE INDEX audit_log_at ON audit_log (at_ms);",
    /* 5: the request id that queued a mail job, so that the mailer logs
       the job under it (the outbox sends it as <id>.m<N>). */
    "ALTER TABLE mail_outbox ADD COLUMN request_id TEXT;",
};

#define S_USER_COLS AUTHD_USER_COLS

int
authd_store_migrate (cm_db_t *db)
{
    return cm_db_migrate (db, "auth", s_migrations,
                          sizeof s_migrations / sizeof s_migrations[0]);
}

/* ---- validation ------------------------------------------------------ */

int
authd_email_normalize (const char *in, char out[AUTHD_EMAIL_MAX + 1])
{
    if (!in) {
        return -1;
    }
    /* Bound the scan: anything this long is refused anyway. */
    size_t len = strnlen (in, 4 * AUTHD_EMAIL_MAX);
    const char *start = in;
    const char *end = in + len;
    while (start < end && (*start == ' ' || *start == '\t')) {
        start++;
    }
    while (end > start &&
           (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) {
        end--;
    }
    size_t n = (size_t)(end - start);
    if (n == 0 || n > AUTHD_EMAIL_MAX) {
        return -1;
    }
    int ats = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)start[i];
        /* ASCII only for now: no spaces, no control characters (and no
           UTF-8 until internationalised addresses are handled end to end). */
        if (c <= 0x20 || c >= 0x7f) {
            return -1;
        }
        if (c == '@') {
            ats++;
            at = i;
        }
        out[i] = (char)tolower (c);
    }
    out[n] = '\0';
    if (ats != 1 || at == 0 || at == n - 1) {
        return -1;
    }
    /* The mailer's rule too: an address it would refuse could never be
       verified, yet would stay taken.                                  */
    return cm_email_valid (out) ? 0 : -1;
}

static bool
s_password_ok (const char *password)
{
    return authd_password_problem (password) == NULL;
}

static bool
s_role_ok (const char *role)
{
    return cm_role_parse (role) != SAFESHARE__ROLE__ROLE_NONE;
}

/* ---- Argon2id -------------------------------------------------------- */

/* Full encoded string ($argon2id$v=19$m=...,t=...,p=...$salt$hash), caller
   frees. NULL on failure (logged). */
static char *
s_hash_password (const char *req, const char *password)
{
    uint8_t salt[S_ARGON2_SALT];
    if (cm_random (salt, sizeof salt) != 0) {
        cm_error (req, "cm_random() failed for a password salt");
        return NULL;
    }
    size_t enclen = argon2_encodedlen (S_ARGON2_T, S_ARGON2_M, S_ARGON2_P, S_ARGON2_SALT,
                                       S_ARGON2_HASHLEN, Argon2_id);
    char *encoded = calloc (1, enclen);
    if (!encoded) {
        return NULL;
    }
    int rc = argon2id_hash_encoded (S_ARGON2_T, S_ARGON2_M, S_ARGON2_P, password,
                                    strlen (password), salt, sizeof salt,
                                    S_ARGON2_HASHLEN, encoded, enclen);
    OPENSSL_cleanse (salt, sizeof salt);
    if (rc != ARGON2_OK) {
        cm_error (req, "argon2id_hash_encoded() failed: %s", argon2_error_message (rc));
        free (encoded);
        return NULL;
    }
    return encoded;
}

/* A hash of a random password, made once: verifying against it costs what
   a real verification costs, so an unknown e-mail answers no faster. */
static char *s_dummy_hash;
static pthread_once_t s_dummy_once = PTHREAD_ONCE_INIT;

static void
s_dummy_init (void)
{
    char pw[33];
    if (cm_random_hex (pw, 16) == 0) {
        s_dummy_hash = s_hash_password (NULL, pw);
    }
    OPENSSL_cleanse (pw, sizeof pw);
}

static void
s_spend_hash (const char *password)
{
    pthread_once (&s_dummy_once, s_dummy_init);
    if (s_dummy_hash) {
        const char *pw = password ? password : "";
        size_t len = strnlen (pw, AUTHD_PASSWORD_MAX);
        (void)argon2id_verify (s_dummy_hash, pw, len);
    }
}

/* ---- rows ------------------------------------------------------------ */

void
authd_user_from_row (const cm_db_res_t *res, int row, int col, authd_user_t *user)
{
    memset (user, 0, sizeof *user);
    const char *id = cm_db_res_get (res, row, col);
    const char *email = cm_db_res_get (res, row, col + 1);
    const char *role = cm_db_res_get (res, row, col + 2);
    const char *verified = cm_db_res_get (res, row, col + 3);
    const char *disabled = cm_db_res_get (res, row, col + 4);
    const char *created = cm_db_res_get (res, row, col + 5);
    snprintf (user->id, sizeof user->id, "%s", id ? id : "");
    snprintf (user->email, sizeof user->email, "%s", email ? email : "");
    snprintf (user->role, sizeof user->role, "%s", role ? role : "");
    user->verified = verified && strcmp (verified, "0") != 0;
    user->disabled = disabled && strcmp (disabled, "0") != 0;
    user->created_at = created ? strtoull (created, NULL, 10) : 0;
}

/* Inserts the user row inside the caller's transaction (or alone). */
static cm_status_t
s_insert_user (cm_db_t *db, const char *req, const authd_user_t *user, const char *hash,
               const char **err_code)
{
    char created[24];
    snprintf (created, sizeof created, "%llu", (unsigned long long)user->created_at);
    const char *p[] = {
        user->id, user->email, hash, user->role, user->verified ? "1" : "0", created};
    cm_db_status_t st = cm_db_exec (db,
                                    "INSERT INTO users (id, email, password_hash, role,"
                                    " verified, disabled, created_at)"
                                    " VALUES ($1, $2, $3, $4, $5, 0, $6)",
                                    6, p);
    if (st == CM_DB_CONSTRAINT) {
        *err_code = "email_taken";
        return CM_CONFLICT;
    }
    if (st != CM_DB_OK) {
        cm_error (req, "INSERT INTO users failed");
        *err_code = st == CM_DB_BUSY ? "database_busy" : "internal_error";
        return st == CM_DB_BUSY ? CM_UNAVAILABLE : CM_INTERNAL;
    }
    return CM_OK;
}

/* Validates and fills a new user (id, email, role, created_at) and hashes
   the password. */
static cm_status_t
s_prepare_user (const char *req, const char *email, const char *password,
                const char *role, bool verified, authd_user_t *user, char **hash_out,
                const char **err_code)
{
    memset (user, 0, sizeof *user);
    if (authd_email_normalize (email, user->email) != 0) {
        *err_code = "invalid_email";
        return CM_INVALID;
    }
    if (!s_password_ok (password)) {
        *err_code = "weak_password";
        return CM_INVALID;
    }
    if (!s_role_ok (role)) {
        *err_code = "invalid_role";
        return CM_INVALID;
    }
    snprintf (user->role, sizeof user->role, "%s", role);
    user->verified = verified;
    user->created_at = cm_now_s ();
    if (cm_random_hex (user->id, 16) != 0) {
        *err_code = "internal_error";
        return CM_INTERNAL;
    }
    *hash_out = s_hash_password (req, password);
    if (!*hash_out) {
        *err_code = "internal_error";
        return CM_INTERNAL;
    }
    return CM_OK;
}

cm_status_t
authd_user_create (cm_db_t *db, const char *email, const char *password, const char *role,
                   bool verified, char id_out[33], const char **err_code)
{
    const char *dummy_code = NULL;
    if (!err_code) {
        err_code = &dummy_code;
    }
    *err_code = NULL;
    const char *req = NULL; /* callers of this one (CLI) have no request id */
    authd_user_t user;
    char *hash = NULL;
    cm_status_t st =
        s_prepare_user (req, email, password, role, verified, &user, &hash, err_code);
    if (st == CM_OK) {
        st = s_insert_user (db, req, &user, hash, err_code);
    }
    if (st == CM_OK && id_out) {
        memcpy (id_out, user.id, 33);
    }
    free (hash);
    return st;
}

/* public_url + "/api/auth/verify?token=" + token, as {"link": ...} JSON. */
static char *
s_verify_vars (const char *public_url, const char *token)
{
    size_t ulen = strlen (public_url);
    while (ulen > 0 && public_url[ulen - 1] == '/') {
        ulen--;
    }
    char *link = NULL;
    if (asprintf (&link, "%.*s/api/auth/verify?token=%s", (int)ulen, public_url, token) <
        0) {
        return NULL;
    }
    json_t *vars = json_pack ("{s:s}", "link", link);
    char *out = vars ? json_dumps (vars, JSON_COMPACT) : NULL;
    json_decref (vars);
    cm_secret_free (link, strlen (link));
    return out;
}

/* A verification mail about to be queued: the token (its hash only is
   stored), the job id and the job's vars (the link: a secret). */
typedef struct {
    char token_hash[65];
    char job_id[33];
    char created_ms[24];
    char expires[24];
    char *vars;
} s_verify_job_t;

static void
s_verify_job_free (s_verify_job_t *job)
{
    if (job->vars) {
        cm_secret_free (job->vars, strlen (job->vars));
        job->vars = NULL;
    }
}

static cm_status_t
s_verify_job_prepare (const char *req, const char *public_url, unsigned verify_ttl_s,
                      s_verify_job_t *job, const char **err_code)
{
    memset (job, 0, sizeof *job);
    char token[64] = "";
    cm_status_t st = CM_OK;
    if (cm_random_token (token, sizeof token, 32) != 0 ||
        cm_random_hex (job->job_id, 16) != 0) {
        cm_error (req, "cm_random_token() failed");
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    cm_sha256_hex (job->token_hash, token, strlen (token));
    job->vars = s_verify_vars (public_url, token);
    if (!job->vars) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    /* Milliseconds: the relay sends jobs in this order. */
    snprintf (job->created_ms, sizeof job->created_ms, "%llu",
              (unsigned long long)cm_now_ms ());
    snprintf (job->expires, sizeof job->expires, "%llu",
              (unsigned long long)(cm_now_s () + verify_ttl_s));
cleanup:
    OPENSSL_cleanse (token, sizeof token);
    return st;
}

/* Inside the caller's transaction: the token row and the mail job. */
static cm_status_t
s_verify_job_insert (cm_db_t *db, const char *req, const char *user_id, const char *email,
                     const s_verify_job_t *job, const char **err_code)
{
    const char *pt[] = {job->token_hash, user_id, job->expires};
    const char *pj[] = {job->job_id, email, job->vars, job->created_ms, req ? req : ""};
    if (cm_db_exec (db,
                    "INSERT INTO verify_tokens (token_hash, user_id, expires_at)"
                    " VALUES ($1, $2, $3)",
                    3, pt) != CM_DB_OK ||
        cm_db_exec (db,
                    "INSERT INTO mail_outbox (id, template, recipient, vars, created_ms,"
                    " request_id) VALUES ($1, 'verify_email', $2, $3, $4, $5)",
                    5, pj) != CM_DB_OK) {
        cm_error (req, "INSERT of verification token / mail job failed");
        *err_code = "internal_error";
        return CM_INTERNAL;
    }
    return CM_OK;
}

cm_status_t
authd_user_signup (cm_db_t *db, const authd_origin_t *o, const char *email,
                   const char *password, const char *public_url, unsigned verify_ttl_s,
                   authd_user_t *user_out, const char **err_code)
{
    const char *req = o ? o->req_id : NULL;
    authd_user_t user;
    char *hash = NULL;
    s_verify_job_t job = {.vars = NULL};
    bool in_tx = false;
    *err_code = NULL;

    cm_status_t st =
        s_prepare_user (req, email, password, "client", false, &user, &hash, err_code);
    if (st != CM_OK) {
        goto cleanup;
    }
    st = s_verify_job_prepare (req, public_url, verify_ttl_s, &job, err_code);
    if (st != CM_OK) {
        goto cleanup;
    }
    /* User, token hash and mail job commit together or not at all: no
       account without its mail, no mail for an account that is not. */
    if (cm_db_begin (db) != 0) {
        st = CM_UNAVAILABLE, *err_code = "database_busy";
        goto cleanup;
    }
    in_tx = true;
    st = s_insert_user (db, req, &user, hash, err_code);
    if (st != CM_OK) {
        goto cleanup;
    }
    st = s_verify_job_insert (db, req, user.id, user.email, &job, err_code);
    if (st != CM_OK) {
        goto cleanup;
    }
    if (authd_audit (db, o, "signup", "ok", user.id, NULL) != 0) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    if (cm_db_commit (db) != 0) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    in_tx = false;
    *user_out = user;
    cm_info (req, "signup user=%s job=%s", user.id, job.job_id);
cleanup:
    if (in_tx) {
        cm_db_rollback (db);
    }
    s_verify_job_free (&job);
    free (hash);
    return st;
}

static bool
s_token_shape_ok (const char *token)
{
    if (!token || strnlen (token, AUTHD_VERIFY_TOKEN_LEN + 1) != AUTHD_VERIFY_TOKEN_LEN) {
        return false;
    }
    for (size_t i = 0; i < AUTHD_VERIFY_TOKEN_LEN; i++) {
        char c = token[i];
        if (!isalnum ((unsigned char)c) && c != '-' && c != '_') {
            return false;
        }
    }
    return true;
}

static cm_status_t
s_select_user (cm_db_t *db, const char *where_sql, const char *value, authd_user_t *user,
               char **hash_out)
{
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT " S_USER_COLS ", password_hash FROM users WHERE %s", where_sql);
    const char *p[] = {value};
    cm_db_res_t *res = cm_db_query (db, sql, 1, p);
    cm_status_t st = CM_OK;
    if (cm_db_res_status (res) != CM_DB_OK) {
        st = CM_INTERNAL;
    } else if (cm_db_res_rows (res) == 0) {
        st = CM_NOT_FOUND;
    } else {
        authd_user_from_row (res, 0, 0, user);
        if (hash_out) {
            const char *h = cm_db_res_get (res, 0, 6);
            *hash_out = h ? strdup (h) : NULL;
        }
    }
    cm_db_res_free (&res);
    return st;
}

cm_status_t
authd_user_verify (cm_db_t *db, const authd_origin_t *o, const char *token,
                   authd_user_t *user_out, const char **err_code)
{
    const char *req = o ? o->req_id : NULL;
    *err_code = NULL;
    if (!s_token_shape_ok (token)) {
        *err_code = "invalid_verification_token";
        return CM_INVALID;
    }
    char token_hash[65], now[24];
    cm_sha256_hex (token_hash, token, AUTHD_VERIFY_TOKEN_LEN);
    snprintf (now, sizeof now, "%llu", (unsigned long long)cm_now_s ());
    const char *p[] = {token_hash, now};

    if (cm_db_begin (db) != 0) {
        *err_code = "database_busy";
        return CM_UNAVAILABLE;
    }
    cm_status_t st = CM_OK;
    /* Claiming the token is one statement, so two concurrent uses of the
       same link cannot both succeed. */
    cm_db_res_t *res = cm_db_query (db,
                                    "UPDATE verify_tokens SET used_at = $2"
                                    " WHERE token_hash = $1 AND used_at IS NULL"
                                    " AND expires_at > $2 RETURNING user_id",
                                    2, p);
    if (cm_db_res_status (res) != CM_DB_OK) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    if (cm_db_res_rows (res) == 1) {
        const char *pu[] = {cm_db_res_get (res, 0, 0)};
        if (cm_db_exec (db, "UPDATE users SET verified = 1 WHERE id = $1", 1, pu) !=
                CM_DB_OK ||
            s_select_user (db, "id = $1", pu[0], user_out, NULL) != CM_OK ||
            authd_audit (db, o, "verify", "ok", user_out->id, NULL) != 0) {
            st = CM_INTERNAL, *err_code = "internal_error";
        }
        goto cleanup;
    }
    /* Not claimed: tell an expired link (ask for a new mail) from an
       unknown or already used one. */
    cm_db_res_free (&res);
    res =
        cm_db_query (db, "SELECT used_at FROM verify_tokens WHERE token_hash = $1", 1, p);
    if (cm_db_res_status (res) != CM_DB_OK) {
        st = CM_INTERNAL, *err_code = "internal_error";
    } else if (cm_db_res_rows (res) == 1 && cm_db_res_get (res, 0, 0) == NULL) {
        st = CM_GONE, *err_code = "verification_token_expired";
    } else {
        st = CM_INVALID, *err_code = "invalid_verification_token";
    }
cleanup:
    cm_db_res_free (&res);
    if (st == CM_OK) {
        if (cm_db_commit (db) != 0) {
            st = CM_INTERNAL, *err_code = "internal_error";
        }
    } else {
        cm_db_rollback (db);
    }
    if (st == CM_OK) {
        cm_info (req, "user=%s verified", user_out->id);
    }
    return st;
}

cm_status_t
authd_user_resend (cm_db_t *db, const char *req, const char *email,
                   const char *public_url, unsigned verify_ttl_s, bool *mail_queued,
                   const char **err_code)
{
    *err_code = NULL;
    *mail_queued = false;
    char norm[AUTHD_EMAIL_MAX + 1];
    if (authd_email_normalize (email, norm) != 0) {
        *err_code = "invalid_email";
        return CM_INVALID;
    }
    /* The token and job are made whatever the outcome, so an unknown or
       verified address costs what a real resend costs. */
    s_verify_job_t job = {.vars = NULL};
    cm_status_t st = s_verify_job_prepare (req, public_url, verify_ttl_s, &job, err_code);
    if (st != CM_OK) {
        return st;
    }
    uint64_t now_s = cm_now_s ();
    char now[24], day_ago[24], minute_ago[24];
    snprintf (now, sizeof now, "%llu", (unsigned long long)now_s);
    snprintf (day_ago, sizeof day_ago, "%llu",
              (unsigned long long)(now_s > 86400 ? now_s - 86400 : 0));
    snprintf (minute_ago, sizeof minute_ago, "%llu",
              (unsigned long long)(now_s > AUTHD_RESEND_INTERVAL_S
                                       ? now_s - AUTHD_RESEND_INTERVAL_S
                                       : 0));
    cm_db_res_t *res = NULL;
    authd_user_t user;
    bool in_tx = false;
    const char *why = NULL; /* for the log: why no mail */

    if (cm_db_begin (db) != 0) {
        st = CM_UNAVAILABLE, *err_code = "database_busy";
        goto cleanup;
    }
    in_tx = true;
    const char *pd[] = {day_ago};
    const char *pc[] = {norm, day_ago, minute_ago};
    if (cm_db_exec (db, "DELETE FROM verify_resends WHERE at <= $1", 1, pd) != CM_DB_OK) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    res = cm_db_query (
        db,
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN at > $3 THEN 1 ELSE 0 END), 0)"
        " FROM verify_resends WHERE email = $1 AND at > $2",
        3, pc);
    if (cm_db_res_status (res) != CM_DB_OK || cm_db_res_rows (res) != 1) {
        cm_error (req, "SELECT FROM verify_resends failed");
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    const char *day_count = cm_db_res_get (res, 0, 0);
    const char *minute_count = cm_db_res_get (res, 0, 1);
    bool allowed = day_count && minute_count &&
                   strtol (day_count, NULL, 10) < AUTHD_RESEND_PER_DAY &&
                   strtol (minute_count, NULL, 10) == 0;
    cm_db_res_free (&res);

    cm_status_t found = s_select_user (db, "email = $1", norm, &user, NULL);
    if (found == CM_INTERNAL) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    if (!allowed) {
        /* Refused ones are not counted: asking again cannot push the
           window out for ever. */
        why = "rate limited";
        goto commit;
    }
    const char *pr[] = {norm, now};
    if (cm_db_exec (db, "INSERT INTO verify_resends (email, at) VALUES ($1, $2)", 2,
                    pr) != CM_DB_OK) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    bool wanted = found == CM_OK && !user.verified && !user.disabled;
    /* Older unused links stop working: only the newest mail counts. For
       anyone else this touches no row, at the same cost. */
    const char *pi[] = {wanted ? user.id : "", now};
    if (cm_db_exec (db,
                    "UPDATE verify_tokens SET used_at = $2"
                    " WHERE user_id = $1 AND used_at IS NULL",
                    2, pi) != CM_DB_OK) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    if (!wanted) {
        why = found != CM_OK  ? "unknown address"
              : user.verified ? "already verified"
                              : "account disabled";
        goto commit;
    }
    st = s_verify_job_insert (db, req, user.id, norm, &job, err_code);
    if (st != CM_OK) {
        goto cleanup;
    }
commit:
    if (cm_db_commit (db) != 0) {
        st = CM_INTERNAL, *err_code = "internal_error";
        goto cleanup;
    }
    in_tx = false;
    if (why) {
        /* Never the address: the log must not say which ones exist. */
        cm_info (req, "verification resend: no mail (%s)", why);
    } else {
        *mail_queued = true;
        cm_info (req, "verification resend user=%s job=%s", user.id, job.job_id);
    }
cleanup:
    cm_db_res_free (&res);
    if (in_tx) {
        cm_db_rollback (db);
    }
    s_verify_job_free (&job);
    return st;
}

bool
authd_hash_needs_rehash (const char *encoded)
{
    unsigned v = 0, m = 0, t = 0, p = 0;
    /* $argon2id$v=19$m=19456,t=2,p=1$salt$hash; anything else (which
       argon2id_verify would not accept either) is left alone. */
    if (!encoded ||
        sscanf (encoded, "$argon2id$v=%u$m=%u,t=%u,p=%u$", &v, &m, &t, &p) != 4) {
        return false;
    }
    return m < S_ARGON2_M || t < S_ARGON2_T || p < S_ARGON2_P;
}

/* The password just verified against old_hash, whose parameters are
   weaker than today's: store a fresh hash. Best effort: the login goes
   on whatever happens (logged). The old hash in the WHERE keeps a
   password changed meanwhile from being overwritten. */
static void
s_rehash (cm_db_t *db, const char *req, const char *user_id, const char *old_hash,
          const char *password)
{
    char *fresh = s_hash_password (req, password);
    if (!fresh) {
        return;
    }
    const char *p[] = {user_id, fresh, old_hash};
    if (cm_db_exec (db,
                    "UPDATE users SET password_hash = $2"
                    " WHERE id = $1 AND password_hash = $3",
                    3, p) != CM_DB_OK) {
        cm_warn (req, "rehash of user=%s failed: kept the old hash", user_id);
    } else {
        cm_info (req, "user=%s password rehashed with current parameters", user_id);
    }
    free (fresh);
}

cm_status_t
authd_user_login (cm_db_t *db, const char *req, const char *email, const char *password,
                  authd_user_t *user_out, const char **err_code)
{
    *err_code = NULL;
    memset (user_out, 0, sizeof *user_out);
    /* The dummy hash is made on the first login whatever its outcome, so
       that first login does not tell known from unknown e-mails either. */
    pthread_once (&s_dummy_once, s_dummy_init);
    char norm[AUTHD_EMAIL_MAX + 1];
    size_t pwlen = password ? strnlen (password, AUTHD_PASSWORD_MAX + 1) : 0;
    authd_user_t user;
    char *hash = NULL;
    cm_status_t st = CM_NOT_FOUND;
    if (authd_email_normalize (email, norm) == 0 && pwlen > 0 &&
        pwlen <= AUTHD_PASSWORD_MAX) {
        st = s_select_user (db, "email = $1", norm, &user, &hash);
    }
    if (st == CM_INTERNAL) {
        *err_code = "internal_error";
        return st;
    }
    if (st != CM_OK || !hash) {
        /* Same work, same answer as a wrong password. */
        s_spend_hash (password);
        free (hash);
        *err_code = "invalid_credentials";
        return CM_UNAUTHENTICATED;
    }
    *user_out = user; /* the account named, for the caller's audit row */
    int rc = argon2id_verify (hash, password, pwlen);
    if (rc != ARGON2_OK) {
        if (rc != ARGON2_VERIFY_MISMATCH) {
            cm_error (req, "argon2id_verify() failed for user=%s: %s", user.id,
                      argon2_error_message (rc));
        }
        free (hash);
        *err_code = "invalid_credentials";
        return CM_UNAUTHENTICATED;
    }
    if (authd_hash_needs_rehash (hash)) {
        s_rehash (db, req, user.id, hash, password);
    }
    free (hash);
    /* Only a caller who knows the password learns the account's state. */
    if (user.disabled) {
        *err_code = "account_disabled";
        return CM_FORBIDDEN;
    }
    if (!user.verified) {
        *err_code = "email_not_verified";
        return CM_FORBIDDEN;
    }
    return CM_OK;
}

cm_status_t
authd_user_get (cm_db_t *db, const char *req, const char *id, authd_user_t *user_out,
                const char **err_code)
{
    *err_code = NULL;
    if (!cm_is_hex_id (id, 32)) {
        *err_code = "invalid_user_id";
        return CM_INVALID;
    }
    cm_status_t st = s_select_user (db, "id = $1", id, user_out, NULL);
    if (st == CM_NOT_FOUND) {
        *err_code = "user_not_found";
    } else if (st != CM_OK) {
        *err_code = "internal_error";
    }
    return st;
}
