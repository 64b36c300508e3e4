/*  gw_download -- decrypting download stream (see gw_download.h).       */
#include "gw_download.h"
#include "gw_chunk.h"
#include "gw_text.h"
#include "gw_upload.h"
#include "gw_window.h"

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

/* One download: chunks read from storage and sent to DECRYPT ahead of
   the one being written, up to the window's size. A range decrypts the
   chunks it overlaps only (docs/format.md, "Decrypting a range"), whole
   (a tag covers a whole chunk), and writes the part inside it.         */
typedef struct {
    gw_req_t *req;
    const Safeshare__FileInfo *file;
    char etag[80]; /* the ETag: sha256, quoted */
    uint8_t header[CM_BLOB_HEADER_LEN];
    gw_window_t *window;
    bool partial;  /* 206: a Range was honoured */
    uint64_t from; /* plaintext bytes from..stop - 1 go out */
    uint64_t stop;
    uint64_t end;     /* one past the last chunk to decrypt */
    uint64_t next;    /* next chunk to read and send to DECRYPT */
    uint64_t written; /* chunks written to the client (index of the next) */
    uint64_t bytes;   /* plaintext bytes written */
} s_down_t;

static void
s_send_headers (s_down_t *d)
{
    gw_req_t *req = d->req;
    const Safeshare__FileInfo *file = d->file;
    struct mg_connection *conn = req->conn;
    char length[32];
    char range[96];
    char disposition[GW_DISPOSITION_MAX];
    snprintf (length, sizeof length, "%llu", (unsigned long long)(d->stop - d->from));
    char name[GW_NAME_MAX + 1];
    /* Stored names were cleaned at upload; clean again, they are data. */
    gw_name_clean (file->name, name);
    if (gw_disposition_build (name, disposition, sizeof disposition) != 0) {
        snprintf (disposition, sizeof disposition, "attachment");
    }
    int status = d->partial ? 206 : 200;
    mg_response_header_start (conn, status);
    mg_response_header_add (conn, "Content-Type", s_safe_type (file->content_type), -1);
    mg_response_header_add (conn, "Content-Length", length, -1);
    if (d->partial) {
        snprintf (range, sizeof range, "bytes %llu-%llu/%llu",
                  (unsigned long long)d->from, (unsigned long long)(d->stop - 1),
                  (unsigned long long)file->size);
        mg_response_header_add (conn, "Content-Range", range, -1);
    }
    mg_response_header_add (conn, "Accept-Ranges", "bytes", -1);
    mg_response_header_add (conn, "Content-Disposition", disposition, -1);
    mg_response_header_add (conn, "ETag", d->etag, -1);
    mg_response_header_add (conn, "Content-Security-Policy",
                            "sandbox; default-src 'none'", -1);
    gw_headers_common (req);
    mg_response_header_send (conn);
    req->responded = true;
    req->status = status;
}

/* 304 Not Modified: no body, the ETag again (RFC 9110 15.4.5). */
static int
s_not_modified (gw_req_t *req, const char *etag)
{
    mg_response_header_start (req->conn, 304);
    mg_response_header_add (req->conn, "ETag", etag, -1);
    gw_headers_common (req);
    mg_response_header_send (req->conn);
    req->responded = true;
    req->status = 304;
    return 304;
}

/* The request's one Range header; NULL when absent or sent more than
   once (then it is ignored, as a list of ranges is).                  */
static const char *
s_range_header (gw_req_t *req)
{
    const char *range;
    return gw_header_count (req, "Range", &range) == 1 ? range : NULL;
}

static uint64_t
s_plain_len (const s_down_t *d, uint64_t index)
{
    uint32_t cs = d->file->chunk_size;
    return index + 1 == d->file->chunk_count ? d->file->size - index * cs : cs;
}

/* BLOB_READ of chunk d->next, then DECRYPT of it into the window. */
static int
s_read_send (s_down_t *d, cm_status_t *rc, ProtobufCMessage **reply)
{
    const Safeshare__FileInfo *file = d->file;
    uint64_t index = d->next;
    uint64_t plain_len = s_plain_len (d, index);
    zmsg_t *frames = NULL;
    if (s_blob_read (d->req, file->id, cm_blob_offset (file->chunk_size, index),
                     (uint32_t)(plain_len + CM_BLOB_TAG_LEN), &frames, rc, reply) != 0) {
        return -1;
    }
    gw_chunk_key_t key = {file->id, file->kek_id, file->wrapped_dek, d->header};
    *rc = gw_chunk_send (d->window, false, &key, index, index + 1 == file->chunk_count,
                         &frames, plain_len);
    if (*rc != CM_OK) {
        return -1;
    }
    d->next++;
    return 0;
}

/* Takes the oldest chunk's plaintext (wait: until it comes) and writes
   it to the client, the headers first if they are not out yet. 1 done,
   0 (!wait) not here yet, -1 failed (*rc, or the service's answer in
   *reply), -2 the client went away.                                   */
static int
s_write_next (s_down_t *d, bool wait, cm_status_t *rc, ProtobufCMessage **reply)
{
    gw_req_t *req = d->req;
    ProtobufCMessage *in = NULL;
    zmsg_t *plain = NULL;
    uint64_t plain_len = 0;
    int got = gw_window_next (d->window, wait, &in, &plain, &plain_len, rc);
    if (got <= 0) {
        return got;
    }
    if (gw_rpc_status (in, NULL, NULL) != CM_OK) {
        *reply = in;
        zmsg_destroy (&plain);
        return -1;
    }
    bool ok = gw_chunk_reply_ok (in, false, d->written, plain, plain_len);
    protobuf_c_message_free_unpacked (in, NULL);
    if (!ok) {
        cm_error (req->req_id, "DECRYPT file=%s chunk=%llu: malformed reply", d->file->id,
                  (unsigned long long)d->written);
        zmsg_destroy (&plain);
        *rc = CM_INTERNAL;
        return -1;
    }
    if (!req->responded) {
        s_send_headers (d);
    }
    /* The part of this chunk inside from..stop. */
    uint64_t start = d->written * d->file->chunk_size;
    uint64_t lo = d->from > start ? d->from - start : 0;
    uint64_t hi = d->stop < start + plain_len ? d->stop - start : plain_len;
    uint64_t len = hi > lo ? hi - lo : 0;
    zframe_t *f = zmsg_first (plain);
    int n = len ? mg_write (req->conn, zframe_data (f) + lo, (size_t)len) : 0;
    req->bytes_out += n > 0 ? (uint64_t)n : 0;
    zmsg_destroy (&plain);
    if (n < 0 || (uint64_t)n != len) {
        cm_info (req->req_id, "download file=%s: client went away", d->file->id);
        return -2;
    }
    d->written++;
    d->bytes += len;
    return 1;
}

/* What the request asks of this file before any byte is read: -1 after
   answering (502 for metadata that cannot be streamed, 304 for a
   matching If-None-Match, 416 for an unsatisfiable Range), else 0 with
   *ranged set (1: bytes first..last, 0: the whole file).              */
static int
s_conditions (gw_req_t *req, const Safeshare__FileInfo *file, const char *etag,
              int *ranged, uint64_t *first, uint64_t *last)
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
        gw_reply_error (req, 502, "integrity_error",
                        "stored file metadata is inconsistent");
        return -1;
    }
    /* Conditions first (RFC 9110 13.2.2): a matching If-None-Match wins
       over Range; nothing is read or decrypted for either answer.      */
    if (gw_etag_match_any (mg_get_header (req->conn, "If-None-Match"), etag)) {
        cm_info (req->req_id, "download file=%s: not modified", file->id);
        s_not_modified (req, etag);
        return -1;
    }
    const char *if_range = mg_get_header (req->conn, "If-Range");
    /* If-Range naming another version (or a date): the whole file. */
    *ranged = if_range && strcmp (if_range, etag) != 0
                  ? 0
                  : gw_range_parse (s_range_header (req), file->size, first, last);
    if (*ranged < 0) {
        char unsatisfied[48];
        snprintf (unsatisfied, sizeof unsatisfied, "bytes */%llu",
                  (unsigned long long)file->size);
        req->content_range = unsatisfied;
        gw_reply_error (req, 416, "range_not_satisfiable",
                        "the range is outside the file's %llu bytes",
                        (unsigned long long)file->size);
        req->content_range = NULL;
        return -1;
    }
    return 0;
}

int
gw_download_conditional (gw_req_t *req, const Safeshare__FileInfo *file)
{
    char etag[80];
    int ranged = 0;
    uint64_t first = 0, last = 0;
    snprintf (etag, sizeof etag, "\"%s\"", file->sha256 ? file->sha256 : "");
    return s_conditions (req, file, etag, &ranged, &first, &last) != 0 ? req->status : 0;
}

int
gw_download_send (gw_req_t *req, const Safeshare__FileInfo *file)
{
    uint32_t cs = file->chunk_size;
    s_down_t d = {.req = req, .file = file, .from = 0, .stop = file->size};
    snprintf (d.etag, sizeof d.etag, "\"%s\"", file->sha256 ? file->sha256 : "");
    uint64_t first = 0, last = 0;
    int ranged = 0;
    if (s_conditions (req, file, d.etag, &ranged, &first, &last) != 0) {
        return req->status;
    }
    if (ranged > 0) {
        d.partial = true;
        d.from = first;
        d.stop = last + 1;
    }
    d.next = d.from / cs;
    d.written = d.next;
    d.end = d.stop == 0 ? 1 : (d.stop - 1) / cs + 1;
    cm_status_t rc = CM_OK;
    ProtobufCMessage *reply = NULL;
    zmsg_t *frames = NULL;
    if (s_blob_read (req, file->id, 0, CM_BLOB_HEADER_LEN, &frames, &rc, &reply) != 0) {
        return s_fail (req, rc, reply);
    }
    memcpy (d.header, zframe_data (zmsg_first (frames)), CM_BLOB_HEADER_LEN);
    zmsg_destroy (&frames);
    d.window =
        gw_window_new (req->rpc, GW_SVC_CRYPTO, req->req_id, req->settings->crypto_window,
                       &safeshare__crypto_reply__descriptor);
    if (d.window == NULL) {
        cm_error (req->req_id, "gw_window_new(%u) failed", req->settings->crypto_window);
        return gw_reply_error (req, 503, "service_unavailable", "out of memory");
    }
    /* Chunks are read and sent to crypto up to the window ahead of the
       one being written; a failure is acted on in chunk order, so the
       client gets every chunk before it, as when one was out at a time. */
    int step = 0;
    bool read_failed = false;
    cm_status_t read_rc = CM_OK;
    ProtobufCMessage *read_reply = NULL;
    while (d.written < d.end && step >= 0) {
        while (!read_failed && d.next < d.end && !gw_window_full (d.window)) {
            if (s_read_send (&d, &read_rc, &read_reply) != 0) {
                read_failed = true;
                break;
            }
            while ((step = s_write_next (&d, false, &rc, &reply)) > 0) {
            }
            if (step < 0) {
                break;
            }
        }
        if (step < 0) {
            break;
        }
        if (gw_window_pending (d.window) == 0) {
            /* Every chunk before the one that could not be read is out. */
            rc = read_rc;
            reply = read_reply;
            read_reply = NULL;
            step = -1;
            break;
        }
        step = s_write_next (&d, true, &rc, &reply);
    }
    if (read_reply) {
        protobuf_c_message_free_unpacked (read_reply, NULL);
    }
    unsigned peak = gw_window_peak (d.window);
    gw_window_destroy (&d.window); /* drops the socket if calls are out */
    if (step == -2) {
        return req->status; /* the client went away */
    }
    if (step == -1) {
        if (!req->responded) {
            return s_fail (req, rc, reply);
        }
        /* Headers are out: cut the connection short of Content-Length. */
        cm_error (req->req_id, "download file=%s aborted at chunk %llu: %s", file->id,
                  (unsigned long long)d.written,
                  cm_status_name (rc == CM_OK && reply ? gw_rpc_status (reply, NULL, NULL)
                                                       : rc));
        if (reply) {
            protobuf_c_message_free_unpacked (reply, NULL);
        }
        gw_conn_shutdown (req, SHUT_RDWR);
        return req->status;
    }
    cm_info (req->req_id,
             "download file=%s status=%d bytes=%llu chunks at crypto at once: up to %u",
             file->id, req->status, (unsigned long long)d.bytes, peak);
    return req->status;
}
