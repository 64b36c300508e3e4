/*  unit_crypto_call -- the one release path for frames that may hold
    plaintext: an ENCRYPT request's blob (or one of unknown shape) and a
    dropped reply are wiped before libzmq frees them; a DECRYPT request
    is not counted secret; a failed send wipes what it could not hand
    over, a good one delivers the bytes intact.

    The blobs are real zero-copy frames (cm_msg_send_zc over inproc, so
    the receiver's frame references our buffer): the free callback sees
    the buffer as it is at the moment it is freed. Calls come from the
    real cm_call_recv.                                                  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_msg.h"
#include "cm_util.h"
#include "crypto.pb-c.h"
#include "cryptod_call.h"

#define LEN 4096

typedef struct {
    bool freed;
    bool wiped; /* every byte zero when freed */
} s_seen_t;

static void
s_on_free (void *data, void *hint)
{
    s_seen_t *seen = hint;
    const uint8_t *p = data;
    bool zero = true;
    for (size_t i = 0; i < LEN; i++) {
        zero = zero && p[i] == 0;
    }
    seen->freed = true;
    seen->wiped = zero;
    free (data);
}

static struct {
    zsock_t *out; /* PAIR -> in */
    zsock_t *in;
    zsock_t *dealer; /* DEALER -> router */
    zsock_t *router;
} g;

/* A received message whose one frame references a fresh LEN-byte
   buffer of 0x5a (freed through s_on_free into *seen).                 */
static zmsg_t *
s_zc_msg (s_seen_t *seen)
{
    memset (seen, 0, sizeof *seen);
    uint8_t *buf = malloc (LEN);
    assert_non_null (buf);
    memset (buf, 0x5a, LEN);
    zmsg_t *lead = zmsg_new ();
    assert_int_equal (cm_msg_send_zc (g.out, &lead, buf, LEN, s_on_free, seen), 0);
    zmsg_t *msg = zmsg_recv (g.in);
    assert_non_null (msg);
    assert_int_equal (zmsg_size (msg), 1);
    assert_int_equal (zframe_size (zmsg_first (msg)), LEN);
    assert_false (seen->freed);
    return msg;
}

/* A call from cm_call_recv: body_case's request sent over a DEALER with
   a zero-copy LEN-byte blob of 0x5a (freed through s_on_free into
   *seen). body_case < 0: a call without a request (unknown shape).    */
static void
s_call (cm_call_t *call, int body_case, s_seen_t *seen)
{
    if (body_case < 0) {
        memset (call, 0, sizeof *call);
        call->envelope = zmsg_new ();
        zmsg_addmem (call->envelope, NULL, 0);
        call->blobs = s_zc_msg (seen);
        return;
    }
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__ChunkRequest chunk = SAFESHARE__CHUNK_REQUEST__INIT;
    Safeshare__KeyNewRequest key = SAFESHARE__KEY_NEW_REQUEST__INIT;
    Safeshare__Meta meta;
    char buf[65];
    cm_meta_init (&meta, buf, "t", 0);
    req.meta = &meta;
    req.body_case = body_case;
    if (body_case == SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT) {
        req.encrypt = &chunk;
    } else if (body_case == SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT) {
        req.decrypt = &chunk;
    } else {
        req.key_new = &key;
    }
    memset (seen, 0, sizeof *seen);
    uint8_t *blob = malloc (LEN);
    assert_non_null (blob);
    memset (blob, 0x5a, LEN);
    zmsg_t *lead = zmsg_new ();
    zmsg_addmem (lead, NULL, 0);
    zframe_t *head = cm_frame_pack (&req.base);
    zmsg_append (lead, &head);
    assert_int_equal (cm_msg_send_zc (g.dealer, &lead, blob, LEN, s_on_free, seen), 0);
    assert_int_equal (cm_call_recv (g.router, &safeshare__crypto_request__descriptor,
                                    &safeshare__crypto_reply__descriptor, call),
                      0);
    assert_non_null (call->request);
    assert_int_equal (zmsg_size (call->blobs), 1);
    assert_int_equal (zframe_size (zmsg_first (call->blobs)), LEN);
    assert_false (seen->freed);
}

static void
test_encrypt_request_wiped (void **state)
{
    (void)state;
    s_seen_t seen;
    cm_call_t call;
    s_call (&call, SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT, &seen);
    assert_true (cryptod_call_secret (&call));
    cryptod_call_release (&call);
    assert_true (seen.freed);
    assert_true (seen.wiped);
    assert_null (call.blobs);
    assert_null (call.envelope);
    assert_null (call.request);

    /* The heap form the broker queues (refused, expired, stopped).     */
    cm_call_t *heap = calloc (1, sizeof *heap);
    s_call (heap, SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT, &seen);
    cryptod_call_free (&heap);
    assert_null (heap);
    assert_true (seen.freed);
    assert_true (seen.wiped);
    cryptod_call_free (&heap); /* safe twice */
}

static void
test_unknown_body_wiped (void **state)
{
    (void)state;
    s_seen_t seen;
    cm_call_t call;
    /* A garbled request may still be a plaintext chunk.                */
    s_call (&call, -1, &seen);
    assert_true (cryptod_call_secret (&call));
    cryptod_call_release (&call);
    assert_true (seen.freed);
    assert_true (seen.wiped);
    s_call (&call, SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW, &seen);
    cryptod_call_release (&call);
    assert_true (seen.wiped);
}

static void
test_decrypt_request_released (void **state)
{
    (void)state;
    s_seen_t seen;
    cm_call_t call;
    /* Ciphertext: not a secret of ours (cm_call_release decides).      */
    s_call (&call, SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT, &seen);
    assert_false (cryptod_call_secret (&call));
    cryptod_call_release (&call);
    assert_true (seen.freed);
    assert_null (call.blobs);
}

static void
test_dropped_reply_wiped (void **state)
{
    (void)state;
    s_seen_t seen;
    zmsg_t *msg = s_zc_msg (&seen);
    cryptod_msg_destroy_wiped (&msg);
    assert_null (msg);
    assert_true (seen.freed);
    assert_true (seen.wiped);
    cryptod_msg_destroy_wiped (&msg); /* NULL is fine */
}

static void
test_send (void **state)
{
    (void)state;
    s_seen_t seen;
    /* A send that fails (ROUTER_MANDATORY, unknown peer): the frames
       not handed over are wiped.                                       */
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert_non_null (router);
    zsock_set_router_mandatory (router, 1);
    zsock_set_linger (router, 0);
    assert_int_equal (zsock_bind (router, "inproc://test-call-router"), 0);
    zmsg_t *msg = s_zc_msg (&seen);
    zmsg_pushmem (msg, "header", 6);
    zmsg_pushmem (msg, "nobody", 6);
    assert_int_equal (cryptod_msg_send (&msg, router), -1);
    assert_null (msg);
    assert_true (seen.freed);
    assert_true (seen.wiped);
    zsock_destroy (&router);

    /* A send that works delivers the bytes unchanged (our reference is
       dropped, the receiver's is not wiped under it).                  */
    msg = s_zc_msg (&seen);
    zmsg_pushmem (msg, "header", 6);
    assert_int_equal (cryptod_msg_send (&msg, g.out), 0);
    assert_null (msg);
    assert_false (seen.freed);
    zmsg_t *got = zmsg_recv (g.in);
    assert_non_null (got);
    assert_int_equal (zmsg_size (got), 2);
    zframe_t *head = zmsg_first (got);
    assert_true (zframe_streq (head, "header"));
    zframe_t *blob = zmsg_next (got);
    assert_int_equal (zframe_size (blob), LEN);
    for (size_t i = 0; i < LEN; i++) {
        assert_int_equal (zframe_data (blob)[i], 0x5a);
    }
    zmsg_destroy (&got);
    assert_true (seen.freed);
    assert_false (seen.wiped);

    /* Nothing to send is an error, not a crash.                        */
    zmsg_t *none = zmsg_new ();
    assert_int_equal (cryptod_msg_send (&none, g.out), -1);
    assert_null (none);
}

static int
setup (void **state)
{
    (void)state;
    g.in = zsock_new (ZMQ_PAIR);
    g.out = zsock_new (ZMQ_PAIR);
    if (!g.in || !g.out || zsock_bind (g.in, "inproc://test-call") != 0 ||
        zsock_connect (g.out, "inproc://test-call") != 0) {
        return -1;
    }
    zsock_set_rcvtimeo (g.in, 5000);
    g.router = zsock_new (ZMQ_ROUTER);
    g.dealer = zsock_new (ZMQ_DEALER);
    if (!g.router || !g.dealer || zsock_bind (g.router, "inproc://test-call-rpc") != 0 ||
        zsock_connect (g.dealer, "inproc://test-call-rpc") != 0) {
        return -1;
    }
    zsock_set_rcvtimeo (g.router, 5000);
    return 0;
}

static int
teardown (void **state)
{
    (void)state;
    zsock_destroy (&g.dealer);
    zsock_destroy (&g.router);
    zsock_destroy (&g.out);
    zsock_destroy (&g.in);
    return 0;
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_encrypt_request_wiped),
        cmocka_unit_test (test_unknown_body_wiped),
        cmocka_unit_test (test_decrypt_request_released),
        cmocka_unit_test (test_dropped_reply_wiped),
        cmocka_unit_test (test_send),
    };
    return cmocka_run_group_tests (tests, setup, teardown);
}
