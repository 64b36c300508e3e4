/*  gw_api -- the REST endpoints (see gw_api.h).                         */
#include "gw_api.h"
#include "gw_download.h"
#include "gw_intake.h"
#include "gw_json.h"
#include "gw_openapi.h"
#include "gw_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "auth.pb-c.h"
#include "storage.pb-c.h"
#include "cm_log.h"
#include "cm_role.h"
#include "cm_util.h"

/* readyz asks every service at once, each must answer within this. */
#define S_READY_TIMEOUT_MS   1000
#define S_LIST_LIMIT_MAX     200
#define S_CURSOR_MAX         256
#define S_LINK_DOWNLOADS_MAX 10000
/* Longest "refresh" passed on (auth's are 43 chars; the rest is auth's
   to judge).                                                          */
#define S_REFRESH_MAX 256
/* Longest "email" passed on to auth (it allows 254 after trimming). */
#define S_EMAIL_FIELD_MAX 1024

/* ---- helpers --------------------------------------------------------- */

static int s_bad_reply (gw_req_t *req, ProtobufCMessage *reply, const char *what);

static bool
s_role_is (gw_req_t *req, const char *role)
{
    return req->authed && strcmp (req->claims.role, role) == 0;
}

/* Ops and admins: they see every file (docs/api.md, "Who sees what"). */
static bool
s_staff (gw_req_t *req)
{
    return s_role_is (req, "ops") || s_role_is (req, "admin");
}

/* Whether the caller may see the file at all: staff every file, anyone
   else only files whose visibility is "clients".                     */
static bool
s_sees (gw_req_t *req, const Safeshare__FileInfo *file)
{
    return s_staff (req) ||
           (file->visibility && strcmp (file->visibility, "clients") == 0);
}

/* A call to auth on behalf of this request: its client's address (the
   forwarded one behind a trusted proxy, see gw_client_resolve) goes in
   Meta for auth's throttling and audit. As gw_rpc_call.               */
static cm_status_t
s_auth_rpc (gw_req_t *req, Safeshare__AuthRequest *r, Safeshare__AuthReply **reply)
{
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    meta.client_addr = req->client.addr;
    r->meta = &meta;
    cm_status_t rc = gw_rpc_call (req->rpc, GW_SVC_AUTH, req->req_id, &r->base, NULL,
                                  &safeshare__auth_reply__descriptor, 0,
                                  (ProtobufCMessage **)reply, NULL);
    r->meta = NULL;
    return rc;
}

/* USER_GET of the token's subject, as s_auth_rpc. */
static cm_status_t
s_user_get (gw_req_t *req, Safeshare__AuthReply **reply)
{
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__UserGetRequest get = SAFESHARE__USER_GET_REQUEST__INIT;
    get.id = req->claims.sub;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_USER_GET;
    r.user_get = &get;
    return s_auth_rpc (req, &r, reply);
}

/* gw_keys_fetch_fn: auth's KEYS answer into the verifier. arg: the
   gw_req_t whose token needs them.                                    */
static int
s_keys_fetch (gw_keys_t *keys, void *arg)
{
    gw_req_t *req = arg;
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__KeysRequest get = SAFESHARE__KEYS_REQUEST__INIT;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_KEYS;
    r.keys = &get;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_rpc (req, &r, &reply) != CM_OK) {
        return -1; /* logged by gw_rpc_call */
    }
    int rc = -1;
    const char *code = NULL;
    cm_status_t status = gw_rpc_status (&reply->base, &code, NULL);
    if (status != CM_OK) {
        cm_error (req->req_id, "KEYS failed: %s %s", cm_status_name (status),
                  code ? code : "");
    } else if (reply->body_case != SAFESHARE__AUTH_REPLY__BODY_KEYS) {
        cm_error (req->req_id, "KEYS: malformed reply");
    } else {
        cm_jwt_key_t set[CM_JWT_MAX_KEYS];
        size_t n = reply->keys->n_keys;
        n = n > CM_JWT_MAX_KEYS ? CM_JWT_MAX_KEYS : n;
        for (size_t i = 0; i < n; i++) {
            const Safeshare__JwtKey *k = reply->keys->keys[i];
            set[i] = (cm_jwt_key_t){k->kid, k->public_pem, k->not_after};
        }
        if (gw_keys_install (keys, set, n) != 0) {
            cm_error (req->req_id,
                      "gw_keys_install() failed: auth listed %zu keys, none or an "
                      "unusable one; keeping the previous set",
                      reply->keys->n_keys);
        } else {
            cm_info (req->req_id, "JWT keys fetched from auth: %zu, current kid=%s", n,
                     set[0].kid);
            rc = 0;
        }
    }
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return rc;
}

/* The token's subject as auth knows it now (gw_users, else USER_GET):
   0, or -1 after answering 401 invalid_token (no such user), 403
   account_disabled, 401 token_revoked or 503 (auth unreachable and no
   fresh entry).                                                       */
static int
s_user_check (gw_req_t *req)
{
    gw_user_state_t state;
    uint64_t now = cm_mono_ms ();
    if (!gw_users_get (req->users, req->claims.sub, now, &state)) {
        uint64_t epoch = gw_users_epoch (req->users);
        Safeshare__AuthReply *reply = NULL;
        cm_status_t rc = s_user_get (req, &reply);
        if (rc != CM_OK) {
            return gw_reply_service (req, rc, NULL), -1;
        }
        cm_status_t status = gw_rpc_status (&reply->base, NULL, NULL);
        if (status == CM_NOT_FOUND) {
            protobuf_c_message_free_unpacked (&reply->base, NULL);
            cm_info (req->req_id, "token rejected: unknown_user");
            return gw_reply_error (req, 401, "invalid_token",
                                   "the access token is invalid or expired"),
                   -1;
        }
        if (status != CM_OK) {
            gw_reply_service (req, CM_OK, &reply->base);
            protobuf_c_message_free_unpacked (&reply->base, NULL);
            return -1;
        }
        if (reply->body_case != SAFESHARE__AUTH_REPLY__BODY_USER_GET ||
            !reply->user_get->user) {
            return s_bad_reply (req, &reply->base, "USER_GET"), -1;
        }
        memset (&state, 0, sizeof state);
        state.token_gen = reply->user_get->token_gen;
        state.disabled = reply->user_get->user->disabled;
        snprintf (state.role, sizeof state.role, "%s",
                  gw_role_name (reply->user_get->user->role));
        protobuf_c_message_free_unpacked (&reply->base, NULL);
        gw_users_put (req->users, req->claims.sub, &state, now, epoch);
    }
    /* Disabled first: disabling may also bump the generation. */
    if (state.disabled) {
        cm_info (req->req_id, "token rejected: account_disabled user=%s",
                 req->claims.sub);
        return gw_reply_error (req, 403, "account_disabled", "this account is disabled"),
               -1;
    }
    if (state.token_gen != req->claims.gen) {
        cm_info (req->req_id, "token rejected: token_revoked user=%s", req->claims.sub);
        return gw_reply_error (req, 401, "token_revoked",
                               "the access token was revoked; log in again"),
               -1;
    }
    return 0;
}

/* Verifies the bearer token and its subject's state. 0, or -1 after
   answering (401, 403 account_disabled, 503).                        */
static int
s_authenticate (gw_req_t *req)
{
    const char *header = mg_get_header (req->conn, "Authorization");
    /* Set for any 401 below: an unread body must not be taken for the
       next request on this connection.                               */
    req->www_authenticate = true;
    req->must_close = gw_has_body (req);
    if (header == NULL || *header == '\0') {
        return gw_reply_error (req, 401, "missing_token",
                               "an Authorization: Bearer token is required"),
               -1;
    }
    if (strncasecmp (header, "Bearer ", 7) != 0) {
        return gw_reply_error (req, 401, "invalid_token",
                               "the Authorization scheme must be Bearer"),
               -1;
    }
    const char *token = header + 7;
    while (*token == ' ') {
        token++;
    }
    const char *reason = "too_long";
    cm_status_t rc = CM_UNAUTHENTICATED;
    if (strlen (token) <= CM_JWT_MAX_LEN) {
        rc = gw_keys_verify (req->keys, token, cm_now_s (), s_keys_fetch, req,
                             &req->claims, &reason);
    }
    if (rc == CM_UNAVAILABLE) {
        return gw_reply_error (req, 503, "service_unavailable",
                               "the token signing keys could not be had from auth"),
               -1;
    }
    if (rc != CM_OK) {
        cm_info (req->req_id, "token rejected: %s", reason);
        return gw_reply_error (req, 401, "invalid_token",
                               "the access token is invalid or expired"),
               -1;
    }
    if (s_user_check (req) != 0) {
        return -1;
    }
    req->authed = true;
    req->www_authenticate = false;
    req->must_close = false;
    return 0;
}

/* Routes for admins only: 0, or -1 after 403 forbidden (the body, if
   any, left unread). auth checks the actor again.                    */
static int
s_require_admin (gw_req_t *req)
{
    if (s_role_is (req, "admin")) {
        return 0;
    }
    req->must_close = gw_has_body (req);
    return gw_reply_error (req, 403, "forbidden", "only admins may manage users"), -1;
}

/* Drops a request body or answer that held secrets (a password, a
   refresh or access token): its strings wiped, then freed.           */
static void
s_json_drop (json_t **body)
{
    if (body == NULL || *body == NULL) {
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach (*body, key, v)
    {
        if (json_is_string (v)) {
            OPENSSL_cleanse ((char *)json_string_value (v), json_string_length (v));
        }
    }
    json_decref (*body);
    *body = NULL;
}

/* Required string field of 1..max bytes. 0, or -1 after answering 400. */
static int
s_field_string (gw_req_t *req, json_t *body, const char *name, size_t max,
                const char **out)
{
    json_t *v = json_object_get (body, name);
    if (!json_is_string (v) || json_string_length (v) == 0 ||
        json_string_length (v) > max) {
        gw_reply_error (req, 400, "invalid_request",
                        "field '%s' must be a string of 1..%zu bytes", name, max);
        return -1;
    }
    *out = json_string_value (v);
    return 0;
}

/* Optional integer field within [min, max], def when absent. */
static int
s_field_int (gw_req_t *req, json_t *body, const char *name, json_int_t def,
             json_int_t min, json_int_t max, json_int_t *out)
{
    json_t *v = json_object_get (body, name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (!json_is_integer (v) || json_integer_value (v) < min ||
        json_integer_value (v) > max) {
        gw_reply_error (req, 400, "invalid_request",
                        "field '%s' must be an integer in %lld..%lld", name,
                        (long long)min, (long long)max);
        return -1;
    }
    *out = json_integer_value (v);
    return 0;
}

/* The paging parameters of every list (docs/api.md "Lists"): 'limit'
   1..S_LIST_LIMIT_MAX (0 when absent) and 'cursor' ("" when absent).
   0, or -1 after answering 400 invalid_limit or invalid_cursor.      */
static int
s_query_page (gw_req_t *req, uint32_t *limit, char cursor[S_CURSOR_MAX + 1])
{
    char limit_s[16];
    long v = 0;
    int found = gw_query (req, "limit", limit_s, sizeof limit_s);
    if (found > 0) {
        char *end = NULL;
        v = strtol (limit_s, &end, 10);
        found =
            end != limit_s && *end == '\0' && v >= 1 && v <= S_LIST_LIMIT_MAX ? 1 : -1;
    }
    if (found < 0) {
        gw_reply_error (req, 400, "invalid_limit",
                        "query parameter 'limit' must be 1..%d", S_LIST_LIMIT_MAX);
        return -1;
    }
    *limit = (uint32_t)v;
    found = gw_query (req, "cursor", cursor, S_CURSOR_MAX + 1);
    if (found < 0) {
        gw_reply_error (req, 400, "invalid_cursor",
                        "query parameter 'cursor' is malformed");
        return -1;
    }
    if (found == 0) {
        *cursor = '\0';
    }
    return 0;
}

/* After a call (rc as gw_rpc_call): on anything but an OK reply answers
   the error, frees *reply and returns -1. The caller frees *reply.    */
static int
s_checked (gw_req_t *req, cm_status_t rc, ProtobufCMessage **reply)
{
    if (rc != CM_OK || gw_rpc_status (*reply, NULL, NULL) != CM_OK) {
        gw_reply_service (req, rc, *reply);
        if (*reply) {
            protobuf_c_message_free_unpacked (*reply, NULL);
            *reply = NULL;
        }
        return -1;
    }
    return 0;
}

/* Calls a service, as s_checked. */
static int
s_call (gw_req_t *req, gw_svc_t svc, ProtobufCMessage *request,
        const ProtobufCMessageDescriptor *desc, ProtobufCMessage **reply)
{
    return s_checked (
        req,
        gw_rpc_call (req->rpc, svc, req->req_id, request, NULL, desc, 0, reply, NULL),
        reply);
}

static int
s_bad_reply (gw_req_t *req, ProtobufCMessage *reply, const char *what)
{
    cm_error (req->req_id, "%s: malformed reply", what);
    if (reply) {
        protobuf_c_message_free_unpacked (reply, NULL);
    }
    return gw_reply_error (req, 502, "bad_gateway", "a backend service answered badly");
}

/* 200 {"<name>": items, "next_cursor": next or null} of a list answer
   (items NULL: an entry was malformed, 502). Frees reply.            */
static int
s_reply_page (gw_req_t *req, ProtobufCMessage *reply, const char *what, const char *name,
              json_t *items, const char *next)
{
    if (items == NULL) {
        return s_bad_reply (req, reply, what);
    }
    json_t *out = json_pack ("{s:o, s:o}", name, items, "next_cursor",
                             next && *next ? json_string (next) : json_null ());
    int status = gw_reply_owned (req, 200, out);
    protobuf_c_message_free_unpacked (reply, NULL);
    return status;
}

/* ---- auth ------------------------------------------------------------ */

/* Calls auth (s_auth_rpc), as s_checked. */
static int
s_auth_call (gw_req_t *req, Safeshare__AuthRequest *r, Safeshare__AuthReply **reply)
{
    return s_checked (req, s_auth_rpc (req, r, reply), (ProtobufCMessage **)reply);
}

/* s_auth_call for a request that carries a secret of *body (a password,
   a refresh token): the body is dropped as soon as it is sent.        */
static int
s_auth_call_secret (gw_req_t *req, Safeshare__AuthRequest *r, json_t **body,
                    Safeshare__AuthReply **reply)
{
    int rc = s_auth_call (req, r, reply);
    s_json_drop (body);
    return rc;
}

/* The user of an auth answer with status (user NULL: the answer was
   malformed, 502, `what` names the call in the log). Frees reply.    */
static int
s_reply_user (gw_req_t *req, int status, Safeshare__AuthReply *reply,
              const Safeshare__User *user, const char *what)
{
    if (user == NULL) {
        return s_bad_reply (req, &reply->base, what);
    }
    int rc = gw_reply_owned (req, status, gw_json_user (user));
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return rc;
}

/* {"email", "password"} of signup and login. On success *body holds
   both strings (the caller drops it as soon as they are sent: it holds
   the password); on failure the error reply is set.                   */
static int
s_credentials (gw_req_t *req, json_t **body, const char **email, const char **password)
{
    if (gw_body_json (req, body) != 0) {
        return -1;
    }
    if (s_field_string (req, *body, "email", 254, email) != 0 ||
        s_field_string (req, *body, "password", 1024, password) != 0) {
        s_json_drop (body);
        return -1;
    }
    return 0;
}

static int
s_signup (gw_req_t *req)
{
    json_t *body = NULL;
    const char *email, *password;
    if (s_credentials (req, &body, &email, &password) != 0) {
        return req->status;
    }
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__SignupRequest signup = SAFESHARE__SIGNUP_REQUEST__INIT;
    signup.email = (char *)email;
    signup.password = (char *)password;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_SIGNUP;
    r.signup = &signup;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_call_secret (req, &r, &body, &reply) != 0) {
        return req->status;
    }
    return s_reply_user (req, 201, reply,
                         reply->body_case == SAFESHARE__AUTH_REPLY__BODY_SIGNUP
                             ? reply->signup->user
                             : NULL,
                         "SIGNUP");
}

static int
s_verify (gw_req_t *req)
{
    char token[GW_PARAM_MAX + 2];
    int found = gw_query (req, "token", token, sizeof token);
    if (found <= 0 || !gw_token_plausible (token)) {
        return gw_reply_error (req, 400, "invalid_request",
                               "query parameter 'token' is missing or malformed");
    }
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__VerifyRequest verify = SAFESHARE__VERIFY_REQUEST__INIT;
    verify.token = token;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_VERIFY;
    r.verify = &verify;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_call (req, &r, &reply) != 0) {
        return req->status;
    }
    if (reply->body_case != SAFESHARE__AUTH_REPLY__BODY_VERIFY || !reply->verify->user) {
        return s_bad_reply (req, &reply->base, "VERIFY");
    }
    const char *email = reply->verify->user->email;
    int status = gw_reply_owned (
        req, 200, json_pack ("{s:b, s:s}", "verified", 1, "email", email ? email : ""));
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return status;
}

/* Always 202 for a well-formed address, whether a mail goes out or not
   (auth decides; the answer must not tell which addresses exist). */
static int
s_resend (gw_req_t *req)
{
    json_t *body = NULL;
    const char *email;
    if (gw_body_json (req, &body) != 0) {
        return req->status;
    }
    /* A missing or non-string field is a malformed request; what the
       string holds is auth's to judge (it trims and normalises), except
       sizes no address can have. */
    json_t *v = json_object_get (body, "email");
    if (!json_is_string (v)) {
        json_decref (body);
        return gw_reply_error (req, 400, "invalid_request",
                               "field 'email' must be a string");
    }
    if (json_string_length (v) == 0 || json_string_length (v) > S_EMAIL_FIELD_MAX) {
        json_decref (body);
        return gw_reply_error (req, 400, "invalid_email", "not a valid e-mail address");
    }
    email = json_string_value (v);
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__ResendRequest resend = SAFESHARE__RESEND_REQUEST__INIT;
    resend.email = (char *)email;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_RESEND;
    r.resend = &resend;
    Safeshare__AuthReply *reply = NULL;
    int rc = s_auth_call (req, &r, &reply);
    json_decref (body);
    if (rc != 0) {
        return req->status;
    }
    if (reply->body_case != SAFESHARE__AUTH_REPLY__BODY_RESEND) {
        return s_bad_reply (req, &reply->base, "RESEND");
    }
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return gw_reply_owned (req, 202, json_pack ("{s:s}", "status", "accepted"));
}

/* The token pair of a LOGIN or REFRESH answer:
   {"access", "refresh", "token_type", "expires_in", "refresh_expires_in"}.
   Frees reply; the tokens are wiped from it and from the JSON.       */
static int
s_reply_tokens (gw_req_t *req, Safeshare__AuthReply *reply, Safeshare__LoginReply *tokens,
                const char *what)
{
    bool ok = tokens && tokens->access && *tokens->access && tokens->refresh &&
              *tokens->refresh;
    json_t *out = NULL;
    int status;
    if (!ok) {
        cm_error (req->req_id, "%s: malformed reply", what);
        status =
            gw_reply_error (req, 502, "bad_gateway", "a backend service answered badly");
    } else {
        out = json_pack ("{s:s, s:s, s:s, s:I, s:I}", "access", tokens->access, "refresh",
                         tokens->refresh, "token_type", "Bearer", "expires_in",
                         (json_int_t)tokens->expires_in, "refresh_expires_in",
                         (json_int_t)tokens->refresh_expires_in);
        status = out ? gw_reply_json (req, 200, out)
                     : gw_reply_error (req, 502, "bad_gateway",
                                       "a backend service answered badly");
    }
    s_json_drop (&out);
    if (tokens && tokens->access) {
        OPENSSL_cleanse (tokens->access, strlen (tokens->access));
    }
    if (tokens && tokens->refresh) {
        OPENSSL_cleanse (tokens->refresh, strlen (tokens->refresh));
    }
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return status;
}

static int
s_login (gw_req_t *req)
{
    json_t *body = NULL;
    const char *email, *password;
    if (s_credentials (req, &body, &email, &password) != 0) {
        return req->status;
    }
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__LoginRequest login = SAFESHARE__LOGIN_REQUEST__INIT;
    login.email = (char *)email;
    login.password = (char *)password;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGIN;
    r.login = &login;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_call_secret (req, &r, &body, &reply) != 0) {
        return req->status;
    }
    return s_reply_tokens (
        req, reply,
        reply->body_case == SAFESHARE__AUTH_REPLY__BODY_LOGIN ? reply->login : NULL,
        "LOGIN");
}

/* {"refresh": "..."} of refresh and logout. 0 with *body (drop it with
   s_json_drop as soon as the token is sent) and *token; -1 after 400.  */
static int
s_refresh_field (gw_req_t *req, json_t **body, const char **token)
{
    if (gw_body_json (req, body) != 0) {
        return -1;
    }
    json_t *v = json_object_get (*body, "refresh");
    /* A NUL inside would cut the token short on the wire. */
    if (!json_is_string (v) || json_string_length (v) > S_REFRESH_MAX ||
        strlen (json_string_value (v)) != json_string_length (v)) {
        s_json_drop (body);
        gw_reply_error (req, 400, "invalid_request",
                        "field 'refresh' must be a string of at most %d bytes",
                        S_REFRESH_MAX);
        return -1;
    }
    *token = json_string_value (v);
    return 0;
}

static int
s_refresh (gw_req_t *req)
{
    json_t *body = NULL;
    const char *token;
    if (s_refresh_field (req, &body, &token) != 0) {
        return req->status;
    }
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__RefreshRequest refresh = SAFESHARE__REFRESH_REQUEST__INIT;
    refresh.refresh = (char *)token;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_REFRESH;
    r.refresh = &refresh;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_call_secret (req, &r, &body, &reply) != 0) {
        return req->status;
    }
    return s_reply_tokens (
        req, reply,
        reply->body_case == SAFESHARE__AUTH_REPLY__BODY_REFRESH ? reply->refresh : NULL,
        "REFRESH");
}

static int
s_logout (gw_req_t *req)
{
    json_t *body = NULL;
    const char *token;
    if (s_refresh_field (req, &body, &token) != 0) {
        return req->status;
    }
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__LogoutRequest logout = SAFESHARE__LOGOUT_REQUEST__INIT;
    logout.refresh = (char *)token;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGOUT;
    r.logout = &logout;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_call_secret (req, &r, &body, &reply) != 0) {
        return req->status;
    }
    if (reply->body_case != SAFESHARE__AUTH_REPLY__BODY_LOGOUT) {
        return s_bad_reply (req, &reply->base, "LOGOUT");
    }
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return gw_reply_empty (req, 204);
}

/* Every session of the caller ends and every access token of the
   caller, this one included, is refused from now on: at once here (the
   cache entry goes), within SAFESHARE_USER_CACHE_TTL elsewhere.       */
static int
s_logout_all (gw_req_t *req)
{
    json_t *body = NULL;
    if (gw_body_json (req, &body) != 0) {
        return req->status;
    }
    size_t fields = json_object_size (body);
    json_decref (body);
    if (fields != 0) {
        return gw_reply_error (req, 400, "invalid_request",
                               "the body must be empty or {}");
    }
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__LogoutAllRequest all = SAFESHARE__LOGOUT_ALL_REQUEST__INIT;
    all.user_id = req->claims.sub;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGOUT_ALL;
    r.logout_all = &all;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_call (req, &r, &reply) != 0) {
        return req->status;
    }
    gw_users_drop (req->users, req->claims.sub);
    if (reply->body_case != SAFESHARE__AUTH_REPLY__BODY_LOGOUT_ALL) {
        return s_bad_reply (req, &reply->base, "LOGOUT_ALL");
    }
    cm_info (req->req_id, "logged out everywhere user=%s token_gen=%llu", req->claims.sub,
             (unsigned long long)reply->logout_all->token_gen);
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return gw_reply_empty (req, 204);
}

static int
s_me (gw_req_t *req)
{
    Safeshare__AuthReply *reply = NULL;
    cm_status_t rc = s_user_get (req, &reply);
    if (s_checked (req, rc, (ProtobufCMessage **)&reply) != 0) {
        return req->status;
    }
    return s_reply_user (req, 200, reply,
                         reply->body_case == SAFESHARE__AUTH_REPLY__BODY_USER_GET
                             ? reply->user_get->user
                             : NULL,
                         "USER_GET");
}

/* ---- users (admin) ----------------------------------------------------- */

static int
s_user_create (gw_req_t *req)
{
    if (s_require_admin (req) != 0) {
        return req->status;
    }
    json_t *body = NULL;
    const char *email, *password;
    if (s_credentials (req, &body, &email, &password) != 0) {
        return req->status;
    }
    json_t *v = json_object_get (body, "role");
    if (!json_is_string (v)) {
        s_json_drop (&body);
        return gw_reply_error (req, 400, "invalid_request",
                               "field 'role' must be \"ops\" or \"admin\"");
    }
    Safeshare__Role role = cm_role_parse (json_string_value (v));
    if (role != SAFESHARE__ROLE__ROLE_OPS && role != SAFESHARE__ROLE__ROLE_ADMIN) {
        s_json_drop (&body);
        return gw_reply_error (req, 400, "invalid_role",
                               "role must be \"ops\" or \"admin\" (clients sign up)");
    }
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__UserCreateRequest create = SAFESHARE__USER_CREATE_REQUEST__INIT;
    create.actor_id = req->claims.sub;
    create.email = (char *)email;
    create.password = (char *)password;
    create.role = role;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_USER_CREATE;
    r.user_create = &create;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_call_secret (req, &r, &body, &reply) != 0) {
        return req->status;
    }
    return s_reply_user (req, 201, reply,
                         reply->body_case == SAFESHARE__AUTH_REPLY__BODY_USER_CREATE
                             ? reply->user_create->user
                             : NULL,
                         "USER_CREATE");
}

static int
s_users_list (gw_req_t *req)
{
    if (s_require_admin (req) != 0) {
        return req->status;
    }
    uint32_t limit;
    char cursor[S_CURSOR_MAX + 1];
    char email[S_EMAIL_FIELD_MAX + 1];
    char role_s[16];
    if (s_query_page (req, &limit, cursor) != 0) {
        return req->status;
    }
    int has_email = gw_query (req, "email", email, sizeof email);
    if (has_email < 0) {
        return gw_reply_error (req, 400, "invalid_request",
                               "query parameter 'email' is longer than %d bytes",
                               S_EMAIL_FIELD_MAX);
    }
    Safeshare__Role role = SAFESHARE__ROLE__ROLE_NONE;
    int found = gw_query (req, "role", role_s, sizeof role_s);
    if (found > 0 && *role_s) {
        role = cm_role_parse (role_s);
    }
    if (found < 0 || (found > 0 && *role_s && role == SAFESHARE__ROLE__ROLE_NONE)) {
        return gw_reply_error (req, 400, "invalid_role",
                               "query parameter 'role' must be client, ops or admin");
    }
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__UserListRequest list = SAFESHARE__USER_LIST_REQUEST__INIT;
    list.actor_id = req->claims.sub;
    list.limit = limit;
    list.cursor = cursor;
    list.email = has_email > 0 ? email : "";
    list.role = role;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_USER_LIST;
    r.user_list = &list;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_call (req, &r, &reply) != 0) {
        return req->status;
    }
    if (reply->body_case != SAFESHARE__AUTH_REPLY__BODY_USER_LIST) {
        return s_bad_reply (req, &reply->base, "USER_LIST");
    }
    json_t *users = json_array ();
    for (size_t i = 0; users && i < reply->user_list->n_users; i++) {
        json_t *item = gw_json_user (reply->user_list->users[i]);
        if (item == NULL) {
            json_decref (users);
            users = NULL;
        } else {
            json_array_append_new (users, item);
        }
    }
    return s_reply_page (req, &reply->base, "USER_LIST", "users", users,
                         reply->user_list->next_cursor);
}

/* PATCH {"disabled": bool} and/or {"role": "client"|"ops"|"admin"};
   any other field is refused, so a typo never passes for a no-op.    */
static int
s_user_update (gw_req_t *req)
{
    if (s_require_admin (req) != 0) {
        return req->status;
    }
    if (!req->route.param_valid) {
        req->must_close = gw_has_body (req);
        return gw_reply_error (req, 404, "user_not_found", "no such user");
    }
    json_t *body = NULL;
    if (gw_body_json (req, &body) != 0) {
        return req->status;
    }
    bool change_disabled = false;
    bool disabled = false;
    Safeshare__Role role = SAFESHARE__ROLE__ROLE_NONE;
    const char *bad = NULL; /* the invalid_request message, if any */
    bool bad_role = false;
    const char *key;
    json_t *v;
    json_object_foreach (body, key, v)
    {
        if (strcmp (key, "disabled") == 0) {
            if (!json_is_boolean (v)) {
                bad = "field 'disabled' must be true or false";
                break;
            }
            change_disabled = true;
            disabled = json_is_true (v);
        } else if (strcmp (key, "role") == 0) {
            if (!json_is_string (v)) {
                bad = "field 'role' must be a string";
                break;
            }
            role = cm_role_parse (json_string_value (v));
            if (role == SAFESHARE__ROLE__ROLE_NONE) {
                bad_role = true;
                break;
            }
        } else {
            /* The name is not echoed: it is the client's text. */
            bad = "unknown field: only 'disabled' and 'role' may be changed";
            break;
        }
    }
    json_decref (body);
    if (bad) {
        return gw_reply_error (req, 400, "invalid_request", "%s", bad);
    }
    if (bad_role) {
        return gw_reply_error (req, 400, "invalid_role",
                               "role must be client, ops or admin");
    }
    if (!change_disabled && role == SAFESHARE__ROLE__ROLE_NONE) {
        return gw_reply_error (req, 400, "invalid_request",
                               "give 'disabled' (true or false) and/or 'role'");
    }
    Safeshare__AuthRequest r = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__UserUpdateRequest update = SAFESHARE__USER_UPDATE_REQUEST__INIT;
    update.actor_id = req->claims.sub;
    update.id = req->route.param;
    update.change_disabled = change_disabled;
    update.disabled = disabled;
    update.role = role;
    r.body_case = SAFESHARE__AUTH_REQUEST__BODY_USER_UPDATE;
    r.user_update = &update;
    Safeshare__AuthReply *reply = NULL;
    if (s_auth_call (req, &r, &reply) != 0) {
        return req->status;
    }
    /* Changed: this gateway forgets what it knew at once. */
    gw_users_drop (req->users, req->route.param);
    const Safeshare__User *user =
        reply->body_case == SAFESHARE__AUTH_REPLY__BODY_USER_UPDATE
            ? reply->user_update->user
            : NULL;
    if (user) {
        cm_info (req->req_id, "user updated user=%s by=%s", req->route.param,
                 req->claims.sub);
    }
    return s_reply_user (req, 200, reply, user, "USER_UPDATE");
}

/* ---- files ----------------------------------------------------------- */

static int
s_storage_call (gw_req_t *req, Safeshare__StorageRequest *r,
                Safeshare__StorageReply **reply)
{
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    r->meta = &meta;
    return s_call (req, GW_SVC_STORAGE, &r->base, &safeshare__storage_reply__descriptor,
                   (ProtobufCMessage **)reply);
}

static int
s_file_not_found (gw_req_t *req)
{
    return gw_reply_error (req, 404, "file_not_found", "no such file");
}

/* FILE_GET of a file the caller may see (s_sees; else 404
   file_not_found); 0 with *reply (caller frees) or -1 after answering. */
static int
s_file_get (gw_req_t *req, const char *id, Safeshare__StorageReply **reply)
{
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__FileGetRequest get = SAFESHARE__FILE_GET_REQUEST__INIT;
    get.file_id = (char *)id;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_GET;
    r.file_get = &get;
    if (s_storage_call (req, &r, reply) != 0) {
        return -1;
    }
    if ((*reply)->body_case != SAFESHARE__STORAGE_REPLY__BODY_FILE_GET ||
        !(*reply)->file_get->file) {
        s_bad_reply (req, &(*reply)->base, "FILE_GET");
        *reply = NULL;
        return -1;
    }
    if (!s_sees (req, (*reply)->file_get->file)) {
        /* 404, not 403: a client learns nothing of staff files.       */
        protobuf_c_message_free_unpacked (&(*reply)->base, NULL);
        *reply = NULL;
        s_file_not_found (req);
        return -1;
    }
    return 0;
}

/* Whether the caller owns the route's file (s_file_get: one it may
   see). 0 with *owner, or -1 after answering.                        */
static int
s_file_owned (gw_req_t *req, bool *owner)
{
    Safeshare__StorageReply *reply = NULL;
    if (s_file_get (req, req->route.param, &reply) != 0) {
        return -1;
    }
    const char *owner_id = reply->file_get->file->owner_id;
    *owner = owner_id && strcmp (owner_id, req->claims.sub) == 0;
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return 0;
}

static int
s_files_list (gw_req_t *req)
{
    uint32_t limit;
    char cursor[S_CURSOR_MAX + 1];
    if (s_query_page (req, &limit, cursor) != 0) {
        return req->status;
    }
    char name[GW_NAME_MAX + 1];
    int found = gw_query (req, "name", name, sizeof name);
    if (found < 0) {
        return gw_reply_error (req, 400, "invalid_request",
                               "query parameter 'name' must be at most %d bytes",
                               GW_NAME_MAX);
    }
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__FileListRequest list = SAFESHARE__FILE_LIST_REQUEST__INIT;
    list.limit = limit;
    list.cursor = cursor;
    list.name = found > 0 ? name : "";
    list.clients_only = !s_staff (req);
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_LIST;
    r.file_list = &list;
    Safeshare__StorageReply *reply = NULL;
    if (s_storage_call (req, &r, &reply) != 0) {
        return req->status;
    }
    if (reply->body_case != SAFESHARE__STORAGE_REPLY__BODY_FILE_LIST) {
        return s_bad_reply (req, &reply->base, "FILE_LIST");
    }
    json_t *files = json_array ();
    for (size_t i = 0; files && i < reply->file_list->n_files; i++) {
        json_t *item = gw_json_file (reply->file_list->files[i]);
        if (item == NULL) {
            json_decref (files);
            files = NULL;
        } else {
            json_array_append_new (files, item);
        }
    }
    return s_reply_page (req, &reply->base, "FILE_LIST", "files", files,
                         reply->file_list->next_cursor);
}

static int
s_file_meta (gw_req_t *req)
{
    if (!req->route.param_valid) {
        return s_file_not_found (req);
    }
    Safeshare__StorageReply *reply = NULL;
    if (s_file_get (req, req->route.param, &reply) != 0) {
        return req->status;
    }
    int status = gw_reply_owned (req, 200, gw_json_file (reply->file_get->file));
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return status;
}

static int
s_file_delete (gw_req_t *req)
{
    /* Roles first: a client learns nothing about which ids exist. */
    if (!s_role_is (req, "admin") && !s_role_is (req, "ops")) {
        return gw_reply_error (req, 403, "forbidden", "your role may not delete files");
    }
    if (!req->route.param_valid) {
        return s_file_not_found (req);
    }
    bool owner = false;
    if (s_file_owned (req, &owner) != 0) {
        return req->status;
    }
    if (!s_role_is (req, "admin") && !owner) {
        return gw_reply_error (req, 403, "forbidden",
                               "ops may delete only their own files");
    }
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__FileDeleteRequest del = SAFESHARE__FILE_DELETE_REQUEST__INIT;
    del.file_id = req->route.param;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_DELETE;
    r.file_delete = &del;
    Safeshare__StorageReply *reply = NULL;
    if (s_storage_call (req, &r, &reply) != 0) {
        return req->status;
    }
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    cm_info (req->req_id, "file deleted file=%s by=%s", req->route.param,
             req->claims.sub);
    return gw_reply_owned (req, 200,
                           json_pack ("{s:s, s:b, s:b}", "id", req->route.param,
                                      "deleted", 1, "key_destroyed", 1));
}

/* The body of PATCH /api/files/{id}: "name" (a display name as an
   upload would make it) and/or "visibility", nothing else. 0, or -1
   after answering 400.                                                */
static int
s_update_fields (gw_req_t *req, json_t *body, char name[GW_NAME_MAX + 1],
                 char visibility[16])
{
    const char *key;
    json_t *v;
    name[0] = visibility[0] = '\0';
    json_object_foreach (body, key, v)
    {
        if (strcmp (key, "name") != 0 && strcmp (key, "visibility") != 0) {
            return gw_reply_error (req, 400, "invalid_request",
                                   "unknown field; only 'name' and 'visibility' change"),
                   -1;
        }
    }
    json_t *n = json_object_get (body, "name");
    json_t *vis = json_object_get (body, "visibility");
    if (!n && !vis) {
        return gw_reply_error (req, 400, "invalid_request",
                               "nothing to change: give 'name' and/or 'visibility'"),
               -1;
    }
    if (n) {
        char clean[GW_NAME_MAX + 1];
        const char *want = json_is_string (n) ? json_string_value (n) : NULL;
        size_t len = want ? json_string_length (n) : 0;
        /* The name an upload of it would get, or refused: no paths, no
           control characters, valid UTF-8, 1..255 bytes.              */
        if (want && len <= GW_NAME_MAX && strlen (want) == len) {
            gw_name_clean (want, clean);
        }
        if (!want || len == 0 || len > GW_NAME_MAX || strlen (want) != len ||
            strcmp (clean, want) != 0) {
            return gw_reply_error (
                       req, 400, "invalid_name",
                       "'name' must be 1..%d bytes of UTF-8 without '/', '\\' "
                       "or control characters",
                       GW_NAME_MAX),
                   -1;
        }
        memcpy (name, want, len + 1);
    }
    if (vis) {
        const char *want = json_is_string (vis) ? json_string_value (vis) : "";
        if (strcmp (want, "clients") != 0 && strcmp (want, "staff") != 0) {
            return gw_reply_error (req, 400, "invalid_visibility",
                                   "'visibility' must be \"clients\" or \"staff\""),
                   -1;
        }
        snprintf (visibility, 16, "%s", want);
    }
    return 0;
}

static int
s_file_update (gw_req_t *req)
{
    /* Roles first: a client learns nothing about which ids exist. */
    if (!s_staff (req)) {
        req->must_close = gw_has_body (req);
        return gw_reply_error (req, 403, "forbidden", "your role may not change files");
    }
    if (!req->route.param_valid) {
        req->must_close = gw_has_body (req);
        return s_file_not_found (req);
    }
    json_t *body = NULL;
    if (gw_body_json (req, &body) != 0) {
        return req->status;
    }
    char name[GW_NAME_MAX + 1], visibility[16];
    int bad = s_update_fields (req, body, name, visibility);
    json_decref (body);
    if (bad) {
        return req->status;
    }
    bool owner = false;
    if (s_file_owned (req, &owner) != 0) {
        return req->status;
    }
    if (!s_role_is (req, "admin") && !owner) {
        return gw_reply_error (req, 403, "forbidden",
                               "ops may change only their own files");
    }
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__FileUpdateRequest update = SAFESHARE__FILE_UPDATE_REQUEST__INIT;
    update.file_id = req->route.param;
    update.name = name;
    update.visibility = visibility;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_UPDATE;
    r.file_update = &update;
    Safeshare__StorageReply *reply = NULL;
    if (s_storage_call (req, &r, &reply) != 0) {
        return req->status;
    }
    if (reply->body_case != SAFESHARE__STORAGE_REPLY__BODY_FILE_UPDATE ||
        !reply->file_update->file) {
        return s_bad_reply (req, &reply->base, "FILE_UPDATE");
    }
    cm_info (req->req_id, "file updated file=%s by=%s%s%s", req->route.param,
             req->claims.sub, visibility[0] ? " visibility=" : "", visibility);
    int status = gw_reply_owned (req, 200, gw_json_file (reply->file_update->file));
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return status;
}

static int
s_file_content (gw_req_t *req)
{
    if (!req->route.param_valid) {
        return s_file_not_found (req);
    }
    Safeshare__StorageReply *reply = NULL;
    if (s_file_get (req, req->route.param, &reply) != 0) {
        return req->status;
    }
    int status = gw_download_send (req, reply->file_get->file);
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return status;
}

static int
s_link_create (gw_req_t *req)
{
    if (!req->route.param_valid) {
        return s_file_not_found (req);
    }
    json_t *body = NULL;
    if (gw_body_json (req, &body) != 0) {
        return req->status;
    }
    json_int_t expires_in, max_downloads;
    int bad = s_field_int (req, body, "expires_in", 3600, 1,
                           (json_int_t)req->settings->link_max_ttl, &expires_in) ||
              s_field_int (req, body, "max_downloads", 1, 1, S_LINK_DOWNLOADS_MAX,
                           &max_downloads);
    json_t *sio = json_object_get (body, "signed_in_only");
    if (!bad && sio && !json_is_boolean (sio)) {
        gw_reply_error (req, 400, "invalid_request",
                        "field 'signed_in_only' must be true or false");
        bad = 1;
    }
    bool signed_in_only = sio && json_is_true (sio);
    json_decref (body);
    if (bad) {
        return req->status;
    }
    Safeshare__StorageReply *reply = NULL;
    if (!s_staff (req)) {
        /* Staff see every file; anyone else only what s_sees allows.  */
        if (s_file_get (req, req->route.param, &reply) != 0) {
            return req->status;
        }
        protobuf_c_message_free_unpacked (&reply->base, NULL);
        reply = NULL;
    }
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__LinkCreateRequest create = SAFESHARE__LINK_CREATE_REQUEST__INIT;
    create.file_id = req->route.param;
    create.creator_id = req->claims.sub;
    create.expires_in = (uint64_t)expires_in;
    create.max_downloads = (uint32_t)max_downloads;
    create.signed_in_only = signed_in_only;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_CREATE;
    r.link_create = &create;
    if (s_storage_call (req, &r, &reply) != 0) {
        return req->status;
    }
    Safeshare__LinkCreateReply *link =
        reply->body_case == SAFESHARE__STORAGE_REPLY__BODY_LINK_CREATE
            ? reply->link_create
            : NULL;
    if (!link || !link->token || !gw_token_plausible (link->token) || !link->link_id) {
        return s_bad_reply (req, &reply->base, "LINK_CREATE");
    }
    char expires[32];
    gw_iso8601 (link->expires_at, expires);
    size_t url_len = strlen (req->settings->public_url) + strlen (link->token) + 32;
    char *url = malloc (url_len);
    if (url == NULL) {
        /* The link exists but its token is not shown: it is unusable and
           expires on its own.                                          */
        cm_error (req->req_id, "malloc() failed for the link url link=%s", link->link_id);
        protobuf_c_message_free_unpacked (&reply->base, NULL);
        return gw_reply_error (req, 503, "service_unavailable", "out of memory");
    }
    snprintf (url, url_len, "%s/api/download/%s", req->settings->public_url, link->token);
    int status = gw_reply_owned (
        req, 201,
        json_pack ("{s:s, s:s, s:s, s:s, s:I, s:b}", "id", link->link_id, "token",
                   link->token, "url", url, "expires_at", expires, "max_downloads",
                   max_downloads, "signed_in_only", signed_in_only ? 1 : 0));
    free (url);
    cm_info (req->req_id, "link created file=%s link=%s", req->route.param,
             link->link_id);
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return status;
}

/* GET /api/files/{id}/links: admins see every link of the file, ops
   every link of files they own, anyone else only the links they made. */
static int
s_links_list (gw_req_t *req)
{
    if (!req->route.param_valid) {
        return s_file_not_found (req);
    }
    bool owner = false;
    if (s_file_owned (req, &owner) != 0) {
        return req->status;
    }
    bool all = s_role_is (req, "admin") || (s_role_is (req, "ops") && owner);
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__LinkListRequest list = SAFESHARE__LINK_LIST_REQUEST__INIT;
    list.file_id = req->route.param;
    list.creator_id = all ? "" : req->claims.sub;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_LIST;
    r.link_list = &list;
    Safeshare__StorageReply *reply = NULL;
    if (s_storage_call (req, &r, &reply) != 0) {
        return req->status;
    }
    if (reply->body_case != SAFESHARE__STORAGE_REPLY__BODY_LINK_LIST) {
        return s_bad_reply (req, &reply->base, "LINK_LIST");
    }
    json_t *links = json_array ();
    for (size_t i = 0; links && i < reply->link_list->n_links; i++) {
        json_t *item = gw_json_link (reply->link_list->links[i]);
        if (item == NULL) {
            json_decref (links);
            links = NULL;
        } else {
            json_array_append_new (links, item);
        }
    }
    if (links == NULL) {
        return s_bad_reply (req, &reply->base, "LINK_LIST");
    }
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return gw_reply_owned (req, 200, json_pack ("{s:o}", "links", links));
}

/* DELETE /api/links/{id}: the link's creator, the file's owner or an
   admin; 404 link_not_found when the caller cannot see the file.     */
static int
s_link_revoke (gw_req_t *req)
{
    if (!req->route.param_valid) {
        return gw_reply_error (req, 404, "link_not_found", "no such link");
    }
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__LinkGetRequest get = SAFESHARE__LINK_GET_REQUEST__INIT;
    get.link_id = req->route.param;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_GET;
    r.link_get = &get;
    Safeshare__StorageReply *reply = NULL;
    if (s_storage_call (req, &r, &reply) != 0) {
        return req->status;
    }
    if (reply->body_case != SAFESHARE__STORAGE_REPLY__BODY_LINK_GET ||
        !reply->link_get->link || !reply->link_get->file) {
        return s_bad_reply (req, &reply->base, "LINK_GET");
    }
    const Safeshare__LinkInfo *link = reply->link_get->link;
    const Safeshare__FileInfo *file = reply->link_get->file;
    bool sees = s_sees (req, file);
    bool may = s_role_is (req, "admin") ||
               (link->creator_id && strcmp (link->creator_id, req->claims.sub) == 0) ||
               (file->owner_id && strcmp (file->owner_id, req->claims.sub) == 0);
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    if (!sees) {
        return gw_reply_error (req, 404, "link_not_found", "no such link");
    }
    if (!may) {
        return gw_reply_error (req, 403, "forbidden",
                               "only the link's creator, the file's owner or an admin "
                               "may revoke it");
    }
    Safeshare__LinkRevokeRequest revoke = SAFESHARE__LINK_REVOKE_REQUEST__INIT;
    revoke.link_id = req->route.param;
    r = (Safeshare__StorageRequest)SAFESHARE__STORAGE_REQUEST__INIT;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_REVOKE;
    r.link_revoke = &revoke;
    if (s_storage_call (req, &r, &reply) != 0) {
        return req->status;
    }
    if (reply->body_case != SAFESHARE__STORAGE_REPLY__BODY_LINK_REVOKE ||
        !reply->link_revoke->link) {
        return s_bad_reply (req, &reply->base, "LINK_REVOKE");
    }
    cm_info (req->req_id, "link revoked link=%s by=%s", req->route.param,
             req->claims.sub);
    int status = gw_reply_owned (req, 200, gw_json_link (reply->link_revoke->link));
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return status;
}

/* LINK_REDEEM of the route's token as the caller is signed in or not;
   peek: checked only, no download spent. 0 with *reply (its file
   present; caller frees), or -1 after answering.                      */
static int
s_redeem (gw_req_t *req, bool peek, Safeshare__StorageReply **reply)
{
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__LinkRedeemRequest redeem = SAFESHARE__LINK_REDEEM_REQUEST__INIT;
    redeem.token = req->route.param;
    redeem.signed_in = req->authed;
    redeem.peek = peek;
    r.meta = &meta;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_LINK_REDEEM;
    r.link_redeem = &redeem;
    cm_status_t rc = gw_rpc_call (req->rpc, GW_SVC_STORAGE, req->req_id, &r.base, NULL,
                                  &safeshare__storage_reply__descriptor, 0,
                                  (ProtobufCMessage **)reply, NULL);
    if (rc == CM_OK &&
        gw_rpc_status (&(*reply)->base, NULL, NULL) == CM_UNAUTHENTICATED) {
        req->www_authenticate = true; /* link_requires_login: sign in */
    }
    if (s_checked (req, rc, (ProtobufCMessage **)reply) != 0) {
        return -1;
    }
    if ((*reply)->body_case != SAFESHARE__STORAGE_REPLY__BODY_LINK_REDEEM ||
        !(*reply)->link_redeem->file) {
        s_bad_reply (req, &(*reply)->base, "LINK_REDEEM");
        *reply = NULL;
        return -1;
    }
    return 0;
}

/* GET /api/download/{token}. A bearer token is optional (a link may be
   for signed-in users only), but one that is sent must be valid. A
   conditional or ranged request peeks first: 304 and 416 are answered
   from the peek and spend nothing. Anything that sends bytes -- 200,
   and 206 too (else ranges would give unlimited downloads) -- spends
   one, in the one atomic redeem, before the first byte.              */
static int
s_download (gw_req_t *req)
{
    if (!req->route.param_valid) {
        return gw_reply_error (req, 404, "link_not_found", "no such link");
    }
    const char *authz = mg_get_header (req->conn, "Authorization");
    if (authz && *authz && s_authenticate (req) != 0) {
        return req->status;
    }
    Safeshare__StorageReply *reply = NULL;
    if (mg_get_header (req->conn, "If-None-Match") ||
        gw_header_count (req, "Range", NULL) > 0) {
        if (s_redeem (req, true, &reply) != 0) {
            return req->status;
        }
        int answered = gw_download_conditional (req, reply->link_redeem->file);
        protobuf_c_message_free_unpacked (&reply->base, NULL);
        reply = NULL;
        if (answered != 0) {
            return answered;
        }
    }
    if (s_redeem (req, false, &reply) != 0) {
        return req->status;
    }
    int status = gw_download_send (req, reply->link_redeem->file);
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return status;
}

/* ---- health ----------------------------------------------------------- */

static int
s_readyz (gw_req_t *req)
{
    bool ok[GW_SVC_COUNT];
    uint64_t latency[GW_SVC_COUNT];
    gw_rpc_health_all (req->rpc, req->req_id, S_READY_TIMEOUT_MS, ok, latency);
    json_t *services = json_object ();
    bool all = true;
    for (int i = 0; i < GW_SVC_COUNT; i++) {
        json_object_set_new (
            services, gw_svc_name ((gw_svc_t)i),
            json_pack ("{s:b, s:I}", "ok", ok[i], "latency_ms", (json_int_t)latency[i]));
        all = all && ok[i];
    }
    json_t *out = json_pack ("{s:s, s:o}", "status", all ? "ready" : "unavailable",
                             "services", services);
    return gw_reply_owned (req, all ? 200 : 503, out);
}

int
gw_api_handle (gw_req_t *req)
{
    if (req->route.auth && s_authenticate (req) != 0) {
        return req->status;
    }
    switch (req->route.id) {
        case GW_ROUTE_HEALTHZ:
            return gw_reply_owned (req, 200, json_pack ("{s:s}", "status", "ok"));
        case GW_ROUTE_READYZ:
            return s_readyz (req);
        case GW_ROUTE_SIGNUP:
            return s_signup (req);
        case GW_ROUTE_VERIFY:
            return s_verify (req);
        case GW_ROUTE_RESEND:
            return s_resend (req);
        case GW_ROUTE_LOGIN:
            return s_login (req);
        case GW_ROUTE_ME:
            return s_me (req);
        case GW_ROUTE_FILES_LIST:
            return s_files_list (req);
        case GW_ROUTE_FILES_UPLOAD:
            return gw_intake_handle (req);
        case GW_ROUTE_FILE_GET:
            return s_file_meta (req);
        case GW_ROUTE_FILE_DELETE:
            return s_file_delete (req);
        case GW_ROUTE_FILE_CONTENT:
            return s_file_content (req);
        case GW_ROUTE_LINK_CREATE:
            return s_link_create (req);
        case GW_ROUTE_DOWNLOAD:
            return s_download (req);
        case GW_ROUTE_REFRESH:
            return s_refresh (req);
        case GW_ROUTE_LOGOUT:
            return s_logout (req);
        case GW_ROUTE_LOGOUT_ALL:
            return s_logout_all (req);
        case GW_ROUTE_USERS_LIST:
            return s_users_list (req);
        case GW_ROUTE_USER_CREATE:
            return s_user_create (req);
        case GW_ROUTE_USER_UPDATE:
            return s_user_update (req);
        case GW_ROUTE_FILE_UPDATE:
            return s_file_update (req);
        case GW_ROUTE_LINKS_LIST:
            return s_links_list (req);
        case GW_ROUTE_LINK_REVOKE:
            return s_link_revoke (req);
        case GW_ROUTE_OPENAPI:
            return gw_openapi_reply (req);
        default:
            return gw_reply_error (req, 404, "not_found", "no such endpoint");
    }
}
