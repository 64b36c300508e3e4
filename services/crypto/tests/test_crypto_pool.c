/*  svc_crypto_pool: the real broker (SAFESHARE_CRYPTO_WORKERS=0, remote
    workers on a loopback tcp endpoint) and real `safeshare-crypto worker`
    processes, each run with an empty data dir and no key dir:

    - a remote worker takes work (bytes checked; its jobs_done in
      pool_status), its data dir stays empty, SIGTERM -> exit 0 and the
      broker forgets it at once (DISCONNECT);
    - kill -9 of the worker holding a job: another worker answers it,
      with the right ciphertext, within a bounded time;
    - a worker that stops without dying (SIGSTOP) is declared dead and
      its job resent; SIGCONT: its late reply is dropped (the caller got
      exactly one answer) and it rejoins;
    - a worker that connects late takes the queued work;
    - the broker killed and started again: the workers come back;
    - a full queue answers crypto_busy, and the queued jobs are done
      once a worker comes;
    - a job past its deadline is never sent;
    - garbage on the worker endpoint (a fake DEALER over tcp) does not
      hurt the broker;
    - bad worker command lines exit 2.                                 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "crypto_test_assert.h"
#include "crypto_test_client.h"
#include "crypto_test_worker.h"
#include "cryptod_keyring.h"
#include "cryptod_stream.h"

#define FILE_A "0123456789abcdef0123456789abcdef"
#define CS     65536u
#define MAX_W  4

static const char *s_binary;

typedef struct {
    char *dir;
    char ring[700];
    char endpoint[700];   /* the broker's front (ipc) */
    char workers_ep[64];  /* tcp://127.0.0.1:PORT */
    char worker_dir[700]; /* the workers' data dir: stays empty */
    pid_t broker;
    pid_t workers[MAX_W];
    int nworkers;
    zsock_t *dealer; /* the caller */
    zsock_t *admin;  /* pool_status */
    cryptod_keyring_t *keyring;
    s_result_t key;
    Safeshare__KeyNewReply *kn;
    uint8_t dek[32];
} s_fixture_t;

static pid_t
s_spawn_broker (s_fixture_t *f)
{
    char env_data[800], env_ep[800], env_wep[100];
    snprintf (env_data, sizeof env_data, "SAFESHARE_DATA_DIR=%s", f->dir);
    snprintf (env_ep, sizeof env_ep, "SAFESHARE_CRYPTO_ENDPOINT=%s", f->endpoint);
    snprintf (env_wep, sizeof env_wep, "SAFESHARE_CRYPTO_WORKER_ENDPOINT=%s",
              f->workers_ep);
    char *env[] = {env_data,
                   env_ep,
                   env_wep,
                   "SAFESHARE_CRYPTO_WORKERS=0",
                   "SAFESHARE_CHUNK_SIZE=65536",
                   "SAFESHARE_LOG_LEVEL=info",
                   NULL};
    char *argv[] = {(char *)s_binary, NULL};
    pid_t pid = cm_test_spawn (s_binary, argv, env);
    assert_true (pid > 0);
    return pid;
}

/* A worker process with `threads` threads, no key dir, an empty data
   dir (it must need neither).                                          */
static pid_t
s_spawn_worker (s_fixture_t *f, int threads)
{
    char env_data[800], env_keys[800], nthreads[16];
    snprintf (env_data, sizeof env_data, "SAFESHARE_DATA_DIR=%s", f->worker_dir);
    snprintf (env_keys, sizeof env_keys, "SAFESHARE_KEY_DIR=%s/no-keys", f->worker_dir);
    snprintf (nthreads, sizeof nthreads, "%d", threads);
    char *env[] = {env_data, env_keys, "SAFESHARE_LOG_LEVEL=info", NULL};
    char *argv[] = {(char *)s_binary, "worker", "--connect", f->workers_ep,
                    "--threads",      nthreads, NULL};
    pid_t pid = cm_test_spawn (s_binary, argv, env);
    assert_true (pid > 0);
    assert_true (f->nworkers < MAX_W);
    f->workers[f->nworkers++] = pid;
    return pid;
}

/* The worker of process pid in a pool_status (names are host:pid:n). */
static Safeshare__WorkerStatus *
s_worker_of (Safeshare__PoolStatusReply *ps, pid_t pid)
{
    char needle[32];
    snprintf (needle, sizeof needle, ":%d:", (int)pid);
    for (size_t i = 0; i < ps->n_workers; i++) {
        if (strstr (ps->workers[i]->name, needle)) {
            return ps->workers[i];
        }
    }
    return NULL;
}

/* Which of workers a and b is busy (the one holding the job), polled
   for up to 2 s; 0 if neither.                                        */
static pid_t
s_busy_worker (s_fixture_t *f, pid_t a, pid_t b)
{
    pid_t holder = 0;
    uint64_t deadline = cm_mono_ms () + 2000;
    while (!holder && cm_mono_ms () < deadline) {
        s_result_t r = s_pool_status (f->admin);
        Safeshare__PoolStatusReply *ps = r.reply->pool_status;
        Safeshare__WorkerStatus *wa = s_worker_of (ps, a), *wb = s_worker_of (ps, b);
        holder = wa && wa->busy ? a : wb && wb->busy ? b : 0;
        s_result_free (&r);
    }
    return holder;
}

static void
s_connect_callers (s_fixture_t *f)
{
    f->dealer = cm_sock_client (f->endpoint, "crypto");
    f->admin = cm_sock_client (f->endpoint, "crypto");
    assert_non_null (f->dealer);
    assert_non_null (f->admin);
}

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    f->dir = s_tmp_ring (f->ring, &f->keyring);
    snprintf (f->worker_dir, sizeof f->worker_dir, "%s/worker-empty", f->dir);
    assert_int_equal (mkdir (f->worker_dir, 0700), 0);
    snprintf (f->endpoint, sizeof f->endpoint, "ipc://%s/run/crypto.sock", f->dir);
    int port = cm_test_free_port ();
    assert_true (port > 0);
    snprintf (f->workers_ep, sizeof f->workers_ep, "tcp://127.0.0.1:%d", port);
    f->broker = s_spawn_broker (f);
    s_wait_health (f->endpoint, f->broker);
    s_connect_callers (f);
    f->kn = s_key_new_dek (f->dealer, f->keyring, FILE_A, &f->key, f->dek);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    zsock_destroy (&f->dealer);
    zsock_destroy (&f->admin);
    /* Every process still running stops cleanly on SIGTERM (exit 0:
       under the sanitizers that also means no leak report).            */
    int worker_rc = 0, broker_rc = 0;
    for (int i = 0; i < f->nworkers; i++) {
        if (f->workers[i] > 0) {
            kill (f->workers[i], SIGCONT);
            int rc = cm_test_stop (f->workers[i], 5000);
            worker_rc = worker_rc ? worker_rc : rc;
        }
    }
    if (f->broker > 0) {
        broker_rc = cm_test_stop (f->broker, 8000);
    }
    s_result_free (&f->key);
    cryptod_keyring_destroy (&f->keyring);
    cm_test_rmrf (f->dir);
    free (f->dir);
    free (f);
    assert_int_equal (worker_rc, 0);
    assert_int_equal (broker_rc, 0);
    return 0;
}

static void
s_send_chunk (s_fixture_t *f, bool encrypt, uint64_t index, bool last, const void *data,
              size_t len, const char *req_id, int timeout_ms)
{
    s_send_chunk_within (f->dealer, FILE_A, f->kn, encrypt, index, last, data, len,
                         req_id, timeout_ms);
}

/* The caller's next reply: request id req_id, the right ciphertext of
   pt for chunk index.                                                 */
static void
s_expect_sealed (s_fixture_t *f, const char *req_id, uint64_t index, bool last,
                 const uint8_t *pt, size_t len, int timeout_ms)
{
    s_result_t r = s_recv_reply (f->dealer, timeout_ms);
    assert_non_null (r.reply);
    assert_string_equal (r.reply->meta->request_id, req_id);
    s_expect_ciphertext (&r, f->dek, f->kn, index, last, pt, len);
    s_result_free (&r);
}

/* The caller's next reply is the plaintext pt.                        */
static void
s_expect_opened (s_fixture_t *f, const char *req_id, const uint8_t *pt, size_t len,
                 int timeout_ms)
{
    s_result_t r = s_recv_reply (f->dealer, timeout_ms);
    assert_non_null (r.reply);
    assert_string_equal (r.reply->meta->request_id, req_id);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
    assert_int_equal (r.reply->body_case, SAFESHARE__CRYPTO_REPLY__BODY_DECRYPT);
    assert_int_equal (zmsg_size (r.blobs), 1);
    assert_int_equal (zframe_size (zmsg_first (r.blobs)), len);
    assert_memory_equal (zframe_data (zmsg_first (r.blobs)), pt, len);
    s_result_free (&r);
}

static void
s_expect_no_reply (s_fixture_t *f, int timeout_ms)
{
    s_result_t r = s_recv_reply (f->dealer, timeout_ms);
    if (r.reply) {
        fail_msg ("unexpected reply for %s", r.reply->meta->request_id);
    }
    s_result_free (&r);
}

static bool
s_dir_empty (const char *path)
{
    DIR *d = opendir (path);
    assert_non_null (d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0) {
            n++;
        }
    }
    closedir (d);
    return n == 0;
}

static void
test_remote_worker_takes_work (void **state)
{
    s_fixture_t *f = *state;
    enum { N = 8 };
    pid_t w = s_spawn_worker (f, 2);
    s_wait_pool_size (f->admin, 2, 10000);
    static uint8_t pt[N][CS];
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        assert_int_equal (cm_random (pt[i], CS), 0);
        snprintf (ids[i], sizeof ids[i], "enc-%d", i);
        s_send_chunk (f, true, (uint64_t)i, false, pt[i], CS, ids[i], 10000);
        s_expect_sealed (f, ids[i], (uint64_t)i, false, pt[i], CS, 10000);
    }
    /* DECRYPT through the remote worker: plaintext back.               */
    static uint8_t ct[CS + CRYPTOD_TAG_LEN];
    assert_int_equal (
        cryptod_chunk_seal (f->dek, f->kn->header.data, 3, true, pt[3], 1000, ct), 0);
    s_send_chunk (f, false, 3, true, ct, 1000 + CRYPTOD_TAG_LEN, "dec-3", 10000);
    s_expect_opened (f, "dec-3", pt[3], 1000, 10000);
    /* And a tampered one: refused, no plaintext.                       */
    ct[10] ^= 0x80;
    s_send_chunk (f, false, 3, true, ct, 1000 + CRYPTOD_TAG_LEN, "dec-bad", 10000);
    s_result_t r = s_recv_reply (f->dealer, 10000);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_UNPROCESSABLE);
    assert_string_equal (r.reply->error->code, "chunk_auth_failed");
    assert_int_equal (zmsg_size (r.blobs), 0);
    s_result_free (&r);

    r = s_pool_status (f->admin);
    Safeshare__PoolStatusReply *ps = r.reply->pool_status;
    assert_int_equal (ps->n_workers, 2);
    uint64_t done = 0;
    for (size_t i = 0; i < ps->n_workers; i++) {
        assert_false (ps->workers[i]->local);
        assert_non_null (s_worker_of (ps, w));
        done += ps->workers[i]->jobs_done;
    }
    assert_int_equal (done, N + 2);
    assert_true (s_worker_of (ps, w)->jobs_done > 0);
    s_result_free (&r);

    /* It needed no key and wrote nothing.                              */
    assert_true (s_dir_empty (f->worker_dir));
    /* SIGTERM: exit 0, and DISCONNECT makes the broker forget it now,
       not after 3 silent heartbeats.                                   */
    assert_int_equal (cm_test_stop (w, 5000), 0);
    f->workers[0] = -1;
    s_wait_pool_size (f->admin, 0, 1000);
}

/* Both workers stopped, the job sent to one of them, that one killed:
   the other (resumed) answers it, right bytes, soon.                  */
static void
test_kill9_worker_holding_job (void **state)
{
    s_fixture_t *f = *state;
    pid_t a = s_spawn_worker (f, 1);
    pid_t b = s_spawn_worker (f, 1);
    s_wait_pool_size (f->admin, 2, 10000);
    static uint8_t pt[CS];
    assert_int_equal (cm_random (pt, CS), 0);
    kill (a, SIGSTOP);
    kill (b, SIGSTOP);
    s_send_chunk (f, true, 9, false, pt, CS, "killed-holder", 20000);
    pid_t holder = s_busy_worker (f, a, b);
    assert_true (holder != 0);
    pid_t other = holder == a ? b : a;
    uint64_t killed = cm_mono_ms ();
    kill (holder, SIGKILL);
    int status;
    assert_int_equal (waitpid (holder, &status, 0), holder);
    f->workers[holder == a ? 0 : 1] = -1;
    kill (other, SIGCONT);
    s_expect_sealed (f, "killed-holder", 9, false, pt, CS, 8000);
    uint64_t took = cm_mono_ms () - killed;
    /* Liveness is 3 heartbeats of 1 s; a closed connection is noticed
       at the next heartbeat.                                           */
    assert_true (took < 4500);
    s_expect_no_reply (f, 500);
    s_result_t r = s_pool_status (f->admin);
    Safeshare__PoolStatusReply *ps = r.reply->pool_status;
    assert_int_equal (ps->requeued_total, 1);
    assert_int_equal (ps->n_workers, 1);
    assert_non_null (s_worker_of (ps, other));
    assert_int_equal (s_worker_of (ps, other)->jobs_done, 1);
    s_result_free (&r);
}

/* A worker that stops without dying holds a DECRYPT job: declared dead,
   the job resent to the other; resumed, it answers late (dropped: one
   reply only) and comes back into the pool.                           */
static void
test_sigstop_worker_late_reply (void **state)
{
    s_fixture_t *f = *state;
    pid_t a = s_spawn_worker (f, 1);
    pid_t b = s_spawn_worker (f, 1);
    s_wait_pool_size (f->admin, 2, 10000);
    static uint8_t pt[CS], ct[CS + CRYPTOD_TAG_LEN];
    assert_int_equal (cm_random (pt, CS), 0);
    assert_int_equal (
        cryptod_chunk_seal (f->dek, f->kn->header.data, 4, false, pt, CS, ct), 0);
    kill (a, SIGSTOP);
    kill (b, SIGSTOP);
    s_send_chunk (f, false, 4, false, ct, sizeof ct, "stopped-holder", 20000);
    pid_t holder = s_busy_worker (f, a, b);
    assert_true (holder != 0);
    pid_t other = holder == a ? b : a;
    uint64_t stopped = cm_mono_ms ();
    kill (other, SIGCONT);
    s_expect_opened (f, "stopped-holder", pt, CS, 8000);
    uint64_t took = cm_mono_ms () - stopped;
    /* Its connection is alive: only silence tells (3 intervals from the
       last heartbeat it sent, up to 1.5 s before it was stopped).       */
    assert_true (took >= 1400);
    assert_true (took < 5000);
    s_result_t r = s_pool_status (f->admin);
    assert_int_equal (r.reply->pool_status->requeued_total, 1);
    assert_null (s_worker_of (r.reply->pool_status, holder));
    s_result_free (&r);

    kill (holder, SIGCONT);
    /* Whatever it does on waking, nothing more reaches the caller. It
       usually answers the job it held (a late reply, dropped and
       counted); under heavy load it has been seen to take the broker's
       DISCONNECT (an answer to its first heartbeat) before the job, and
       then never answers it. Both are right: exactly one reply reached
       the caller. The late-reply drop itself is tested
       deterministically in test_cryptod_broker.c.                      */
    uint64_t deadline = cm_mono_ms () + 5000;
    uint64_t late = 0;
    while (late == 0 && cm_mono_ms () < deadline) {
        r = s_pool_status (f->admin);
        late = r.reply->pool_status->late_replies_total;
        s_result_free (&r);
        s_sleep_ms (50);
    }
    assert_true (late <= 1);
    s_expect_no_reply (f, 1000);
    /* Told DISCONNECT, it reconnects (1 s backoff) and READYs again.   */
    s_wait_pool_size (f->admin, 2, 8000);
    /* Both work.                                                       */
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf (id, sizeof id, "after-%d", i);
        s_send_chunk (f, true, (uint64_t)i, false, pt, CS, id, 10000);
        s_expect_sealed (f, id, (uint64_t)i, false, pt, CS, 10000);
    }
}

/* Jobs queued before any worker exists are done by one that comes. */
static void
test_late_worker_takes_work (void **state)
{
    s_fixture_t *f = *state;
    enum { N = 6 };
    static uint8_t pt[N][CS];
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        memset (pt[i], 0xa0 + i, CS);
        snprintf (ids[i], sizeof ids[i], "early-%d", i);
        s_send_chunk (f, true, (uint64_t)i, false, pt[i], CS, ids[i], 20000);
    }
    /* On the caller's socket: after the N requests (no worker yet, so no
       reply it could skip).                                            */
    s_result_t r = s_pool_status_call (f->dealer);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->pool_status->queue_depth, N);
    s_result_free (&r);
    s_expect_no_reply (f, 300);
    pid_t w = s_spawn_worker (f, 1);
    /* One worker, FIFO: the replies come in order.                     */
    for (int i = 0; i < N; i++) {
        s_expect_sealed (f, ids[i], (uint64_t)i, false, pt[i], CS, 10000);
    }
    r = s_pool_status (f->admin);
    assert_int_equal (r.reply->pool_status->queue_depth, 0);
    assert_non_null (s_worker_of (r.reply->pool_status, w));
    assert_int_equal (s_worker_of (r.reply->pool_status, w)->jobs_done, N);
    s_result_free (&r);
}

/* The broker dies (kill -9) and a new one starts on the same endpoints:
   the workers find it again by themselves.                             */
static void
test_broker_restart (void **state)
{
    s_fixture_t *f = *state;
    pid_t w = s_spawn_worker (f, 2);
    s_wait_pool_size (f->admin, 2, 10000);
    kill (f->broker, SIGKILL);
    int status;
    assert_int_equal (waitpid (f->broker, &status, 0), f->broker);
    zsock_destroy (&f->dealer);
    zsock_destroy (&f->admin);
    f->broker = s_spawn_broker (f);
    s_wait_health (f->endpoint, f->broker);
    s_connect_callers (f);
    s_wait_pool_size (f->admin, 2, 15000);
    static uint8_t pt[CS];
    memset (pt, 0x5a, CS);
    s_send_chunk (f, true, 0, false, pt, CS, "after-restart", 10000);
    s_expect_sealed (f, "after-restart", 0, false, pt, CS, 10000);
    /* The same process (both its threads) is the pool again.          */
    s_result_t r = s_pool_status (f->admin);
    Safeshare__PoolStatusReply *ps = r.reply->pool_status;
    uint64_t done = 0;
    char needle[32];
    snprintf (needle, sizeof needle, ":%d:", (int)w);
    for (size_t i = 0; i < ps->n_workers; i++) {
        assert_non_null (strstr (ps->workers[i]->name, needle));
        done += ps->workers[i]->jobs_done;
    }
    assert_int_equal (done, 1);
    s_result_free (&r);
}

/* 1024 jobs queued with no worker: the 1025th is crypto_busy; a worker
   that comes then does all 1024.                                      */
static void
test_queue_full_busy (void **state)
{
    s_fixture_t *f = *state;
    enum { N = 1024, SMALL = 100 };
    uint8_t pt[SMALL];
    memset (pt, 0x61, sizeof pt);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf (id, sizeof id, "q-%d", i);
        s_send_chunk (f, true, 0, true, pt, sizeof pt, id, 60000);
    }
    s_send_chunk (f, true, 0, true, pt, sizeof pt, "overflow", 60000);
    s_result_t r = s_recv_reply (f->dealer, 10000);
    assert_non_null (r.reply);
    assert_string_equal (r.reply->meta->request_id, "overflow");
    assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_UNAVAILABLE);
    assert_string_equal (r.reply->error->code, "crypto_busy");
    assert_int_equal (zmsg_size (r.blobs), 0);
    s_result_free (&r);
    r = s_pool_status (f->admin);
    assert_int_equal (r.reply->pool_status->queue_depth, N);
    s_result_free (&r);
    s_spawn_worker (f, 2);
    bool seen[N] = {false};
    for (int k = 0; k < N; k++) {
        r = s_recv_reply (f->dealer, 10000);
        assert_non_null (r.reply);
        assert_int_equal (r.reply->status, SAFESHARE__STATUS__STATUS_OK);
        int i = -1;
        assert_int_equal (sscanf (r.reply->meta->request_id, "q-%d", &i), 1);
        assert_true (i >= 0 && i < N && !seen[i]);
        seen[i] = true;
        assert_int_equal (zframe_size (zmsg_first (r.blobs)), SMALL + CRYPTOD_TAG_LEN);
        s_result_free (&r);
    }
}

/* A queued job whose deadline passes is not sent to a worker that comes
   later (its jobs_done counts only the live job after it).            */
static void
test_deadline_not_sent (void **state)
{
    s_fixture_t *f = *state;
    uint8_t pt[100];
    memset (pt, 0x71, sizeof pt);
    s_send_chunk (f, true, 0, true, pt, sizeof pt, "expires", 300);
    s_result_t r = s_pool_status_call (f->dealer);
    assert_non_null (r.reply);
    assert_int_equal (r.reply->pool_status->queue_depth, 1);
    s_result_free (&r);
    s_sleep_ms (800);
    r = s_pool_status (f->admin);
    assert_int_equal (r.reply->pool_status->queue_depth, 0);
    s_result_free (&r);
    pid_t w = s_spawn_worker (f, 1);
    s_wait_pool_size (f->admin, 1, 10000);
    s_send_chunk (f, true, 0, true, pt, sizeof pt, "live", 10000);
    s_expect_sealed (f, "live", 0, true, pt, sizeof pt, 10000);
    s_expect_no_reply (f, 300);
    r = s_pool_status (f->admin);
    assert_int_equal (s_worker_of (r.reply->pool_status, w)->jobs_done, 1);
    s_result_free (&r);
}

/* Junk on the worker endpoint from a fake DEALER over tcp: frames that
   are not the protocol, too many frames, a stranger's REPLY, bad READY
   names, an oversized frame. The broker still answers and works.     */
static void
test_backend_garbage (void **state)
{
    s_fixture_t *f = *state;
    zsock_t *junk = s_fake_new (f->workers_ep, NULL);
    assert_non_null (junk);
    zstr_send (junk, "");
    zstr_sendx (junk, "GET / HTTP/1.1", "Host: x", NULL);
    zstr_sendx (junk, CRYPTOD_PROTOCOL, "BOGUS", "x", NULL);
    zstr_sendx (junk, CRYPTOD_PROTOCOL, CRYPTOD_CMD_REPLY, "12345678", "\x08\x01", "blob",
                NULL);
    zstr_sendx (junk, CRYPTOD_PROTOCOL, CRYPTOD_CMD_READY, "bad name", NULL);
    zmsg_t *many = zmsg_new ();
    for (int i = 0; i < 40; i++) {
        zmsg_addstr (many, CRYPTOD_PROTOCOL);
    }
    zmsg_send (&many, junk);
    uint8_t rnd[512];
    for (int i = 0; i < 30; i++) {
        assert_int_equal (cm_random (rnd, sizeof rnd), 0);
        zmsg_t *m = zmsg_new ();
        for (int k = 0; k <= i % 4; k++) {
            zmsg_addmem (m, rnd + k * 64, (size_t)(i * 13 + k) % 300);
        }
        zmsg_send (&m, junk);
    }
    /* Over ZMQ_MAXMSGSIZE: libzmq drops that connection.               */
    zsock_t *big = s_fake_new (f->workers_ep, NULL);
    size_t huge = 65u * 1024 * 1024;
    uint8_t *blob = calloc (1, huge);
    assert_non_null (blob);
    zmsg_t *m = zmsg_new ();
    zmsg_addstr (m, CRYPTOD_PROTOCOL);
    zmsg_addstr (m, CRYPTOD_CMD_REPLY);
    zmsg_addmem (m, blob, huge);
    free (blob);
    zmsg_send (&m, big);
    /* The stranger is answered DISCONNECT after its READY.             */
    s_wmsg_t w = s_fake_recv (junk, 3000, false);
    assert_string_equal (w.cmd, CRYPTOD_CMD_DISCONNECT);
    s_wmsg_free (&w);
    s_sleep_ms (300);
    assert_false (cm_test_exited (f->broker));
    s_result_t r = s_pool_status (f->admin);
    assert_int_equal (r.reply->pool_status->n_workers, 0);
    s_result_free (&r);
    /* A real worker still joins and works.                             */
    s_spawn_worker (f, 1);
    s_wait_pool_size (f->admin, 1, 10000);
    uint8_t pt[100];
    memset (pt, 0x13, sizeof pt);
    s_send_chunk (f, true, 0, true, pt, sizeof pt, "after-junk", 10000);
    s_expect_sealed (f, "after-junk", 0, true, pt, sizeof pt, 10000);
    zsock_destroy (&junk);
    zsock_destroy (&big);
}

static void
test_worker_usage (void **state)
{
    (void)state;
    char *bad[][6] = {
        {"worker", NULL},
        {"worker", "--connect", "inproc://x", NULL},
        {"worker", "--connect", "tcp://127.0.0.1:1", "--threads", "0", NULL},
        {"worker", "--connect", "tcp://127.0.0.1:1", "--threads", "65", NULL},
        {"worker", "--connect", "tcp://127.0.0.1:1", "--bogus", NULL},
        {"frobnicate", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[8] = {(char *)s_binary};
        for (int k = 0; bad[i][k]; k++) {
            argv[k + 1] = bad[i][k];
        }
        pid_t pid = cm_test_spawn (s_binary, argv, NULL);
        assert_true (pid > 0);
        assert_int_equal (s_wait_exit (pid, 5000), 2);
    }
    /* The broker with no local thread and no worker endpoint: refused. */
    char *dir = cm_test_tmpdir ();
    char env_data[700];
    snprintf (env_data, sizeof env_data, "SAFESHARE_DATA_DIR=%s", dir);
    char *env[] = {env_data, "SAFESHARE_CRYPTO_WORKERS=0", NULL};
    char *argv[] = {(char *)s_binary, NULL};
    pid_t pid = cm_test_spawn (s_binary, argv, env);
    assert_int_equal (s_wait_exit (pid, 5000), 2);
    cm_test_rmrf (dir);
    free (dir);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: %s PATH/TO/safeshare-crypto\n", argv[0]);
        return 2;
    }
    s_binary = argv[1];
    cm_log_init ("test", CM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_remote_worker_takes_work, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_kill9_worker_holding_job, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_sigstop_worker_late_reply, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_late_worker_takes_work, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_broker_restart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_queue_full_busy, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deadline_not_sent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_backend_garbage, s_setup, s_teardown),
        cmocka_unit_test (test_worker_usage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
