/*  gw_download -- decrypting download stream (see gw_download.h).       */
#include "gw_download.h"
#include "gw_text.h"
#include "gw_upload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "crypto.pb-c.h"
#include "cm_log.h"
#include "cm_util.h"

/* A stored content type goes into a header: printable ASCII only, and
   never an active type (stored before that rule, or by another writer). */
static const char *
s_safe_type (const char *type)
{
    if (type == NULL || *type == '\0' || strlen (type) > 127 ||
        gw_content_type_active (type)) {
        return "application/octet-stream";
    }
    for (const char *p = type; *p; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            return "application/octet-stream";
        }
    }
    return type;
}

/* BLOB_READ; 0 with *frames holding exactly one frame of len bytes. */
static int
s_blob_read (gw_req_t *req, const char *file_id, uint64_t offset, uint32_t len,
             zmsg_t **frames, cm_status_t *rc_out, ProtobufCMessage **reply_out)
{
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__BlobReadRequest body = SAFESHARE__BLOB_READ_REQUEST__INIT;
    r.meta = &meta;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_BLOB_READ;
    r.blob_read = &body;
    body.file_id = (char *)file_id;
    body.offset = offset;
    body.length = len;
    ProtobufCMessage *reply = NULL;
    cm_status_t rc =
        gw_rpc_call (req->rpc, GW_SVC_STORAGE, req->req_id, &r.base, NULL,
                     &safeshare__storage_reply__descriptor, 0, &reply, frames);
    *rc_out = rc;
    *reply_out = NULL;
    if (rc != CM_OK || gw_rpc_status (reply, NULL, NULL) != CM_OK) {
        *reply_out = reply; /* the caller answers from it */
        zmsg_destroy (frames);
        return -1;
    }
    protobuf_c_message_free_unpacked (reply, NULL);
    if (*frames == NULL || zmsg_size (*frames) != 1 ||
        zframe_size (zmsg_first (*frames)) != len) {
        cm_error (req->req_id, "BLOB_READ file=%s returned the wrong bytes", file_id);
        zmsg_destroy (frames);
        *rc_out = CM_INTERNAL;
        return -1;
    }
    return 0;
}

/* DECRYPT one chunk: *frames (consumed) in, plaintext frame out. */
static int
s_decrypt (gw_req_t *req, const Safeshare__FileInfo *file, const uint8_t *header,
           uint64_t index, bool last, zmsg_t **frames, zmsg_t **plain,
           cm_status_t *rc_out, ProtobufCMessage **reply_out)
{
    Safeshare__CryptoRequest r = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__ChunkRequest chunk = SAFESHARE__CHUNK_REQUEST__INIT;
    r.meta = &meta;
    r.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT;
    r.decrypt = &chunk;
    chunk.file_id = file->id;
    chunk.kek_id = file->kek_id;
    chunk.wrapped_dek = file->wrapped_dek;
    chunk.header.data = (uint8_t *)header;
    chunk.header.len = CM_BLOB_HEADER_LEN;
    chunk.index = index;
    chunk.last = last;
    ProtobufCMessage *reply = NULL;
    cm_status_t rc = gw_rpc_call (req->rpc, GW_SVC_CRYPTO, req->req_id, &r.base, frames,
                                  &safeshare__crypto_reply__descriptor, 0, &reply, plain);
    *rc_out = rc;
    *reply_out = NULL;
    if (rc != CM_OK || gw_rpc_status (reply, NULL, NULL) != CM_OK) {
        *reply_out = reply;
        zmsg_destroy (plain);
        return -1;
    }
    Safeshare__CryptoReply *cr = (Safeshare__CryptoReply *)reply;
    bool ok = cr->body_case == SAFESHARE__CRYPTO_REPLY__BODY_DECRYPT && cr->decrypt &&
              cr->decrypt->index == index && *plain && zmsg_size (*plain) == 1;
    protobuf_c_message_free_unpacked (reply, NULL);
    if (!ok) {
        cm_error (req->req_id, "DECRYPT file=%s chunk=%llu: malformed reply", file->id,
                  (unsigned long long)index);
        zmsg_destroy (plain);
        *rc_out = CM_INTERNAL;
        return -1;
    }
    return 0;
}

/* Error before any header went out. */
static int
s_fail (gw_req_t *req, cm_status_t rc, ProtobufCMessage *reply)
{
    int status;
    if (rc == CM_OK && reply && gw_rpc_status (reply, NULL, NULL) == CM_UNPROCESSABLE &&
        reply->descriptor == &safeshare__crypto_reply__descriptor) {
        status = gw_reply_error (req, 502, "integrity_error",
                                 "stored file failed its integrity check");
    } else if (rc == CM_INTERNAL) {
        status =
            gw_reply_error (req, 502, "bad_gateway", "a backend service answered badly");
    } else {
        status = gw_reply_service (req, rc, reply);
    }
    if (reply) {
        protobuf_c_message_free_unpacked (reply, NULL);
    }
    return status;
}

static void
s_send_headers (gw_req_t *req, const Safeshare__FileInfo *file)
{
    struct mg_connection *conn = req->conn;
    char length[32];
    char etag[80];
    char disposition[GW_DISPOSITION_MAX];
    snprintf (length, sizeof length, "%llu", (unsigned long long)file->size);
    snprintf (etag, sizeof etag, "\"%s\"", file->sha256);
    char name[GW_NAME_MAX + 1];
    /* Stored names were cleaned at upload; clean again, they are data. */
    gw_name_clean (file->name, name);
    if (gw_disposition_build (name, disposition, sizeof disposition) != 0) {
        snprintf (disposition, sizeof disposition, "attachment");
    }
    mg_response_header_start (conn, 200);
    mg_response_header_add (conn, "Content-Type", s_safe_type (file->content_type), -1);
    mg_response_header_add (conn, "Content-Length", length, -1);
    mg_response_header_add (conn, "Content-Disposition", disposition, -1);
    mg_response_header_add (conn, "ETag", etag, -1);
    mg_response_header_add (conn, "Content-Security-Policy",
                            "sandbox; default-src 'none'", -1);
    gw_headers_common (req);
    mg_response_header_send (conn);
    req->responded = true;
    req->status = 200;
}

int
gw_download_send (gw_req_t *req, const Safeshare__FileInfo *file)
{
    uint32_t cs = file->chunk_size;
    bool sane = file->id && cm_is_hex_id (file->id, 32) && file->sha256 &&
                cm_is_hex_id (file->sha256, 64) && file->kek_id && *file->kek_id &&
                file->wrapped_dek.len > 0 && cs >= 4096 && cs <= 16 * 1024 * 1024 &&
                file->chunk_count == cm_blob_chunk_count (file->size, cs) &&
                file->blob_size ==
                    CM_BLOB_HEADER_LEN + file->size + CM_BLOB_TAG_LEN * file->chunk_count;
    if (!sane) {
        cm_error (req->req_id, "file=%s: stored metadata is inconsistent",
                  file->id ? file->id : "");
        return gw_reply_error (req, 502, "integrity_error",
                               "stored file metadata is inconsistent");
    }
    cm_status_t rc = CM_OK;
    ProtobufCMessage *reply = NULL;
    zmsg_t *frames = NULL;
    if (s_blob_read (req, file->id, 0, CM_BLOB_HEADER_LEN, &frames, &rc, &reply) != 0) {
        return s_fail (req, rc, reply);
    }
    uint8_t header[CM_BLOB_HEADER_LEN];
    memcpy (header, zframe_data (zmsg_first (frames)), CM_BLOB_HEADER_LEN);
    zmsg_destroy (&frames);

    uint64_t sent = 0;
    for (uint64_t i = 0; i < file->chunk_count; i++) {
        bool last = i + 1 == file->chunk_count;
        uint64_t plain_len = last ? file->size - i * cs : cs;
        zmsg_t *plain = NULL;
        int failed =
            s_blob_read (req, file->id, cm_blob_offset (cs, i),
                         (uint32_t)(plain_len + CM_BLOB_TAG_LEN), &frames, &rc, &reply) ||
            s_decrypt (req, file, header, i, last, &frames, &plain, &rc, &reply);
        if (!failed && zframe_size (zmsg_first (plain)) != plain_len) {
            cm_error (req->req_id, "DECRYPT file=%s chunk=%llu: wrong length", file->id,
                      (unsigned long long)i);
            rc = CM_INTERNAL;
            failed = 1;
        }
        if (failed) {
            zmsg_destroy (&plain);
            if (!req->responded) {
                return s_fail (req, rc, reply);
            }
            /* Headers are out: cut the connection short of Content-Length. */
            cm_error (req->req_id, "download file=%s aborted at chunk %llu: %s", file->id,
                      (unsigned long long)i,
                      cm_status_name (
                          rc == CM_OK && reply ? gw_rpc_status (reply, NULL, NULL) : rc));
            if (reply) {
                protobuf_c_message_free_unpacked (reply, NULL);
            }
            gw_conn_shutdown (req, SHUT_RDWR);
            return req->status;
        }
        if (!req->responded) {
            s_send_headers (req, file);
        }
        zframe_t *f = zmsg_first (plain);
        int n = plain_len ? mg_write (req->conn, zframe_data (f), zframe_size (f)) : 0;
        zmsg_destroy (&plain);
        if (n < 0 || (uint64_t)n != plain_len) {
            cm_info (req->req_id, "download file=%s: client went away", file->id);
            return req->status;
        }
        sent += plain_len;
    }
    cm_info (req->req_id, "download file=%s bytes=%llu", file->id,
             (unsigned long long)sent);
    return req->status;
}
