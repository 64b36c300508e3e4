/*  cryptod_broker in-process: HEALTH by the broker, the bounded queue
    (crypto_busy; frames count, not only bytes; more than one blob is
    refused before queueing) and the stop path (queued ->
    crypto_stopping) with no worker, then many concurrent chunks spread
    over several workers.                                               */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "crypto_test_client.h"
#include "cryptod_broker.h"
#include "cryptod_keyring.h"
#include "cryptod_stream.h"

#define FILE_A "00112233445566778899aabbccddeeff"
#define CS     4096u

typedef struct {
    char *dir;
    cryptod_keyring_t *keyring;
    cryptod_broker_t *broker;
    pthread_t thread;
    int run_rc;
    char endpoint[64];
} s_fixture_t;

static void *
s_run (void *arg)
{
    s_fixture_t *f = arg;
    f->run_rc = cryptod_broker_run (f->broker);
    return NULL;
}

static s_fixture_t *
s_start (int workers, size_t max_pending, size_t max_pending_bytes)
{
    static int instance;
    s_fixture_t *f = calloc (1, sizeof *f);
    char path[512], id[17];
    f->dir = cm_test_tmpdir ();
    assert_non_null (f->dir);
    snprintf (path, sizeof path, "%s/kek.ring", f->dir);
    assert_int_equal (cryptod_keyring_generate (path, id), 0);
    f->keyring = cryptod_keyring_load (path);
    assert_non_null (f->keyring);
    snprintf (f->endpoint, sizeof f->endpoint, "inproc://test-broker-%d", instance++);
    cryptod_broker_opts_t opts = {f->endpoint, f->keyring,  workers,
                                  CS,          max_pending, max_pending_bytes};
    f->broker = cryptod_broker_new (&opts);
    assert_non_null (f->broker);
    f->run_rc = -2;
    assert_int_equal (pthread_create (&f->thread, NULL, s_run, f), 0);
    return f;
}

static void
s_stop (s_fixture_t *f)
{
    cryptod_broker_stop (f->broker);
    pthread_join (f->thread, NULL);
    assert_int_equal (f->run_rc, 0);
    cryptod_broker_destroy (&f->broker);
    assert_null (f->broker);
    cryptod_keyring_destroy (&f->keyring);
    cm_test_rmrf (f->dir);
    free (f->dir);
    free (f);
}

static void
s_expect_error (s_result_t *r, Safeshare__Status status, const char *code)
{
    assert_non_null (r->reply);
    assert_int_equal (r->reply->status, status);
    assert_non_null (r->reply->error);
    assert_string_equal (r->reply->error->code, code);
    assert_int_equal (zmsg_size (r->blobs), 0);
}

static void
test_queue_bound_and_stop (void **state)
{
    (void)state;
    /* No worker: everything but HEALTH waits in the queue (bound 2).   */
    s_fixture_t *f = s_start (0, 2, 0);
    zsock_t *dealer = cm_sock_client (f->endpoint);
    assert_non_null (dealer);

    Safeshare__CryptoRequest health = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__HealthRequest hbody = SAFESHARE__HEALTH_REQUEST__INIT;
    health.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH;
    health.health = &hbody;
    s_result_t r = s_call (dealer, &health, NULL, 0);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_int_equal (r.reply->body_case, SAFESHARE__CRYPTO_REPLY__BODY_HEALTH);
    assert_string_equal (r.reply->health->service, "crypto");
    assert_string_equal (r.reply->health->version, SAFESHARE_VERSION);
    s_result_free (&r);

    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__KeyNewRequest body = SAFESHARE__KEY_NEW_REQUEST__INIT;
    body.file_id = FILE_A;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW;
    req.key_new = &body;
    char b1[65], b2[65], b3[65];
    s_send_request (dealer, &req, b1, "queued-1", NULL, 0);
    s_send_request (dealer, &req, b2, "queued-2", NULL, 0);
    s_send_request (dealer, &req, b3, "overflow", NULL, 0);
    r = s_recv_reply (dealer, 5000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNAVAILABLE, "crypto_busy");
    assert_string_equal (r.reply->meta->request_id, "overflow");
    s_result_free (&r);

    /* HEALTH still answers while the queue is full.                   */
    r = s_call (dealer, &health, NULL, 0);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    s_result_free (&r);

    /* A request with no body is refused by the broker itself.          */
    Safeshare__CryptoRequest empty = SAFESHARE__CRYPTO_REQUEST__INIT;
    r = s_call (dealer, &empty, NULL, 0);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "missing_body");
    s_result_free (&r);

    /* Stop: the queued ones are answered, in order, not dropped.       */
    cryptod_broker_stop (f->broker);
    const char *ids[] = {"queued-1", "queued-2"};
    for (int i = 0; i < 2; i++) {
        r = s_recv_reply (dealer, 5000);
        s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNAVAILABLE, "crypto_stopping");
        assert_string_equal (r.reply->meta->request_id, ids[i]);
        s_result_free (&r);
    }
    zsock_destroy (&dealer);
    s_stop (f);
}

/* Frames cost queue room even when empty: with no worker, a small
   byte budget and zero-byte requests, the queue fills by their frames
   and headers (it used to take them all: 0 bytes each). A request
   with two blob frames is refused at once, never queued.               */
static void
test_queue_counts_frames (void **state)
{
    (void)state;
    enum { N = 10 };
    s_fixture_t *f = s_start (0, 100, 4096);
    zsock_t *dealer = cm_sock_client (f->endpoint);
    assert_non_null (dealer);

    /* More than one blob (here 3 empty frames): INVALID, answered now. */
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__KeyNewRequest body = SAFESHARE__KEY_NEW_REQUEST__INIT;
    body.file_id = FILE_A;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW;
    req.key_new = &body;
    Safeshare__Meta meta;
    char buf[65];
    cm_meta_init (&meta, buf, "many-frames", 10000);
    req.meta = &meta;
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zframe_t *head = cm_frame_pack ((ProtobufCMessage *)&req);
    zmsg_append (msg, &head);
    for (int i = 0; i < 3; i++) {
        zmsg_addmem (msg, NULL, 0);
    }
    req.meta = NULL;
    assert_int_equal (zmsg_send (&msg, dealer), 0);
    s_result_t r = s_recv_reply (dealer, 5000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_blob_count");
    assert_string_equal (r.reply->meta->request_id, "many-frames");
    s_result_free (&r);
    Safeshare__ChunkRequest chunk;
    ProtobufCBinaryData none = {0, NULL};
    Safeshare__CryptoRequest two =
        s_chunk_request (&chunk, true, FILE_A, "0011223344556677", none, none, 0, true);
    cm_meta_init (&meta, buf, "two-blobs", 10000);
    two.meta = &meta;
    msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    head = cm_frame_pack ((ProtobufCMessage *)&two);
    zmsg_append (msg, &head);
    zmsg_addmem (msg, "a", 1);
    zmsg_addmem (msg, "b", 1);
    assert_int_equal (zmsg_send (&msg, dealer), 0);
    r = s_recv_reply (dealer, 5000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_blob_count");
    assert_string_equal (r.reply->meta->request_id, "two-blobs");
    s_result_free (&r);

    /* Zero-byte KEY_NEWs: some queue, the rest find it full.           */
    char bufs[N][65], ids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf (ids[i], sizeof ids[i], "q-%d", i);
        s_send_request (dealer, &req, bufs[i], ids[i], NULL, 0);
    }
    int busy = 0;
    char refused[N][16];
    while (true) {
        r = s_recv_reply (dealer, 500);
        if (!r.reply) {
            s_result_free (&r);
            break;
        }
        s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNAVAILABLE, "crypto_busy");
        assert_true (busy < N);
        snprintf (refused[busy++], sizeof refused[0], "%s", r.reply->meta->request_id);
        s_result_free (&r);
    }
    int queued = N - busy;
    assert_true (busy >= 1);
    assert_true (queued >= 1);
    /* Once full it stays full: the refused ones are the last ones.     */
    for (int i = 0; i < busy; i++) {
        assert_string_equal (refused[i], ids[queued + i]);
    }
    /* Each costs 3 frames (identity, delimiter, header) at least.      */
    assert_true ((size_t)queued * 3 * CRYPTOD_FRAME_COST <=
                 4096 + 3 * CRYPTOD_FRAME_COST);

    /* The queued ones are answered at the stop, in order.              */
    cryptod_broker_stop (f->broker);
    for (int i = 0; i < queued; i++) {
        r = s_recv_reply (dealer, 5000);
        s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNAVAILABLE, "crypto_stopping");
        assert_string_equal (r.reply->meta->request_id, ids[i]);
        s_result_free (&r);
    }
    zsock_destroy (&dealer);
    s_stop (f);
}

static void
test_many_chunks_many_workers (void **state)
{
    (void)state;
    enum { N = 64 };
    s_fixture_t *f = s_start (4, 0, 0);
    zsock_t *dealer = cm_sock_client (f->endpoint);
    assert_non_null (dealer);

    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__KeyNewRequest body = SAFESHARE__KEY_NEW_REQUEST__INIT;
    body.file_id = FILE_A;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW;
    req.key_new = &body;
    s_result_t key = s_call (dealer, &req, NULL, 0);
    assert_non_null (key.reply);
    assert_int_equal (key.reply->status, SAFESHARE__STATUS__STATUS_OK);
    Safeshare__KeyNewReply *kn = key.reply->key_new;
    assert_non_null (kn);
    assert_int_equal (kn->header.len, CRYPTOD_HEADER_LEN);
    uint32_t cs = 0;
    assert_int_equal (cryptod_header_parse (kn->header.data, kn->header.len, &cs, NULL),
                      0);
    assert_int_equal (cs, CS); /* the broker's default chunk size */

    /* N full chunks fired at once: queued, spread over the workers, each
       answered with its own index, and each decrypts locally.          */
    static uint8_t pt[N][CS];
    char bufs[N][65], ids[N][16];
    for (int i = 0; i < N; i++) {
        memset (pt[i], i + 1, CS);
        Safeshare__ChunkRequest chunk;
        Safeshare__CryptoRequest creq =
            s_chunk_request (&chunk, true, FILE_A, kn->kek_id, kn->wrapped_dek,
                             kn->header, (uint64_t)i, false);
        snprintf (ids[i], sizeof ids[i], "chunk-%d", i);
        s_send_request (dealer, &creq, bufs[i], ids[i], pt[i], CS);
    }
    uint8_t dek[32], back[CS];
    assert_int_equal (cryptod_dek_unwrap (f->keyring, kn->kek_id, FILE_A,
                                          kn->wrapped_dek.data, kn->wrapped_dek.len, dek),
                      0);
    bool seen[N] = {false};
    for (int k = 0; k < N; k++) {
        s_result_t r = s_recv_reply (dealer, 10000);
        assert_non_null (r.reply);
        assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
        assert_int_equal (r.reply->body_case, SAFESHARE__CRYPTO_REPLY__BODY_ENCRYPT);
        uint64_t i = r.reply->encrypt->index;
        assert_true (i < N);
        assert_false (seen[i]);
        seen[i] = true;
        char want[16];
        snprintf (want, sizeof want, "chunk-%d", (int)i);
        assert_string_equal (r.reply->meta->request_id, want);
        assert_int_equal (zmsg_size (r.blobs), 1);
        zframe_t *ct = zmsg_first (r.blobs);
        assert_int_equal (zframe_size (ct), CS + CRYPTOD_TAG_LEN);
        assert_int_equal (cryptod_chunk_open (dek, kn->header.data, i, false,
                                              zframe_data (ct), zframe_size (ct), back),
                          0);
        assert_memory_equal (back, pt[i], CS);
        s_result_free (&r);
    }
    s_result_free (&key);
    zsock_destroy (&dealer);
    s_stop (f);
}

/* Stop while chunks are in flight and queued: every request is
   answered -- done (OK, right bytes) or refused (crypto_stopping) --
   none is lost, and run returns 0 (drained in time).                  */
static void
test_stop_in_flight (void **state)
{
    (void)state;
    enum { N = 8, BIG = 1024 * 1024 };
    s_fixture_t *f = s_start (1, 0, 0);
    zsock_t *dealer = cm_sock_client (f->endpoint);
    assert_non_null (dealer);
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__KeyNewRequest body = SAFESHARE__KEY_NEW_REQUEST__INIT;
    body.file_id = FILE_A;
    body.chunk_size = BIG;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW;
    req.key_new = &body;
    s_result_t key = s_call (dealer, &req, NULL, 0);
    assert_non_null (key.reply);
    assert_int_equal (key.reply->status, SAFESHARE__STATUS__STATUS_OK);
    Safeshare__KeyNewReply *kn = key.reply->key_new;

    uint8_t *pt = malloc (BIG);
    memset (pt, 0x42, BIG);
    char bufs[N][65];
    for (int i = 0; i < N; i++) {
        Safeshare__ChunkRequest chunk;
        Safeshare__CryptoRequest creq =
            s_chunk_request (&chunk, true, FILE_A, kn->kek_id, kn->wrapped_dek,
                             kn->header, (uint64_t)i, false);
        s_send_request (dealer, &creq, bufs[i], NULL, pt, BIG);
    }
    /* HEALTH after them: once it is answered the broker has taken all N
       (front is FIFO per caller), so none is still unread at the stop. */
    Safeshare__CryptoRequest health = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__HealthRequest hbody = SAFESHARE__HEALTH_REQUEST__INIT;
    health.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH;
    health.health = &hbody;
    char hbuf[65];
    s_send_request (dealer, &health, hbuf, "barrier", NULL, 0);
    s_result_t replies[N + 1];
    int got = 0;
    bool barrier = false;
    while (!barrier) {
        s_result_t r = s_recv_reply (dealer, 10000);
        assert_non_null (r.reply);
        if (strcmp (r.reply->meta->request_id, "barrier") == 0) {
            barrier = true;
            s_result_free (&r);
        } else {
            assert_true (got < N);
            replies[got++] = r;
        }
    }
    cryptod_broker_stop (f->broker);
    while (got < N) {
        replies[got] = s_recv_reply (dealer, 10000);
        assert_non_null (replies[got].reply);
        got++;
    }
    int done = 0, refused = 0;
    for (int k = 0; k < N; k++) {
        s_result_t r = replies[k];
        if (r.reply->status == SAFESHARE__STATUS__STATUS_OK) {
            assert_int_equal (zmsg_size (r.blobs), 1);
            assert_int_equal (zframe_size (zmsg_first (r.blobs)), BIG + CRYPTOD_TAG_LEN);
            done++;
        } else {
            s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNAVAILABLE, "crypto_stopping");
            refused++;
        }
        s_result_free (&r);
    }
    assert_int_equal (done + refused, N);
    free (pt);
    s_result_free (&key);
    zsock_destroy (&dealer);
    s_stop (f);
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_queue_bound_and_stop),
        cmocka_unit_test (test_queue_counts_frames),
        cmocka_unit_test (test_many_chunks_many_workers),
        cmocka_unit_test (test_stop_in_flight),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
