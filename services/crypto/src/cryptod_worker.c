/*  cryptod_worker -- seals and opens chunks for the broker. See
    cryptod_worker.h and proto/crypto.md ("Back end").                  */
#include "cryptod_worker.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cm_curve.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_util.h"
#include "cryptod_aead.h"
#include "cryptod_backend.h"
#include "cryptod_call.h"
#include "cryptod_stream.h"

cm_status_t
cryptod_worker_work (const Safeshare__WorkRequest *req, const uint8_t *in, size_t in_len,
                     uint8_t **out, size_t *out_len, const char **code)
{
    *out = NULL;
    *out_len = 0;
    *code = NULL;
    bool encrypt = req->op == SAFESHARE__WORK_OP__WORK_OP_ENCRYPT;
    uint32_t chunk_size = 0;
    /* The broker checked all this; we check again because the request
       came over the network.                                           */
    if ((!encrypt && req->op != SAFESHARE__WORK_OP__WORK_OP_DECRYPT) ||
        req->dek.len != CRYPTOD_DEK_LEN || req->header.len != CRYPTOD_HEADER_LEN ||
        cryptod_header_parse (req->header.data, req->header.len, &chunk_size, NULL) !=
            0 ||
        req->index >= CRYPTOD_MAX_CHUNKS) {
        *code = "bad_work_request";
        return CM_INVALID;
    }
    const char *why = NULL;
    if (cryptod_backend_chunk_check (encrypt, in_len, chunk_size, req->index, req->last,
                                     &why)) {
        *code = "bad_chunk_length";
        return CM_INVALID;
    }
    size_t n = encrypt ? in_len + CRYPTOD_TAG_LEN : in_len - CRYPTOD_TAG_LEN;
    /* +1 so an empty plaintext (empty file) is still an allocation.    */
    uint8_t *buf = malloc (n + 1);
    if (!buf) {
        *code = "internal_error";
        return CM_INTERNAL;
    }
    int rc;
    if (encrypt) {
        rc = cryptod_chunk_seal (req->dek.data, req->header.data, req->index, req->last,
                                 in, in_len, buf);
    } else {
        /* On failure cryptod_chunk_open leaves no plaintext in buf.   */
        rc = cryptod_chunk_open (req->dek.data, req->header.data, req->index, req->last,
                                 in, in_len, buf);
    }
    if (rc != 0) {
        free (buf);
        *code = encrypt ? "encrypt_failed" : "chunk_auth_failed";
        return encrypt ? CM_INTERNAL : CM_UNPROCESSABLE;
    }
    *out = buf;
    *out_len = n;
    return CM_OK;
}

int
cryptod_worker_prepare (void)
{
    uint8_t probe;
    if (cryptod_aead_init () != 0 || cm_random (&probe, 1) != 0) {
        cm_log_openssl (NULL, "EVP_CIPHER_fetch(AES-256-GCM) or RAND_bytes() failed");
        return -1;
    }
    return 0;
}

void
cryptod_worker_name (char out[CRYPTOD_WORKER_NAME_MAX + 1], int i)
{
    char host[64] = "localhost";
    if (gethostname (host, sizeof host) != 0) {
        snprintf (host, sizeof host, "localhost");
    }
    host[sizeof host - 1] = '\0';
    snprintf (out, CRYPTOD_WORKER_NAME_MAX + 1, "%.64s:%d:%d", host, (int)getpid (), i);
}

/* ---- the actor ------------------------------------------------------ */

typedef struct {
    const cryptod_worker_args_t *args;
    bool local;
    zsock_t *dealer; /* NULL while waiting to reconnect */
    /* A remote worker with CURVE on: the dealer's handshake events, so
       a refused key is said once per socket instead of looking like a
       silent broker.                                                   */
    zsock_t *watch;
    bool warned; /* a failed handshake was said for this socket */
    /* Liveness counts heartbeat intervals we lived through without a
       word from the broker (Paranoid Pirate), not wall-clock time: a
       worker that was stopped reads what came meanwhile before it
       counts the broker dead.                                          */
    int liveness;
    uint64_t tick_at;      /* mono ms: the next heartbeat interval ends */
    uint64_t last_sent;    /* mono ms */
    uint64_t reconnect_at; /* mono ms, when dealer is NULL */
    int backoff_ms;
    unsigned connects;
    char why[96]; /* why the next connect is a reconnect, for its log line */
} s_actor_t;

static void
s_sent (s_actor_t *self)
{
    self->last_sent = cm_mono_ms ();
}

/* Frames that may be a plaintext chunk: ours to wipe only in a worker
   process (a local thread's frames are the broker's, shared in memory). */
static void
s_frame_drop (s_actor_t *self, zframe_t **frame)
{
    if (self->local) {
        zframe_destroy (frame);
    } else {
        cryptod_frame_destroy_wiped (frame);
    }
}

static void
s_msg_drop (s_actor_t *self, zmsg_t **msg)
{
    zframe_t *f;
    while (*msg && (f = zmsg_pop (*msg))) {
        s_frame_drop (self, &f);
    }
    zmsg_destroy (msg);
}

/* The socket and its watch go together (the watch first).            */
static void
s_drop_socket (s_actor_t *self)
{
    cm_curve_watch_destroy (self->dealer, &self->watch);
    zsock_destroy (&self->dealer);
}

static void
s_connect (s_actor_t *self)
{
    const cryptod_worker_args_t *a = self->args;
    char identity[32];
    self->dealer = zsock_new (ZMQ_DEALER);
    if (!self->dealer) {
        cm_error (NULL, "zsock_new(DEALER) failed for crypto worker %s", a->name);
        goto retry;
    }
    /* A remote worker's identity is random per socket: it survives a
       TCP reconnect (the broker's ROUTER hands it over) but not a new
       socket, which starts as a new worker with READY.                 */
    if (a->identity) {
        zsock_set_identity (self->dealer, a->identity);
    } else {
        identity[0] = 'W';
        if (cm_random_hex (identity + 1, 8) != 0) {
            cm_error (NULL, "cm_random_hex() failed for crypto worker %s", a->name);
            goto retry;
        }
        zsock_set_identity (self->dealer, identity);
    }
    zsock_set_maxmsgsize (self->dealer, CM_MAX_MESSAGE);
    zsock_set_linger (self->dealer, 0);
    /* Local threads use inproc, where CURVE has no part. A remote
       worker watches its handshakes, CURVE or not: a refused key or a
       mechanism mismatch is said, and the broker's silence is counted
       from the moment the connection is made (see s_watch_event).      */
    if (!self->local) {
        if (cm_curve_client_apply (self->dealer, "crypto") != 0) {
            goto retry;
        }
        self->warned = false;
        self->watch = cm_curve_watch_new (self->dealer, CM_CURVE_WATCH_HANDSHAKE);
        if (!self->watch) {
            goto retry;
        }
    }
    if (zsock_connect (self->dealer, "%s", a->endpoint) != 0) {
        cm_error (NULL, "zsock_connect(%s) failed for crypto worker %s: %s", a->endpoint,
                  a->name, zmq_strerror (zmq_errno ()));
        goto retry;
    }
    /* One line per connect; the reason when it is a reconnect.         */
    if (self->connects++ == 0) {
        cm_info (NULL, "crypto worker %s connecting to %s", a->name, a->endpoint);
    } else {
        cm_info (NULL, "crypto worker %s reconnecting to %s (%s)", a->name, a->endpoint,
                 self->why);
    }
    if (cryptod_backend_send_ready (self->dealer, a->name) != 0) {
        cm_warn (NULL, "READY to %s failed: %s", a->endpoint,
                 zmq_strerror (zmq_errno ()));
    }
    s_sent (self);
    self->liveness = CRYPTOD_HEARTBEAT_LIVENESS;
    self->tick_at = cm_mono_ms () + CRYPTOD_HEARTBEAT_MS;
    return;
retry:
    s_drop_socket (self);
    snprintf (self->why, sizeof self->why, "the last connect failed");
    self->reconnect_at = cm_mono_ms () + (uint64_t)self->backoff_ms;
}

/* Drops the socket (queued messages with it) and schedules a new one
   after the backoff, which doubles each time (reset by a broker that
   answers).                                                            */
static void
s_disconnect (s_actor_t *self, const char *why)
{
    s_drop_socket (self);
    snprintf (self->why, sizeof self->why, "%s; waited %d ms", why, self->backoff_ms);
    self->reconnect_at = cm_mono_ms () + (uint64_t)self->backoff_ms;
    self->backoff_ms *= 2;
    if (self->backoff_ms > CRYPTOD_RECONNECT_MAX_MS) {
        self->backoff_ms = CRYPTOD_RECONNECT_MAX_MS;
    }
}

/* One REQUEST: [job_id][WorkRequest][blob] (msg consumed). Always ends
   with a REPLY, or READY when there is no job id to answer.           */
static void
s_job (s_actor_t *self, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    *msg_p = NULL;
    zframe_t *id = zmsg_pop (msg);
    zframe_t *wr = zmsg_pop (msg);
    zframe_t *blob = zmsg_pop (msg);
    bool shape = id && wr && blob && zmsg_size (msg) == 0;
    Safeshare__WorkRequest *req = NULL;
    Safeshare__WorkReply reply = SAFESHARE__WORK_REPLY__INIT;
    const char *code = NULL;
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (wr) {
        req = safeshare__work_request__unpack (&cm_wipe_allocator, zframe_size (wr),
                                               zframe_data (wr));
        /* It held the DEK; it is ours alone (a fresh buffer per send). */
        cryptod_frame_destroy_wiped (&wr);
    }
    if (!id || zframe_size (id) != CRYPTOD_JOB_ID_LEN) {
        /* Nothing to answer: READY says we are free; the broker puts
           back whatever it thought we held.                             */
        cm_warn (NULL, "crypto worker %s: REQUEST without a job id dropped",
                 self->args->name);
        if (cryptod_backend_send_ready (self->dealer, self->args->name) == 0) {
            s_sent (self);
        }
        goto cleanup;
    }
    const char *req_id = req && req->request_id ? req->request_id : "";
    if (!shape || !req) {
        reply.status = CM_INVALID;
        code = "bad_work_request";
    } else if (req->deadline_ms != 0 && cm_now_ms () > req->deadline_ms) {
        reply.status = CM_UNAVAILABLE;
        code = CRYPTOD_DEADLINE_PASSED;
    } else {
        reply.status = cryptod_worker_work (req, zframe_data (blob), zframe_size (blob),
                                            &out, &out_len, &code);
    }
    if (req) {
        reply.index = req->index;
    }
    if (code) {
        reply.error_code = (char *)code;
        cm_info (req_id, "crypto job refused: status=%s code=%s",
                 cm_status_name (reply.status), code);
    }
    bool secret = req && req->op != SAFESHARE__WORK_OP__WORK_OP_ENCRYPT;
    /* `out` goes to libzmq without a copy and is freed (a DECRYPT
       output wiped first) whatever happens.                            */
    if (cryptod_backend_send_reply (self->dealer, zframe_data (id), &reply, out, out_len,
                                    secret) != 0) {
        cm_warn (req_id, "cryptod_backend_send_reply() failed: %s",
                 zmq_strerror (zmq_errno ()));
    } else {
        s_sent (self);
    }
cleanup:
    zframe_destroy (&id);
    /* A DECRYPT request's chunk is ciphertext; anything else may be
       plaintext (an ENCRYPT, or a request we could not read).           */
    if (req && req->op == SAFESHARE__WORK_OP__WORK_OP_DECRYPT) {
        zframe_destroy (&blob);
    } else {
        s_frame_drop (self, &blob);
    }
    if (req) {
        safeshare__work_request__free_unpacked (req, &cm_wipe_allocator);
    }
    s_msg_drop (self, &msg);
}

/* A handshake event of a remote worker's socket. A refused key: one
   line, then a new socket after the backoff (an operator may add our
   key to the broker's allow dir meanwhile).                          */
static void
s_watch_event (s_actor_t *self)
{
    char endpoint[256];
    int event = cm_curve_watch_recv (self->watch, endpoint, sizeof endpoint);
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        /* Connected (again): READY reaches the broker now, and its first
           heartbeat may take a whole interval. Counting the silence from
           the socket's creation would give up on a broker that has just
           taken us when the link came back late in that count.         */
        self->liveness = CRYPTOD_HEARTBEAT_LIVENESS;
        self->tick_at = cm_mono_ms () + CRYPTOD_HEARTBEAT_MS;
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        cm_error (NULL,
                  "crypto worker: the broker refused our CURVE key (ZAP) endpoint=%s "
                  "worker=%s",
                  endpoint, self->args->name);
        s_disconnect (self, "the broker refused our CURVE key");
    } else if (!self->warned && (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                                 event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)) {
        /* libzmq retries by itself: said once per socket.             */
        self->warned = true;
        cm_warn (NULL,
                 "crypto worker %s: handshake with %s failed (CURVE on one side "
                 "only, or not the broker's key in crypto.key?)",
                 self->args->name, endpoint);
    }
}

static void
s_broker_message (s_actor_t *self)
{
    bool truncated = false;
    zmsg_t *msg = cm_msg_recv (self->dealer, &truncated);
    if (!msg) {
        return;
    }
    zframe_t *proto = zmsg_pop (msg);
    zframe_t *cmd = zmsg_pop (msg);
    if (truncated || !proto || !cmd || !zframe_streq (proto, CRYPTOD_PROTOCOL)) {
        cm_warn (NULL, "crypto worker %s: malformed message from the broker dropped",
                 self->args->name);
        goto cleanup;
    }
    self->liveness = CRYPTOD_HEARTBEAT_LIVENESS;
    if (zframe_streq (cmd, CRYPTOD_CMD_REQUEST)) {
        self->backoff_ms = CRYPTOD_RECONNECT_MIN_MS;
        s_job (self, &msg);
    } else if (zframe_streq (cmd, CRYPTOD_CMD_HEARTBEAT)) {
        /* Only workers it knows get heartbeats: we are in.             */
        self->backoff_ms = CRYPTOD_RECONNECT_MIN_MS;
    } else if (zframe_streq (cmd, CRYPTOD_CMD_DISCONNECT)) {
        s_disconnect (self, "the broker said DISCONNECT");
    } else {
        cm_warn (NULL, "crypto worker %s: unknown command from the broker dropped",
                 self->args->name);
    }
cleanup:
    zframe_destroy (&proto);
    zframe_destroy (&cmd);
    s_msg_drop (self, &msg);
}

void
cryptod_worker_actor (zsock_t *pipe, void *args)
{
    s_actor_t self;
    memset (&self, 0, sizeof self);
    self.args = args;
    self.local = self.args->identity != NULL;
    self.backoff_ms = CRYPTOD_RECONNECT_MIN_MS;
    zsock_signal (pipe, 0);
    s_connect (&self);
    bool term = false;
    while (!term) {
        uint64_t now = cm_mono_ms ();
        uint64_t wake = self.reconnect_at;
        if (self.dealer) {
            wake = self.tick_at;
        }
        zmq_pollitem_t items[3] = {
            {zsock_resolve (pipe), 0, ZMQ_POLLIN, 0},
            {self.dealer ? zsock_resolve (self.dealer) : NULL, 0, ZMQ_POLLIN, 0},
            {self.watch ? zsock_resolve (self.watch) : NULL, 0, ZMQ_POLLIN, 0},
        };
        int nitems = self.dealer ? (self.watch ? 3 : 2) : 1;
        /* Signals are the main thread's business ($TERM comes from it):
           an interrupted poll just goes round again.                    */
        int rc = zmq_poll (items, nitems, (long)(wake > now ? wake - now : 0));
        if (rc < 0 && zmq_errno () != EINTR) {
            cm_error (NULL, "zmq_poll() failed in crypto worker %s: %s", self.args->name,
                      zmq_strerror (zmq_errno ()));
            break;
        }
        /* The broker first: a job that is already here is finished
           before a $TERM is read.                                      */
        if (rc > 0 && self.dealer && (items[1].revents & ZMQ_POLLIN)) {
            s_broker_message (&self);
        }
        if (rc > 0 && nitems == 3 && self.watch && (items[2].revents & ZMQ_POLLIN)) {
            s_watch_event (&self);
        }
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN)) {
            char *cmd = zstr_recv (pipe);
            term = !cmd || streq (cmd, "$TERM");
            zstr_free (&cmd);
        }
        now = cm_mono_ms ();
        if (term) {
            break;
        }
        if (self.dealer && now >= self.tick_at) {
            self.tick_at = now + CRYPTOD_HEARTBEAT_MS;
            if (--self.liveness <= 0) {
                s_disconnect (&self, "the broker was silent for 3 heartbeats");
            } else if (now - self.last_sent >= CRYPTOD_HEARTBEAT_MS / 2) {
                /* Only when nothing else went out lately: the broker
                   never hears from us less than every 1.5 intervals.   */
                if (cryptod_backend_send_cmd (self.dealer, NULL, CRYPTOD_CMD_HEARTBEAT) !=
                    0) {
                    cm_debug (NULL, "HEARTBEAT not sent: %s",
                              zmq_strerror (zmq_errno ()));
                }
                s_sent (&self);
            }
        } else if (!self.dealer && now >= self.reconnect_at) {
            s_connect (&self);
        }
    }
    if (self.dealer) {
        /* Idle now (jobs are done inline): DISCONNECT lets the broker
           forget us at once instead of after 3 silent heartbeats.      */
        zsock_set_linger (self.dealer, 500);
        if (cryptod_backend_send_cmd (self.dealer, NULL, CRYPTOD_CMD_DISCONNECT) != 0) {
            cm_debug (NULL, "DISCONNECT not sent: %s", zmq_strerror (zmq_errno ()));
        }
        s_drop_socket (&self);
    }
    cm_info (NULL, "crypto worker %s stopped", self.args->name);
    /* Free this thread's OpenSSL state (DRBGs, error queue) now, before
       zactor_destroy returns: czmq's threads are detached, and leaving it
       to the thread-exit destructors races the process exit (seen as
       leaks under LeakSanitizer).                                     */
    OPENSSL_thread_stop ();
}
