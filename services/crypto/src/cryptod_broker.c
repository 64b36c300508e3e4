/*  cryptod_broker -- LRU broker between callers and crypto workers. See
    cryptod_broker.h and proto/crypto.md.                               */
#include "cryptod_broker.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cm_log.h"
#include "cm_msg.h"
#include "cm_service.h"
#include "cm_util.h"
#include "crypto.pb-c.h"
#include "cryptod_aead.h"
#include "cryptod_call.h"
#include "cryptod_worker.h"

/* Housekeeping period: expired queued requests are dropped, the stop
   flag is seen. Heartbeats will use the same tick.                    */
#define TICK_MS 250

struct cryptod_broker_t {
    zsock_t *front;
    zsock_t *back;
    char back_endpoint[64];
    cryptod_worker_args_t worker_args;
    zactor_t *actors[CRYPTOD_MAX_WORKERS];
    int nactors;

    zhash_t *workers; /* identity (hex) -> "known", for READY bookkeeping */
    zlist_t *idle;    /* zframe_t identities, least recently used first */

    cm_call_t **pending; /* ring buffer of queued requests */
    size_t max_pending;
    size_t head;
    size_t count;
    size_t max_pending_bytes;
    size_t pending_bytes;  /* s_call_cost of every queued request       */
    size_t pending_frames; /* their frames, envelope included (for logs) */

    uint64_t started_ms;
    atomic_bool stop;
    bool draining; /* stopping: new requests are refused, not queued */
};

static size_t
s_call_frames (const cm_call_t *call)
{
    return zmsg_size (call->envelope) + 1 + zmsg_size (call->blobs);
}

/* What a queued request holds: its blob bytes, its (unpacked) header
   and a fixed cost per frame, so that many small or empty frames count
   too -- they cost memory even when they carry no bytes.              */
static size_t
s_call_cost (const cm_call_t *call)
{
    size_t n = s_call_frames (call) * CRYPTOD_FRAME_COST;
    n += protobuf_c_message_get_packed_size (call->request);
    for (zframe_t *f = zmsg_first (call->blobs); f; f = zmsg_next (call->blobs)) {
        n += zframe_size (f);
    }
    return n;
}

/* Every path that lets go of a request wipes what may be plaintext.   */
static void
s_call_free (cm_call_t **call_p)
{
    cryptod_call_free (call_p);
}

cryptod_broker_t *
cryptod_broker_new (const cryptod_broker_opts_t *opts)
{
    if (!opts || !opts->endpoint || !opts->keyring || opts->workers < 0 ||
        opts->workers > CRYPTOD_MAX_WORKERS) {
        return NULL;
    }
    cryptod_broker_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    atomic_init (&self->stop, false);
    self->started_ms = cm_mono_ms ();
    self->max_pending = opts->max_pending ? opts->max_pending : CRYPTOD_MAX_PENDING;
    self->max_pending_bytes =
        opts->max_pending_bytes ? opts->max_pending_bytes : CRYPTOD_MAX_PENDING_BYTES;
    self->pending = calloc (self->max_pending, sizeof *self->pending);
    self->workers = zhash_new ();
    self->idle = zlist_new ();
    if (!self->pending || !self->workers || !self->idle) {
        goto fail;
    }
    self->front = cm_sock_server (opts->endpoint);
    if (!self->front) {
        goto fail;
    }
    /* One inproc name per broker instance (tests run several).        */
    snprintf (self->back_endpoint, sizeof self->back_endpoint, "inproc://cryptod-back-%p",
              (void *)self);
    self->back = zsock_new (ZMQ_ROUTER);
    if (!self->back) {
        goto fail;
    }
    /* Fail loudly when a worker identity is gone instead of dropping. */
    zsock_set_router_mandatory (self->back, 1);
    zsock_set_linger (self->back, 1000);
    zsock_set_sndtimeo (self->back, 1000);
    if (zsock_bind (self->back, "%s", self->back_endpoint) != 0) {
        cm_error (NULL, "zsock_bind(%s) failed: %s", self->back_endpoint,
                  zmq_strerror (zmq_errno ()));
        goto fail;
    }
    /* OpenSSL's lazy set-up (cipher fetch, DRBG) done here, once, not
       raced by the worker threads (cryptod_aead.c says why).          */
    uint8_t probe;
    if (cryptod_aead_init () != 0 || cm_random (&probe, 1) != 0) {
        cm_log_openssl (NULL, "EVP_CIPHER_fetch(AES-256-GCM) or RAND_bytes() failed");
        goto fail;
    }
    self->worker_args.endpoint = self->back_endpoint;
    self->worker_args.keyring = opts->keyring;
    self->worker_args.default_chunk_size = opts->chunk_size;
    for (int i = 0; i < opts->workers; i++) {
        self->actors[i] = zactor_new (cryptod_worker_actor, &self->worker_args);
        if (!self->actors[i]) {
            cm_error (NULL, "zactor_new(crypto worker %d) failed", i);
            goto fail;
        }
        self->nactors++;
    }
    cm_info (NULL, "crypto broker on %s with %d local workers", opts->endpoint,
             opts->workers);
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
    /* Workers first: each finishes its request, then sees $TERM.      */
    for (int i = 0; i < self->nactors; i++) {
        zactor_destroy (&self->actors[i]);
    }
    while (self->pending && self->count > 0) {
        s_call_free (&self->pending[self->head]);
        self->head = (self->head + 1) % self->max_pending;
        self->count--;
    }
    free (self->pending);
    if (self->idle) {
        zframe_t *f;
        while ((f = zlist_pop (self->idle))) {
            zframe_destroy (&f);
        }
        zlist_destroy (&self->idle);
    }
    zhash_destroy (&self->workers);
    zsock_destroy (&self->back);
    zsock_destroy (&self->front);
    free (self);
    *self_p = NULL;
}

void
cryptod_broker_stop (cryptod_broker_t *self)
{
    atomic_store (&self->stop, true);
}

static size_t
s_in_flight (cryptod_broker_t *self)
{
    return zhash_size (self->workers) - zlist_size (self->idle);
}

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
s_reply_error (cryptod_broker_t *self, cm_call_t *call, cm_status_t status,
               const char *code, const char *message)
{
    cm_info (call->req_id, "crypto request refused: status=%s code=%s",
             cm_status_name (status), code);
    cm_call_reply_error (self->front, call, &safeshare__crypto_reply__descriptor, status,
                         code, message);
}

/* Sends *call_p to the worker `worker` (consumed): [worker][envelope]
   [header][blobs]. The blob frames are moved; only the small header is
   packed again. On a send failure the caller gets UNAVAILABLE.      */
static void
s_dispatch (cryptod_broker_t *self, zframe_t **worker, cm_call_t **call_p)
{
    cm_call_t *call = *call_p;
    /* Identity frames only (a few bytes), kept to answer a failed send. */
    zmsg_t *envelope_copy = zmsg_dup (call->envelope);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, worker);
    zframe_t *f;
    while ((f = zmsg_pop (call->envelope))) {
        zmsg_append (msg, &f);
    }
    zframe_t *head = cm_frame_pack (call->request);
    zmsg_append (msg, &head);
    while ((f = zmsg_pop (call->blobs))) {
        zmsg_append (msg, &f);
    }
    /* On failure the unsent frames (a plaintext chunk) are wiped.      */
    if (cryptod_msg_send (&msg, self->back) != 0) {
        cm_error (call->req_id, "cryptod_msg_send() to crypto worker failed: %s",
                  zmq_strerror (zmq_errno ()));
        zmsg_destroy (&call->envelope);
        call->envelope = envelope_copy;
        envelope_copy = NULL;
        s_reply_error (self, call, CM_UNAVAILABLE, "crypto_unavailable",
                       "no crypto worker could take the request");
    }
    zmsg_destroy (&envelope_copy);
    s_call_free (call_p);
}

/* Pops the oldest queued request that is still wanted, or NULL.      */
static cm_call_t *
s_pending_pop (cryptod_broker_t *self)
{
    while (self->count > 0) {
        cm_call_t *call = self->pending[self->head];
        self->pending[self->head] = NULL;
        self->head = (self->head + 1) % self->max_pending;
        self->count--;
        self->pending_bytes -= s_call_cost (call);
        self->pending_frames -= s_call_frames (call);
        if (!cm_call_expired (call)) {
            return call;
        }
        cm_debug (call->req_id, "deadline passed while queued, request dropped");
        s_call_free (&call);
    }
    return NULL;
}

/* A worker is free: give it the next queued request or mark it idle. */
static void
s_worker_free (cryptod_broker_t *self, zframe_t **worker)
{
    cm_call_t *call = s_pending_pop (self);
    if (call) {
        s_dispatch (self, worker, &call);
        return;
    }
    /* A worker may say READY more than once (e.g. after a request it
       could not answer): keep one entry per worker.                  */
    for (zframe_t *f = zlist_first (self->idle); f; f = zlist_next (self->idle)) {
        if (zframe_eq (f, *worker)) {
            zframe_destroy (worker);
            return;
        }
    }
    zlist_append (self->idle, *worker);
    *worker = NULL;
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
    } else if (req->body_case == SAFESHARE__CRYPTO_REQUEST__BODY_HEALTH) {
        s_health (self, call);
    } else if (req->body_case != SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW &&
               req->body_case != SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT &&
               req->body_case != SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT) {
        s_reply_error (self, call, CM_INVALID, "missing_body",
                       "expected health, key_new, encrypt or decrypt");
    } else if (zlist_size (self->idle) > 0) {
        zframe_t *worker = zlist_pop (self->idle);
        s_dispatch (self, &worker, &call);
        return;
    } else {
        size_t cost = s_call_cost (call);
        if (self->count >= self->max_pending ||
            (self->count > 0 && self->pending_bytes + cost > self->max_pending_bytes)) {
            s_reply_error (self, call, CM_UNAVAILABLE, "crypto_busy",
                           "every crypto worker is busy and the queue is full");
        } else {
            self->pending[(self->head + self->count) % self->max_pending] = call;
            self->count++;
            self->pending_bytes += cost;
            self->pending_frames += s_call_frames (call);
            return;
        }
    }
    s_call_free (&call);
}

static void
s_back_message (cryptod_broker_t *self)
{
    zmsg_t *msg = zmsg_recv (self->back);
    if (!msg) {
        return;
    }
    zframe_t *worker = zmsg_pop (msg);
    if (!worker || zmsg_size (msg) == 0) {
        zframe_destroy (&worker);
        cryptod_msg_destroy_wiped (&msg);
        return;
    }
    char *key = zframe_strhex (worker);
    bool known = zhash_lookup (self->workers, key) != NULL;
    if (zmsg_size (msg) == 1) {
        /* A command. Only READY exists so far.                        */
        zframe_t *cmd = zmsg_first (msg);
        if (zframe_streq (cmd, CRYPTOD_WORKER_READY)) {
            if (!known) {
                zhash_insert (self->workers, key, "w");
                cm_debug (NULL, "crypto worker %s ready", key);
            }
            s_worker_free (self, &worker);
        } else {
            cm_warn (NULL, "unknown command from crypto worker %s dropped", key);
        }
    } else if (!known) {
        cm_warn (NULL, "reply from unknown crypto worker %s dropped", key);
    } else {
        /* [client envelope][header][blob]: to the caller as it is; the
           blob of a DECRYPT reply is plaintext, wiped if not sent.      */
        if (cryptod_msg_send (&msg, self->front) != 0) {
            cm_warn (NULL, "cryptod_msg_send() of a reply to the caller failed: %s",
                     zmq_strerror (zmq_errno ()));
        }
        s_worker_free (self, &worker);
    }
    zstr_free (&key);
    zframe_destroy (&worker);
    /* A dropped reply may be a DECRYPT output.                         */
    cryptod_msg_destroy_wiped (&msg);
}

/* Answers every queued request UNAVAILABLE (shutting down).          */
static void
s_pending_refuse (cryptod_broker_t *self)
{
    cm_call_t *call;
    while ((call = s_pending_pop (self))) {
        s_reply_error (self, call, CM_UNAVAILABLE, "crypto_stopping",
                       "the crypto service is shutting down");
        s_call_free (&call);
    }
}

/* Drops queued requests whose deadline passed (the caller gave up).  */
static void
s_pending_expire (cryptod_broker_t *self)
{
    size_t n = self->count;
    for (size_t i = 0; i < n; i++) {
        cm_call_t *call = self->pending[self->head];
        self->pending[self->head] = NULL;
        self->head = (self->head + 1) % self->max_pending;
        self->count--;
        if (cm_call_expired (call)) {
            cm_debug (call->req_id, "deadline passed while queued, request dropped");
            self->pending_bytes -= s_call_cost (call);
            self->pending_frames -= s_call_frames (call);
            s_call_free (&call);
        } else {
            /* Back at the tail: the order of the survivors is kept.    */
            self->pending[(self->head + self->count) % self->max_pending] = call;
            self->count++;
        }
    }
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
    while (true) {
        uint64_t now = cm_mono_ms ();
        if (!self->draining && (cm_service_stopping () || atomic_load (&self->stop))) {
            self->draining = true;
            drain_deadline = now + CRYPTOD_DRAIN_MS;
            cm_info (NULL, "stopping: %zu in flight, %zu queued refused (%zu frames)",
                     s_in_flight (self), self->count, self->pending_frames);
            s_pending_refuse (self);
        }
        if (self->draining) {
            if (s_in_flight (self) == 0) {
                break;
            }
            if (now >= drain_deadline) {
                cm_warn (NULL, "stopping with %zu requests still in flight",
                         s_in_flight (self));
                rc = -1;
                break;
            }
        }
        if (now >= next_tick) {
            s_pending_expire (self);
            next_tick = now + TICK_MS;
        }
        uint64_t wake = next_tick;
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
    zpoller_destroy (&poller);
    return rc;
}
