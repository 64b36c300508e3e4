/*  A raw crypto-protocol client for the tests: sends requests without
    waiting (to build queues) and reads replies with their blob frames.
    Header-only, test code only.                                        */
#ifndef CRYPTO_TEST_CLIENT_H
#define CRYPTO_TEST_CLIENT_H

#include <czmq.h>
#include <string.h>

#include "cm_msg.h"
#include "crypto.pb-c.h"

typedef struct {
    Safeshare__CryptoReply *reply; /* free with s_result_free */
    zmsg_t *blobs;
} s_result_t;

/* Sends [empty][header][blob?] (blob may be NULL: no blob frame) with a
   deadline timeout_ms from now.                                        */
static inline void
s_send_request_within (zsock_t *dealer, Safeshare__CryptoRequest *req, char reqbuf[65],
                       const char *req_id, const void *blob, size_t blob_len,
                       int timeout_ms)
{
    Safeshare__Meta *meta = calloc (1, sizeof *meta);
    cm_meta_init (meta, reqbuf, req_id, timeout_ms);
    req->meta = meta;
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zframe_t *head = cm_frame_pack ((ProtobufCMessage *)req);
    zmsg_append (msg, &head);
    if (blob) {
        zmsg_addmem (msg, blob, blob_len);
    }
    zmsg_send (&msg, dealer);
    req->meta = NULL;
    free (meta);
}

/* The same with a 10 s deadline.                                       */
static inline void
s_send_request (zsock_t *dealer, Safeshare__CryptoRequest *req, char reqbuf[65],
                const char *req_id, const void *blob, size_t blob_len)
{
    s_send_request_within (dealer, req, reqbuf, req_id, blob, blob_len, 10000);
}

/* Receives one reply within timeout_ms; reply NULL on timeout.         */
static inline s_result_t
s_recv_reply (zsock_t *dealer, int timeout_ms)
{
    s_result_t r = {NULL, NULL};
    zpoller_t *p = zpoller_new (dealer, NULL);
    zpoller_set_nonstop (p, true);
    if (zpoller_wait (p, timeout_ms) == dealer) {
        zmsg_t *msg = zmsg_recv (dealer);
        zframe_t *delim = zmsg_pop (msg);
        zframe_t *head = zmsg_pop (msg);
        if (delim && zframe_size (delim) == 0 && head) {
            r.reply = safeshare__crypto_reply__unpack (NULL, zframe_size (head),
                                                       zframe_data (head));
        }
        zframe_destroy (&delim);
        zframe_destroy (&head);
        r.blobs = msg;
    }
    zpoller_destroy (&p);
    return r;
}

static inline void
s_result_free (s_result_t *r)
{
    if (r->reply) {
        safeshare__crypto_reply__free_unpacked (r->reply, NULL);
        r->reply = NULL;
    }
    zmsg_destroy (&r->blobs);
}

/* One request, one reply (same request id checked by the caller).     */
static inline s_result_t
s_call (zsock_t *dealer, Safeshare__CryptoRequest *req, const void *blob, size_t blob_len)
{
    char reqbuf[65];
    s_send_request (dealer, req, reqbuf, NULL, blob, blob_len);
    while (true) {
        s_result_t r = s_recv_reply (dealer, 10000);
        /* Skip anything that answers an earlier request.               */
        if (!r.reply || (r.reply->meta && r.reply->meta->request_id &&
                         strcmp (r.reply->meta->request_id, reqbuf) == 0)) {
            return r;
        }
        s_result_free (&r);
    }
}

static inline Safeshare__CryptoRequest
s_chunk_request (Safeshare__ChunkRequest *chunk, bool encrypt, const char *file_id,
                 const char *kek_id, ProtobufCBinaryData wrapped,
                 ProtobufCBinaryData header, uint64_t index, bool last)
{
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    safeshare__chunk_request__init (chunk);
    chunk->file_id = (char *)file_id;
    chunk->kek_id = (char *)kek_id;
    chunk->wrapped_dek = wrapped;
    chunk->header = header;
    chunk->index = index;
    chunk->last = last;
    if (encrypt) {
        req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT;
        req.encrypt = chunk;
    } else {
        req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT;
        req.decrypt = chunk;
    }
    return req;
}

/* KEY_NEW for file_id (chunk_size 0: the service default).           */
static inline s_result_t
s_key_new_call (zsock_t *dealer, const char *file_id, uint32_t chunk_size)
{
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__KeyNewRequest body = SAFESHARE__KEY_NEW_REQUEST__INIT;
    body.file_id = (char *)file_id;
    body.chunk_size = chunk_size;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW;
    req.key_new = &body;
    return s_call (dealer, &req, NULL, 0);
}

/* pool_status; the reply (free with s_result_free) or NULL reply.      */
static inline s_result_t
s_pool_status_call (zsock_t *dealer)
{
    Safeshare__CryptoRequest req = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__PoolStatusRequest body = SAFESHARE__POOL_STATUS_REQUEST__INIT;
    req.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_POOL_STATUS;
    req.pool_status = &body;
    return s_call (dealer, &req, NULL, 0);
}

#endif
