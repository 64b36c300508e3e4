/*  cryptod_broker in-process, with its local worker threads and with
    hand-driven workers on its worker endpoint (crypto_test_worker.h):

    - HEALTH, KEY_NEW and POOL_STATUS answered by the broker with no
      worker at all; the bounded queue (crypto_busy; frames count, not
      only bytes; two blobs refused before queueing); stop -> queued
      jobs answered crypto_stopping, in-flight ones finished;
    - many chunks over 4 local threads (bytes checked, jobs_done adds up);
    - a job carries the DEK and the caller's chunk bytes; a worker that
      goes silent holding it is declared dead after 3 heartbeats and the
      same job (same id, DEK, header, bytes) goes to the next worker; its
      late reply is dropped (the caller gets exactly one answer);
    - a late reply for a requeued job not yet resent answers the caller;
    - a job lost CRYPTOD_MAX_ATTEMPTS times -> crypto_unavailable;
    - a job past its deadline is never sent;
    - garbage on the worker endpoint, a malformed reply (requeued to a
      good worker), READY with a bad name, HEARTBEAT from a stranger;
    - the KEK ring file reloaded while the broker runs.                 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "crypto_test_assert.h"
#include "crypto_test_client.h"
#include "crypto_test_worker.h"
#include "cryptod_broker.h"
#include "cryptod_keyring.h"
#include "cryptod_ringwatch.h"
#include "cryptod_stream.h"

#define FILE_A "00112233445566778899aabbccddeeff"
#define CS     4096u

typedef struct {
    char *dir;
    char ring_path[600];
    cryptod_keyring_t *keyring; /* the test's own copy, to check bytes */
    cryptod_ringwatch_t *keys;  /* the broker's */
    cryptod_broker_t *broker;
    pthread_t thread;
    int run_rc;
    char endpoint[64];
    char workers_endpoint[64];
    zsock_t *dealer; /* the caller */
    zsock_t *admin;  /* pool_status, separate so it never eats a reply */
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
    char id[17];
    f->dir = cm_test_tmpdir ();
    assert_non_null (f->dir);
    snprintf (f->ring_path, sizeof f->ring_path, "%s/kek.ring", f->dir);
    assert_int_equal (cryptod_keyring_generate (f->ring_path, id), 0);
    f->keyring = cryptod_keyring_load (f->ring_path);
    assert_non_null (f->keyring);
    f->keys = cryptod_ringwatch_new (f->dir, NULL);
    assert_non_null (f->keys);
    snprintf (f->endpoint, sizeof f->endpoint, "inproc://test-broker-%d", instance);
    snprintf (f->workers_endpoint, sizeof f->workers_endpoint, "inproc://test-workers-%d",
              instance++);
    cryptod_broker_opts_t opts = {
        .endpoint = f->endpoint,
        .worker_endpoint = f->workers_endpoint,
        .keys = f->keys,
        .workers = workers,
        .chunk_size = CS,
        .max_pending = max_pending,
        .max_pending_bytes = max_pending_bytes,
    };
    f->broker = cryptod_broker_new (&opts);
    assert_non_null (f->broker);
    assert_string_equal (cryptod_broker_worker_endpoint (f->broker), f->workers_endpoint);
    f->run_rc = -2;
    assert_int_equal (pthread_create (&f->thread, NULL, s_run, f), 0);
    f->dealer = cm_sock_client (f->endpoint, "crypto");
    f->admin = cm_sock_client (f->endpoint, "crypto");
    assert_non_null (f->dealer);
    assert_non_null (f->admin);
    return f;
}

static void
s_stop (s_fixture_t *f)
{
    zsock_destroy (&f->dealer);
    zsock_destroy (&f->admin);
    cryptod_broker_stop (f->broker);
    pthread_join (f->thread, NULL);
    assert_int_equal (f->run_rc, 0);
    cryptod_broker_destroy (&f->broker);
    assert_null (f->broker);
    cryptod_ringwatch_destroy (&f->keys);
    cryptod_keyring_destroy (&f->keyring);
    cm_test_rmrf (f->dir);
    free (f->dir);
    free (f);
}

/* The job a fake worker got is exactly the caller's chunk with the
   file's DEK and header.                                              */
static void
s_job_check (s_job_t *job, const uint8_t dek[32], Safeshare__KeyNewReply *kn,
             uint64_t index, const uint8_t *pt, size_t len)
{
    assert_non_null (job->req);
    assert_int_equal (job->req->op, SAFESHARE__WORK_OP__WORK_OP_ENCRYPT);
    assert_int_equal (job->req->dek.len, 32);
    assert_memory_equal (job->req->dek.data, dek, 32);
    assert_int_equal (job->req->header.len, CRYPTOD_HEADER_LEN);
    assert_memory_equal (job->req->header.data, kn->header.data, CRYPTOD_HEADER_LEN);
    assert_int_equal (job->req->index, index);
    assert_int_equal (zframe_size (job->blob), len);
    assert_memory_equal (zframe_data (job->blob), pt, len);
}

/* A fake worker's correct answer: seals with the DEK it was sent.     */
static void
s_job_answer (zsock_t *w, s_job_t *job)
{
    size_t len = zframe_size (job->blob);
    uint8_t *ct = malloc (len + CRYPTOD_TAG_LEN);
    assert_int_equal (cryptod_chunk_seal (job->req->dek.data, job->req->header.data,
                                          job->req->index, job->req->last,
                                          zframe_data (job->blob), len, ct),
                      0);
    s_fake_reply (w, job->job_id, SAFESHARE__STATUS__STATUS_OK, NULL, job->req->index, ct,
                  len + CRYPTOD_TAG_LEN);
    free (ct);
}

static void
test_queue_bound_and_stop (void **state)
{
    (void)state;
    /* No worker: HEALTH, KEY_NEW and POOL_STATUS are the broker's own;
       chunks wait in the queue (bound 2).                              */
    s_fixture_t *f = s_start (0, 2, 0);

    Safeshare__CryptoRequest health = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__HealthRequest hbody = SAFESHARE__HEALTH_REQUEST__INIT;
    health.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH;
    health.health = &hbody;
    s_result_t r = s_call (f->dealer, &health, NULL, 0);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_int_equal (r.reply->body_case, SAFESHARE__CRYPTO_REPLY__BODY_HEALTH);
    assert_string_equal (r.reply->health->service, "crypto");
    assert_string_equal (r.reply->health->version, SAFESHARE_VERSION);
    s_result_free (&r);

    s_result_t key;
    uint8_t dek[32];
    Safeshare__KeyNewReply *kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &key, dek);
    uint32_t cs = 0;
    assert_int_equal (cryptod_header_parse (kn->header.data, kn->header.len, &cs, NULL),
                      0);
    assert_int_equal (cs, CS); /* the broker's default chunk size */

    uint8_t pt[CS];
    memset (pt, 0x11, sizeof pt);
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 0, false, pt, CS, "queued-1",
                         10000);
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 1, false, pt, CS, "queued-2",
                         10000);
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 2, false, pt, CS, "overflow",
                         10000);
    r = s_recv_reply (f->dealer, 5000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNAVAILABLE, "crypto_busy");
    assert_string_equal (r.reply->meta->request_id, "overflow");
    s_result_free (&r);

    r = s_pool_status (f->admin);
    assert_int_equal (r.reply->pool_status->queue_depth, 2);
    assert_true (r.reply->pool_status->queue_bytes >= 2 * CS);
    assert_int_equal (r.reply->pool_status->n_workers, 0);
    s_result_free (&r);

    /* HEALTH still answers while the queue is full.                   */
    r = s_call (f->dealer, &health, NULL, 0);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    s_result_free (&r);

    /* A request with no body is refused by the broker itself.          */
    Safeshare__CryptoRequest empty = SAFESHARE__CRYPTO_REQUEST__INIT;
    r = s_call (f->dealer, &empty, NULL, 0);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "missing_body");
    s_result_free (&r);

    /* Stop: the queued ones are answered, in order, not dropped.       */
    cryptod_broker_stop (f->broker);
    const char *ids[] = {"queued-1", "queued-2"};
    for (int i = 0; i < 2; i++) {
        r = s_recv_reply (f->dealer, 5000);
        s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNAVAILABLE, "crypto_stopping");
        assert_string_equal (r.reply->meta->request_id, ids[i]);
        s_result_free (&r);
    }
    s_result_free (&key);
    s_stop (f);
}

/* Frames cost queue room even when empty: with no worker, a small
   byte budget and empty chunks (an empty file's one chunk), the queue
   fills by their frames and headers. A request with two blob frames is
   refused at once, never queued.                                       */
static void
test_queue_counts_frames (void **state)
{
    (void)state;
    enum { N = 10 };
    s_fixture_t *f = s_start (0, 100, 4096);

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
    assert_int_equal (zmsg_send (&msg, f->dealer), 0);
    s_result_t r = s_recv_reply (f->dealer, 5000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_blob_count");
    assert_string_equal (r.reply->meta->request_id, "many-frames");
    s_result_free (&r);

    s_result_t key;
    uint8_t dek[32];
    Safeshare__KeyNewReply *kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &key, dek);
    Safeshare__ChunkRequest chunk;
    Safeshare__CryptoRequest two = s_chunk_request (&chunk, true, FILE_A, kn->kek_id,
                                                    kn->wrapped_dek, kn->header, 0, true);
    cm_meta_init (&meta, buf, "two-blobs", 10000);
    two.meta = &meta;
    msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    head = cm_frame_pack ((ProtobufCMessage *)&two);
    zmsg_append (msg, &head);
    zmsg_addmem (msg, "a", 1);
    zmsg_addmem (msg, "b", 1);
    assert_int_equal (zmsg_send (&msg, f->dealer), 0);
    r = s_recv_reply (f->dealer, 5000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_INVALID, "bad_blob_count");
    assert_string_equal (r.reply->meta->request_id, "two-blobs");
    s_result_free (&r);

    /* Empty chunks: some queue, the rest find it full.                  */
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf (ids[i], sizeof ids[i], "q-%d", i);
        s_send_chunk_within (f->dealer, FILE_A, kn, true, 0, true, "", 0, ids[i], 10000);
    }
    int busy = 0;
    char refused[N][16];
    while (true) {
        r = s_recv_reply (f->dealer, 500);
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
    /* Each costs 4 frames (identity, delimiter, header, empty blob) at
       least: their bytes alone (0) would have let all N in.             */
    assert_true ((size_t)queued * 4 * CRYPTOD_FRAME_COST <= 4096);

    /* The queued ones are answered at the stop, in order.              */
    cryptod_broker_stop (f->broker);
    for (int i = 0; i < queued; i++) {
        r = s_recv_reply (f->dealer, 5000);
        s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNAVAILABLE, "crypto_stopping");
        assert_string_equal (r.reply->meta->request_id, ids[i]);
        s_result_free (&r);
    }
    s_result_free (&key);
    s_stop (f);
}

static void
test_many_chunks_many_workers (void **state)
{
    (void)state;
    enum { N = 64 };
    s_fixture_t *f = s_start (4, 0, 0);
    s_wait_pool_size (f->admin, 4, 5000);
    s_result_t key;
    uint8_t dek[32];
    Safeshare__KeyNewReply *kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &key, dek);

    /* N full chunks fired at once: queued, spread over the workers, each
       answered with its own index, and each decrypts locally.          */
    static uint8_t pt[N][CS];
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        memset (pt[i], i + 1, CS);
        snprintf (ids[i], sizeof ids[i], "chunk-%d", i);
        s_send_chunk_within (f->dealer, FILE_A, kn, true, (uint64_t)i, false, pt[i], CS,
                             ids[i], 10000);
    }
    bool seen[N] = {false};
    for (int k = 0; k < N; k++) {
        s_result_t r = s_recv_reply (f->dealer, 10000);
        assert_non_null (r.reply);
        uint64_t i = r.reply->encrypt ? r.reply->encrypt->index : N;
        assert_true (i < N);
        assert_false (seen[i]);
        seen[i] = true;
        assert_string_equal (r.reply->meta->request_id, ids[i]);
        s_expect_ciphertext (&r, dek, kn, i, false, pt[i], CS);
        s_result_free (&r);
    }
    /* pool_status: four local workers, and their jobs add up to N.     */
    s_result_t st = s_pool_status (f->admin);
    Safeshare__PoolStatusReply *ps = st.reply->pool_status;
    assert_int_equal (ps->n_workers, 4);
    uint64_t done = 0;
    for (size_t i = 0; i < ps->n_workers; i++) {
        assert_true (ps->workers[i]->local);
        assert_non_null (strchr (ps->workers[i]->name, ':'));
        done += ps->workers[i]->jobs_done;
    }
    assert_int_equal (done, N);
    assert_int_equal (ps->queue_depth, 0);
    assert_int_equal (ps->requeued_total, 0);
    s_result_free (&st);

    /* And back: DECRYPT through the pool gives the plaintext.          */
    uint8_t ct[CS + CRYPTOD_TAG_LEN];
    assert_int_equal (cryptod_chunk_seal (dek, kn->header.data, 7, true, pt[7], 100, ct),
                      0);
    s_send_chunk_within (f->dealer, FILE_A, kn, false, 7, true, ct, 100 + CRYPTOD_TAG_LEN,
                         "dec-7", 10000);
    s_result_t r = s_recv_reply (f->dealer, 10000);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_int_equal (r.reply->body_case, SAFESHARE__CRYPTO_REPLY__BODY_DECRYPT);
    assert_int_equal (zframe_size (zmsg_first (r.blobs)), 100);
    assert_memory_equal (zframe_data (zmsg_first (r.blobs)), pt[7], 100);
    s_result_free (&r);
    /* A flipped bit: UNPROCESSABLE, no plaintext.                       */
    ct[5] ^= 1;
    s_send_chunk_within (f->dealer, FILE_A, kn, false, 7, true, ct, 100 + CRYPTOD_TAG_LEN,
                         "dec-bad", 10000);
    r = s_recv_reply (f->dealer, 10000);
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNPROCESSABLE, "chunk_auth_failed");
    s_result_free (&r);
    s_result_free (&key);
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
    s_wait_pool_size (f->admin, 1, 5000);
    s_result_t key = s_key_new_call (f->dealer, FILE_A, BIG);
    assert_non_null (key.reply);
    assert_int_equal (key.reply->status, SAFESHARE__STATUS__STATUS_OK);
    Safeshare__KeyNewReply *kn = key.reply->key_new;

    uint8_t *pt = malloc (BIG);
    memset (pt, 0x42, BIG);
    for (int i = 0; i < N; i++) {
        s_send_chunk_within (f->dealer, FILE_A, kn, true, (uint64_t)i, false, pt, BIG,
                             NULL, 10000);
    }
    /* HEALTH after them: once it is answered the broker has taken all N
       (front is FIFO per caller), so none is still unread at the stop. */
    Safeshare__CryptoRequest health = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__HealthRequest hbody = SAFESHARE__HEALTH_REQUEST__INIT;
    health.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH;
    health.health = &hbody;
    char hbuf[65];
    s_send_request (f->dealer, &health, hbuf, "barrier", NULL, 0);
    s_result_t replies[N + 1];
    int got = 0;
    bool barrier = false;
    while (!barrier) {
        s_result_t r = s_recv_reply (f->dealer, 10000);
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
        replies[got] = s_recv_reply (f->dealer, 10000);
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
    assert_true (done >= 1);
    free (pt);
    s_result_free (&key);
    s_stop (f);
}

/* W1 takes the job and goes silent: after 3 heartbeats (+ a tick) the
   broker resends the same job to W2, which answers; W1's late reply is
   then dropped and the caller has exactly one answer.                 */
static void
test_silent_worker_job_resent (void **state)
{
    (void)state;
    s_fixture_t *f = s_start (0, 0, 0);
    s_result_t key;
    uint8_t dek[32];
    Safeshare__KeyNewReply *kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &key, dek);
    zsock_t *w1 = s_fake_new (f->workers_endpoint, "test:1:0");
    assert_non_null (w1);
    s_wait_pool_size (f->admin, 1, 5000);

    uint8_t pt[CS];
    assert_int_equal (cm_random (pt, sizeof pt), 0);
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 3, false, pt, CS, "resend-me",
                         20000);
    s_wmsg_t m1 = s_fake_recv (w1, 5000, false);
    uint64_t got1 = cm_mono_ms ();
    s_job_t job1;
    assert_true (s_job_parse (&m1, &job1));
    s_job_check (&job1, dek, kn, 3, pt, CS);

    zsock_t *w2 = s_fake_new (f->workers_endpoint, "test:2:0");
    s_wmsg_t m2 = s_fake_recv (w2, 8000, true);
    uint64_t got2 = cm_mono_ms ();
    s_job_t job2;
    assert_true (s_job_parse (&m2, &job2));
    /* Not before W1 was silent for 3 heartbeats, not long after.        */
    assert_true (got2 - got1 >= 2500);
    assert_true (got2 - got1 <= 5000);
    assert_memory_equal (zframe_data (job2.job_id), zframe_data (job1.job_id),
                         CRYPTOD_JOB_ID_LEN);
    s_job_check (&job2, dek, kn, 3, pt, CS);
    s_job_answer (w2, &job2);
    s_result_t r = s_recv_reply (f->dealer, 5000);
    assert_string_equal (r.reply->meta->request_id, "resend-me");
    s_expect_ciphertext (&r, dek, kn, 3, false, pt, CS);
    s_result_free (&r);

    /* W1 wakes up and answers: dropped (and told to READY again).      */
    s_job_answer (w1, &job1);
    r = s_recv_reply (f->dealer, 1500);
    assert_null (r.reply);
    s_result_free (&r);
    s_wmsg_t bye = s_fake_recv (w1, 3000, true);
    assert_string_equal (bye.cmd, CRYPTOD_CMD_DISCONNECT);
    s_wmsg_free (&bye);
    r = s_pool_status (f->admin);
    Safeshare__PoolStatusReply *ps = r.reply->pool_status;
    assert_int_equal (ps->requeued_total, 1);
    assert_int_equal (ps->late_replies_total, 1);
    assert_int_equal (ps->n_workers, 1);
    assert_string_equal (ps->workers[0]->name, "test:2:0");
    assert_int_equal (ps->workers[0]->jobs_done, 1);
    assert_false (ps->workers[0]->local);
    s_result_free (&r);

    s_job_free (&job1);
    s_job_free (&job2);
    s_wmsg_free (&m1);
    s_wmsg_free (&m2);
    zsock_destroy (&w1);
    zsock_destroy (&w2);
    s_result_free (&key);
    s_stop (f);
}

/* The job was requeued (its worker declared dead) but no worker took it
   yet: the dead worker's late reply still answers it, and it leaves the
   queue.                                                              */
static void
test_late_reply_for_requeued_job (void **state)
{
    (void)state;
    s_fixture_t *f = s_start (0, 0, 0);
    s_result_t key;
    uint8_t dek[32];
    Safeshare__KeyNewReply *kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &key, dek);
    zsock_t *w1 = s_fake_new (f->workers_endpoint, "test:1:0");
    s_wait_pool_size (f->admin, 1, 5000);
    uint8_t pt[CS];
    memset (pt, 0x5c, sizeof pt);
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 0, false, pt, CS, "requeued",
                         20000);
    s_wmsg_t m1 = s_fake_recv (w1, 5000, false);
    s_job_t job1;
    assert_true (s_job_parse (&m1, &job1));
    /* Silent until it is dropped and its job waits again.              */
    s_wait_pool_size (f->admin, 0, 5000);
    s_result_t st = s_pool_status (f->admin);
    assert_int_equal (st.reply->pool_status->queue_depth, 1);
    assert_int_equal (st.reply->pool_status->requeued_total, 1);
    s_result_free (&st);
    s_job_answer (w1, &job1);
    s_result_t r = s_recv_reply (f->dealer, 5000);
    assert_string_equal (r.reply->meta->request_id, "requeued");
    s_expect_ciphertext (&r, dek, kn, 0, false, pt, CS);
    s_result_free (&r);
    st = s_pool_status (f->admin);
    assert_int_equal (st.reply->pool_status->queue_depth, 0);
    assert_int_equal (st.reply->pool_status->late_replies_total, 0);
    s_result_free (&st);
    s_job_free (&job1);
    s_wmsg_free (&m1);
    zsock_destroy (&w1);
    s_result_free (&key);
    s_stop (f);
}

/* Three workers in turn take the job and vanish: the caller is told
   crypto_unavailable instead of waiting for ever.                    */
static void
test_max_attempts (void **state)
{
    (void)state;
    s_fixture_t *f = s_start (0, 0, 0);
    s_result_t key;
    uint8_t dek[32];
    Safeshare__KeyNewReply *kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &key, dek);
    uint8_t pt[CS];
    memset (pt, 0x21, sizeof pt);
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 0, false, pt, CS, "unlucky", 30000);
    for (int i = 0; i < CRYPTOD_MAX_ATTEMPTS; i++) {
        char name[32];
        snprintf (name, sizeof name, "vanishing:%d:0", i);
        zsock_t *w = s_fake_new (f->workers_endpoint, name);
        s_wmsg_t m = s_fake_recv (w, 5000, false);
        s_job_t job;
        assert_true (s_job_parse (&m, &job));
        s_job_check (&job, dek, kn, 0, pt, CS);
        s_job_free (&job);
        s_wmsg_free (&m);
        zsock_destroy (&w); /* gone, job in hand */
        if (i + 1 < CRYPTOD_MAX_ATTEMPTS) {
            s_wait_pool_size (f->admin, 0, 5000);
        }
    }
    s_result_t r = s_recv_reply (f->dealer, 8000);
    assert_string_equal (r.reply->meta->request_id, "unlucky");
    s_expect_error (&r, SAFESHARE__STATUS__STATUS_UNAVAILABLE, "crypto_unavailable");
    s_result_free (&r);
    s_result_t st = s_pool_status (f->admin);
    assert_int_equal (st.reply->pool_status->requeued_total, CRYPTOD_MAX_ATTEMPTS - 1);
    assert_int_equal (st.reply->pool_status->queue_depth, 0);
    s_result_free (&st);
    s_result_free (&key);
    s_stop (f);
}

/* A job whose deadline passes in the queue is dropped: a worker that
   comes later never sees it (and the caller, who gave up, gets nothing). */
static void
test_deadline_not_sent (void **state)
{
    (void)state;
    s_fixture_t *f = s_start (0, 0, 0);
    s_result_t key;
    uint8_t dek[32];
    Safeshare__KeyNewReply *kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &key, dek);
    uint8_t pt[CS];
    memset (pt, 0x33, sizeof pt);
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 0, false, pt, CS, "too-late", 300);
    /* On the caller's socket, so it is read after the chunk.           */
    s_result_t st = s_pool_status_call (f->dealer);
    assert_non_null (st.reply);
    assert_int_equal (st.reply->pool_status->queue_depth, 1);
    s_result_free (&st);
    s_sleep_ms (800);
    st = s_pool_status (f->admin);
    assert_int_equal (st.reply->pool_status->queue_depth, 0);
    s_result_free (&st);
    zsock_t *w = s_fake_new (f->workers_endpoint, "late:1:0");
    s_wmsg_t m = s_fake_recv (w, 2500, true);
    assert_string_equal (m.cmd, ""); /* heartbeats only */
    s_wmsg_free (&m);
    s_result_t r = s_recv_reply (f->dealer, 200);
    assert_null (r.reply);
    s_result_free (&r);
    /* The same worker does take a live job.                            */
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 0, false, pt, CS, "in-time", 10000);
    m = s_fake_recv (w, 5000, true);
    s_job_t job;
    assert_true (s_job_parse (&m, &job));
    s_job_answer (w, &job);
    r = s_recv_reply (f->dealer, 5000);
    assert_string_equal (r.reply->meta->request_id, "in-time");
    s_expect_ciphertext (&r, dek, kn, 0, false, pt, CS);
    s_result_free (&r);
    s_job_free (&job);
    s_wmsg_free (&m);
    zsock_destroy (&w);
    s_result_free (&key);
    s_stop (f);
}

/* Garbage on the worker endpoint never takes the broker down; a worker
   that answers with the wrong bytes is dropped and its job goes to a
   good one; a stranger's HEARTBEAT or a bad READY name gets DISCONNECT. */
static void
test_backend_garbage (void **state)
{
    (void)state;
    s_fixture_t *f = s_start (0, 0, 0);
    s_result_t key;
    uint8_t dek[32];
    Safeshare__KeyNewReply *kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &key, dek);

    zsock_t *junk = s_fake_new (f->workers_endpoint, NULL);
    /* A stranger's HEARTBEAT: told to READY again.                     */
    s_fake_cmd (junk, CRYPTOD_CMD_HEARTBEAT);
    s_wmsg_t m = s_fake_recv (junk, 3000, false);
    assert_string_equal (m.cmd, CRYPTOD_CMD_DISCONNECT);
    s_wmsg_free (&m);
    /* Bad names: too long, a space, a control byte.                     */
    char long_name[200];
    memset (long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    const char *bad_names[] = {long_name, "a b", "tab\there", ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        zstr_sendx (junk, CRYPTOD_PROTOCOL, CRYPTOD_CMD_READY, bad_names[i], NULL);
        m = s_fake_recv (junk, 3000, false);
        assert_string_equal (m.cmd, CRYPTOD_CMD_DISCONNECT);
        s_wmsg_free (&m);
    }
    zstr_send (junk, "");
    zstr_send (junk, "hello");
    zstr_sendx (junk, CRYPTOD_PROTOCOL, NULL);
    zstr_sendx (junk, "SSW9", CRYPTOD_CMD_READY, "x:1:0", NULL);
    zstr_sendx (junk, CRYPTOD_PROTOCOL, "BOGUS", NULL);
    zstr_sendx (junk, CRYPTOD_PROTOCOL, CRYPTOD_CMD_REPLY, NULL);
    zstr_sendx (junk, CRYPTOD_PROTOCOL, CRYPTOD_CMD_REPLY, "12345678", "not protobuf",
                "blob", NULL);
    zstr_sendx (junk, CRYPTOD_PROTOCOL, CRYPTOD_CMD_REPLY, "short", "x", NULL);
    zstr_sendx (junk, CRYPTOD_PROTOCOL, CRYPTOD_CMD_DISCONNECT, NULL);
    uint8_t random_bytes[300];
    for (int i = 0; i < 20; i++) {
        assert_int_equal (cm_random (random_bytes, sizeof random_bytes), 0);
        zmsg_t *gm = zmsg_new ();
        for (int k = 0; k <= i % 5; k++) {
            zmsg_addmem (gm, random_bytes + k * 10, (size_t)(i * 7 + k) % 250);
        }
        zmsg_send (&gm, junk);
    }
    s_result_t st = s_pool_status (f->admin);
    assert_int_equal (st.reply->pool_status->n_workers, 0);
    s_result_free (&st);

    /* A worker that answers with a wrong-length blob.                  */
    zsock_t *bad = s_fake_new (f->workers_endpoint, "liar:1:0");
    s_wait_pool_size (f->admin, 1, 5000);
    uint8_t pt[CS];
    memset (pt, 0x44, sizeof pt);
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 5, false, pt, CS, "after-garbage",
                         20000);
    m = s_fake_recv (bad, 5000, true);
    s_job_t job;
    assert_true (s_job_parse (&m, &job));
    s_wmsg_free (&m);
    /* A stranger answers that very job (right id, right length): it was
       never sent to it, so it is dropped as late, not given to the
       caller.                                                          */
    uint8_t fake_ct[CS + CRYPTOD_TAG_LEN];
    memset (fake_ct, 0xee, sizeof fake_ct);
    s_fake_reply (junk, job.job_id, SAFESHARE__STATUS__STATUS_OK, NULL, 5, fake_ct,
                  sizeof fake_ct);
    s_fake_reply (bad, job.job_id, SAFESHARE__STATUS__STATUS_OK, NULL, 5, pt, 10);
    m = s_fake_recv (bad, 3000, true);
    assert_string_equal (m.cmd, CRYPTOD_CMD_DISCONNECT);
    s_wmsg_free (&m);
    s_job_free (&job);

    zsock_t *good = s_fake_new (f->workers_endpoint, "good:1:0");
    m = s_fake_recv (good, 5000, true);
    assert_true (s_job_parse (&m, &job));
    s_job_check (&job, dek, kn, 5, pt, CS);
    s_job_answer (good, &job);
    s_result_t r = s_recv_reply (f->dealer, 5000);
    assert_string_equal (r.reply->meta->request_id, "after-garbage");
    s_expect_ciphertext (&r, dek, kn, 5, false, pt, CS);
    s_result_free (&r);
    r = s_recv_reply (f->dealer, 500);
    assert_null (r.reply);
    s_result_free (&r);
    st = s_pool_status (f->admin);
    /* The stranger's REPLY "12345678" and its answer to the real job.  */
    assert_int_equal (st.reply->pool_status->late_replies_total, 2);
    assert_int_equal (st.reply->pool_status->requeued_total, 1);
    s_result_free (&st);
    s_job_free (&job);
    s_wmsg_free (&m);
    zsock_destroy (&good);
    zsock_destroy (&bad);
    zsock_destroy (&junk);
    s_result_free (&key);
    s_stop (f);
}

/* `keys rotate` appends a KEK to the file while the broker runs: within
   about 2 s KEY_NEW wraps with it, and a chunk whose DEK is under it
   works; a broken file is refused and the ring in use kept.           */
static void
test_ring_reload (void **state)
{
    (void)state;
    s_fixture_t *f = s_start (1, 0, 0);
    s_result_t key;
    uint8_t dek[32];
    Safeshare__KeyNewReply *kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &key, dek);
    char new_id[17];
    assert_int_equal (cryptod_keyring_generate (f->ring_path, new_id), 0);
    cryptod_keyring_t *ring = cryptod_keyring_load (f->ring_path);
    assert_non_null (ring);
    assert_string_equal (cryptod_keyring_current (ring), new_id);

    /* A chunk under the new KEK: kek_not_found at most until the broker
       looks at the file again (on the miss, or its 2 s stat).          */
    uint8_t wrapped[60], dek2[32];
    size_t wl = sizeof wrapped;
    char kid[17];
    assert_int_equal (cm_random (dek2, 32), 0);
    assert_int_equal (cryptod_dek_wrap (ring, FILE_A, dek2, kid, wrapped, &wl), 0);
    assert_string_equal (kid, new_id);
    Safeshare__KeyNewReply k2 = *kn;
    k2.kek_id = kid;
    k2.wrapped_dek.data = wrapped;
    k2.wrapped_dek.len = wl;
    uint8_t pt[100];
    memset (pt, 0x77, sizeof pt);
    uint64_t deadline = cm_mono_ms () + 3000;
    bool ok = false;
    while (!ok && cm_mono_ms () < deadline) {
        s_send_chunk_within (f->dealer, FILE_A, &k2, true, 0, true, pt, sizeof pt,
                             "new-kek", 10000);
        s_result_t r = s_recv_reply (f->dealer, 5000);
        assert_non_null (r.reply);
        if (r.reply->status == SAFESHARE__STATUS__STATUS_OK) {
            s_expect_ciphertext (&r, dek2, kn, 0, true, pt, sizeof pt);
            ok = true;
        } else {
            s_expect_error (&r, SAFESHARE__STATUS__STATUS_NOT_FOUND, "kek_not_found");
            s_sleep_ms (100);
        }
        s_result_free (&r);
    }
    assert_true (ok);
    s_result_t k = s_key_new_call (f->dealer, FILE_A, 0);
    assert_int_equal (k.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_string_equal (k.reply->key_new->kek_id, new_id);
    s_result_free (&k);

    /* A broken ring file: refused, the ring in use stays.               */
    FILE *fp = fopen (f->ring_path, "w");
    assert_non_null (fp);
    fputs ("this is not a ring\n", fp);
    fclose (fp);
    s_sleep_ms (2600);
    k = s_key_new_call (f->dealer, FILE_A, 0);
    assert_int_equal (k.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_string_equal (k.reply->key_new->kek_id, new_id);
    s_result_free (&k);
    /* The old KEK still unwraps (the ring in use has both).            */
    s_send_chunk_within (f->dealer, FILE_A, kn, true, 0, true, pt, sizeof pt, "old-kek",
                         10000);
    s_result_t r = s_recv_reply (f->dealer, 5000);
    s_expect_ciphertext (&r, dek, kn, 0, true, pt, sizeof pt);
    s_result_free (&r);
    cryptod_keyring_destroy (&ring);
    s_result_free (&key);
    s_stop (f);
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_queue_bound_and_stop),
        cmocka_unit_test (test_queue_counts_frames),
        cmocka_unit_test (test_many_chunks_many_workers),
        cmocka_unit_test (test_stop_in_flight),
        cmocka_unit_test (test_silent_worker_job_resent),
        cmocka_unit_test (test_late_reply_for_requeued_job),
        cmocka_unit_test (test_max_attempts),
        cmocka_unit_test (test_deadline_not_sent),
        cmocka_unit_test (test_backend_garbage),
        cmocka_unit_test (test_ring_reload),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
