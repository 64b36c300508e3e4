/*  cryptod_backend -- broker <-> worker frames. See cryptod_backend.h and
    proto/crypto.md ("Back end").                                        */
#include "cryptod_backend.h"

#include <openssl/crypto.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cm_msg.h"
#include "cryptod_stream.h"

bool
cryptod_backend_name_valid (const char *name, size_t len)
{
    if (!name || len == 0 || len > CRYPTOD_WORKER_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    return true;
}

const char *
cryptod_backend_chunk_check (bool encrypt, size_t len, uint32_t chunk_size,
                             uint64_t index, bool last, const char **why)
{
    size_t overhead = encrypt ? 0 : CRYPTOD_TAG_LEN;
    if (len < overhead || len - overhead > chunk_size) {
        *why = encrypt ? "chunk is larger than the chunk size"
                       : "chunk must be 16..chunk_size+16 bytes";
        return "bad_chunk_length";
    }
    size_t pt_len = len - overhead;
    if (!last && pt_len != chunk_size) {
        *why = "every chunk but the last must be exactly the chunk size";
        return "bad_chunk_length";
    }
    if (last && pt_len == 0 && index != 0) {
        *why = "an empty last chunk is only valid for an empty file";
        return "bad_chunk_length";
    }
    return NULL;
}

void
cryptod_backend_job_id_put (uint8_t out[CRYPTOD_JOB_ID_LEN], uint64_t id)
{
    for (int i = CRYPTOD_JOB_ID_LEN - 1; i >= 0; i--) {
        out[i] = (uint8_t)(id & 0xff);
        id >>= 8;
    }
}

uint64_t
cryptod_backend_job_id_get (const uint8_t in[CRYPTOD_JOB_ID_LEN])
{
    uint64_t id = 0;
    for (int i = 0; i < CRYPTOD_JOB_ID_LEN; i++) {
        id = (id << 8) | in[i];
    }
    return id;
}

/* libzmq calls these when it is done with a buffer we handed it.      */
static void
s_free_plain (void *data, void *hint)
{
    (void)hint;
    free (data);
}

void
cryptod_backend_free_secret (void *data, void *hint)
{
    OPENSSL_cleanse (data, (size_t)(uintptr_t)hint);
    free (data);
}

/* Sends [identity] (by reference, stays ours) when not NULL.          */
static int
s_send_identity (zsock_t *sock, zframe_t *identity)
{
    if (!identity) {
        return 0;
    }
    return zframe_send (&identity, sock, ZFRAME_REUSE | ZFRAME_MORE | ZFRAME_DONTWAIT);
}

static int
s_send_str (zsock_t *sock, const char *s, bool more)
{
    int flags = ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0);
    return zmq_send (zsock_resolve (sock), s, strlen (s), flags) < 0 ? -1 : 0;
}

int
cryptod_backend_send_cmd (zsock_t *sock, zframe_t *identity, const char *cmd)
{
    if (s_send_identity (sock, identity) != 0 ||
        s_send_str (sock, CRYPTOD_PROTOCOL, true) != 0) {
        return -1;
    }
    return s_send_str (sock, cmd, false);
}

int
cryptod_backend_send_ready (zsock_t *sock, const char *name)
{
    if (s_send_str (sock, CRYPTOD_PROTOCOL, true) != 0 ||
        s_send_str (sock, CRYPTOD_CMD_READY, true) != 0) {
        return -1;
    }
    return s_send_str (sock, name, false);
}

/* Packs msg into a buffer of ours and sends it as one frame; the buffer
   is freed (wiped first when secret) by libzmq's callback in every case. */
static int
s_send_packed (zsock_t *sock, const ProtobufCMessage *msg, bool secret, int flags)
{
    size_t len = protobuf_c_message_get_packed_size (msg);
    /* +1: an empty message is still a valid allocation.               */
    uint8_t *buf = malloc (len + 1);
    if (!buf) {
        return -1;
    }
    protobuf_c_message_pack (msg, buf);
    zmq_msg_t m;
    if (zmq_msg_init_data (&m, buf, len,
                           secret ? cryptod_backend_free_secret : s_free_plain,
                           (void *)(uintptr_t)len) != 0) {
        if (secret) {
            OPENSSL_cleanse (buf, len);
        }
        free (buf);
        return -1;
    }
    if (zmq_msg_send (&m, zsock_resolve (sock), flags) < 0) {
        zmq_msg_close (&m); /* calls the free callback */
        return -1;
    }
    return 0;
}

int
cryptod_backend_send_request (zsock_t *sock, zframe_t *identity, uint64_t job_id,
                              const Safeshare__WorkRequest *req, zframe_t *blob)
{
    uint8_t id[CRYPTOD_JOB_ID_LEN];
    cryptod_backend_job_id_put (id, job_id);
    /* ROUTER: once the identity frame is accepted the rest of the
       message is queued as a whole, so a failure can only be here.     */
    if (s_send_identity (sock, identity) != 0 ||
        s_send_str (sock, CRYPTOD_PROTOCOL, true) != 0 ||
        s_send_str (sock, CRYPTOD_CMD_REQUEST, true) != 0 ||
        zmq_send (zsock_resolve (sock), id, sizeof id, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        s_send_packed (sock, (const ProtobufCMessage *)req, true,
                       ZMQ_SNDMORE | ZMQ_DONTWAIT) != 0) {
        return -1;
    }
    /* By reference: libzmq takes a refcounted copy of the zmq_msg_t, no
       byte is copied, and the frame stays ours for a resend.          */
    return zframe_send (&blob, sock, ZFRAME_REUSE | ZFRAME_DONTWAIT);
}

int
cryptod_backend_send_reply (zsock_t *sock, const uint8_t job_id[CRYPTOD_JOB_ID_LEN],
                            const Safeshare__WorkReply *reply, uint8_t *out,
                            size_t out_len, bool secret)
{
    int more = out ? ZMQ_SNDMORE : 0;
    if (s_send_str (sock, CRYPTOD_PROTOCOL, true) != 0 ||
        s_send_str (sock, CRYPTOD_CMD_REPLY, true) != 0 ||
        zmq_send (zsock_resolve (sock), job_id, CRYPTOD_JOB_ID_LEN,
                  ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        s_send_packed (sock, (const ProtobufCMessage *)reply, false,
                       more | ZMQ_DONTWAIT) != 0) {
        if (out) {
            cryptod_backend_free_secret (out, (void *)(uintptr_t)(secret ? out_len : 0));
        }
        return -1;
    }
    if (!out) {
        return 0;
    }
    zmq_msg_t m;
    if (zmq_msg_init_data (&m, out, out_len,
                           secret ? cryptod_backend_free_secret : s_free_plain,
                           (void *)(uintptr_t)out_len) != 0) {
        cryptod_backend_free_secret (out, (void *)(uintptr_t)(secret ? out_len : 0));
        return -1;
    }
    if (zmq_msg_send (&m, zsock_resolve (sock), ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&m);
        return -1;
    }
    return 0;
}
