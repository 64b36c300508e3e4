/*  svc_auth -- the real safeshare-auth binary, end to end over its socket:
    signup -> the verification mail job reaches a mailer socket -> the
    mailed link verifies the user -> login gives a JWT the gateway's
    verifier accepts; garbage frames; an unacked job survives a restart;
    refresh / reuse / logout / logout-all over the wire; KEYS and a signing
    key replaced under the running service; SIGTERM exits 0.

    Usage: test_svc_auth PATH/TO/safeshare-auth                          */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth.pb-c.h"
#include "authd_users.h"
#include "cm_config.h"
#include "cm_db.h"
#include "cm_jwt.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "mailer.pb-c.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PUBLIC_URL "http://share.test:8000"
#define GOOD_PW    "correct horse battery"
#define CALL_MS    20000 /* Argon2 under ASan is slow; this is a bound, not a wait */

static const char *s_binary;
/* meta.client_addr of every call (the gateway sets it from HTTP). */
static const char *s_client_addr = "127.0.0.1";
static char *s_dir;
static char s_auth_ep[512], s_mailer_ep[512], s_pub[700], s_db_url[512];
static char s_env_data[600], s_env_auth[600], s_env_mailer[600];
static char *s_env[] = {s_env_data,
                        s_env_auth,
                        s_env_mailer,
                        "SAFESHARE_PUBLIC_URL=" PUBLIC_URL,
                        "SAFESHARE_RPC_TIMEOUT_MS=400",
                        "SAFESHARE_LOG_LEVEL=info",
                        NULL};

static void
s_sleep_ms (long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep (&ts, NULL);
}

static pid_t
s_spawn (char *const *env)
{
    char *argv[] = {(char *)s_binary, NULL};
    pid_t pid = cm_test_spawn (s_binary, argv, env);
    assert_true (pid > 0);
    return pid;
}

/* Exit status of pid if it exits within timeout_ms, else -1. */
static int
s_wait_exit (pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
        }
        s_sleep_ms (10);
    }
    return -1;
}

/* ---- calls to auth --------------------------------------------------- */

static Safeshare__AuthReply *
s_call (zsock_t *client, Safeshare__AuthRequest *request, int timeout_ms)
{
    char reqbuf[65];
    Safeshare__Meta meta;
    cm_meta_init (&meta, reqbuf, NULL, timeout_ms);
    meta.client_addr = (char *)s_client_addr;
    request->meta = &meta;
    ProtobufCMessage *reply = NULL;
    cm_status_t st =
        cm_rpc_call (client, &request->base, NULL, &safeshare__auth_reply__descriptor,
                     timeout_ms, &reply, NULL);
    if (st != CM_OK) {
        return NULL;
    }
    return (Safeshare__AuthReply *)reply;
}

/* s_call within CALL_MS, which must be answered. */
static Safeshare__AuthReply *
s_ask (zsock_t *client, Safeshare__AuthRequest *request)
{
    Safeshare__AuthReply *r = s_call (client, request, CALL_MS);
    assert_non_null (r);
    return r;
}

static Safeshare__AuthReply *
s_health (zsock_t *client, int timeout_ms)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__HealthRequest h = SAFESHARE__HEALTH_REQUEST__INIT;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_HEALTH;
    rq.health = &h;
    return s_call (client, &rq, timeout_ms);
}

/* Waits until auth answers HEALTH OK; fails at once if it died. */
static void
s_wait_ready (pid_t pid, zsock_t *client)
{
    for (int i = 0; i < 100; i++) {
        assert_false (cm_test_exited (pid));
        Safeshare__AuthReply *r = s_health (client, 200);
        if (r) {
            assert_int_equal (r->status, CM_OK);
            assert_int_equal (r->body_case, SAFESHARE__AUTH_REPLY__BODY_HEALTH);
            assert_string_equal (r->health->service, "auth");
            assert_string_equal (r->health->version, SAFESHARE_VERSION);
            safeshare__auth_reply__free_unpacked (r, NULL);
            return;
        }
    }
    fail_msg ("safeshare-auth did not answer HEALTH");
}

static Safeshare__AuthReply *
s_signup (zsock_t *client, const char *email, const char *password)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__SignupRequest b = SAFESHARE__SIGNUP_REQUEST__INIT;
    b.email = (char *)email;
    b.password = (char *)password;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_SIGNUP;
    rq.signup = &b;
    return s_ask (client, &rq);
}

static Safeshare__AuthReply *
s_login (zsock_t *client, const char *email, const char *password)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__LoginRequest b = SAFESHARE__LOGIN_REQUEST__INIT;
    b.email = (char *)email;
    b.password = (char *)password;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGIN;
    rq.login = &b;
    return s_ask (client, &rq);
}

static Safeshare__AuthReply *
s_verify (zsock_t *client, const char *token)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__VerifyRequest b = SAFESHARE__VERIFY_REQUEST__INIT;
    b.token = (char *)token;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_VERIFY;
    rq.verify = &b;
    return s_ask (client, &rq);
}

static Safeshare__AuthReply *
s_user_get (zsock_t *client, const char *id)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__UserGetRequest b = SAFESHARE__USER_GET_REQUEST__INIT;
    b.id = (char *)id;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_USER_GET;
    rq.user_get = &b;
    return s_ask (client, &rq);
}

static Safeshare__AuthReply *
s_resend (zsock_t *client, const char *email)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__ResendRequest b = SAFESHARE__RESEND_REQUEST__INIT;
    b.email = (char *)email;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_RESEND;
    rq.resend = &b;
    return s_ask (client, &rq);
}

static Safeshare__AuthReply *
s_refresh (zsock_t *client, const char *token)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__RefreshRequest b = SAFESHARE__REFRESH_REQUEST__INIT;
    b.refresh = (char *)token;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_REFRESH;
    rq.refresh = &b;
    return s_ask (client, &rq);
}

static Safeshare__AuthReply *
s_logout (zsock_t *client, const char *token)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__LogoutRequest b = SAFESHARE__LOGOUT_REQUEST__INIT;
    b.refresh = (char *)token;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGOUT;
    rq.logout = &b;
    return s_ask (client, &rq);
}

static Safeshare__AuthReply *
s_logout_all (zsock_t *client, const char *user_id)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__LogoutAllRequest b = SAFESHARE__LOGOUT_ALL_REQUEST__INIT;
    b.user_id = (char *)user_id;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGOUT_ALL;
    rq.logout_all = &b;
    return s_ask (client, &rq);
}

static Safeshare__AuthReply *
s_keys (zsock_t *client)
{
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__KeysRequest b = SAFESHARE__KEYS_REQUEST__INIT;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_KEYS;
    rq.keys = &b;
    Safeshare__AuthReply *r = s_ask (client, &rq);
    assert_int_equal (r->status, CM_OK);
    assert_int_equal (r->body_case, SAFESHARE__AUTH_REPLY__BODY_KEYS);
    return r;
}

static void
s_expect_resend_ok (Safeshare__AuthReply *r)
{
    assert_int_equal (r->status, CM_OK);
    assert_int_equal (r->body_case, SAFESHARE__AUTH_REPLY__BODY_RESEND);
    assert_null (r->error);
    safeshare__auth_reply__free_unpacked (r, NULL);
}

static void
s_expect_error (Safeshare__AuthReply *r, cm_status_t status, const char *code)
{
    assert_non_null (r);
    assert_int_equal (r->status, status);
    assert_non_null (r->error);
    assert_string_equal (r->error->code, code);
    safeshare__auth_reply__free_unpacked (r, NULL);
}

/* ---- the stand-in mailer -------------------------------------------- */

/* A mail job as the mailer received it. */
typedef struct {
    zframe_t *identity;
    char req_id[65];
    char job_id[33];
    char to[256];
    char template_name[64];
    char token[64];
} job_t;

/* Receives one MailRequest on the stand-in mailer ROUTER within
   timeout_ms. 0 / -1 (nothing came). */
static int
s_mailer_recv (zsock_t *mailer, int timeout_ms, job_t *job)
{
    memset (job, 0, sizeof *job);
    zpoller_t *poller = zpoller_new (mailer, NULL);
    void *which = zpoller_wait (poller, timeout_ms);
    zpoller_destroy (&poller);
    if (which != mailer) {
        return -1;
    }
    zmsg_t *msg = zmsg_recv (mailer);
    assert_non_null (msg);
    assert_int_equal (zmsg_size (msg), 3); /* identity, delimiter, header */
    job->identity = zmsg_pop (msg);
    zframe_t *delim = zmsg_pop (msg);
    zframe_t *head = zmsg_pop (msg);
    assert_int_equal (zframe_size (delim), 0);
    Safeshare__MailRequest *rq =
        safeshare__mail_request__unpack (NULL, zframe_size (head), zframe_data (head));
    assert_non_null (rq);
    assert_non_null (rq->meta);
    assert_int_equal (rq->meta->version, CM_PROTO_VERSION);
    assert_true (cm_is_request_id (rq->meta->request_id));
    assert_true (rq->meta->deadline_ms > 0);
    assert_int_equal (rq->body_case, SAFESHARE__MAIL_REQUEST__BODY_SEND);
    snprintf (job->req_id, sizeof job->req_id, "%s", rq->meta->request_id);
    assert_true (cm_is_hex_id (rq->send->job_id, 32));
    snprintf (job->job_id, sizeof job->job_id, "%s", rq->send->job_id);
    snprintf (job->to, sizeof job->to, "%s", rq->send->to);
    snprintf (job->template_name, sizeof job->template_name, "%s", rq->send->template_);
    assert_int_equal (rq->send->n_vars, 1);
    assert_string_equal (rq->send->vars[0]->name, "link");
    const char *prefix = PUBLIC_URL "/api/auth/verify?token=";
    const char *link = rq->send->vars[0]->value;
    assert_true (strncmp (link, prefix, strlen (prefix)) == 0);
    snprintf (job->token, sizeof job->token, "%s", link + strlen (prefix));
    assert_int_equal (strlen (job->token), 43);
    safeshare__mail_request__free_unpacked (rq, NULL);
    zframe_destroy (&delim);
    zframe_destroy (&head);
    zmsg_destroy (&msg);
    return 0;
}

/* Acks a job as the mailer does once it has stored it. */
static void
s_mailer_ack (zsock_t *mailer, job_t *job)
{
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    meta.version = CM_PROTO_VERSION;
    meta.request_id = job->req_id;
    Safeshare__MailSendReply send = SAFESHARE__MAIL_SEND_REPLY__INIT;
    send.job_id = job->job_id;
    Safeshare__MailReply reply = SAFESHARE__MAIL_REPLY__INIT;
    reply.meta = &meta;
    reply.status = SAFESHARE__STATUS__STATUS_OK;
    reply.body_case = SAFESHARE__MAIL_REPLY__BODY_SEND;
    reply.send = &send;
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &job->identity);
    zmsg_addmem (msg, NULL, 0);
    zframe_t *head = cm_frame_pack (&reply.base);
    zmsg_append (msg, &head);
    assert_int_equal (zmsg_send (&msg, mailer), 0);
}

static void
s_job_free (job_t *job)
{
    zframe_destroy (&job->identity);
}

/* Polls the auth database until the job is marked sent with its vars
   (the link with the token) erased. */
static void
s_expect_job_sent (const char *job_id)
{
    cm_db_t *db = cm_db_open (s_db_url);
    assert_non_null (db);
    bool done = false;
    for (int i = 0; i < 500 && !done; i++) {
        const char *p[] = {job_id};
        cm_db_res_t *res =
            cm_db_query (db, "SELECT sent_at, vars FROM mail_outbox WHERE id = $1", 1, p);
        if (cm_db_res_status (res) == CM_DB_OK && cm_db_res_rows (res) == 1) {
            done = cm_db_res_get (res, 0, 0) != NULL && cm_db_res_get (res, 0, 1) == NULL;
        }
        cm_db_res_free (&res);
        if (!done) {
            s_sleep_ms (10);
        }
    }
    cm_db_destroy (&db);
    assert_true (done);
}

/* The claims of an access token that the gateway's verifier (the
   public key file alone) accepts.                                     */
static cm_jwt_claims_t
s_access_claims (const char *access)
{
    cm_jwt_verifier_t *verifier = cm_jwt_verifier_new ("safeshare", "safeshare-api");
    assert_non_null (verifier);
    assert_int_equal (cm_jwt_verifier_load_file (verifier, s_pub), 0);
    cm_jwt_claims_t claims;
    const char *reason = NULL;
    assert_int_equal (cm_jwt_verify (verifier, access, cm_now_s (), &claims, &reason), 0);
    cm_jwt_verifier_destroy (&verifier);
    return claims;
}

/* ---- tests ----------------------------------------------------------- */

static void
test_missing_key_exits_2 (void **state)
{
    char env_keys[600];
    snprintf (env_keys, sizeof env_keys, "SAFESHARE_KEY_DIR=%s/nokeys", s_dir);
    char *env[] = {s_env_data, s_env_auth, s_env_mailer, env_keys, NULL};
    pid_t pid = s_spawn (env);
    int rc = s_wait_exit (pid, 10000);
    if (rc < 0) {
        cm_test_stop (pid, 1000);
    }
    assert_int_equal (rc, 2);
}

static void
test_flow (void **state)
{
    /* Stands in for safeshare-mailer: a real ROUTER peer on the mailer
       endpoint, speaking proto/mailer.proto, so we see exactly what auth
       sends and decide when it is acked. */
    zsock_t *mailer = cm_sock_server (s_mailer_ep);
    assert_non_null (mailer);
    pid_t pid = s_spawn (s_env);
    zsock_t *client = cm_sock_client (s_auth_ep, "auth");
    assert_non_null (client);
    s_wait_ready (pid, client);

    /* Signup answers the user, never the token. */
    Safeshare__AuthReply *r = s_signup (client, "  Client@Example.ORG", GOOD_PW);
    assert_int_equal (r->status, CM_OK);
    assert_int_equal (r->body_case, SAFESHARE__AUTH_REPLY__BODY_SIGNUP);
    char user_id[33];
    snprintf (user_id, sizeof user_id, "%s", r->signup->user->id);
    assert_true (cm_is_hex_id (user_id, 32));
    assert_string_equal (r->signup->user->email, "client@example.org");
    assert_int_equal (r->signup->user->role, SAFESHARE__ROLE__ROLE_CLIENT);
    assert_false (r->signup->user->verified);
    safeshare__auth_reply__free_unpacked (r, NULL);

    s_expect_error (s_signup (client, "client@EXAMPLE.org", GOOD_PW), CM_CONFLICT,
                    "email_taken");
    s_expect_error (s_signup (client, "no-at-sign", GOOD_PW), CM_INVALID,
                    "invalid_email");
    s_expect_error (s_signup (client, "x@example.org", "short"), CM_INVALID,
                    "weak_password");

    /* The job arrives; left unacked, it comes again (same job id). */
    job_t job, again;
    assert_int_equal (s_mailer_recv (mailer, 5000, &job), 0);
    assert_string_equal (job.to, "client@example.org");
    assert_string_equal (job.template_name, "verify_email");
    assert_int_equal (s_mailer_recv (mailer, 5000, &again), 0);
    assert_string_equal (again.job_id, job.job_id);
    assert_string_equal (again.token, job.token);
    s_mailer_ack (mailer, &again);
    s_expect_job_sent (job.job_id);
    /* Acked: no further resend. */
    job_t none;
    assert_int_equal (s_mailer_recv (mailer, 1500, &none), -1);

    /* Before verification: the right password is not enough. */
    s_expect_error (s_login (client, "client@example.org", GOOD_PW), CM_FORBIDDEN,
                    "email_not_verified");
    s_expect_error (s_login (client, "client@example.org", "wrong password"),
                    CM_UNAUTHENTICATED, "invalid_credentials");
    s_expect_error (s_login (client, "nobody@example.org", GOOD_PW), CM_UNAUTHENTICATED,
                    "invalid_credentials");

    /* The mailed link verifies, once. */
    r = s_verify (client, job.token);
    assert_int_equal (r->status, CM_OK);
    assert_string_equal (r->verify->user->id, user_id);
    assert_true (r->verify->user->verified);
    safeshare__auth_reply__free_unpacked (r, NULL);
    s_expect_error (s_verify (client, job.token), CM_INVALID,
                    "invalid_verification_token");
    s_expect_error (s_verify (client, "garbage"), CM_INVALID,
                    "invalid_verification_token");

    /* Login: a JWT the gateway's verifier (public key only) accepts. */
    r = s_login (client, "CLIENT@example.org", GOOD_PW);
    assert_int_equal (r->status, CM_OK);
    assert_int_equal (r->body_case, SAFESHARE__AUTH_REPLY__BODY_LOGIN);
    assert_int_equal (r->login->expires_in, 900);
    assert_string_equal (r->login->user->id, user_id);
    assert_int_equal (strlen (r->login->refresh), 43);
    assert_int_equal (r->login->refresh_expires_in, 1209600);
    cm_jwt_claims_t claims = s_access_claims (r->login->access);
    assert_string_equal (claims.sub, user_id);
    assert_string_equal (claims.role, "client");
    assert_int_equal (claims.gen, 0);
    assert_true (claims.exp >= cm_now_s () + 890 && claims.exp <= cm_now_s () + 900);
    safeshare__auth_reply__free_unpacked (r, NULL);

    /* USER_GET */
    r = s_user_get (client, user_id);
    assert_int_equal (r->status, CM_OK);
    assert_string_equal (r->user_get->user->email, "client@example.org");
    assert_true (r->user_get->user->verified);
    assert_int_equal (r->user_get->token_gen, 0);
    safeshare__auth_reply__free_unpacked (r, NULL);
    s_expect_error (s_user_get (client, "ffffffffffffffffffffffffffffffff"), CM_NOT_FOUND,
                    "user_not_found");
    s_expect_error (s_user_get (client, "nope"), CM_INVALID, "invalid_user_id");

    /* A job written before a restart and never acked is sent after it. */
    r = s_signup (client, "second@example.org", GOOD_PW);
    assert_int_equal (r->status, CM_OK);
    safeshare__auth_reply__free_unpacked (r, NULL);
    job_t before, after;
    assert_int_equal (s_mailer_recv (mailer, 5000, &before), 0);
    assert_string_equal (before.to, "second@example.org");
    assert_int_equal (cm_test_stop (pid, 10000), 0);
    /* Drop what the old process re-sent while stopping. */
    while (s_mailer_recv (mailer, 100, &after) == 0) {
        s_job_free (&after);
    }
    pid = s_spawn (s_env);
    s_wait_ready (pid, client);
    assert_int_equal (s_mailer_recv (mailer, 10000, &after), 0);
    assert_string_equal (after.job_id, before.job_id);
    s_mailer_ack (mailer, &after);
    s_expect_job_sent (before.job_id);

    assert_int_equal (cm_test_stop (pid, 10000), 0);
    s_job_free (&job);
    s_job_free (&again);
    s_job_free (&before);
    s_job_free (&after);
    zsock_destroy (&client);
    zsock_destroy (&mailer);
}

/* A second verification mail on request: new link, the old one dead;
   unknown addresses answered alike, with no mail. And the password
   policy as a client sees it. */
static void
test_resend (void **state)
{
    zsock_t *mailer = cm_sock_server (s_mailer_ep);
    assert_non_null (mailer);
    pid_t pid = s_spawn (s_env);
    zsock_t *client = cm_sock_client (s_auth_ep, "auth");
    assert_non_null (client);
    s_wait_ready (pid, client);

    /* Common passwords are refused, saying why, never echoing them. */
    Safeshare__AuthReply *r = s_signup (client, "weak@example.org", "Password123");
    assert_int_equal (r->status, CM_INVALID);
    assert_string_equal (r->error->code, "weak_password");
    assert_non_null (strstr (r->error->message, "too common"));
    assert_null (strcasestr (r->error->message, "password123"));
    safeshare__auth_reply__free_unpacked (r, NULL);
    r = s_signup (client, "weak@example.org", "short");
    assert_int_equal (r->status, CM_INVALID);
    assert_non_null (strstr (r->error->message, "too short"));
    safeshare__auth_reply__free_unpacked (r, NULL);

    r = s_signup (client, "resend@example.org", GOOD_PW);
    assert_int_equal (r->status, CM_OK);
    char user_id[33];
    snprintf (user_id, sizeof user_id, "%s", r->signup->user->id);
    safeshare__auth_reply__free_unpacked (r, NULL);
    job_t first, second, none;
    assert_int_equal (s_mailer_recv (mailer, 5000, &first), 0);
    assert_string_equal (first.to, "resend@example.org");
    s_mailer_ack (mailer, &first);
    s_expect_job_sent (first.job_id);

    s_expect_resend_ok (s_resend (client, " Resend@Example.org"));
    assert_int_equal (s_mailer_recv (mailer, 5000, &second), 0);
    assert_string_equal (second.to, "resend@example.org");
    assert_string_equal (second.template_name, "verify_email");
    assert_string_not_equal (second.job_id, first.job_id);
    assert_string_not_equal (second.token, first.token);
    s_mailer_ack (mailer, &second);
    s_expect_job_sent (second.job_id);

    /* Unknown address, or again within the minute: OK and no mail. */
    s_expect_resend_ok (s_resend (client, "nobody-here@example.org"));
    s_expect_resend_ok (s_resend (client, "resend@example.org"));
    assert_int_equal (s_mailer_recv (mailer, 1500, &none), -1);
    s_expect_error (s_resend (client, "not an address"), CM_INVALID, "invalid_email");
    s_expect_error (s_resend (client, ""), CM_INVALID, "invalid_email");

    /* Only the newest link verifies. */
    s_expect_error (s_verify (client, first.token), CM_INVALID,
                    "invalid_verification_token");
    r = s_verify (client, second.token);
    assert_int_equal (r->status, CM_OK);
    assert_string_equal (r->verify->user->id, user_id);
    assert_true (r->verify->user->verified);
    safeshare__auth_reply__free_unpacked (r, NULL);

    assert_int_equal (cm_test_stop (pid, 10000), 0);
    s_job_free (&first);
    s_job_free (&second);
    zsock_destroy (&client);
    zsock_destroy (&mailer);
}

/* Over the socket: after the account allowance of failures (unknown
   address, so existence is not told), RATE_LIMITED too_many_attempts
   with retry_after_s; the first AUTHD-allowance attempts are plain
   invalid_credentials. */
static void
test_login_throttled (void **state)
{
    pid_t pid = s_spawn (s_env);
    zsock_t *client = cm_sock_client (s_auth_ep, "auth");
    assert_non_null (client);
    s_wait_ready (pid, client);
    for (int i = 0; i < 5; i++) {
        s_expect_error (s_login (client, "throttle-me@example.org", GOOD_PW),
                        CM_UNAUTHENTICATED, "invalid_credentials");
    }
    /* 1 s after the 5th, 2 s after the 6th: refused within a few tries
       whatever second boundaries fall in between. */
    bool limited = false;
    for (int i = 0; i < 3 && !limited; i++) {
        Safeshare__AuthReply *r = s_login (client, "Throttle-Me@example.org", GOOD_PW);
        if (r->status == CM_RATE_LIMITED) {
            limited = true;
            assert_non_null (r->error);
            assert_string_equal (r->error->code, "too_many_attempts");
            assert_in_range (r->error->retry_after_s, 1, 4);
        } else {
            assert_int_equal (r->status, CM_UNAUTHENTICATED);
        }
        safeshare__auth_reply__free_unpacked (r, NULL);
    }
    assert_true (limited);
    assert_int_equal (cm_test_stop (pid, 10000), 0);
    zsock_destroy (&client);
}

/* SAFESHARE_PASSWORD_DENYLIST: a missing file stops the service (exit
   2); a given file replaces the built-in list. */
static void
test_denylist_config (void **state)
{
    char env_list[700], path[600];
    snprintf (path, sizeof path, "%s/denylist.txt", s_dir);
    snprintf (env_list, sizeof env_list, "SAFESHARE_PASSWORD_DENYLIST=%s/missing.txt",
              s_dir);
    char *env[] = {s_env_data, s_env_auth, s_env_mailer, env_list, NULL};
    pid_t pid = s_spawn (env);
    int rc = s_wait_exit (pid, 10000);
    if (rc < 0) {
        cm_test_stop (pid, 1000);
    }
    assert_int_equal (rc, 2);

    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs ("# site list\nOurCompanyName2026\n", f);
    assert_int_equal (fclose (f), 0);
    snprintf (env_list, sizeof env_list, "SAFESHARE_PASSWORD_DENYLIST=%s", path);
    pid = s_spawn (env);
    zsock_t *client = cm_sock_client (s_auth_ep, "auth");
    assert_non_null (client);
    s_wait_ready (pid, client);
    s_expect_error (s_signup (client, "deny@example.org", "ourcompanyname2026"),
                    CM_INVALID, "weak_password");
    /* Replaced, not added to: the built-in entries are not in force. */
    Safeshare__AuthReply *r = s_signup (client, "deny@example.org", "password123");
    assert_int_equal (r->status, CM_OK);
    safeshare__auth_reply__free_unpacked (r, NULL);
    assert_int_equal (cm_test_stop (pid, 10000), 0);
    zsock_destroy (&client);
}

/* Sends raw frames on a DEALER; returns the reply header unpacked, or
   NULL if none came within timeout_ms. */
static Safeshare__AuthReply *
s_raw (zsock_t *dealer, zmsg_t *msg, int timeout_ms)
{
    assert_int_equal (zmsg_send (&msg, dealer), 0);
    zpoller_t *poller = zpoller_new (dealer, NULL);
    void *which = zpoller_wait (poller, timeout_ms);
    zpoller_destroy (&poller);
    if (which != dealer) {
        return NULL;
    }
    zmsg_t *in = zmsg_recv (dealer);
    assert_non_null (in);
    zframe_t *delim = zmsg_pop (in);
    zframe_t *head = zmsg_pop (in);
    assert_int_equal (zframe_size (delim), 0);
    Safeshare__AuthReply *r =
        safeshare__auth_reply__unpack (NULL, zframe_size (head), zframe_data (head));
    assert_non_null (r);
    zframe_destroy (&delim);
    zframe_destroy (&head);
    zmsg_destroy (&in);
    return r;
}

static zmsg_t *
s_packed (Safeshare__AuthRequest *rq)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zframe_t *f = cm_frame_pack (&rq->base);
    zmsg_append (msg, &f);
    return msg;
}

static void
test_garbage_in (void **state)
{
    zsock_t *mailer = cm_sock_server (s_mailer_ep);
    pid_t pid = s_spawn (s_env);
    zsock_t *client = cm_sock_client (s_auth_ep, "auth");
    s_wait_ready (pid, client);
    zsock_t *raw = cm_sock_client (s_auth_ep, "auth");
    assert_non_null (raw);

    /* Random bytes as the header. */
    for (int i = 0; i < 20; i++) {
        uint8_t junk[64];
        cm_random (junk, sizeof junk);
        zmsg_t *msg = zmsg_new ();
        zmsg_addmem (msg, NULL, 0);
        zmsg_addmem (msg, junk, (size_t)(1 + i * 3));
        Safeshare__AuthReply *r = s_raw (raw, msg, 2000);
        /* Either refused as malformed, or it happened to parse without a
           usable meta: always answered, never OK. */
        assert_non_null (r);
        assert_int_not_equal (r->status, CM_OK);
        safeshare__auth_reply__free_unpacked (r, NULL);
    }

    /* No delimiter: dropped (nothing to answer to), service unharmed. */
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "no delimiter here");
    assert_null (s_raw (raw, msg, 300));

    /* Delimiter only, no header. */
    msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    Safeshare__AuthReply *r = s_raw (raw, msg, 2000);
    s_expect_error (r, CM_INVALID, "malformed_header");

    /* Wrong protocol version. */
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    meta.version = 99;
    meta.request_id = "garbage-1";
    Safeshare__AuthRequest rq = SAFESHARE__AUTH_REQUEST__INIT;
    Safeshare__HealthRequest h = SAFESHARE__HEALTH_REQUEST__INIT;
    rq.meta = &meta;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_HEALTH;
    rq.health = &h;
    s_expect_error (s_raw (raw, s_packed (&rq), 2000), CM_UNSUPPORTED,
                    "unsupported_version");

    /* Missing meta. */
    rq.meta = NULL;
    s_expect_error (s_raw (raw, s_packed (&rq), 2000), CM_INVALID, "missing_meta");

    /* Missing body. */
    meta.version = CM_PROTO_VERSION;
    rq.meta = &meta;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY__NOT_SET;
    rq.health = NULL;
    s_expect_error (s_raw (raw, s_packed (&rq), 2000), CM_INVALID, "missing_body");

    /* Oversized fields: a 100 KB e-mail (header over the limit) and a
       10 KB one (under it, refused by validation). */
    char *big = malloc (100001);
    memset (big, 'a', 100000);
    big[100000] = '\0';
    Safeshare__SignupRequest su = SAFESHARE__SIGNUP_REQUEST__INIT;
    su.email = big;
    su.password = GOOD_PW;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_SIGNUP;
    rq.signup = &su;
    s_expect_error (s_raw (raw, s_packed (&rq), 2000), CM_INVALID, "malformed_header");
    big[10000] = '\0';
    s_expect_error (s_raw (raw, s_packed (&rq), 2000), CM_INVALID, "invalid_email");
    su.email = "big@example.org";
    su.password = big;
    s_expect_error (s_raw (raw, s_packed (&rq), 2000), CM_INVALID, "weak_password");
    Safeshare__LoginRequest li = SAFESHARE__LOGIN_REQUEST__INIT;
    li.email = big;
    li.password = big;
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_LOGIN;
    rq.login = &li;
    s_expect_error (s_raw (raw, s_packed (&rq), CALL_MS), CM_UNAUTHENTICATED,
                    "invalid_credentials");
    free (big);

    /* Blob frames where the protocol has none. */
    rq.body_case = SAFESHARE__AUTH_REQUEST__BODY_HEALTH;
    rq.health = &h;
    msg = s_packed (&rq);
    zmsg_addstr (msg, "blob 1");
    zmsg_addstr (msg, "blob 2");
    s_expect_error (s_raw (raw, msg, 2000), CM_INVALID, "unexpected_blobs");

    /* Still healthy. */
    r = s_health (client, 2000);
    assert_non_null (r);
    assert_int_equal (r->status, CM_OK);
    safeshare__auth_reply__free_unpacked (r, NULL);

    assert_int_equal (cm_test_stop (pid, 10000), 0);
    zsock_destroy (&raw);
    zsock_destroy (&client);
    zsock_destroy (&mailer);
}

/* A verified user made straight in auth's database (the service is
   running: SQLite WAL takes a second writer). */
static void
s_make_user (const char *email, char id[33])
{
    cm_db_t *db = cm_db_open (s_db_url);
    assert_non_null (db);
    const char *code = NULL;
    assert_int_equal (authd_user_create (db, email, GOOD_PW, "client", true, id, &code),
                      CM_OK);
    cm_db_destroy (&db);
}

static long
s_db_count (const char *sql, const char *param)
{
    cm_db_t *db = cm_db_open (s_db_url);
    assert_non_null (db);
    const char *p[] = {param};
    cm_db_res_t *res = cm_db_query (db, sql, param ? 1 : 0, param ? p : NULL);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    const char *v = cm_db_res_get (res, 0, 0);
    long n = v ? strtol (v, NULL, 10) : -1;
    cm_db_res_free (&res);
    cm_db_destroy (&db);
    return n;
}

/* Refresh, reuse, logout, logout-all over the socket. */
static void
test_sessions (void **state)
{
    pid_t pid = s_spawn (s_env);
    zsock_t *client = cm_sock_client (s_auth_ep, "auth");
    assert_non_null (client);
    s_wait_ready (pid, client);
    char user_id[33];
    s_make_user ("sess@example.org", user_id);

    Safeshare__AuthReply *r = s_login (client, "sess@example.org", GOOD_PW);
    assert_int_equal (r->status, CM_OK);
    char r1[64], r2[64];
    snprintf (r1, sizeof r1, "%s", r->login->refresh);
    assert_int_equal (strlen (r1), 43);
    safeshare__auth_reply__free_unpacked (r, NULL);

    r = s_refresh (client, r1);
    assert_int_equal (r->status, CM_OK);
    assert_int_equal (r->body_case, SAFESHARE__AUTH_REPLY__BODY_REFRESH);
    assert_int_equal (r->refresh->expires_in, 900);
    assert_string_equal (r->refresh->user->id, user_id);
    assert_int_equal (strlen (r->refresh->refresh), 43);
    assert_string_not_equal (r->refresh->refresh, r1);
    assert_true (strlen (r->refresh->access) > 100);
    snprintf (r2, sizeof r2, "%s", r->refresh->refresh);
    safeshare__auth_reply__free_unpacked (r, NULL);
    /* r1 again: reuse; the family (r2 too) is dead. */
    s_expect_error (s_refresh (client, r1), CM_UNAUTHENTICATED, "refresh_token_reused");
    s_expect_error (s_refresh (client, r2), CM_UNAUTHENTICATED, "invalid_refresh_token");
    s_expect_error (s_refresh (client, "garbage"), CM_UNAUTHENTICATED,
                    "invalid_refresh_token");

    /* Logout: OK twice, then the token is dead. */
    r = s_login (client, "sess@example.org", GOOD_PW);
    assert_int_equal (r->status, CM_OK);
    snprintf (r1, sizeof r1, "%s", r->login->refresh);
    safeshare__auth_reply__free_unpacked (r, NULL);
    for (int i = 0; i < 2; i++) {
        r = s_logout (client, r1);
        assert_int_equal (r->status, CM_OK);
        assert_int_equal (r->body_case, SAFESHARE__AUTH_REPLY__BODY_LOGOUT);
        safeshare__auth_reply__free_unpacked (r, NULL);
    }
    s_expect_error (s_refresh (client, r1), CM_UNAUTHENTICATED, "invalid_refresh_token");
    s_expect_error (s_logout (client, "x"), CM_UNAUTHENTICATED, "invalid_refresh_token");

    /* Logout-all: the generation moves, new tokens carry it. */
    r = s_login (client, "sess@example.org", GOOD_PW);
    snprintf (r1, sizeof r1, "%s", r->login->refresh);
    safeshare__auth_reply__free_unpacked (r, NULL);
    r = s_logout_all (client, user_id);
    assert_int_equal (r->status, CM_OK);
    assert_int_equal (r->logout_all->token_gen, 1);
    safeshare__auth_reply__free_unpacked (r, NULL);
    s_expect_error (s_refresh (client, r1), CM_UNAUTHENTICATED, "invalid_refresh_token");
    r = s_user_get (client, user_id);
    assert_int_equal (r->user_get->token_gen, 1);
    safeshare__auth_reply__free_unpacked (r, NULL);
    r = s_login (client, "sess@example.org", GOOD_PW);
    assert_int_equal (s_access_claims (r->login->access).gen, 1);
    safeshare__auth_reply__free_unpacked (r, NULL);
    s_expect_error (s_logout_all (client, "nope"), CM_INVALID, "invalid_user_id");
    s_expect_error (s_logout_all (client, "ffffffffffffffffffffffffffffffff"),
                    CM_NOT_FOUND, "user_not_found");

    /* The client address is audited; an over-long one is refused. */
    assert_true (s_db_count ("SELECT COUNT(*) FROM audit_log WHERE event = 'logout_all'"
                             " AND subject = $1 AND client_addr = '127.0.0.1'",
                             user_id) == 1);
    char long_addr[70];
    memset (long_addr, '9', 65);
    long_addr[65] = '\0';
    s_client_addr = long_addr;
    s_expect_error (s_login (client, "sess@example.org", GOOD_PW), CM_INVALID,
                    "invalid_client_addr");
    s_client_addr = "127.0.0.1";

    assert_int_equal (cm_test_stop (pid, 10000), 0);
    zsock_destroy (&client);
}

/* The kid of a PEM file. */
static void
s_file_kid (const char *path, char kid[CM_JWT_KID_LEN + 1])
{
    size_t len = 0;
    char *pem = cm_file_read (path, 8192, &len);
    assert_non_null (pem);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)pem, len, kid), 0);
    free (pem);
}

/* The verifier gets exactly what KEYS answered (as the gateway does). */
static void
s_verifier_from_keys (cm_jwt_verifier_t *v, const Safeshare__KeysReply *k)
{
    cm_jwt_key_t keys[CM_JWT_MAX_KEYS];
    assert_true (k->n_keys <= CM_JWT_MAX_KEYS);
    for (size_t i = 0; i < k->n_keys; i++) {
        keys[i].kid = k->keys[i]->kid;
        keys[i].public_pem = k->keys[i]->public_pem;
        keys[i].not_after = k->keys[i]->not_after;
    }
    assert_int_equal (cm_jwt_verifier_set_keys (v, keys, k->n_keys), 0);
}

/* verifier accepts the access token, which carries kid. */
static void
s_expect_kid (cm_jwt_verifier_t *verifier, const char *access, const char *kid)
{
    cm_jwt_claims_t claims;
    const char *reason = NULL;
    assert_int_equal (cm_jwt_verify (verifier, access, cm_now_s (), &claims, &reason), 0);
    assert_string_equal (claims.kid, kid);
}

/* Logs keys@example.org in: the access token as s_expect_kid. */
static void
s_login_kid (zsock_t *client, cm_jwt_verifier_t *verifier, const char *kid)
{
    Safeshare__AuthReply *r = s_login (client, "keys@example.org", GOOD_PW);
    assert_int_equal (r->status, CM_OK);
    s_expect_kid (verifier, r->login->access, kid);
    safeshare__auth_reply__free_unpacked (r, NULL);
}

/* KEYS answers the current kid; a new jwt-es256.pem is picked up within
   one 5 s check: KEYS lists both (the old one in grace), new logins carry
   the new kid, old tokens still verify. A broken key file is refused and
   the service keeps signing with the key it has. Runs last: it changes
   the shared key. */
static void
test_key_rotation (void **state)
{
    pid_t pid = s_spawn (s_env);
    zsock_t *client = cm_sock_client (s_auth_ep, "auth");
    assert_non_null (client);
    s_wait_ready (pid, client);
    char priv[700], kid1[17], kid2[17];
    snprintf (priv, sizeof priv, "%s/keys/jwt-es256.pem", s_dir);
    s_file_kid (s_pub, kid1);
    char user_id[33];
    s_make_user ("keys@example.org", user_id);

    Safeshare__AuthReply *k = s_keys (client);
    assert_int_equal (k->keys->n_keys, 1);
    assert_string_equal (k->keys->keys[0]->kid, kid1);
    assert_int_equal (k->keys->keys[0]->not_after, 0);
    cm_jwt_verifier_t *verifier = cm_jwt_verifier_new ("safeshare", "safeshare-api");
    s_verifier_from_keys (verifier, k->keys);
    safeshare__auth_reply__free_unpacked (k, NULL);
    Safeshare__AuthReply *old = s_login (client, "keys@example.org", GOOD_PW);
    assert_int_equal (old->status, CM_OK);
    s_expect_kid (verifier, old->login->access, kid1);

    /* Rotate (as `safeshare keys rotate-jwt` does: atomic replace). */
    assert_int_equal (cm_jwt_keygen (priv, s_pub), 0);
    s_file_kid (s_pub, kid2);
    assert_string_not_equal (kid1, kid2);
    uint64_t rotated = cm_now_s ();
    size_t n = 0;
    for (int i = 0; i < 40 && n != 2; i++) {
        k = s_keys (client);
        n = k->keys->n_keys;
        if (n != 2) {
            safeshare__auth_reply__free_unpacked (k, NULL);
            s_sleep_ms (200);
        }
    }
    assert_int_equal (n, 2); /* within ~6 s */
    assert_string_equal (k->keys->keys[0]->kid, kid2);
    assert_int_equal (k->keys->keys[0]->not_after, 0);
    assert_string_equal (k->keys->keys[1]->kid, kid1);
    assert_in_range (k->keys->keys[1]->not_after, rotated + 900 + CM_JWT_LEEWAY_S,
                     cm_now_s () + 900 + CM_JWT_LEEWAY_S);
    s_verifier_from_keys (verifier, k->keys);
    safeshare__auth_reply__free_unpacked (k, NULL);
    s_login_kid (client, verifier, kid2);
    /* The token signed before the rotation is still good (grace). */
    s_expect_kid (verifier, old->login->access, kid1);
    safeshare__auth_reply__free_unpacked (old, NULL);
    assert_true (s_db_count ("SELECT COUNT(*) FROM audit_log"
                             " WHERE event = 'jwt_key_rotated' AND subject = $1",
                             kid2) == 1);

    /* A broken key file: refused, the service goes on with kid2. */
    const char junk[] =
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
    assert_int_equal (cm_file_write_atomic (priv, junk, sizeof junk - 1, 0600), 0);
    s_sleep_ms (6000);
    assert_false (cm_test_exited (pid));
    s_login_kid (client, verifier, kid2);
    k = s_keys (client);
    assert_string_equal (k->keys->keys[0]->kid, kid2);
    safeshare__auth_reply__free_unpacked (k, NULL);

    cm_jwt_verifier_destroy (&verifier);
    assert_int_equal (cm_test_stop (pid, 10000), 0);
    /* Leave a usable key behind. */
    assert_int_equal (cm_jwt_keygen (priv, s_pub), 0);
    zsock_destroy (&client);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: %s PATH/TO/safeshare-auth\n", argv[0]);
        return 2;
    }
    s_binary = argv[1];
    cm_log_init ("test_svc_auth", CM_LOG_WARN);
    zsys_handler_set (NULL);
    s_dir = cm_test_tmpdir ();
    assert_non_null (s_dir);
    snprintf (s_auth_ep, sizeof s_auth_ep, "ipc://%s/run/auth.sock", s_dir);
    snprintf (s_mailer_ep, sizeof s_mailer_ep, "ipc://%s/run/mailer.sock", s_dir);
    snprintf (s_env_data, sizeof s_env_data, "SAFESHARE_DATA_DIR=%s", s_dir);
    snprintf (s_env_auth, sizeof s_env_auth, "SAFESHARE_AUTH_ENDPOINT=%s", s_auth_ep);
    snprintf (s_env_mailer, sizeof s_env_mailer, "SAFESHARE_MAILER_ENDPOINT=%s",
              s_mailer_ep);
    snprintf (s_db_url, sizeof s_db_url, "sqlite:%s/auth.db", s_dir);
    char keys[512], priv[600];
    snprintf (keys, sizeof keys, "%s/keys", s_dir);
    snprintf (priv, sizeof priv, "%s/jwt-es256.pem", keys);
    snprintf (s_pub, sizeof s_pub, "%s/jwt-es256.pub", keys);
    if (cm_mkdirs (keys, 0700) != 0 || cm_jwt_keygen (priv, s_pub) != 0) {
        fprintf (stderr, "cannot make test keys in %s\n", keys);
        return 1;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_missing_key_exits_2),
        cmocka_unit_test (test_flow),
        cmocka_unit_test (test_resend),
        cmocka_unit_test (test_login_throttled),
        cmocka_unit_test (test_denylist_config),
        cmocka_unit_test (test_garbage_in),
        cmocka_unit_test (test_sessions),
        cmocka_unit_test (test_key_rotation),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    cm_test_rmrf (s_dir);
    free (s_dir);
    return rc;
}
