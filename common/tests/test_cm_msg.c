/*  Wire helpers over a real ROUTER/DEALER pair (inproc): round trip with
    blob frames, malformed headers, version mismatch, stale replies,
    timeouts and zero-copy sends.                                       */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cm_log.h"
#include "cm_msg.h"
#include "mailer.pb-c.h"

#include <string.h>

#define S_ENDPOINT "inproc://test-cm-msg"

/* Echo server: answers HEALTH with the blob frames it got, reversed in
   order; a request whose job_id is "slow" is answered twice, first with a
   wrong request id (a stale reply) and then correctly.                  */
static void
s_server (zsock_t *pipe, void *args)
{
    (void)args;
    zsock_t *router = cm_sock_server (S_ENDPOINT);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        zsock_t *which = zpoller_wait (poller, -1);
        if (which != router) {
            break;
        }
        cm_call_t call;
        if (cm_call_recv (router, &safeshare__mail_request__descriptor,
                          &safeshare__mail_reply__descriptor, &call) != 0) {
            continue;
        }
        Safeshare__MailRequest *req = (Safeshare__MailRequest *)call.request;
        Safeshare__MailReply reply = SAFESHARE__MAIL_REPLY__INIT;
        Safeshare__HealthReply health = SAFESHARE__HEALTH_REPLY__INIT;
        Safeshare__MailSendReply send = SAFESHARE__MAIL_SEND_REPLY__INIT;
        if (req->body_case == SAFESHARE__MAIL_REQUEST__BODY_HEALTH) {
            health.service = "test";
            reply.body_case = SAFESHARE__MAIL_REPLY__BODY_HEALTH;
            reply.health = &health;
            zmsg_t *out = zmsg_new ();
            zframe_t *f;
            while ((f = zmsg_pop (call.blobs))) {
                zmsg_prepend (out, &f);
            }
            cm_call_reply (router, &call, (ProtobufCMessage *)&reply, &out);
        } else if (req->body_case == SAFESHARE__MAIL_REQUEST__BODY_SEND &&
                   strcmp (req->send->job_id, "slow") == 0) {
            /* A stale reply first: same envelope, other request id. */
            zmsg_t *env = zmsg_dup (call.envelope);
            Safeshare__Meta meta = SAFESHARE__META__INIT;
            meta.version = CM_PROTO_VERSION;
            meta.request_id = "someone-else";
            reply.meta = &meta;
            zframe_t *head = cm_frame_pack ((ProtobufCMessage *)&reply);
            zmsg_append (env, &head);
            zmsg_send (&env, router);
            reply.meta = NULL;
            send.job_id = "slow";
            reply.body_case = SAFESHARE__MAIL_REPLY__BODY_SEND;
            reply.send = &send;
            cm_call_reply (router, &call, (ProtobufCMessage *)&reply, NULL);
        } else if (req->body_case == SAFESHARE__MAIL_REQUEST__BODY_SEND &&
                   strcmp (req->send->job_id, "silent") == 0) {
            /* no answer: the caller times out */
        } else {
            cm_call_reply_error (router, &call, &safeshare__mail_reply__descriptor,
                                 CM_INVALID, "bad_thing", "nope");
        }
        cm_call_release (&call);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

static Safeshare__MailReply *
s_call (zsock_t *dealer, Safeshare__MailRequest *req, zmsg_t **blobs, int timeout,
        cm_status_t *status, zmsg_t **out)
{
    Safeshare__Meta meta;
    char reqbuf[65];
    cm_meta_init (&meta, reqbuf, NULL, timeout);
    req->meta = &meta;
    ProtobufCMessage *reply = NULL;
    *status = cm_rpc_call (dealer, (ProtobufCMessage *)req, blobs,
                           &safeshare__mail_reply__descriptor, timeout, &reply, out);
    req->meta = NULL;
    if (reply) {
        assert_string_equal (((Safeshare__MailReply *)reply)->meta->request_id, reqbuf);
    }
    return (Safeshare__MailReply *)reply;
}

static void
s_free (void *data, void *hint)
{
    (void)hint;
    free (data);
}

static void
test_round_trip (void **state)
{
    (void)state;
    zactor_t *server = zactor_new (s_server, NULL);
    zsock_t *dealer = cm_sock_client (S_ENDPOINT, "mailer");
    assert_non_null (dealer);

    Safeshare__MailRequest req = SAFESHARE__MAIL_REQUEST__INIT;
    Safeshare__HealthRequest health = SAFESHARE__HEALTH_REQUEST__INIT;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_HEALTH;
    req.health = &health;
    zmsg_t *blobs = zmsg_new ();
    zmsg_addstr (blobs, "one");
    zmsg_addstr (blobs, "two");
    cm_status_t status;
    zmsg_t *out = NULL;
    Safeshare__MailReply *reply = s_call (dealer, &req, &blobs, 2000, &status, &out);
    assert_null (blobs);
    assert_int_equal (status, CM_OK);
    assert_non_null (reply);
    assert_int_equal (reply->status, CM_OK);
    assert_string_equal (reply->health->service, "test");
    assert_int_equal (zmsg_size (out), 2);
    char *s = zmsg_popstr (out);
    assert_string_equal (s, "two");
    free (s);
    zmsg_destroy (&out);
    protobuf_c_message_free_unpacked ((ProtobufCMessage *)reply, NULL);

    /* Error replies carry status and code. */
    Safeshare__MailSendRequest send = SAFESHARE__MAIL_SEND_REQUEST__INIT;
    send.job_id = "x";
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_SEND;
    req.send = &send;
    reply = s_call (dealer, &req, NULL, 2000, &status, NULL);
    assert_int_equal (status, CM_OK);
    assert_int_equal (reply->status, CM_INVALID);
    assert_string_equal (reply->error->code, "bad_thing");
    protobuf_c_message_free_unpacked ((ProtobufCMessage *)reply, NULL);

    /* A stale reply is skipped; the matching one is returned. */
    send.job_id = "slow";
    reply = s_call (dealer, &req, NULL, 2000, &status, NULL);
    assert_int_equal (status, CM_OK);
    assert_string_equal (reply->send->job_id, "slow");
    protobuf_c_message_free_unpacked ((ProtobufCMessage *)reply, NULL);

    /* No answer: UNAVAILABLE after the timeout. */
    send.job_id = "silent";
    reply = s_call (dealer, &req, NULL, 200, &status, NULL);
    assert_int_equal (status, CM_UNAVAILABLE);
    assert_null (reply);

    /* Garbage header, then a wrong version: INVALID / UNSUPPORTED. */
    zmsg_t *raw = zmsg_new ();
    zmsg_addmem (raw, NULL, 0);
    zmsg_addstr (raw, "\xff\xff\xff garbage");
    zmsg_send (&raw, dealer);
    raw = zmsg_recv (dealer);
    zframe_t *delim = zmsg_pop (raw);
    zframe_t *head = zmsg_pop (raw);
    Safeshare__MailReply *r =
        safeshare__mail_reply__unpack (NULL, zframe_size (head), zframe_data (head));
    assert_non_null (r);
    assert_int_equal (r->status, CM_INVALID);
    assert_string_equal (r->error->code, "malformed_header");
    safeshare__mail_reply__free_unpacked (r, NULL);
    zframe_destroy (&delim);
    zframe_destroy (&head);
    zmsg_destroy (&raw);

    Safeshare__Meta meta = SAFESHARE__META__INIT;
    meta.version = 99;
    meta.request_id = "v99";
    req.meta = &meta;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_HEALTH;
    raw = zmsg_new ();
    zmsg_addmem (raw, NULL, 0);
    head = cm_frame_pack ((ProtobufCMessage *)&req);
    zmsg_append (raw, &head);
    zmsg_send (&raw, dealer);
    raw = zmsg_recv (dealer);
    zframe_t *d2 = zmsg_pop (raw);
    head = zmsg_pop (raw);
    r = safeshare__mail_reply__unpack (NULL, zframe_size (head), zframe_data (head));
    assert_int_equal (r->status, CM_UNSUPPORTED);
    assert_string_equal (r->meta->request_id, "v99");
    safeshare__mail_reply__free_unpacked (r, NULL);
    zframe_destroy (&d2);
    zframe_destroy (&head);
    zmsg_destroy (&raw);
    req.meta = NULL;

    /* Oversized messages: too many frames, or too many bytes in frames
       each under the per-frame limit, are answered INVALID, not held. */
    for (int variant = 0; variant < 2; variant++) {
        raw = zmsg_new ();
        zmsg_addmem (raw, NULL, 0);
        char rbuf[65];
        cm_meta_init (&meta, rbuf, "big", 2000);
        req.meta = &meta;
        head = cm_frame_pack ((ProtobufCMessage *)&req);
        zmsg_append (raw, &head);
        if (variant == 0) {
            for (int i = 0; i < 5000; i++) {
                zmsg_addmem (raw, NULL, 0);
            }
        } else {
            for (int i = 0; i < 3; i++) {
                zframe_t *big = zframe_new (NULL, 30 * 1024 * 1024);
                zmsg_append (raw, &big);
            }
        }
        zmsg_send (&raw, dealer);
        raw = zmsg_recv (dealer);
        zframe_t *d3 = zmsg_pop (raw);
        head = zmsg_pop (raw);
        r = safeshare__mail_reply__unpack (NULL, zframe_size (head), zframe_data (head));
        assert_non_null (r);
        assert_int_equal (r->status, CM_INVALID);
        assert_string_equal (r->error->code, "message_too_large");
        safeshare__mail_reply__free_unpacked (r, NULL);
        zframe_destroy (&d3);
        zframe_destroy (&head);
        zmsg_destroy (&raw);
    }
    req.meta = NULL;

    /* Zero-copy: a buffer of ours goes out as the last frame. */
    char reqbuf[65];
    cm_meta_init (&meta, reqbuf, "zc-1", 2000);
    req.meta = &meta;
    zmsg_t *frames = zmsg_new ();
    zmsg_addmem (frames, NULL, 0);
    head = cm_frame_pack ((ProtobufCMessage *)&req);
    zmsg_append (frames, &head);
    char *buf = strdup ("zero-copy payload");
    assert_int_equal (cm_msg_send_zc (dealer, &frames, buf, strlen (buf), s_free, NULL),
                      0);
    assert_null (frames);
    raw = zmsg_recv (dealer);
    assert_int_equal (zmsg_size (raw), 3);
    zframe_destroy (&head);
    zframe_t *f = zmsg_last (raw);
    assert_memory_equal (zframe_data (f), "zero-copy payload", 17);
    zmsg_destroy (&raw);

    zsock_destroy (&dealer);
    zactor_destroy (&server);
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
