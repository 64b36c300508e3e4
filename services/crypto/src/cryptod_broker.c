/*  cryptod_broker -- callers in front, a pool of workers behind. See
    cryptod_broker.h and proto/crypto.md.                               */
#include "cryptod_broker.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cm_config.h"
#include "cm_curve.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_service.h"
#include "cm_util.h"
#include "crypto.pb-c.h"
#include "cryptod_backend.h"
#include "cryptod_call.h"
#include "cryptod_job.h"
#include "cryptod_queue.h"
#include "cryptod_stream.h"
#include "cryptod_worker.h"

/* Housekeeping period: queued jobs past their deadline are dropped,
   silent workers are declared dead, the stop flag is seen.            */
#define TICK_MS 250
/* The ring file is stat'ed this often, and at most this often on a
   kek_not_found.                                                      */
#define RING_CHECK_MS      2000
#define RING_CHECK_MISS_MS 1000
#define LIVENESS_MS        ((uint64_t)CRYPTOD_HEARTBEAT_MS * CRYPTOD_HEARTBEAT_LIVENESS)

typedef struct {
    zframe_t *identity; /* routing id on the back socket */
    char *key;          /* its hex, the key of self->workers */
    char name[CRYPTOD_WORKER_NAME_MAX + 1];
    bool local;
    uint64_t jobs_done;
    bool busy;           /* sent a job it has not answered yet */
    uint64_t job_id;     /* that job's id */
    cryptod_job_t *job;  /* that job, NULL once answered by another worker */
    uint64_t dead_at;    /* mono ms: declared dead when reached */
    uint64_t idle_since; /* mono ms */
    void *idle_handle;   /* in self->idle when free */
} s_worker_t;

struct cryptod_broker_t {
    zsock_t *front;
    zsock_t *back;
    char back_endpoint[64];
    char *worker_endpoint; /* as bound, or NULL */
    cryptod_ringwatch_t *keys;
    uint32_t chunk_size;

    /* Local threads: their identity starts with local_prefix (random per
       broker, so a remote peer cannot pass for one).                   */
    char local_prefix[18];
    char local_ids[CRYPTOD_MAX_WORKERS][32];
    char local_names[CRYPTOD_MAX_WORKERS][CRYPTOD_WORKER_NAME_MAX + 1];
    cryptod_worker_args_t worker_args[CRYPTOD_MAX_WORKERS];
    zactor_t *actors[CRYPTOD_MAX_WORKERS];
    int nactors;

    zhash_t *workers; /* identity hex -> s_worker_t */
    zlistx_t *idle;   /* s_worker_t, free longest first */
    zhash_t *jobs;    /* "%016" PRIx64 id -> cryptod_job_t: every live job */
    cryptod_queue_t *queue;
    uint64_t next_job_id;
    uint64_t requeued_total;
    uint64_t late_replies_total;

    uint64_t started_ms;
    uint64_t expired_ms; /* the last s_expire */
    atomic_bool stop;
    bool draining; /* stopping: new requests are refused, not queued */
};

static void
s_job_key (char out[17], uint64_t id)
{
    snprintf (out, 17, "%016" PRIx64, id);
}

/* ---- replies to callers --------------------------------------------- */

static void
s_reply_error (cryptod_broker_t *self, cm_call_t *call, cm_status_t status,
               const char *code, const char *message)
{
    cm_info (call->req_id, "crypto request refused: status=%s code=%s",
             cm_status_name (status), code);
    cm_call_reply_error (self->front, call, &safeshare__crypto_reply__descriptor, status,
                         code, message);
}

/* [envelope][CryptoReply OK][result]: *blob (consumed) is the worker's
   result. A local worker's frame is its own buffer, wiped by libzmq's
   free callback: it goes on by reference. A remote worker's DECRYPT
   output sits in libzmq's receive buffer, which libzmq would free
   unwiped after the send: it is copied into a buffer of ours (wiped
   when freed) and the received bytes are wiped now.                   */
static void
s_reply_chunk (cryptod_broker_t *self, cryptod_job_t *job, zframe_t **blob, bool local)
{
    cm_call_t *call = job->call;
    Safeshare__CryptoReply reply = SAFESHARE__CRYPTO_REPLY__INIT;
    Safeshare__ChunkReply body = SAFESHARE__CHUNK_REPLY__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    meta.version = CM_PROTO_VERSION;
    meta.request_id = call->req_id;
    body.index = job->index;
    reply.meta = &meta;
    reply.status = SAFESHARE__STATUS__STATUS_OK;
    if (job->encrypt) {
        reply.body_case = SAFESHARE__CRYPTO_REPLY__BODY_ENCRYPT;
        reply.encrypt = &body;
    } else {
        reply.body_case = SAFESHARE__CRYPTO_REPLY__BODY_DECRYPT;
        reply.decrypt = &body;
    }
    zmsg_t *msg = call->envelope;
    call->envelope = NULL;
    zframe_t *head = cm_frame_pack ((ProtobufCMessage *)&reply);
    zmsg_append (msg, &head);
    if (!job->encrypt && !local) {
        size_t len = zframe_size (*blob);
        uint8_t *copy = malloc (len + 1);
        if (copy) {
            memcpy (copy, zframe_data (*blob), len);
        }
        cryptod_frame_destroy_wiped (blob);
        if (!copy) {
            zmsg_destroy (&msg);
            cm_error (call->req_id, "malloc() failed for a reply");
            return;
        }
        /* The copy is freed (wiped) by the callback whatever happens.  */
        if (cm_msg_send_zc (self->front, &msg, copy, len, cryptod_backend_free_secret,
                            (void *)(uintptr_t)len) != 0) {
            cm_warn (call->req_id, "cm_msg_send_zc() of a reply failed: %s",
                     zmq_strerror (zmq_errno ()));
        }
        return;
    }
    zmsg_append (msg, blob);
    /* Frames it could not hand to libzmq are wiped.                   */
    if (cryptod_msg_send (&msg, self->front) != 0) {
        cm_warn (call->req_id, "cryptod_msg_send() of a reply failed: %s",
                 zmq_strerror (zmq_errno ()));
    }
}

/* ---- jobs ------------------------------------------------------------ */

/* Lets go of a job: out of the index and the queue; a worker still
   computing it stays busy until it replies (that reply is then late).
   Wipes the DEK and a plaintext chunk.                                */
static void
s_job_finish (cryptod_broker_t *self, cryptod_job_t **job_p)
{
    cryptod_job_t *job = *job_p;
    char key[17];
    s_job_key (key, job->id);
    zhash_delete (self->jobs, key);
    cryptod_queue_remove (self->queue, job);
    if (job->worker) {
        ((s_worker_t *)job->worker)->job = NULL;
        job->worker = NULL;
    }
    cryptod_job_destroy (job_p);
}

/* The worker holding the job is gone (dead, disconnected, or READY
   again without a reply): resend it from the head of the queue, or
   answer if it cannot be.                                             */
static void
s_job_lost (cryptod_broker_t *self, cryptod_job_t *job)
{
    job->worker = NULL;
    if (cryptod_job_expired (job)) {
        cm_debug (job->call->req_id, "deadline passed, lost job dropped");
    } else if (self->draining) {
        s_reply_error (self, job->call, CM_UNAVAILABLE, "crypto_stopping",
                       "the crypto service is shutting down");
    } else if (job->attempts >= CRYPTOD_MAX_ATTEMPTS) {
        cm_warn (job->call->req_id, "chunk job lost by %d crypto workers: given up",
                 job->attempts);
        s_reply_error (self, job->call, CM_UNAVAILABLE, "crypto_unavailable",
                       "no crypto worker could finish the request");
    } else if (cryptod_queue_push_front (self->queue, job) == 0) {
        self->requeued_total++;
        cm_info (job->call->req_id,
                 "chunk job requeued after losing its worker (%d sent)", job->attempts);
        return;
    } else {
        s_reply_error (self, job->call, CM_UNAVAILABLE, "crypto_unavailable",
                       "no crypto worker could take the request");
    }
    s_job_finish (self, &job);
}

/* ---- workers --------------------------------------------------------- */

static s_worker_t *
s_worker_find (cryptod_broker_t *self, const char *key)
{
    return zhash_lookup (self->workers, key);
}

static bool
s_identity_local (cryptod_broker_t *self, zframe_t *identity)
{
    size_t n = strlen (self->local_prefix);
    return zframe_size (identity) > n &&
           memcmp (zframe_data (identity), self->local_prefix, n) == 0;
}

static void
s_tell (cryptod_broker_t *self, zframe_t *identity, const char *cmd)
{
    if (cryptod_backend_send_cmd (self->back, identity, cmd) != 0) {
        cm_debug (NULL, "%s to a crypto worker not sent: %s", cmd,
                  zmq_strerror (zmq_errno ()));
    }
}

/* The worker is free: it waits at the tail of the idle list (s_pump
   hands out jobs from the head).                                       */
static void
s_worker_free (cryptod_broker_t *self, s_worker_t *w)
{
    w->busy = false;
    w->job = NULL;
    w->idle_since = cm_mono_ms ();
    if (!w->idle_handle) {
        w->idle_handle = zlistx_add_end (self->idle, w);
    }
}

static void
s_worker_destroy (s_worker_t **w_p)
{
    s_worker_t *w = *w_p;
    *w_p = NULL;
    zframe_destroy (&w->identity);
    zstr_free (&w->key);
    free (w);
}

/* Forgets a worker (told DISCONNECT when `tell`); its job is lost.    */
static void
s_worker_drop (cryptod_broker_t *self, s_worker_t **w_p, const char *why, bool tell)
{
    s_worker_t *w = *w_p;
    *w_p = NULL;
    cm_info (NULL, "crypto worker %s dropped: %s", w->name, why);
    if (tell) {
        s_tell (self, w->identity, CRYPTOD_CMD_DISCONNECT);
    }
    if (w->idle_handle) {
        zlistx_detach (self->idle, w->idle_handle);
    }
    zhash_delete (self->workers, w->key);
    cryptod_job_t *job = w->job;
    if (job) {
        s_job_lost (self, job);
    }
    s_worker_destroy (&w);
}

/* Sends job to worker w. 0 sent; 1 the job was dropped instead (its
   deadline passed, or it cannot be sent again); -1 the send failed (the
   job is untouched: the caller requeues it and drops the worker).     */
static int
s_dispatch (cryptod_broker_t *self, s_worker_t *w, cryptod_job_t *job)
{
    if (cryptod_job_expired (job)) {
        cm_debug (job->call->req_id, "deadline passed while queued, request dropped");
        s_job_finish (self, &job);
        return 1;
    }
    if (cryptod_job_sent (job, w->key) != 0) {
        s_reply_error (self, job->call, CM_UNAVAILABLE, "crypto_unavailable",
                       "no crypto worker could finish the request");
        s_job_finish (self, &job);
        return 1;
    }
    Safeshare__WorkRequest wr = SAFESHARE__WORK_REQUEST__INIT;
    wr.op = job->encrypt ? SAFESHARE__WORK_OP__WORK_OP_ENCRYPT
                         : SAFESHARE__WORK_OP__WORK_OP_DECRYPT;
    wr.dek.data = job->dek;
    wr.dek.len = sizeof job->dek;
    wr.header.data = job->header;
    wr.header.len = sizeof job->header;
    wr.index = job->index;
    wr.last = job->last;
    wr.deadline_ms = job->call->deadline_ms;
    wr.request_id = job->call->req_id;
    if (cryptod_backend_send_request (self->back, w->identity, job->id, &wr,
                                      cryptod_job_blob (job)) != 0) {
        cm_warn (job->call->req_id, "cryptod_backend_send_request() to %s failed: %s",
                 w->name, zmq_strerror (zmq_errno ()));
        cryptod_job_unsent (job);
        return -1;
    }
    w->busy = true;
    w->job = job;
    w->job_id = job->id;
    job->worker = w;
    cm_debug (job->call->req_id,
              "chunk %" PRIu64 " sent to crypto worker %s (attempt %d)", job->index,
              w->name, job->attempts);
    return 0;
}

/* Hands queued jobs to idle workers, oldest job to the worker free
   longest, while there are both.                                      */
static void
s_pump (cryptod_broker_t *self)
{
    while (cryptod_queue_size (self->queue) > 0 && zlistx_size (self->idle) > 0) {
        s_worker_t *w = zlistx_first (self->idle);
        zlistx_detach (self->idle, w->idle_handle);
        w->idle_handle = NULL;
        cryptod_job_t *job = cryptod_queue_pop (self->queue);
        int rc = s_dispatch (self, w, job);
        if (rc == 1) {
            /* Still free, and still the one free longest.              */
            w->idle_handle = zlistx_add_start (self->idle, w);
        } else if (rc < 0) {
            cryptod_queue_push_front (self->queue, job);
            s_worker_drop (self, &w, "a send to it failed", false);
        }
    }
}

/* ---- front: requests from callers ----------------------------------- */

static void
s_health (cryptod_broker_t *self, cm_call_t *call)
{
    Safeshare__CryptoReply reply = SAFESHARE__CRYPTO_REPLY__INIT;
    Safeshare__HealthReply health = SAFESHARE__HEALTH_REPLY__INIT;
    health.service = "crypto";
    health.version = SAFESHARE_VERSION;
    health.uptime_ms = cm_mono_ms () - self->started_ms;
    reply.status = SAFESHARE__STATUS__STATUS_OK;
    reply.body_case = SAFESHARE__CRYPTO_REPLY__BODY_HEALTH;
    reply.health = &health;
    cm_call_reply (self->front, call, (ProtobufCMessage *)&reply, NULL);
}

static void
s_pool_status (cryptod_broker_t *self, cm_call_t *call)
{
    size_t n = zhash_size (self->workers);
    Safeshare__WorkerStatus *ws = calloc (n + 1, sizeof *ws);
    Safeshare__WorkerStatus **wp = calloc (n + 1, sizeof *wp);
    if (!ws || !wp) {
        free (ws);
        free (wp);
        s_reply_error (self, call, CM_INTERNAL, "internal_error", "out of memory");
        return;
    }
    uint64_t now = cm_mono_ms ();
    size_t i = 0;
    for (s_worker_t *w = zhash_first (self->workers); w && i < n;
         w = zhash_next (self->workers)) {
        safeshare__worker_status__init (&ws[i]);
        ws[i].name = w->name;
        ws[i].local = w->local;
        ws[i].jobs_done = w->jobs_done;
        ws[i].busy = w->busy;
        ws[i].idle_ms = w->busy ? 0 : now - w->idle_since;
        wp[i] = &ws[i];
        i++;
    }
    Safeshare__PoolStatusReply body = SAFESHARE__POOL_STATUS_REPLY__INIT;
    body.queue_depth = cryptod_queue_size (self->queue);
    body.queue_bytes = cryptod_queue_bytes (self->queue);
    body.requeued_total = self->requeued_total;
    body.late_replies_total = self->late_replies_total;
    body.n_workers = i;
    body.workers = wp;
    Safeshare__CryptoReply reply = SAFESHARE__CRYPTO_REPLY__INIT;
    reply.status = SAFESHARE__STATUS__STATUS_OK;
    reply.body_case = SAFESHARE__CRYPTO_REPLY__BODY_POOL_STATUS;
    reply.pool_status = &body;
    cm_call_reply (self->front, call, (ProtobufCMessage *)&reply, NULL);
    free (wp);
    free (ws);
}

/* KEY_NEW: a random DEK wrapped by the current KEK, and the header.   */
static void
s_key_new (cryptod_broker_t *self, cm_call_t *call, const Safeshare__KeyNewRequest *req)
{
    uint8_t dek[CRYPTOD_DEK_LEN];
    uint8_t wrapped[CRYPTOD_WRAPPED_DEK_LEN];
    size_t wrapped_len = sizeof wrapped;
    uint8_t header[CRYPTOD_HEADER_LEN];
    char kek_id[CRYPTOD_KEK_ID_LEN + 1];

    if (!req->file_id || !cm_is_hex_id (req->file_id, 32)) {
        s_reply_error (self, call, CM_INVALID, "bad_file_id",
                       "file_id must be 32 lowercase hex chars");
        return;
    }
    uint32_t chunk_size = req->chunk_size ? req->chunk_size : self->chunk_size;
    if (chunk_size < CRYPTOD_MIN_CHUNK || chunk_size > CRYPTOD_MAX_CHUNK) {
        s_reply_error (self, call, CM_INVALID, "bad_chunk_size",
                       "chunk_size must be 4096..16777216 (0: the service default)");
        return;
    }
    if (zmsg_size (call->blobs) != 0) {
        s_reply_error (self, call, CM_INVALID, "bad_blob_count",
                       "KEY_NEW carries no blob frame");
        return;
    }
    const cryptod_keyring_t *ring = cryptod_ringwatch_ring (self->keys);
    if (cm_random (dek, sizeof dek) != 0) {
        cm_error (call->req_id, "cm_random() failed for a DEK");
        s_reply_error (self, call, CM_INTERNAL, "internal_error", "no randomness");
    } else if (cryptod_dek_wrap (ring, req->file_id, dek, kek_id, wrapped,
                                 &wrapped_len) != 0 ||
               cryptod_header_build (header, chunk_size, req->file_id) != 0) {
        cm_error (call->req_id, "cryptod_dek_wrap() or cryptod_header_build() failed");
        s_reply_error (self, call, CM_INTERNAL, "internal_error",
                       "key generation failed");
    } else {
        Safeshare__CryptoReply reply = SAFESHARE__CRYPTO_REPLY__INIT;
        Safeshare__KeyNewReply body = SAFESHARE__KEY_NEW_REPLY__INIT;
        body.kek_id = kek_id;
        body.wrapped_dek.data = wrapped;
        body.wrapped_dek.len = wrapped_len;
        body.header.data = header;
        body.header.len = sizeof header;
        reply.status = SAFESHARE__STATUS__STATUS_OK;
        reply.body_case = SAFESHARE__CRYPTO_REPLY__BODY_KEY_NEW;
        reply.key_new = &body;
        cm_call_reply (self->front, call, (ProtobufCMessage *)&reply, NULL);
        cm_debug (call->req_id, "key_new file=%s kek=%s chunk_size=%u", req->file_id,
                  kek_id, chunk_size);
    }
    OPENSSL_cleanse (dek, sizeof dek);
}

/* Checks a ChunkRequest; NULL if good, else the error code (INVALID)
   and *why a message. *chunk_size gets the header's chunk size.       */
static const char *
s_chunk_check (const Safeshare__ChunkRequest *req, const cm_call_t *call, bool encrypt,
               uint32_t *chunk_size, const char **why)
{
    char header_file[33];
    if (!req->file_id || !cm_is_hex_id (req->file_id, 32)) {
        *why = "file_id must be 32 lowercase hex chars";
        return "bad_file_id";
    }
    if (!req->kek_id || !cm_is_hex_id (req->kek_id, CRYPTOD_KEK_ID_LEN)) {
        *why = "kek_id must be 16 lowercase hex chars";
        return "bad_kek_id";
    }
    if (req->wrapped_dek.len != CRYPTOD_WRAPPED_DEK_LEN) {
        *why = "wrapped_dek must be 60 bytes";
        return "bad_wrapped_dek";
    }
    if (cryptod_header_parse (req->header.data, req->header.len, chunk_size,
                              header_file) != 0) {
        *why = "header is not a valid 48-byte blob header";
        return "bad_header";
    }
    if (strcmp (header_file, req->file_id) != 0) {
        *why = "header names another file id";
        return "header_file_mismatch";
    }
    if (req->index >= CRYPTOD_MAX_CHUNKS) {
        *why = "index must be below 2^32-1";
        return "bad_index";
    }
    if (zmsg_size (call->blobs) != 1) {
        *why = "exactly one blob frame (the chunk) must follow the header";
        return "bad_blob_count";
    }
    return cryptod_backend_chunk_check (encrypt, zframe_size (zmsg_first (call->blobs)),
                                        *chunk_size, req->index, req->last, why);
}

/* ENCRYPT/DECRYPT: checked, DEK unwrapped, then a job (*call_p taken). */
static void
s_chunk_request (cryptod_broker_t *self, cm_call_t **call_p,
                 const Safeshare__ChunkRequest *req, bool encrypt)
{
    cm_call_t *call = *call_p;
    uint32_t chunk_size = 0;
    const char *why = NULL;
    const char *code = s_chunk_check (req, call, encrypt, &chunk_size, &why);
    if (code) {
        s_reply_error (self, call, CM_INVALID, code, why);
        return;
    }
    const cryptod_keyring_t *ring = cryptod_ringwatch_ring (self->keys);
    if (!cryptod_keyring_has (ring, req->kek_id)) {
        /* Maybe a KEK added to the file since the last look.          */
        cryptod_ringwatch_check (self->keys, RING_CHECK_MISS_MS);
        ring = cryptod_ringwatch_ring (self->keys);
    }
    if (!cryptod_keyring_has (ring, req->kek_id)) {
        cm_warn (call->req_id, "KEK %s is not in the ring (file=%s)", req->kek_id,
                 req->file_id);
        s_reply_error (self, call, CM_NOT_FOUND, "kek_not_found",
                       "the file's KEK is not in this service's ring");
        return;
    }
    uint8_t dek[CRYPTOD_DEK_LEN];
    if (cryptod_dek_unwrap (ring, req->kek_id, req->file_id, req->wrapped_dek.data,
                            req->wrapped_dek.len, dek) != 0) {
        cm_warn (call->req_id, "cryptod_dek_unwrap() failed file=%s kek=%s", req->file_id,
                 req->kek_id);
        s_reply_error (self, call, CM_UNPROCESSABLE, "dek_unwrap_failed",
                       "the wrapped DEK does not authenticate for this file");
        return;
    }
    cryptod_job_t *job = cryptod_job_new (self->next_job_id++, call_p, encrypt, dek,
                                          req->header.data, req->index, req->last);
    OPENSSL_cleanse (dek, sizeof dek);
    if (!job) {
        cm_error (NULL, "cryptod_job_new() failed: out of memory");
        return;
    }
    char key[17];
    s_job_key (key, job->id);
    zhash_insert (self->jobs, key, job);
    /* Never full when a worker is idle (then the queue is empty).     */
    if (cryptod_queue_push (self->queue, job) != 0) {
        s_reply_error (self, job->call, CM_UNAVAILABLE, "crypto_busy",
                       "every crypto worker is busy and the queue is full");
        s_job_finish (self, &job);
    }
}

static void
s_front_message (cryptod_broker_t *self)
{
    cm_call_t *call = calloc (1, sizeof *call);
    if (!call) {
        return;
    }
    if (cm_call_recv (self->front, &safeshare__crypto_request__descriptor,
                      &safeshare__crypto_reply__descriptor, call) != 0) {
        free (call); /* answered (or dropped) by cm_call_recv */
        return;
    }
    const Safeshare__CryptoRequest *req = (const Safeshare__CryptoRequest *)call->request;
    if (cm_call_expired (call)) {
        cm_debug (call->req_id, "deadline passed, request dropped");
    } else if (self->draining) {
        /* A quick refusal lets the caller retry elsewhere at once.     */
        s_reply_error (self, call, CM_UNAVAILABLE, "crypto_stopping",
                       "the crypto service is shutting down");
    } else if (zmsg_size (call->blobs) > CRYPTOD_MAX_BLOBS) {
        /* No request carries more than one blob: refused before it can
           take a queue slot with thousands of (empty) frames.          */
        s_reply_error (self, call, CM_INVALID, "bad_blob_count",
                       "at most one blob frame may follow the header");
    } else {
        switch (req->body_case) {
            case SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH:
                s_health (self, call);
                break;
            case SAFESHARE__CRYPTO_REQUEST__BODY_POOL_STATUS:
                s_pool_status (self, call);
                break;
            case SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW:
                s_key_new (self, call, req->key_new);
                break;
            case SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT:
                s_chunk_request (self, &call, req->encrypt, true);
                break;
            case SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT:
                s_chunk_request (self, &call, req->decrypt, false);
                break;
            default:
                s_reply_error (
                    self, call, CM_INVALID, "missing_body",
                    "expected health, pool_status, key_new, encrypt or decrypt");
                break;
        }
    }
    /* NULL when a job took it.                                         */
    cryptod_call_free (&call);
}

/* ---- back: messages from workers ------------------------------------ */

/* What a worker may answer besides OK, and what the caller is told.   */
typedef struct {
    const char *code;
    cm_status_t status;
    cm_status_t caller_status;
    const char *caller_code;
    const char *message;
} s_work_error_t;

static const s_work_error_t s_work_errors[] = {
    {"chunk_auth_failed", CM_UNPROCESSABLE, CM_UNPROCESSABLE, "chunk_auth_failed",
     "the chunk does not authenticate (corrupted, reordered, truncated or from another "
     "file)"},
    {"encrypt_failed", CM_INTERNAL, CM_INTERNAL, "encrypt_failed",
     "chunk encryption failed"},
    {"internal_error", CM_INTERNAL, CM_INTERNAL, "internal_error",
     "the crypto worker failed"},
    /* We checked the request: a worker refusing it is our fault.       */
    {"bad_work_request", CM_INVALID, CM_INTERNAL, "internal_error",
     "the crypto worker refused the job"},
    {"bad_chunk_length", CM_INVALID, CM_INTERNAL, "internal_error",
     "the crypto worker refused the job"},
    {CRYPTOD_DEADLINE_PASSED, CM_UNAVAILABLE, CM_UNAVAILABLE, NULL, NULL},
};

/* Checks a worker's reply against its job. NULL when it is malformed
   (then the worker misbehaves), else the error entry (OK: *ok set).   */
static const s_work_error_t *
s_reply_check (const cryptod_job_t *job, const Safeshare__WorkReply *reply,
               const zframe_t *blob, bool *ok)
{
    *ok = false;
    if (!reply || reply->index != job->index) {
        return NULL;
    }
    if (reply->status == CM_OK) {
        size_t in = zframe_size (cryptod_job_blob ((cryptod_job_t *)job));
        size_t want = job->encrypt ? in + CRYPTOD_TAG_LEN : in - CRYPTOD_TAG_LEN;
        if (!blob || zframe_size ((zframe_t *)blob) != want) {
            return NULL;
        }
        *ok = true;
        return &s_work_errors[0]; /* unused when ok */
    }
    if (blob || !reply->error_code) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof s_work_errors / sizeof s_work_errors[0]; i++) {
        if (strcmp (reply->error_code, s_work_errors[i].code) == 0 &&
            reply->status == s_work_errors[i].status) {
            return &s_work_errors[i];
        }
    }
    return NULL;
}

/* REPLY [job_id][WorkReply][blob?] from identity (w: the worker if we
   know it). First reply wins.                                          */
static void
s_on_reply (cryptod_broker_t *self, zframe_t *identity, const char *key, s_worker_t *w,
            zmsg_t *msg)
{
    zframe_t *idf = zmsg_pop (msg);
    zframe_t *rf = zmsg_pop (msg);
    zframe_t *blob = zmsg_pop (msg);
    Safeshare__WorkReply *reply = NULL;
    const char *name = w ? w->name : "(unknown)";
    if (!idf || zframe_size (idf) != CRYPTOD_JOB_ID_LEN || !rf || zmsg_size (msg) != 0) {
        cm_warn (NULL, "malformed REPLY from crypto worker %s dropped", name);
        if (w) {
            s_worker_drop (self, &w, "malformed REPLY", true);
        }
        goto cleanup;
    }
    uint64_t job_id = cryptod_backend_job_id_get (zframe_data (idf));
    reply = safeshare__work_reply__unpack (NULL, zframe_size (rf), zframe_data (rf));
    bool freed = false;
    if (w && w->busy) {
        if (w->job_id != job_id) {
            cm_warn (NULL, "crypto worker %s answered a job it does not hold", name);
            s_worker_drop (self, &w, "REPLY for another job", true);
            goto cleanup;
        }
        freed = true;
    }
    char jkey[17];
    s_job_key (jkey, job_id);
    cryptod_job_t *job = zhash_lookup (self->jobs, jkey);
    if (!job || !cryptod_job_sent_to (job, key)) {
        /* Answered already (or never this worker's): the first reply
           won. A DECRYPT result is plaintext: wiped.                   */
        self->late_replies_total++;
        cm_debug (NULL, "late reply from crypto worker %s dropped", name);
    } else {
        bool ok = false;
        const s_work_error_t *err = s_reply_check (job, reply, blob, &ok);
        if (!err) {
            cm_error (job->call->req_id, "malformed reply from crypto worker %s dropped",
                      name);
            if (w) {
                /* Its job (this one) is resent to another worker.      */
                s_worker_drop (self, &w, "malformed reply", true);
            }
            goto cleanup;
        }
        if (w && (ok || err->caller_code)) {
            w->jobs_done++;
        }
        if (ok) {
            s_reply_chunk (self, job, &blob, s_identity_local (self, identity));
        } else if (err->caller_code) {
            if (err->caller_status == CM_INTERNAL) {
                cm_error (job->call->req_id, "crypto worker %s: %s", name, err->code);
            }
            s_reply_error (self, job->call, err->caller_status, err->caller_code,
                           err->message);
        } else {
            cm_debug (job->call->req_id, "deadline passed before a worker started it");
        }
        s_job_finish (self, &job);
    }
    if (freed) {
        s_worker_free (self, w);
    } else if (!w) {
        /* A worker we declared dead: it must READY again.              */
        s_tell (self, identity, CRYPTOD_CMD_DISCONNECT);
    }
cleanup:
    if (reply) {
        safeshare__work_reply__free_unpacked (reply, NULL);
    }
    zframe_destroy (&idf);
    zframe_destroy (&rf);
    cryptod_frame_destroy_wiped (&blob);
}

static void
s_on_ready (cryptod_broker_t *self, zframe_t *identity, const char *key, s_worker_t *w,
            zmsg_t *msg)
{
    zframe_t *name = zmsg_pop (msg);
    if (!name || zmsg_size (msg) != 0 ||
        !cryptod_backend_name_valid ((const char *)zframe_data (name),
                                     zframe_size (name))) {
        cm_warn (NULL, "READY with a bad worker name refused");
        zframe_destroy (&name);
        if (w) {
            s_worker_drop (self, &w, "READY with a bad name", true);
        } else {
            s_tell (self, identity, CRYPTOD_CMD_DISCONNECT);
        }
        return;
    }
    if (w) {
        /* READY again: free, and whatever it held is lost.             */
        cryptod_job_t *job = w->job;
        w->job = NULL;
        if (job) {
            s_job_lost (self, job);
        }
        s_worker_free (self, w);
        zframe_destroy (&name);
        return;
    }
    if (zhash_size (self->workers) >= CRYPTOD_MAX_POOL) {
        cm_warn (NULL, "crypto worker refused: the pool is full (%d)", CRYPTOD_MAX_POOL);
        s_tell (self, identity, CRYPTOD_CMD_DISCONNECT);
        zframe_destroy (&name);
        return;
    }
    w = calloc (1, sizeof *w);
    if (!w) {
        zframe_destroy (&name);
        return;
    }
    w->identity = zframe_dup (identity); /* a few bytes */
    w->key = strdup (key);
    memcpy (w->name, zframe_data (name), zframe_size (name));
    w->local = s_identity_local (self, identity);
    w->dead_at = cm_mono_ms () + LIVENESS_MS;
    zframe_destroy (&name);
    if (!w->identity || !w->key || zhash_insert (self->workers, key, w) != 0) {
        s_worker_destroy (&w);
        return;
    }
    cm_info (NULL, "crypto worker %s joined (%s)", w->name,
             w->local ? "local" : "remote");
    s_worker_free (self, w);
}

static void
s_back_message (cryptod_broker_t *self)
{
    bool truncated = false;
    zmsg_t *msg = cm_msg_recv (self->back, &truncated);
    if (!msg) {
        return;
    }
    zframe_t *identity = zmsg_pop (msg);
    zframe_t *proto = zmsg_pop (msg);
    zframe_t *cmd = zmsg_pop (msg);
    char *key = identity ? zframe_strhex (identity) : NULL;
    s_worker_t *w = key ? s_worker_find (self, key) : NULL;
    if (truncated || !key || !proto || !cmd || !zframe_streq (proto, CRYPTOD_PROTOCOL)) {
        cm_warn (NULL, "malformed message on the worker socket from %.24s dropped",
                 key ? key : "?");
        goto cleanup;
    }
    if (w) {
        w->dead_at = cm_mono_ms () + LIVENESS_MS;
    }
    if (zframe_streq (cmd, CRYPTOD_CMD_REPLY)) {
        s_on_reply (self, identity, key, w, msg);
    } else if (zframe_streq (cmd, CRYPTOD_CMD_HEARTBEAT) && zmsg_size (msg) == 0) {
        if (!w) {
            /* Not ours (we restarted, or declared it dead): READY again. */
            s_tell (self, identity, CRYPTOD_CMD_DISCONNECT);
        }
    } else if (zframe_streq (cmd, CRYPTOD_CMD_READY)) {
        s_on_ready (self, identity, key, w, msg);
    } else if (zframe_streq (cmd, CRYPTOD_CMD_DISCONNECT) && zmsg_size (msg) == 0) {
        if (w) {
            s_worker_drop (self, &w, "it said DISCONNECT", false);
        }
    } else {
        cm_warn (NULL, "unknown command from crypto worker %.24s dropped", key);
    }
cleanup:
    zstr_free (&key);
    zframe_destroy (&identity);
    zframe_destroy (&proto);
    zframe_destroy (&cmd);
    /* Whatever is left may be a DECRYPT output.                        */
    cryptod_msg_destroy_wiped (&msg);
}

/* ---- timers ---------------------------------------------------------- */

static void
s_heartbeat (cryptod_broker_t *self)
{
    zlist_t *gone = zlist_new ();
    for (s_worker_t *w = zhash_first (self->workers); w; w = zhash_next (self->workers)) {
        if (cryptod_backend_send_cmd (self->back, w->identity, CRYPTOD_CMD_HEARTBEAT) !=
                0 &&
            zmq_errno () == EHOSTUNREACH) {
            /* Its connection is gone (a killed process): no need to wait
               for three silent heartbeats.                              */
            zlist_append (gone, w);
        }
    }
    for (s_worker_t *w = zlist_first (gone); w; w = zlist_next (gone)) {
        s_worker_t *dead = w;
        s_worker_drop (self, &dead, "its connection is gone", false);
    }
    zlist_destroy (&gone);
}

static void
s_expire (cryptod_broker_t *self)
{
    uint64_t now = cm_mono_ms ();
    /* If we were not running for a while (the process stopped, or
       starved), the silence was ours: the workers' messages of that
       time are still to be read.                                       */
    uint64_t gap = self->expired_ms ? now - self->expired_ms : 0;
    self->expired_ms = now;
    zlist_t *dead = zlist_new ();
    for (s_worker_t *w = zhash_first (self->workers); w; w = zhash_next (self->workers)) {
        if (gap > CRYPTOD_HEARTBEAT_MS) {
            w->dead_at += gap;
        }
        if (now >= w->dead_at) {
            zlist_append (dead, w);
        }
    }
    for (s_worker_t *w = zlist_first (dead); w; w = zlist_next (dead)) {
        s_worker_t *d = w;
        /* Told anyway: if it only stalled, it learns to READY again.   */
        s_worker_drop (self, &d, "silent for 3 heartbeats", true);
    }
    zlist_destroy (&dead);

    /* Queued jobs past their deadline: the caller gave up.             */
    zlist_t *expired = zlist_new ();
    for (cryptod_job_t *job = cryptod_queue_first (self->queue); job;
         job = cryptod_queue_next (self->queue)) {
        if (cryptod_job_expired (job)) {
            zlist_append (expired, job);
        }
    }
    for (cryptod_job_t *job = zlist_first (expired); job; job = zlist_next (expired)) {
        cryptod_job_t *j = job;
        cm_debug (j->call->req_id, "deadline passed while queued, request dropped");
        s_job_finish (self, &j);
    }
    zlist_destroy (&expired);
    cryptod_ringwatch_check (self->keys, RING_CHECK_MS);
}

/* Stopping: every queued job is answered crypto_stopping.            */
static void
s_queue_refuse (cryptod_broker_t *self)
{
    cryptod_job_t *job;
    while ((job = cryptod_queue_pop (self->queue))) {
        if (!cryptod_job_expired (job)) {
            s_reply_error (self, job->call, CM_UNAVAILABLE, "crypto_stopping",
                           "the crypto service is shutting down");
        }
        s_job_finish (self, &job);
    }
}

/* ---- life cycle ------------------------------------------------------ */

static int
s_bind_workers (cryptod_broker_t *self, const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0) {
        char dir[4096];
        snprintf (dir, sizeof dir, "%s", endpoint + 6);
        if (cm_mkdirs (dirname (dir), 0700) != 0) {
            cm_error (NULL, "mkdir() for %s failed: %s", endpoint, strerror (errno));
            return -1;
        }
    }
    if (zsock_bind (self->back, "%s", endpoint) < 0) {
        cm_error (NULL, "zsock_bind(%s) failed: %s", endpoint,
                  zmq_strerror (zmq_errno ()));
        return -1;
    }
    self->worker_endpoint = zsock_last_endpoint (self->back);
    if (!self->worker_endpoint) {
        return -1;
    }
    /* The worker endpoint is a server socket like the front: an unknown
       key must be refused there too (it would get DEKs and plaintext). */
    if (cm_curve_self_check (self->back, self->worker_endpoint, CM_CURVE_CHECK_MS) != 0) {
        return -1;
    }
    if (strncmp (endpoint, "tcp://", 6) == 0 && !cm_curve_on ()) {
        cm_warn (NULL,
                 "remote crypto workers on %s: the channel carries DEKs and plaintext "
                 "without authentication or encryption (SAFESHARE_CURVE_SECRET_KEY is "
                 "not set): keep it on a private network",
                 self->worker_endpoint);
    }
    return 0;
}

cryptod_broker_t *
cryptod_broker_new (const cryptod_broker_opts_t *opts)
{
    if (!opts || !opts->endpoint || !opts->keys || opts->workers < 0 ||
        opts->workers > CRYPTOD_MAX_WORKERS) {
        return NULL;
    }
    cryptod_broker_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    atomic_init (&self->stop, false);
    self->started_ms = cm_mono_ms ();
    self->keys = opts->keys;
    self->chunk_size = opts->chunk_size;
    self->next_job_id = 1;
    self->queue = cryptod_queue_new (
        opts->max_pending ? opts->max_pending : CRYPTOD_MAX_PENDING,
        opts->max_pending_bytes ? opts->max_pending_bytes : CRYPTOD_MAX_PENDING_BYTES);
    self->workers = zhash_new ();
    self->jobs = zhash_new ();
    self->idle = zlistx_new ();
    if (!self->queue || !self->workers || !self->jobs || !self->idle) {
        goto fail;
    }
    self->local_prefix[0] = 'L';
    if (cm_random_hex (self->local_prefix + 1, 8) != 0) {
        cm_log_openssl (NULL, "cm_random_hex() failed");
        goto fail;
    }
    self->front = cm_sock_server (opts->endpoint);
    if (!self->front) {
        goto fail;
    }
    /* One inproc name per broker instance (tests run several, one after
       another). Not the object's address: a new broker may get the
       address of one just destroyed while libzmq's reaper still holds
       that one's inproc name (bind: EADDRINUSE).                      */
    static atomic_uint s_instances;
    snprintf (self->back_endpoint, sizeof self->back_endpoint,
              "inproc://cryptod-back-%d-%u", (int)getpid (),
              atomic_fetch_add (&s_instances, 1));
    self->back = zsock_new (ZMQ_ROUTER);
    if (!self->back) {
        goto fail;
    }
    /* A send to a worker that is gone fails (EHOSTUNREACH) instead of
       vanishing; a worker whose TCP connection came back keeps its
       identity (handover).                                             */
    zsock_set_router_mandatory (self->back, 1);
    zsock_set_router_handover (self->back, 1);
    zsock_set_maxmsgsize (self->back, CM_MAX_MESSAGE);
    zsock_set_linger (self->back, 500);
    /* CURVE applies to the worker endpoint; the local threads' inproc
       connection has no security handshake.                            */
    if (cm_curve_server_apply (self->back) != 0) {
        goto fail;
    }
    if (zsock_bind (self->back, "%s", self->back_endpoint) != 0) {
        cm_error (NULL, "zsock_bind(%s) failed: %s", self->back_endpoint,
                  zmq_strerror (zmq_errno ()));
        goto fail;
    }
    if (opts->worker_endpoint && s_bind_workers (self, opts->worker_endpoint) != 0) {
        goto fail;
    }
    if (cryptod_worker_prepare () != 0) {
        goto fail;
    }
    for (int i = 0; i < opts->workers; i++) {
        snprintf (self->local_ids[i], sizeof self->local_ids[i], "%s-%d",
                  self->local_prefix, i);
        cryptod_worker_name (self->local_names[i], i);
        self->worker_args[i].endpoint = self->back_endpoint;
        self->worker_args[i].name = self->local_names[i];
        self->worker_args[i].identity = self->local_ids[i];
        self->actors[i] = zactor_new (cryptod_worker_actor, &self->worker_args[i]);
        if (!self->actors[i]) {
            cm_error (NULL, "zactor_new(crypto worker %d) failed", i);
            goto fail;
        }
        self->nactors++;
    }
    cm_info (NULL, "crypto broker on %s: %d local workers, remote workers %s%s",
             opts->endpoint, opts->workers, self->worker_endpoint ? "on " : "off",
             self->worker_endpoint ? self->worker_endpoint : "");
    return self;
fail:
    cryptod_broker_destroy (&self);
    return NULL;
}

void
cryptod_broker_destroy (cryptod_broker_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    cryptod_broker_t *self = *self_p;
    /* Local workers first: each finishes its job, then sees $TERM.    */
    for (int i = 0; i < self->nactors; i++) {
        zactor_destroy (&self->actors[i]);
    }
    if (self->jobs) {
        zlist_t *keys = zhash_keys (self->jobs);
        for (char *k = keys ? zlist_first (keys) : NULL; k; k = zlist_next (keys)) {
            cryptod_job_t *job = zhash_lookup (self->jobs, k);
            if (job) {
                s_job_finish (self, &job);
            }
        }
        zlist_destroy (&keys);
    }
    if (self->workers) {
        zlist_t *keys = zhash_keys (self->workers);
        for (char *k = keys ? zlist_first (keys) : NULL; k; k = zlist_next (keys)) {
            s_worker_t *w = zhash_lookup (self->workers, k);
            if (w) {
                zhash_delete (self->workers, k);
                s_worker_destroy (&w);
            }
        }
        zlist_destroy (&keys);
    }
    zlistx_destroy (&self->idle);
    zhash_destroy (&self->workers);
    zhash_destroy (&self->jobs);
    cryptod_queue_destroy (&self->queue);
    zsock_destroy (&self->back);
    zsock_destroy (&self->front);
    zstr_free (&self->worker_endpoint);
    free (self);
    *self_p = NULL;
}

const char *
cryptod_broker_worker_endpoint (cryptod_broker_t *self)
{
    return self->worker_endpoint;
}

void
cryptod_broker_stop (cryptod_broker_t *self)
{
    atomic_store (&self->stop, true);
}

int
cryptod_broker_run (cryptod_broker_t *self)
{
    int rc = 0;
    /* back first: zpoller reports the first ready socket, so replies
       (which free workers) are never starved by a busy front.          */
    zpoller_t *poller = zpoller_new (self->back, self->front, NULL);
    if (!poller) {
        return -1;
    }
    /* We watch the signal flag ourselves so that in-flight work can
       finish after it is set.                                          */
    zpoller_set_nonstop (poller, true);
    uint64_t drain_deadline = 0;
    uint64_t next_tick = cm_mono_ms () + TICK_MS;
    uint64_t next_heartbeat = cm_mono_ms () + CRYPTOD_HEARTBEAT_MS;
    while (true) {
        uint64_t now = cm_mono_ms ();
        if (!self->draining && (cm_service_stopping () || atomic_load (&self->stop))) {
            self->draining = true;
            drain_deadline = now + CRYPTOD_DRAIN_MS;
            cm_info (NULL, "stopping: %zu jobs in flight, %zu queued refused",
                     zhash_size (self->jobs) - cryptod_queue_size (self->queue),
                     cryptod_queue_size (self->queue));
            s_queue_refuse (self);
        }
        if (self->draining) {
            if (zhash_size (self->jobs) == 0) {
                break;
            }
            if (now >= drain_deadline) {
                cm_warn (NULL, "stopping with %zu jobs still in flight",
                         zhash_size (self->jobs));
                rc = -1;
                break;
            }
        }
        if (now >= next_heartbeat) {
            s_heartbeat (self);
            next_heartbeat = now + CRYPTOD_HEARTBEAT_MS;
        }
        if (now >= next_tick) {
            s_expire (self);
            next_tick = now + TICK_MS;
        }
        s_pump (self);
        uint64_t wake = next_tick < next_heartbeat ? next_tick : next_heartbeat;
        if (self->draining && drain_deadline < wake) {
            wake = drain_deadline;
        }
        void *which = zpoller_wait (poller, (int)(wake > now ? wake - now : 0));
        if (which == self->back) {
            s_back_message (self);
        } else if (which == self->front) {
            s_front_message (self);
        }
    }
    /* Remote workers learn at once that we are gone (they reconnect
       with backoff); local ones get $TERM from destroy.                */
    for (s_worker_t *w = zhash_first (self->workers); w; w = zhash_next (self->workers)) {
        if (!w->local) {
            s_tell (self, w->identity, CRYPTOD_CMD_DISCONNECT);
        }
    }
    zpoller_destroy (&poller);
    return rc;
}
