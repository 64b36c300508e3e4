/*  unit_gateway_window -- several calls out at once on a thread's socket:
    replies that come in any order are handed back in send order, matched
    by wire id; at most `size` calls out; a late or duplicate reply never
    pairs with another call; a timeout with several calls out fails them
    all and drops the socket, and the next call on the thread works.
    The service is a ROUTER this test drives by hand (it answers when and
    in what order each test says), on an inproc endpoint.               */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "crypto.pb-c.h"
#include "cm_msg.h"
#include "cm_util.h"
#include "gw_window.h"

#define S_TIMEOUT_MS 300

static gw_settings_t s_settings;
static zsock_t *s_router;
static int s_instance;

static int
s_setup (void **state)
{
    memset (&s_settings, 0, sizeof s_settings);
    s_settings.rpc_timeout_ms = S_TIMEOUT_MS;
    for (int i = 0; i < GW_SVC_COUNT; i++) {
        snprintf (s_settings.endpoints[i], sizeof s_settings.endpoints[i],
                  "inproc://gw-window-%d-%d", s_instance, i);
    }
    s_instance++;
    s_router = cm_sock_server (s_settings.endpoints[GW_SVC_CRYPTO]);
    return s_router ? 0 : -1;
}

static int
s_teardown (void **state)
{
    zsock_destroy (&s_router);
    return 0;
}

/* Sends an ENCRYPT of chunk `index` whose blob is `len` bytes of `fill`. */
static cm_status_t
s_send (gw_window_t *w, uint64_t index, size_t len, char fill)
{
    Safeshare__CryptoRequest r = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__ChunkRequest chunk = SAFESHARE__CHUNK_REQUEST__INIT;
    r.meta = &meta;
    r.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT;
    r.encrypt = &chunk;
    chunk.index = index;
    zmsg_t *blobs = zmsg_new ();
    zframe_t *f = zframe_new (NULL, len);
    memset (zframe_data (f), fill, len);
    zmsg_append (blobs, &f);
    cm_status_t rc = gw_window_send (w, &r.base, &blobs, len);
    assert_null (blobs);
    return rc;
}

/* Takes the next call that reached the service (waits up to 2 s). */
static void
s_take (cm_call_t *call)
{
    zsock_set_rcvtimeo (s_router, 2000);
    assert_int_equal (cm_call_recv (s_router, &safeshare__crypto_request__descriptor,
                                    &safeshare__crypto_reply__descriptor, call),
                      0);
}

/* Answers call like crypto would: the chunk's index and its blob with
   16 tag bytes. as_id: send it under this request id instead.        */
static void
s_answer (cm_call_t *call, const char *as_id)
{
    Safeshare__CryptoRequest *r = (Safeshare__CryptoRequest *)call->request;
    Safeshare__CryptoReply reply = SAFESHARE__CRYPTO_REPLY__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__ChunkReply chunk = SAFESHARE__CHUNK_REPLY__INIT;
    reply.meta = &meta;
    reply.body_case = SAFESHARE__CRYPTO_REPLY__BODY_ENCRYPT;
    reply.encrypt = &chunk;
    chunk.index = r->encrypt->index;
    zframe_t *in = zmsg_first (call->blobs);
    zframe_t *c = zframe_new (NULL, zframe_size (in) + 16);
    memcpy (zframe_data (c), zframe_data (in), zframe_size (in));
    memset (zframe_data (c) + zframe_size (in), 'T', 16);
    zmsg_t *out = zmsg_new ();
    zmsg_append (out, &c);
    char saved[65];
    snprintf (saved, sizeof saved, "%s", call->req_id);
    if (as_id) {
        snprintf (call->req_id, sizeof call->req_id, "%s", as_id);
    }
    /* The envelope is used up by a reply: a copy allows another. */
    zmsg_t *envelope = zmsg_dup (call->envelope);
    assert_int_equal (cm_call_reply (s_router, call, &reply.base, &out), 0);
    call->envelope = envelope;
    snprintf (call->req_id, sizeof call->req_id, "%s", saved);
}

/* Takes the oldest reply and checks it is chunk `index` of len + 16. */
static void
s_expect (gw_window_t *w, bool wait, uint64_t index, size_t len, char fill)
{
    ProtobufCMessage *reply = NULL;
    zmsg_t *blobs = NULL;
    uint64_t tag = 0;
    cm_status_t rc = CM_INTERNAL;
    assert_int_equal (gw_window_next (w, wait, &reply, &blobs, &tag, &rc), 1);
    assert_int_equal (rc, CM_OK);
    assert_int_equal (tag, len);
    assert_int_equal (gw_rpc_status (reply, NULL, NULL), CM_OK);
    Safeshare__CryptoReply *cr = (Safeshare__CryptoReply *)reply;
    assert_int_equal (cr->body_case, SAFESHARE__CRYPTO_REPLY__BODY_ENCRYPT);
    assert_int_equal (cr->encrypt->index, index);
    assert_int_equal (zmsg_size (blobs), 1);
    zframe_t *f = zmsg_first (blobs);
    assert_int_equal (zframe_size (f), len + 16);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal (zframe_data (f)[i], fill);
    }
    protobuf_c_message_free_unpacked (reply, NULL);
    zmsg_destroy (&blobs);
}

static void
test_order_restored (void **state)
{
    gw_rpc_t *rpc = gw_rpc_new (&s_settings);
    gw_window_t *w = gw_window_new (rpc, GW_SVC_CRYPTO, "order", 4,
                                    &safeshare__crypto_reply__descriptor);
    assert_non_null (w);
    /* Three rounds: more calls than the window, answered backwards. */
    for (int round = 0; round < 3; round++) {
        cm_call_t calls[4];
        for (int i = 0; i < 4; i++) {
            assert_false (gw_window_full (w));
            assert_int_equal (
                s_send (w, (uint64_t)(round * 4 + i), 100 + (size_t)i, (char)('a' + i)),
                CM_OK);
        }
        assert_true (gw_window_full (w));
        assert_int_equal (gw_window_pending (w), 4);
        for (int i = 0; i < 4; i++) {
            s_take (&calls[i]);
        }
        /* Nothing is handed out before the oldest reply is in. */
        for (int i = 3; i >= 1; i--) {
            s_answer (&calls[i], NULL);
        }
        ProtobufCMessage *reply = NULL;
        zmsg_t *blobs = NULL;
        uint64_t tag = 7;
        cm_status_t rc = CM_INTERNAL;
        zclock_sleep (20);
        assert_int_equal (gw_window_next (w, false, &reply, &blobs, &tag, &rc), 0);
        assert_int_equal (rc, CM_OK);
        assert_null (reply);
        s_answer (&calls[0], NULL);
        for (int i = 0; i < 4; i++) {
            s_expect (w, true, (uint64_t)(round * 4 + i), 100 + (size_t)i,
                      (char)('a' + i));
            cm_call_release (&calls[i]);
        }
        assert_int_equal (gw_window_pending (w), 0);
        assert_int_equal (gw_window_next (w, true, &reply, &blobs, &tag, &rc), 0);
    }
    assert_int_equal (gw_window_peak (w), 4);
    uint64_t epoch = gw_rpc_epoch (rpc, GW_SVC_CRYPTO);
    gw_window_destroy (&w);
    assert_null (w);
    gw_window_destroy (&w); /* twice is fine */
    /* Nothing was out: the socket stays. */
    assert_int_equal (gw_rpc_epoch (rpc, GW_SVC_CRYPTO), epoch);
    gw_rpc_destroy (&rpc);
}

/* Window 1: one call at a time, as before the window existed. */
static void
test_window_one (void **state)
{
    gw_rpc_t *rpc = gw_rpc_new (&s_settings);
    /* Never more than `size` out: a send on a full window is refused (a
       caller's bug: the window fails).                                 */
    gw_window_t *w = gw_window_new (rpc, GW_SVC_CRYPTO, "one", 1,
                                    &safeshare__crypto_reply__descriptor);
    assert_int_equal (s_send (w, 0, 1, 'p'), CM_OK);
    assert_int_equal (s_send (w, 1, 1, 'p'), CM_INTERNAL);
    cm_call_t first;
    s_take (&first);
    s_answer (&first, NULL); /* its window failed: dropped with the socket */
    cm_call_release (&first);
    gw_window_destroy (&w);

    w = gw_window_new (rpc, GW_SVC_CRYPTO, "one", 1,
                       &safeshare__crypto_reply__descriptor);
    for (int i = 0; i < 5; i++) {
        assert_int_equal (s_send (w, (uint64_t)i, 10, 'o'), CM_OK);
        assert_true (gw_window_full (w));
        cm_call_t call;
        s_take (&call);
        s_answer (&call, NULL);
        cm_call_release (&call);
        s_expect (w, true, (uint64_t)i, 10, 'o');
    }
    assert_int_equal (gw_window_peak (w), 1);
    gw_window_destroy (&w);
    gw_rpc_destroy (&rpc);
}

/* A reply under an id of no call out (a duplicate, a late one) is dropped
   and never taken for another call's.                                  */
static void
test_stale_dropped (void **state)
{
    gw_rpc_t *rpc = gw_rpc_new (&s_settings);
    gw_window_t *w = gw_window_new (rpc, GW_SVC_CRYPTO, "stale", 3,
                                    &safeshare__crypto_reply__descriptor);
    cm_call_t calls[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal (s_send (w, (uint64_t)i, 8, (char)('x' + i)), CM_OK);
        s_take (&calls[i]);
    }
    s_answer (&calls[0], NULL);
    /* Chunk 0's bytes again: its own id (a duplicate), an id of no call
       ever sent. Were either taken for call 1 or 2, its index and bytes
       would be 0 and 'x'.                                              */
    s_answer (&calls[0], NULL);
    s_answer (&calls[0], "other.99");
    s_answer (&calls[1], NULL);
    s_answer (&calls[2], NULL);
    for (int i = 0; i < 3; i++) {
        s_expect (w, true, (uint64_t)i, 8, (char)('x' + i));
        cm_call_release (&calls[i]);
    }
    gw_window_destroy (&w);
    gw_rpc_destroy (&rpc);
}

/* The oldest call times out with others out: all fail, the socket is
   dropped, their late replies reach nobody, the next call works.      */
static void
test_timeout (void **state)
{
    gw_rpc_t *rpc = gw_rpc_new (&s_settings);
    gw_window_t *w = gw_window_new (rpc, GW_SVC_CRYPTO, "slow", 4,
                                    &safeshare__crypto_reply__descriptor);
    cm_call_t calls[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal (s_send (w, (uint64_t)i, 16, 's'), CM_OK);
        s_take (&calls[i]);
    }
    s_answer (&calls[0], NULL);
    s_answer (&calls[2], NULL); /* 1 and 3 never answer in time */
    s_expect (w, true, 0, 16, 's');
    uint64_t epoch = gw_rpc_epoch (rpc, GW_SVC_CRYPTO);
    uint64_t start = cm_mono_ms ();
    ProtobufCMessage *reply = NULL;
    zmsg_t *blobs = NULL;
    uint64_t tag;
    cm_status_t rc = CM_OK;
    assert_int_equal (gw_window_next (w, true, &reply, &blobs, &tag, &rc), -1);
    uint64_t took = cm_mono_ms () - start;
    assert_int_equal (rc, CM_UNAVAILABLE);
    assert_true (took >= S_TIMEOUT_MS - 50 && took < S_TIMEOUT_MS + 1000);
    assert_null (reply);
    assert_int_equal (gw_rpc_epoch (rpc, GW_SVC_CRYPTO), epoch + 1);
    /* Failed for good: nothing more goes out, nothing comes back. */
    assert_int_equal (gw_window_pending (w), 0);
    assert_int_equal (s_send (w, 4, 1, 's'), CM_UNAVAILABLE);
    assert_int_equal (gw_window_next (w, false, &reply, &blobs, &tag, &rc), -1);
    gw_window_destroy (&w);
    assert_int_equal (gw_rpc_epoch (rpc, GW_SVC_CRYPTO), epoch + 1);

    /* The late replies go to the dropped socket's identity: lost. */
    s_answer (&calls[1], NULL);
    s_answer (&calls[3], NULL);
    for (int i = 0; i < 4; i++) {
        cm_call_release (&calls[i]);
    }
    /* The next transfer on this thread: a fresh socket, its own replies. */
    w = gw_window_new (rpc, GW_SVC_CRYPTO, "slow", 4,
                       &safeshare__crypto_reply__descriptor);
    for (int i = 0; i < 2; i++) {
        assert_int_equal (s_send (w, (uint64_t)i, 5, (char)('m' + i)), CM_OK);
        s_take (&calls[i]);
    }
    s_answer (&calls[1], NULL);
    s_answer (&calls[0], NULL);
    s_expect (w, true, 0, 5, 'm');
    s_expect (w, true, 1, 5, 'n');
    cm_call_release (&calls[0]);
    cm_call_release (&calls[1]);
    /* Nothing else arrives (no late reply leaked in). */
    assert_int_equal (gw_window_next (w, false, &reply, &blobs, &tag, &rc), 0);
    gw_window_destroy (&w);
    gw_rpc_destroy (&rpc);
}

/* A transfer abandoned with calls out drops the socket; a socket dropped
   under a window (another caller's failure) fails the calls it had out. */
static void
test_epoch (void **state)
{
    gw_rpc_t *rpc = gw_rpc_new (&s_settings);
    gw_window_t *w = gw_window_new (rpc, GW_SVC_CRYPTO, "gone", 2,
                                    &safeshare__crypto_reply__descriptor);
    cm_call_t calls[2];
    assert_int_equal (s_send (w, 0, 4, 'g'), CM_OK);
    s_take (&calls[0]);
    uint64_t epoch = gw_rpc_epoch (rpc, GW_SVC_CRYPTO);
    gw_window_destroy (&w);
    assert_int_equal (gw_rpc_epoch (rpc, GW_SVC_CRYPTO), epoch + 1);
    s_answer (&calls[0], NULL); /* to nobody */
    cm_call_release (&calls[0]);

    w = gw_window_new (rpc, GW_SVC_CRYPTO, "gone", 2,
                       &safeshare__crypto_reply__descriptor);
    assert_int_equal (s_send (w, 0, 4, 'g'), CM_OK);
    s_take (&calls[0]);
    s_answer (&calls[0], NULL);
    gw_rpc_drop (rpc, GW_SVC_CRYPTO);
    ProtobufCMessage *reply = NULL;
    zmsg_t *blobs = NULL;
    uint64_t tag;
    cm_status_t rc = CM_OK;
    assert_int_equal (gw_window_next (w, true, &reply, &blobs, &tag, &rc), -1);
    assert_int_equal (rc, CM_UNAVAILABLE);
    cm_call_release (&calls[0]);
    gw_window_destroy (&w);
    gw_rpc_destroy (&rpc);
}

/* A reply that does not parse fails the window (CM_INTERNAL). */
static void
test_malformed (void **state)
{
    gw_rpc_t *rpc = gw_rpc_new (&s_settings);
    gw_window_t *w = gw_window_new (rpc, GW_SVC_CRYPTO, "bad", 2,
                                    &safeshare__crypto_reply__descriptor);
    assert_int_equal (s_send (w, 0, 4, 'b'), CM_OK);
    assert_int_equal (s_send (w, 1, 4, 'b'), CM_OK);
    cm_call_t calls[2];
    s_take (&calls[0]);
    s_take (&calls[1]);
    zmsg_t *junk = zmsg_dup (calls[0].envelope);
    zmsg_addstr (junk, "\xff\xff\xff not protobuf");
    assert_int_equal (zmsg_send (&junk, s_router), 0);
    ProtobufCMessage *reply = NULL;
    zmsg_t *blobs = NULL;
    uint64_t tag;
    cm_status_t rc = CM_OK;
    assert_int_equal (gw_window_next (w, true, &reply, &blobs, &tag, &rc), -1);
    assert_int_equal (rc, CM_INTERNAL);
    cm_call_release (&calls[0]);
    cm_call_release (&calls[1]);
    gw_window_destroy (&w);
    gw_rpc_destroy (&rpc);
}

static void
test_bad_args (void **state)
{
    gw_rpc_t *rpc = gw_rpc_new (&s_settings);
    const ProtobufCMessageDescriptor *d = &safeshare__crypto_reply__descriptor;
    assert_null (gw_window_new (rpc, GW_SVC_CRYPTO, "x", 0, d));
    assert_null (gw_window_new (rpc, GW_SVC_CRYPTO, "x", GW_CRYPTO_WINDOW_MAX + 1, d));
    assert_null (gw_window_new (NULL, GW_SVC_CRYPTO, "x", 1, d));
    gw_window_t *w = gw_window_new (rpc, GW_SVC_CRYPTO, NULL, GW_CRYPTO_WINDOW_MAX, d);
    assert_non_null (w);
    gw_window_destroy (&w);
    gw_rpc_destroy (&rpc);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_order_restored, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_window_one, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stale_dropped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_epoch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_malformed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_args, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
