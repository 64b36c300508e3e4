/*  unit_auth_outbox -- the outbox relay against a ROUTER in this process
    that plays the mailer (a real socket peer over inproc), driven by the
    same tick/recv/timeout calls the service loop makes.                */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authd_outbox.h"
#include "authd_users.h"
#include "cm_db.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "mailer.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOOD_PW "correct horse battery"
#define O(r)    (&(authd_origin_t){(r), "", ""})
#define ACK_MS  200

typedef struct {
    char *dir;
    cm_db_t *db;
    zsock_t *mailer;
    authd_outbox_t *outbox;
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->dir = cm_test_tmpdir ();
    char url[512], ep[600];
    snprintf (url, sizeof url, "sqlite:%s/auth.db", f->dir);
    f->db = cm_db_open (url);
    assert_non_null (f->db);
    assert_int_equal (authd_store_migrate (f->db), 0);
    snprintf (ep, sizeof ep, "ipc://%s/mailer.sock", f->dir);
    f->mailer = cm_sock_server (ep);
    assert_non_null (f->mailer);
    f->outbox = authd_outbox_new (f->db, ep, ACK_MS);
    assert_non_null (f->outbox);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *f = *state;
    authd_outbox_destroy (&f->outbox);
    zsock_destroy (&f->mailer);
    cm_db_destroy (&f->db);
    cm_test_rmrf (f->dir);
    free (f->dir);
    free (f);
    return 0;
}

/* What the stand-in mailer received. */
typedef struct {
    zframe_t *identity;
    char req_id[65];
    char job_id[33];
    char to[128];
} got_t;

/* Runs the relay the way auth_main does until the mailer has a request
   (0) or timeout_ms passed (-1). */
static int
s_pump (fixture_t *f, int timeout_ms, got_t *got)
{
    memset (got, 0, sizeof *got);
    zpoller_t *poller = zpoller_new (f->mailer, authd_outbox_sock (f->outbox), NULL);
    uint64_t end = cm_mono_ms () + (uint64_t)timeout_ms;
    int rc = -1;
    while (cm_mono_ms () < end) {
        uint64_t now = cm_mono_ms ();
        authd_outbox_tick (f->outbox, now);
        int wait = authd_outbox_timeout (f->outbox, cm_mono_ms ());
        uint64_t left = end - cm_mono_ms ();
        void *which =
            zpoller_wait (poller, (int)((uint64_t)wait < left ? (uint64_t)wait : left));
        if (which == authd_outbox_sock (f->outbox)) {
            authd_outbox_recv (f->outbox, cm_mono_ms ());
        } else if (which == f->mailer) {
            zmsg_t *msg = zmsg_recv (f->mailer);
            got->identity = zmsg_pop (msg);
            zframe_t *delim = zmsg_pop (msg);
            zframe_t *head = zmsg_pop (msg);
            Safeshare__MailRequest *rq = safeshare__mail_request__unpack (
                NULL, zframe_size (head), zframe_data (head));
            assert_non_null (rq);
            snprintf (got->req_id, sizeof got->req_id, "%s", rq->meta->request_id);
            snprintf (got->job_id, sizeof got->job_id, "%s", rq->send->job_id);
            snprintf (got->to, sizeof got->to, "%s", rq->send->to);
            safeshare__mail_request__free_unpacked (rq, NULL);
            zframe_destroy (&delim);
            zframe_destroy (&head);
            zmsg_destroy (&msg);
            rc = 0;
            break;
        }
    }
    zpoller_destroy (&poller);
    return rc;
}

static void
s_answer (fixture_t *f, got_t *got, cm_status_t status, const char *code)
{
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    meta.version = CM_PROTO_VERSION;
    meta.request_id = got->req_id;
    Safeshare__MailSendReply send = SAFESHARE__MAIL_SEND_REPLY__INIT;
    send.job_id = got->job_id;
    Safeshare__Error error = SAFESHARE__ERROR__INIT;
    error.code = (char *)code;
    Safeshare__MailReply reply = SAFESHARE__MAIL_REPLY__INIT;
    reply.meta = &meta;
    reply.status = status;
    if (status == CM_OK) {
        reply.body_case = SAFESHARE__MAIL_REPLY__BODY_SEND;
        reply.send = &send;
    } else {
        reply.error = &error;
    }
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &got->identity);
    zmsg_addmem (msg, NULL, 0);
    zframe_t *head = cm_frame_pack (&reply.base);
    zmsg_append (msg, &head);
    assert_int_equal (zmsg_send (&msg, f->mailer), 0);
}

/* Lets the relay read the answer. */
static void
s_settle (fixture_t *f, int ms)
{
    got_t none;
    assert_int_equal (s_pump (f, ms, &none), -1);
}

static void
s_row (fixture_t *f, const char *job_id, char *sent, char *vars, char *err)
{
    const char *p[] = {job_id};
    cm_db_res_t *res = cm_db_query (
        f->db, "SELECT sent_at, vars, last_error FROM mail_outbox WHERE id = $1", 1, p);
    assert_int_equal (cm_db_res_rows (res), 1);
    strcpy (sent, cm_db_res_get (res, 0, 0) ? "set" : "null");
    strcpy (vars, cm_db_res_get (res, 0, 1) ? "set" : "null");
    strcpy (err, cm_db_res_get (res, 0, 2) ? cm_db_res_get (res, 0, 2) : "null");
    cm_db_res_free (&res);
}

static void
s_signup (fixture_t *f, const char *email)
{
    authd_user_t user;
    const char *code = NULL;
    assert_int_equal (authd_user_signup (f->db, O ("t"), email, GOOD_PW, "http://x", 3600,
                                         &user, &code),
                      CM_OK);
    authd_outbox_kick (f->outbox);
}

static void
test_relay (void **state)
{
    fixture_t *f = *state;
    got_t got, again;
    char sent[8], vars[8], err[64];

    /* Nothing pending: nothing sent. */
    assert_int_equal (s_pump (f, 300, &got), -1);

    s_signup (f, "a@x.org");
    s_signup (f, "b@x.org");
    /* Oldest first; unanswered, the same job comes again. */
    assert_int_equal (s_pump (f, 2000, &got), 0);
    assert_string_equal (got.to, "a@x.org");
    assert_int_equal (s_pump (f, 3000, &again), 0);
    assert_string_equal (again.job_id, got.job_id);
    zframe_destroy (&got.identity);

    /* A transient refusal: retried, still the same job. */
    s_answer (f, &again, CM_UNAVAILABLE, "smtp_down");
    assert_int_equal (s_pump (f, 3000, &got), 0);
    assert_string_equal (got.job_id, again.job_id);
    s_row (f, got.job_id, sent, vars, err);
    assert_string_equal (sent, "null");
    assert_string_equal (vars, "set");

    /* Acked: marked sent, link erased, and the next job follows. */
    s_answer (f, &got, CM_OK, NULL);
    char first[33];
    strcpy (first, got.job_id);
    assert_int_equal (s_pump (f, 2000, &got), 0);
    assert_string_equal (got.to, "b@x.org");
    s_row (f, first, sent, vars, err);
    assert_string_equal (sent, "set");
    assert_string_equal (vars, "null");

    /* A permanent refusal: given up (link erased), queue not blocked. */
    s_answer (f, &got, CM_INVALID, "bad_recipient");
    s_settle (f, 300);
    s_row (f, got.job_id, sent, vars, err);
    assert_string_equal (sent, "null");
    assert_string_equal (vars, "null");
    assert_string_equal (err, "bad_recipient");
    s_signup (f, "c@x.org");
    assert_int_equal (s_pump (f, 2000, &got), 0);
    assert_string_equal (got.to, "c@x.org");
    zframe_destroy (&got.identity);
}

int
main (void)
{
    cm_log_init ("test_authd_outbox", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_relay, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
