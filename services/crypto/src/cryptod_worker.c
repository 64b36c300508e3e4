/*  cryptod_worker -- KEY_NEW / ENCRYPT / DECRYPT. See cryptod_worker.h
    and proto/crypto.md for the error codes.                            */
#include "cryptod_worker.h"

#include <string.h>
#include <openssl/crypto.h>

#include "cm_log.h"
#include "cm_util.h"
#include "crypto.pb-c.h"
#include "cryptod_call.h"
#include "cryptod_stream.h"

struct cryptod_worker_t {
    const cryptod_keyring_t *keyring;
    uint32_t default_chunk_size;
};

cryptod_worker_t *
cryptod_worker_new (const cryptod_keyring_t *keyring, uint32_t default_chunk_size)
{
    if (!keyring) {
        return NULL;
    }
    cryptod_worker_t *self = calloc (1, sizeof *self);
    if (self) {
        self->keyring = keyring;
        self->default_chunk_size = default_chunk_size;
    }
    return self;
}

void
cryptod_worker_destroy (cryptod_worker_t **self_p)
{
    if (self_p && *self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

static int
s_error (zsock_t *sock, cm_call_t *call, cm_status_t status, const char *code,
         const char *message)
{
    cm_info (call->req_id, "crypto request refused: status=%s code=%s",
             cm_status_name (status), code);
    return cm_call_reply_error (sock, call, &safeshare__crypto_reply__descriptor, status,
                                code, message);
}

static int
s_key_new (cryptod_worker_t *self, zsock_t *sock, cm_call_t *call,
           const Safeshare__KeyNewRequest *req)
{
    uint8_t dek[CRYPTOD_DEK_LEN];
    uint8_t wrapped[CRYPTOD_WRAPPED_DEK_LEN];
    size_t wrapped_len = sizeof wrapped;
    uint8_t header[CRYPTOD_HEADER_LEN];
    char kek_id[CRYPTOD_KEK_ID_LEN + 1];
    int rc = -1;

    if (!req->file_id || !cm_is_hex_id (req->file_id, 32)) {
        return s_error (sock, call, CM_INVALID, "bad_file_id",
                        "file_id must be 32 lowercase hex chars");
    }
    uint32_t chunk_size = req->chunk_size ? req->chunk_size : self->default_chunk_size;
    if (chunk_size < CRYPTOD_MIN_CHUNK || chunk_size > CRYPTOD_MAX_CHUNK) {
        return s_error (sock, call, CM_INVALID, "bad_chunk_size",
                        "chunk_size must be 4096..16777216 (0: the service default)");
    }
    if (zmsg_size (call->blobs) != 0) {
        return s_error (sock, call, CM_INVALID, "bad_blob_count",
                        "KEY_NEW carries no blob frame");
    }
    if (cm_random (dek, sizeof dek) != 0) {
        cm_error (call->req_id, "cm_random() failed for a DEK");
        rc = s_error (sock, call, CM_INTERNAL, "internal_error", "no randomness");
        goto cleanup;
    }
    if (cryptod_dek_wrap (self->keyring, req->file_id, dek, kek_id, wrapped,
                          &wrapped_len) != 0 ||
        cryptod_header_build (header, chunk_size, req->file_id) != 0) {
        cm_error (call->req_id, "cryptod_dek_wrap() or cryptod_header_build() failed");
        rc = s_error (sock, call, CM_INTERNAL, "internal_error", "key generation failed");
        goto cleanup;
    }
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
    rc = cm_call_reply (sock, call, (ProtobufCMessage *)&reply, NULL);
    cm_debug (call->req_id, "key_new file=%s kek=%s chunk_size=%u", req->file_id, kek_id,
              chunk_size);
cleanup:
    OPENSSL_cleanse (dek, sizeof dek);
    return rc;
}

/* libzmq calls these when it is done with a zero-copy reply buffer.  */
static void
s_free_plain (void *data, void *hint)
{
    (void)hint;
    free (data);
}

static void
s_free_secret (void *data, void *hint)
{
    OPENSSL_cleanse (data, (size_t)(uintptr_t)hint);
    free (data);
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
    /* Length rules of docs/format.md, in plaintext terms.             */
    size_t len = zframe_size (zmsg_first (call->blobs));
    size_t overhead = encrypt ? 0 : CRYPTOD_TAG_LEN;
    if (len < overhead || len - overhead > *chunk_size) {
        *why = encrypt ? "chunk is larger than the chunk size"
                       : "chunk must be 16..chunk_size+16 bytes";
        return "bad_chunk_length";
    }
    size_t pt_len = len - overhead;
    if (!req->last && pt_len != *chunk_size) {
        *why = "every chunk but the last must be exactly the chunk size";
        return "bad_chunk_length";
    }
    if (req->last && pt_len == 0 && req->index != 0) {
        *why = "an empty last chunk is only valid for an empty file";
        return "bad_chunk_length";
    }
    return NULL;
}

static int
s_chunk (cryptod_worker_t *self, zsock_t *sock, cm_call_t *call,
         const Safeshare__ChunkRequest *req, bool encrypt)
{
    uint8_t dek[CRYPTOD_DEK_LEN];
    uint32_t chunk_size = 0;
    const char *why = NULL;
    const char *code = s_chunk_check (req, call, encrypt, &chunk_size, &why);
    if (code) {
        return s_error (sock, call, CM_INVALID, code, why);
    }
    if (!cryptod_keyring_has (self->keyring, req->kek_id)) {
        cm_warn (call->req_id, "KEK %s is not in the ring (file=%s)", req->kek_id,
                 req->file_id);
        return s_error (sock, call, CM_NOT_FOUND, "kek_not_found",
                        "the file's KEK is not in this service's ring");
    }
    if (cryptod_dek_unwrap (self->keyring, req->kek_id, req->file_id,
                            req->wrapped_dek.data, req->wrapped_dek.len, dek) != 0) {
        cm_warn (call->req_id, "cryptod_dek_unwrap() failed file=%s kek=%s", req->file_id,
                 req->kek_id);
        return s_error (sock, call, CM_UNPROCESSABLE, "dek_unwrap_failed",
                        "the wrapped DEK does not authenticate for this file");
    }
    zframe_t *in = zmsg_first (call->blobs);
    size_t in_len = zframe_size (in);
    size_t out_len = encrypt ? in_len + CRYPTOD_TAG_LEN : in_len - CRYPTOD_TAG_LEN;
    /* Our own buffer, handed to libzmq without a copy; +1 so an empty
       plaintext (empty file) is still a valid allocation.             */
    uint8_t *out = malloc (out_len + 1);
    if (!out) {
        OPENSSL_cleanse (dek, sizeof dek);
        return s_error (sock, call, CM_INTERNAL, "internal_error", "out of memory");
    }
    uint8_t header[CRYPTOD_HEADER_LEN];
    memcpy (header, req->header.data, sizeof header);
    int rc;
    if (encrypt) {
        /* The plaintext frame is wiped by cryptod_call_release, on this
           path and on every refusal above.                             */
        rc = cryptod_chunk_seal (dek, header, req->index, req->last, zframe_data (in),
                                 in_len, out);
    } else {
        rc = cryptod_chunk_open (dek, header, req->index, req->last, zframe_data (in),
                                 in_len, out);
    }
    OPENSSL_cleanse (dek, sizeof dek);
    if (rc != 0) {
        free (out);
        if (encrypt) {
            cm_error (call->req_id, "cryptod_chunk_seal() failed file=%s index=%llu",
                      req->file_id, (unsigned long long)req->index);
            return s_error (sock, call, CM_INTERNAL, "encrypt_failed",
                            "chunk encryption failed");
        }
        cm_warn (call->req_id, "chunk authentication failed file=%s index=%llu last=%d",
                 req->file_id, (unsigned long long)req->index, req->last);
        return s_error (sock, call, CM_UNPROCESSABLE, "chunk_auth_failed",
                        "the chunk does not authenticate (corrupted, reordered, "
                        "truncated or from another file)");
    }

    Safeshare__CryptoReply reply = SAFESHARE__CRYPTO_REPLY__INIT;
    Safeshare__ChunkReply body = SAFESHARE__CHUNK_REPLY__INIT;
    Safeshare__Meta meta;
    char reqbuf[65];
    cm_meta_init (&meta, reqbuf, call->req_id, 0);
    body.index = req->index;
    reply.meta = &meta;
    reply.status = SAFESHARE__STATUS__STATUS_OK;
    if (encrypt) {
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
    /* cm_msg_send_zc frees `out` through the callback in every case.  */
    if (cm_msg_send_zc (sock, &msg, out, out_len, encrypt ? s_free_plain : s_free_secret,
                        (void *)(uintptr_t)out_len) != 0) {
        cm_warn (call->req_id, "cm_msg_send_zc() failed: %s",
                 zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

int
cryptod_worker_handle (cryptod_worker_t *self, zsock_t *sock, cm_call_t *call)
{
    if (cm_call_expired (call)) {
        cm_debug (call->req_id, "deadline passed, request dropped");
        return -1;
    }
    const Safeshare__CryptoRequest *req = (const Safeshare__CryptoRequest *)call->request;
    switch (req->body_case) {
        case SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW:
            return s_key_new (self, sock, call, req->key_new);
        case SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT:
            return s_chunk (self, sock, call, req->encrypt, true);
        case SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT:
            return s_chunk (self, sock, call, req->decrypt, false);
        default:
            return s_error (sock, call, CM_INVALID, "missing_body",
                            "expected key_new, encrypt or decrypt");
    }
}

static void
s_send_ready (zsock_t *dealer)
{
    if (zstr_send (dealer, CRYPTOD_WORKER_READY) != 0) {
        cm_warn (NULL, "zstr_send(READY) failed: %s", zmq_strerror (zmq_errno ()));
    }
}

void
cryptod_worker_actor (zsock_t *pipe, void *args)
{
    const cryptod_worker_args_t *a = args;
    cryptod_worker_t *self = cryptod_worker_new (a->keyring, a->default_chunk_size);
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zpoller_t *poller = NULL;
    if (!self || !dealer || zsock_connect (dealer, "%s", a->endpoint) != 0) {
        cm_error (NULL, "crypto worker could not connect to %s", a->endpoint);
        zsock_signal (pipe, 0);
        goto cleanup;
    }
    zsock_set_linger (dealer, 1000);
    zsock_signal (pipe, 0);
    poller = zpoller_new (pipe, dealer, NULL);
    /* Shutdown comes from the broker ($TERM), not from the signal flag:
       the request in hand is finished first.                           */
    zpoller_set_nonstop (poller, true);
    s_send_ready (dealer);
    while (true) {
        /* No timers yet: heartbeats to the broker come with the remote
           worker pool (a later issue) and will bound this wait.        */
        zsock_t *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            char *cmd = zstr_recv (pipe);
            bool term = !cmd || streq (cmd, "$TERM");
            zstr_free (&cmd);
            if (term) {
                break;
            }
            continue;
        }
        if (which != dealer) {
            continue;
        }
        cm_call_t call;
        /* The broker already checked framing; a bad message here is
           answered by cm_call_recv itself.                            */
        if (cm_call_recv (dealer, &safeshare__crypto_request__descriptor,
                          &safeshare__crypto_reply__descriptor, &call) != 0) {
            s_send_ready (dealer);
            continue;
        }
        int replied = cryptod_worker_handle (self, dealer, &call);
        cryptod_call_release (&call);
        /* A reply tells the broker we are free again; without one, say so. */
        if (replied != 0) {
            s_send_ready (dealer);
        }
    }
cleanup:
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
    cryptod_worker_destroy (&self);
    /* Free this thread's OpenSSL state (DRBGs, error queue) now, before
       zactor_destroy returns: czmq's threads are detached, and leaving it
       to the thread-exit destructors races the process exit (seen as
       leaks under LeakSanitizer).                                     */
    OPENSSL_thread_stop ();
}
