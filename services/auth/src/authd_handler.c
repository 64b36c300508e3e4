/*  authd_handler -- one AuthRequest in, one AuthReply out.              */
#include "authd_handler.h"
#include "authd_policy.h"
#include "authd_throttle.h"
#include "cm_log.h"
#include "cm_role.h"
#include "cm_util.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct authd_handler_t {
    cm_db_t *db;
    cm_jwt_signer_t *signer;
    char *public_url;
    unsigned verify_ttl_s;
    authd_session_ttl_t ttl;
    uint64_t started_ms;
};

authd_handler_t *
authd_handler_new (cm_db_t *db, cm_jwt_signer_t *signer,
                   const authd_handler_config_t *config)
{
    authd_handler_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->db = db;
    self->signer = signer;
    self->public_url = strdup (config->public_url ? config->public_url : "");
    self->verify_ttl_s = config->verify_ttl_s;
    self->ttl.access_ttl_s = config->access_ttl_s;
    self->ttl.refresh_ttl_s = config->refresh_ttl_s;
    self->ttl.session_ttl_s = config->session_ttl_s;
    self->started_ms = cm_mono_ms ();
    if (!self->public_url) {
        authd_handler_destroy (&self);
    }
    return self;
}

void
authd_handler_destroy (authd_handler_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->public_url);
        free (*self_p);
        *self_p = NULL;
    }
}

void
authd_handler_set_signer (authd_handler_t *self, cm_jwt_signer_t *signer)
{
    self->signer = signer;
}

/* NULL for ROLE_NONE; an unknown value maps to a name every check
   refuses ("invalid_role"). */
static const char *
s_role_name (Safeshare__Role role)
{
    const char *name = cm_role_name (role);
    return name || role == SAFESHARE__ROLE__ROLE_NONE ? name : "unknown";
}

/* Human text for each stable code (never a secret, never a detail that
   would tell an unknown e-mail from a wrong password). */
static const char *
s_message (const char *code)
{
    static const struct {
        const char *code, *text;
    } table[] = {
        {"invalid_email", "not a valid e-mail address"},
        {"weak_password", "password must be 8 to 128 bytes and not a common one"},
        {"email_taken", "an account with this e-mail already exists"},
        {"invalid_verification_token", "unknown or already used verification link"},
        {"verification_token_expired", "verification link expired"},
        {"invalid_credentials", "wrong e-mail or password"},
        {"email_not_verified", "verify your e-mail address first"},
        {"account_disabled", "this account is disabled"},
        {"invalid_user_id", "user id must be 32 hex characters"},
        {"user_not_found", "no such user"},
        {"missing_body", "request has no body"},
        {"database_busy", "try again"},
        {"too_many_attempts", "too many failed logins: wait before trying again"},
        {"invalid_client_addr", "client address must be 1..64 printable characters"},
        {"invalid_refresh_token", "unknown, malformed or ended refresh token"},
        {"refresh_token_reused",
         "refresh token already used: the session was ended, log in again"},
        {"refresh_token_expired", "refresh token or session expired: log in again"},
        {"forbidden", "admins only"},
        {"invalid_role", "role must be client, ops or admin (as the request allows)"},
        {"invalid_limit", "limit must be 1..200"},
        {"invalid_cursor", "unknown cursor"},
        {"invalid_request", "malformed request"},
        {"last_admin", "this change would leave no enabled admin"},
    };
    for (size_t i = 0; code && i < sizeof table / sizeof table[0]; i++) {
        if (strcmp (table[i].code, code) == 0) {
            return table[i].text;
        }
    }
    return "internal error";
}

static void
s_fail (authd_reply_t *out, cm_status_t status, const char *code)
{
    out->reply.status = status;
    out->error.code = (char *)(code ? code : cm_status_code (status));
    out->error.message = (char *)s_message (code);
    out->reply.error = &out->error;
}

/* weak_password says which rule the password broke (static text, never
   the password). */
static void
s_fail_password (authd_reply_t *out, cm_status_t status, const char *code,
                 const char *password)
{
    s_fail (out, status, code);
    const char *why = NULL;
    if (code && strcmp (code, "weak_password") == 0) {
        why = authd_password_problem (password);
    }
    if (why) {
        out->error.message = (char *)why;
    }
}

/* out->user from out->u */
static Safeshare__User *
s_user (authd_reply_t *out)
{
    out->user.id = out->u.id;
    out->user.email = out->u.email;
    out->user.role = cm_role_parse (out->u.role);
    out->user.verified = out->u.verified;
    out->user.disabled = out->u.disabled;
    out->user.created_at = out->u.created_at;
    return &out->user;
}

static void
s_signup (authd_handler_t *self, const Safeshare__SignupRequest *rq,
          const authd_origin_t *o, authd_reply_t *out)
{
    const char *code = NULL;
    cm_status_t st =
        authd_user_signup (self->db, o, rq->email, rq->password, self->public_url,
                           self->verify_ttl_s, &out->u, &code);
    if (st != CM_OK) {
        s_fail_password (out, st, code, rq->password);
        return;
    }
    out->mail_queued = true;
    out->signup.user = s_user (out);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_SIGNUP;
    out->reply.signup = &out->signup;
}

static void
s_verify (authd_handler_t *self, const Safeshare__VerifyRequest *rq,
          const authd_origin_t *o, authd_reply_t *out)
{
    const char *code = NULL;
    cm_status_t st = authd_user_verify (self->db, o, rq->token, &out->u, &code);
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    out->verify.user = s_user (out);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_VERIFY;
    out->reply.verify = &out->verify;
}

/* A refused login, audited outside any transaction (nothing changed but
   the throttle counters). actor: the account when the password checked
   out; subject: the account's id, else the normalised e-mail. */
static void
s_login_refused (authd_handler_t *self, const authd_origin_t *o, const char *account,
                 const authd_user_t *user, bool password_ok, const char *code)
{
    authd_origin_t who = *o;
    who.actor = password_ok ? user->id : "";
    const char *subject = user->id[0] ? user->id : account;
    /* Logged by authd_audit on failure; the answer stands either way. */
    (void)authd_audit (self->db, &who, "login", code ? code : "internal_error", subject,
                       NULL);
}

/* LoginReply for LOGIN and REFRESH from out->tokens. */
static Safeshare__LoginReply *
s_login_reply (authd_handler_t *self, authd_reply_t *out)
{
    out->u = out->tokens.user;
    out->login.access = out->tokens.access;
    out->login.expires_in = self->ttl.access_ttl_s;
    out->login.user = s_user (out);
    out->login.refresh = out->tokens.refresh;
    out->login.refresh_expires_in = out->tokens.refresh_expires_in;
    return &out->login;
}

static void
s_login (authd_handler_t *self, const Safeshare__LoginRequest *rq,
         const authd_origin_t *o, authd_reply_t *out)
{
    const char *req = o->req_id;
    const char *code = NULL;
    /* Throttle keys: the normalised e-mail (none if malformed: that
       attempt fails without touching any account) and the address. */
    char account[AUTHD_EMAIL_MAX + 1] = "";
    if (authd_email_normalize (rq->email, account) != 0) {
        account[0] = '\0';
    }
    const char *addr = o->client_addr;
    uint64_t now_s = cm_now_s ();
    uint32_t retry_after = 0;
    /* Before any Argon2 work: a refused attempt costs one SELECT (and
       its audit row). */
    cm_status_t st =
        authd_throttle_check (self->db, req, account, addr, now_s, &retry_after);
    if (st == CM_RATE_LIMITED) {
        cm_info (req, "login refused: too_many_attempts retry_after_s=%u", retry_after);
        s_login_refused (self, o, account, &out->u, false, "too_many_attempts");
        s_fail (out, st, "too_many_attempts");
        out->error.retry_after_s = retry_after;
        return;
    }
    if (st != CM_OK) {
        s_fail (out, CM_UNAVAILABLE, "database_busy");
        return;
    }
    st = authd_user_login (self->db, req, rq->email, rq->password, &out->u, &code);
    if (st == CM_UNAUTHENTICATED) {
        /* A failure not counted would be a free guess: fail closed. */
        if (authd_throttle_fail (self->db, req, account, addr, cm_now_s ()) != 0) {
            s_fail (out, CM_UNAVAILABLE, "database_busy");
            return;
        }
    } else if (st == CM_OK && authd_throttle_clear (self->db, req, account) != 0) {
        s_fail (out, CM_UNAVAILABLE, "database_busy");
        return;
    }
    if (st != CM_OK) {
        cm_info (req, "login refused: %s", code ? code : "?");
        s_login_refused (self, o, account, &out->u, st == CM_FORBIDDEN, code);
        s_fail (out, st, code);
        return;
    }
    /* Session, first refresh token, audit row and the signed access
       token: one transaction. */
    authd_user_t user = out->u;
    st = authd_session_open (self->db, o, self->signer, &self->ttl, cm_now_s (), &user,
                             &out->tokens, &code);
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    cm_info (req, "login user=%s role=%s session=%s", out->tokens.user.id,
             out->tokens.user.role, out->tokens.session_id);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_LOGIN;
    out->reply.login = s_login_reply (self, out);
}

static void
s_refresh (authd_handler_t *self, const Safeshare__RefreshRequest *rq,
           const authd_origin_t *o, authd_reply_t *out)
{
    const char *code = NULL;
    cm_status_t st =
        authd_session_refresh (self->db, o, self->signer, &self->ttl, cm_now_s (),
                               rq->refresh, &out->tokens, &code);
    if (st != CM_OK) {
        cm_info (o->req_id, "refresh refused: %s", code ? code : "?");
        s_fail (out, st, code);
        return;
    }
    cm_debug (o->req_id, "refresh user=%s session=%s", out->tokens.user.id,
              out->tokens.session_id);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_REFRESH;
    out->reply.refresh = s_login_reply (self, out);
}

static void
s_logout (authd_handler_t *self, const Safeshare__LogoutRequest *rq,
          const authd_origin_t *o, authd_reply_t *out)
{
    const char *code = NULL;
    cm_status_t st = authd_session_logout (self->db, o, cm_now_s (), rq->refresh, &code);
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_LOGOUT;
    out->reply.logout = &out->logout;
}

static void
s_logout_all (authd_handler_t *self, const Safeshare__LogoutAllRequest *rq,
              const authd_origin_t *o, authd_reply_t *out)
{
    const char *code = NULL;
    uint64_t gen = 0;
    cm_status_t st = authd_session_logout_all (self->db, o, rq->user_id, &gen, &code);
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    out->logout_all.token_gen = gen;
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_LOGOUT_ALL;
    out->reply.logout_all = &out->logout_all;
}

static void
s_resend (authd_handler_t *self, const Safeshare__ResendRequest *rq, const char *req,
          authd_reply_t *out)
{
    const char *code = NULL;
    bool queued = false;
    cm_status_t st = authd_user_resend (self->db, req, rq->email, self->public_url,
                                        self->verify_ttl_s, &queued, &code);
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    out->mail_queued = queued;
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_RESEND;
    out->reply.resend = &out->resend;
}

static void
s_user_get (authd_handler_t *self, const Safeshare__UserGetRequest *rq, const char *req,
            authd_reply_t *out)
{
    const char *code = NULL;
    cm_status_t st = authd_user_get (self->db, req, rq->id, &out->u, &code);
    if (st == CM_OK &&
        authd_user_token_gen (self->db, out->u.id, &out->user_get.token_gen) != 0) {
        cm_error (req, "authd_user_token_gen() failed for user=%s", out->u.id);
        st = CM_INTERNAL, code = "internal_error";
    }
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    out->user_get.user = s_user (out);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_USER_GET;
    out->reply.user_get = &out->user_get;
}

/* The admin bodies: the actor is checked again here (the gateway
   checked its token's role), then acts as the audit row's actor. */
static bool
s_admin_ok (authd_handler_t *self, const char *actor_id, authd_origin_t *o,
            authd_reply_t *out)
{
    const char *code = NULL;
    cm_status_t st = authd_admin_require (self->db, actor_id ? actor_id : "", &code);
    if (st != CM_OK) {
        cm_info (o->req_id, "admin request refused: %s", code ? code : "?");
        s_fail (out, st, code);
        return false;
    }
    o->actor = actor_id;
    return true;
}

static void
s_user_create (authd_handler_t *self, const Safeshare__UserCreateRequest *rq,
               authd_origin_t *o, authd_reply_t *out)
{
    if (!s_admin_ok (self, rq->actor_id, o, out)) {
        return;
    }
    const char *code = NULL;
    const char *role = s_role_name (rq->role);
    cm_status_t st = authd_admin_create (self->db, o, rq->email, rq->password,
                                         role ? role : "", &out->u, &code);
    if (st != CM_OK) {
        s_fail_password (out, st, code, rq->password);
        return;
    }
    out->user_create.user = s_user (out);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_USER_CREATE;
    out->reply.user_create = &out->user_create;
}

static void
s_user_list (authd_handler_t *self, const Safeshare__UserListRequest *rq,
             authd_origin_t *o, authd_reply_t *out)
{
    if (!s_admin_ok (self, rq->actor_id, o, out)) {
        return;
    }
    /* Room for the largest page; authd_admin_list refuses larger limits. */
    size_t room = AUTHD_LIST_LIMIT_MAX;
    out->list = calloc (room, sizeof *out->list);
    out->list_pb = calloc (room, sizeof *out->list_pb);
    out->list_ptrs = calloc (room, sizeof *out->list_ptrs);
    if (!out->list || !out->list_pb || !out->list_ptrs) {
        s_fail (out, CM_INTERNAL, "internal_error");
        return;
    }
    const char *code = NULL;
    size_t n = 0;
    cm_status_t st = authd_admin_list (self->db, rq->limit, rq->cursor ? rq->cursor : "",
                                       rq->email ? rq->email : "", s_role_name (rq->role),
                                       out->list, &n, out->next_cursor, &code);
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    if (n > room) {
        n = room;
    }
    for (size_t i = 0; i < n; i++) {
        Safeshare__User *u = &out->list_pb[i];
        safeshare__user__init (u);
        u->id = out->list[i].id;
        u->email = out->list[i].email;
        u->role = cm_role_parse (out->list[i].role);
        u->verified = out->list[i].verified;
        u->disabled = out->list[i].disabled;
        u->created_at = out->list[i].created_at;
        out->list_ptrs[i] = u;
    }
    out->user_list.n_users = n;
    out->user_list.users = out->list_ptrs;
    out->user_list.next_cursor = out->next_cursor;
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_USER_LIST;
    out->reply.user_list = &out->user_list;
}

static void
s_user_update (authd_handler_t *self, const Safeshare__UserUpdateRequest *rq,
               authd_origin_t *o, authd_reply_t *out)
{
    if (!s_admin_ok (self, rq->actor_id, o, out)) {
        return;
    }
    const char *code = NULL;
    int disabled = rq->change_disabled ? (rq->disabled ? 1 : 0) : -1;
    cm_status_t st = authd_admin_update (self->db, o, rq->id ? rq->id : "", disabled,
                                         s_role_name (rq->role), &out->u, &code);
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    out->user_update.user = s_user (out);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_USER_UPDATE;
    out->reply.user_update = &out->user_update;
}

static void
s_keys (authd_handler_t *self, const char *req, authd_reply_t *out)
{
    if (authd_keys_list (self->db, cm_now_s (), self->ttl.access_ttl_s, out->key_rows,
                         CM_JWT_MAX_KEYS, &out->n_keys) != 0) {
        s_fail (out, CM_UNAVAILABLE, "database_busy");
        return;
    }
    for (size_t i = 0; i < out->n_keys; i++) {
        Safeshare__JwtKey *k = &out->key_pb[i];
        safeshare__jwt_key__init (k);
        k->kid = out->key_rows[i].kid;
        k->public_pem = out->key_rows[i].public_pem;
        k->not_after = out->key_rows[i].not_after;
        out->key_ptrs[i] = k;
    }
    if (out->n_keys == 0) {
        cm_warn (req, "KEYS: jwt_keys holds no usable key");
    }
    out->keys.n_keys = out->n_keys;
    out->keys.keys = out->key_ptrs;
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_KEYS;
    out->reply.keys = &out->keys;
}

/* meta.client_addr: "" (not from a client) or 1..64 printable ASCII
   without blanks, as the gateway writes an address. */
static bool
s_client_addr_ok (const char *addr)
{
    size_t n = strnlen (addr, AUTHD_CLIENT_ADDR_MAX + 1);
    if (n > AUTHD_CLIENT_ADDR_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)addr[i];
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    return true;
}

void
authd_handler_handle (authd_handler_t *self, const Safeshare__AuthRequest *request,
                      const char *req_id, authd_reply_t *out)
{
    memset (out, 0, sizeof *out);
    safeshare__auth_reply__init (&out->reply);
    safeshare__error__init (&out->error);
    safeshare__user__init (&out->user);
    safeshare__health_reply__init (&out->health);
    safeshare__signup_reply__init (&out->signup);
    safeshare__verify_reply__init (&out->verify);
    safeshare__login_reply__init (&out->login);
    safeshare__user_get_reply__init (&out->user_get);
    safeshare__resend_reply__init (&out->resend);
    safeshare__logout_reply__init (&out->logout);
    safeshare__logout_all_reply__init (&out->logout_all);
    safeshare__user_create_reply__init (&out->user_create);
    safeshare__user_list_reply__init (&out->user_list);
    safeshare__user_update_reply__init (&out->user_update);
    safeshare__keys_reply__init (&out->keys);
    out->reply.status = CM_OK;

    const char *addr =
        request->meta && request->meta->client_addr ? request->meta->client_addr : "";
    authd_origin_t o = {req_id ? req_id : "", addr, ""};
    if (request->body_case != SAFESHARE__AUTH_REQUEST__BODY_HEALTH &&
        !s_client_addr_ok (addr)) {
        cm_warn (req_id, "meta.client_addr refused: too long or not printable");
        s_fail (out, CM_INVALID, "invalid_client_addr");
        return;
    }
    switch (request->body_case) {
        case SAFESHARE__AUTH_REQUEST__BODY_HEALTH:
            out->health.service = "auth";
            out->health.version = SAFESHARE_VERSION;
            out->health.uptime_ms = cm_mono_ms () - self->started_ms;
            out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_HEALTH;
            out->reply.health = &out->health;
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_SIGNUP:
            s_signup (self, request->signup, &o, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_VERIFY:
            s_verify (self, request->verify, &o, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_LOGIN:
            s_login (self, request->login, &o, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_USER_GET:
            s_user_get (self, request->user_get, req_id, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_RESEND:
            s_resend (self, request->resend, req_id, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_REFRESH:
            s_refresh (self, request->refresh, &o, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_LOGOUT:
            s_logout (self, request->logout, &o, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_LOGOUT_ALL:
            s_logout_all (self, request->logout_all, &o, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_USER_CREATE:
            s_user_create (self, request->user_create, &o, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_USER_LIST:
            s_user_list (self, request->user_list, &o, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_USER_UPDATE:
            s_user_update (self, request->user_update, &o, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_KEYS:
            s_keys (self, req_id, out);
            break;
        default:
            cm_warn (req_id, "request without a body");
            s_fail (out, CM_INVALID, "missing_body");
            break;
    }
}

void
authd_reply_release (authd_reply_t *out)
{
    /* The reply's pointers into these go with them. */
    authd_tokens_wipe (&out->tokens);
    OPENSSL_cleanse (&out->login, sizeof out->login);
    free (out->list);
    free (out->list_pb);
    free (out->list_ptrs);
    out->list = NULL;
    out->list_pb = NULL;
    out->list_ptrs = NULL;
    authd_keys_free (out->key_rows, out->n_keys);
    out->n_keys = 0;
}
