/*  authd_handler -- one AuthRequest in, one AuthReply out.              */
#include "authd_handler.h"
#include "authd_policy.h"
#include "authd_throttle.h"
#include "cm_log.h"
#include "cm_util.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct authd_handler_t {
    cm_db_t *db;
    cm_jwt_signer_t *signer;
    char *public_url;
    unsigned access_ttl_s;
    unsigned verify_ttl_s;
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
    self->access_ttl_s = config->access_ttl_s;
    self->verify_ttl_s = config->verify_ttl_s;
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

static Safeshare__Role
s_role_enum (const char *role)
{
    if (strcmp (role, "client") == 0) {
        return SAFESHARE__ROLE__ROLE_CLIENT;
    }
    if (strcmp (role, "ops") == 0) {
        return SAFESHARE__ROLE__ROLE_OPS;
    }
    if (strcmp (role, "admin") == 0) {
        return SAFESHARE__ROLE__ROLE_ADMIN;
    }
    return SAFESHARE__ROLE__ROLE_NONE;
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
        {"invalid_client_addr", "client address is too long"},
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
    out->user.role = s_role_enum (out->u.role);
    out->user.verified = out->u.verified;
    out->user.disabled = out->u.disabled;
    out->user.created_at = out->u.created_at;
    return &out->user;
}

static void
s_signup (authd_handler_t *self, const Safeshare__SignupRequest *rq, const char *req,
          authd_reply_t *out)
{
    const char *code = NULL;
    cm_status_t st =
        authd_user_signup (self->db, req, rq->email, rq->password, self->public_url,
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
s_verify (authd_handler_t *self, const Safeshare__VerifyRequest *rq, const char *req,
          authd_reply_t *out)
{
    const char *code = NULL;
    cm_status_t st = authd_user_verify (self->db, req, rq->token, &out->u, &code);
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    out->verify.user = s_user (out);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_VERIFY;
    out->reply.verify = &out->verify;
}

static void
s_login (authd_handler_t *self, const Safeshare__LoginRequest *rq, const char *req,
         authd_reply_t *out)
{
    const char *code = NULL;
    /* Throttle keys: the normalised e-mail (none if malformed: that
       attempt fails without touching any account) and the address. */
    char account[AUTHD_EMAIL_MAX + 1] = "";
    if (authd_email_normalize (rq->email, account) != 0) {
        account[0] = '\0';
    }
    const char *addr = rq->client_addr ? rq->client_addr : "";
    if (strnlen (addr, AUTHD_CLIENT_ADDR_MAX + 1) > AUTHD_CLIENT_ADDR_MAX) {
        s_fail (out, CM_INVALID, "invalid_client_addr");
        return;
    }
    uint64_t now_s = cm_now_s ();
    uint32_t retry_after = 0;
    /* Before any Argon2 work: a refused attempt costs one SELECT. */
    cm_status_t st =
        authd_throttle_check (self->db, req, account, addr, now_s, &retry_after);
    if (st == CM_RATE_LIMITED) {
        cm_info (req, "login refused: too_many_attempts retry_after_s=%u", retry_after);
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
        s_fail (out, st, code);
        return;
    }
    out->access = cm_jwt_sign (self->signer, out->u.id, out->u.role, cm_now_s (),
                               self->access_ttl_s);
    if (!out->access) {
        cm_error (req, "cm_jwt_sign() failed for user=%s", out->u.id);
        s_fail (out, CM_INTERNAL, "internal_error");
        return;
    }
    cm_info (req, "login user=%s role=%s", out->u.id, out->u.role);
    out->login.access = out->access;
    out->login.expires_in = self->access_ttl_s;
    out->login.user = s_user (out);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_LOGIN;
    out->reply.login = &out->login;
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
    if (st != CM_OK) {
        s_fail (out, st, code);
        return;
    }
    out->user_get.user = s_user (out);
    out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_USER_GET;
    out->reply.user_get = &out->user_get;
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
    out->reply.status = CM_OK;

    switch (request->body_case) {
        case SAFESHARE__AUTH_REQUEST__BODY_HEALTH:
            out->health.service = "auth";
            out->health.version = SAFESHARE_VERSION;
            out->health.uptime_ms = cm_mono_ms () - self->started_ms;
            out->reply.body_case = SAFESHARE__AUTH_REPLY__BODY_HEALTH;
            out->reply.health = &out->health;
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_SIGNUP:
            s_signup (self, request->signup, req_id, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_VERIFY:
            s_verify (self, request->verify, req_id, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_LOGIN:
            s_login (self, request->login, req_id, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_USER_GET:
            s_user_get (self, request->user_get, req_id, out);
            break;
        case SAFESHARE__AUTH_REQUEST__BODY_RESEND:
            s_resend (self, request->resend, req_id, out);
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
    if (out->access) {
        cm_secret_free (out->access, strlen (out->access));
        out->access = NULL;
    }
    OPENSSL_cleanse (&out->login, sizeof out->login);
}
