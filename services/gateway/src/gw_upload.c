/*  gw_upload -- the streaming upload pipeline (see gw_upload.h).        */
#include "gw_upload.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include "crypto.pb-c.h"
#include "cm_log.h"
#include "cm_util.h"
#include "gw_chunk.h"
#include "gw_window.h"

/* Counter is a u32 in the nonce (docs/format.md). */
#define S_MAX_CHUNKS  0xffffffffULL
#define S_MAX_WRAPPED 256

struct gw_upload_t {
    gw_rpc_t *rpc;
    char req_id[65];
    uint32_t chunk_size;
    char file_id[33];
    bool begun;
    bool committed;
    bool failed;
    char kek_id[65];
    uint8_t wrapped[S_MAX_WRAPPED];
    size_t wrapped_len;
    uint8_t header[CM_BLOB_HEADER_LEN];
    zframe_t *chunk; /* plaintext being filled: chunk_size bytes, moved when sealed */
    size_t fill;
    gw_window_t *window; /* the chunks at crypto */
    uint64_t index;      /* next chunk index to seal */
    uint64_t stored;     /* chunks appended to the blob (in index order) */
    uint64_t offset;     /* blob bytes stored */
    uint64_t size;       /* plaintext bytes accepted */
    EVP_MD_CTX *sha;
    Safeshare__StorageReply *commit;
    cm_status_t err_status;
    char err_code[64];
    char err_message[256];
};

gw_upload_t *
gw_upload_new (gw_rpc_t *rpc, const char *req_id, uint32_t chunk_size, unsigned window)
{
    gw_upload_t *self = calloc (1, sizeof *self);
    if (self == NULL) {
        return NULL;
    }
    self->rpc = rpc;
    snprintf (self->req_id, sizeof self->req_id, "%s", req_id ? req_id : "");
    self->chunk_size = chunk_size;
    self->window = gw_window_new (rpc, GW_SVC_CRYPTO, self->req_id, window,
                                  &safeshare__crypto_reply__descriptor);
    if (self->window == NULL) {
        cm_error (self->req_id, "gw_window_new(%u) failed", window);
        free (self);
        return NULL;
    }
    self->sha = EVP_MD_CTX_new ();
    if (self->sha == NULL || EVP_DigestInit_ex (self->sha, EVP_sha256 (), NULL) != 1) {
        cm_log_openssl (self->req_id, "EVP_DigestInit_ex() failed");
        EVP_MD_CTX_free (self->sha);
        gw_window_destroy (&self->window);
        free (self);
        return NULL;
    }
    return self;
}

void
gw_upload_destroy (gw_upload_t **self_p)
{
    if (self_p && *self_p) {
        gw_upload_t *self = *self_p;
        gw_upload_abort (self);
        gw_window_destroy (&self->window);
        zframe_destroy (&self->chunk);
        EVP_MD_CTX_free (self->sha);
        if (self->commit) {
            protobuf_c_message_free_unpacked (&self->commit->base, NULL);
        }
        /* The wrapped DEK is useless without the KEK; wiped anyway. */
        OPENSSL_cleanse (self->wrapped, sizeof self->wrapped);
        free (self);
        *self_p = NULL;
    }
}

static int
s_fail (gw_upload_t *self, cm_status_t status, const char *code, const char *message)
{
    if (!self->failed) {
        self->failed = true;
        self->err_status = status;
        snprintf (self->err_code, sizeof self->err_code, "%s", code);
        snprintf (self->err_message, sizeof self->err_message, "%s", message);
    }
    return -1;
}

static int
s_fail_transport (gw_upload_t *self, cm_status_t rc)
{
    return s_fail (self, rc, cm_status_code (rc),
                   rc == CM_UNAVAILABLE ? "a backend service did not answer in time"
                                        : "a backend service answered badly");
}

/* The service's answer in *reply: 0 if OK, else -1 with the error kept
   (reply and blobs freed).                                             */
static int
s_check (gw_upload_t *self, gw_svc_t svc, ProtobufCMessage **reply, zmsg_t **blobs_out)
{
    const char *code = NULL;
    const char *message = NULL;
    cm_status_t status = gw_rpc_status (*reply, &code, &message);
    if (status != CM_OK) {
        cm_warn (self->req_id, "upload step on %s failed: %s %s", gw_svc_name (svc),
                 cm_status_name (status), code ? code : "");
        if (svc == GW_SVC_STORAGE && self->begun && status == CM_NOT_FOUND) {
            /* Our own pending file is gone: storage restarted mid-upload
               (its start-up sweep drops every pending upload). The
               client did nothing wrong and may simply send it again.    */
            status = CM_UNAVAILABLE;
            code = "upload_lost";
            message = "storage restarted during the upload; send the file again";
        }
        s_fail (self, status, code ? code : cm_status_code (status),
                message ? message : cm_status_name (status));
        protobuf_c_message_free_unpacked (*reply, NULL);
        *reply = NULL;
        if (blobs_out) {
            zmsg_destroy (blobs_out);
        }
        return -1;
    }
    return 0;
}

/* One call; 0 when the transport and the service said OK, else -1 with
   the error kept (reply freed).                                        */
static int
s_call (gw_upload_t *self, gw_svc_t svc, ProtobufCMessage *request, zmsg_t **blobs,
        const ProtobufCMessageDescriptor *desc, ProtobufCMessage **reply,
        zmsg_t **blobs_out)
{
    cm_status_t rc = gw_rpc_call (self->rpc, svc, self->req_id, request, blobs, desc, 0,
                                  reply, blobs_out);
    if (rc != CM_OK) {
        return s_fail_transport (self, rc);
    }
    return s_check (self, svc, reply, blobs_out);
}

static int
s_bad_reply (gw_upload_t *self, const char *what)
{
    cm_error (self->req_id, "upload: malformed %s reply", what);
    return s_fail (self, CM_INTERNAL, "bad_gateway", "a backend service answered badly");
}

/* Appends *frame (consumed) at self->offset. */
static int
s_append (gw_upload_t *self, zmsg_t **frames, size_t len)
{
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__BlobAppendRequest body = SAFESHARE__BLOB_APPEND_REQUEST__INIT;
    r.meta = &meta;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_BLOB_APPEND;
    r.blob_append = &body;
    body.file_id = self->file_id;
    body.offset = self->offset;
    ProtobufCMessage *reply = NULL;
    if (s_call (self, GW_SVC_STORAGE, &r.base, frames,
                &safeshare__storage_reply__descriptor, &reply, NULL) != 0) {
        return -1;
    }
    Safeshare__StorageReply *sr = (Safeshare__StorageReply *)reply;
    bool ok = sr->body_case == SAFESHARE__STORAGE_REPLY__BODY_BLOB_APPEND &&
              sr->blob_append && sr->blob_append->blob_size == self->offset + len;
    protobuf_c_message_free_unpacked (reply, NULL);
    if (!ok) {
        return s_bad_reply (self, "BLOB_APPEND");
    }
    self->offset += len;
    return 0;
}

int
gw_upload_begin (gw_upload_t *self, const char *name, const char *content_type,
                 const char *owner_id, const char *visibility)
{
    if (self->begun || self->failed) {
        return s_fail (self, CM_INTERNAL, "internal_error", "upload already begun");
    }
    /* 1. storage FILE_BEGIN -> file id */
    Safeshare__StorageRequest sreq = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__FileBeginRequest begin = SAFESHARE__FILE_BEGIN_REQUEST__INIT;
    sreq.meta = &meta;
    sreq.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_BEGIN;
    sreq.file_begin = &begin;
    begin.name = (char *)name;
    begin.content_type = (char *)content_type;
    begin.owner_id = (char *)owner_id;
    begin.visibility = (char *)(visibility ? visibility : "");
    begin.chunk_size = self->chunk_size;
    ProtobufCMessage *reply = NULL;
    if (s_call (self, GW_SVC_STORAGE, &sreq.base, NULL,
                &safeshare__storage_reply__descriptor, &reply, NULL) != 0) {
        return -1;
    }
    Safeshare__StorageReply *sr = (Safeshare__StorageReply *)reply;
    bool ok = sr->body_case == SAFESHARE__STORAGE_REPLY__BODY_FILE_BEGIN &&
              sr->file_begin && sr->file_begin->file_id &&
              cm_is_hex_id (sr->file_begin->file_id, 32);
    if (ok) {
        memcpy (self->file_id, sr->file_begin->file_id, 33);
        self->begun = true;
    }
    protobuf_c_message_free_unpacked (reply, NULL);
    if (!ok) {
        return s_bad_reply (self, "FILE_BEGIN");
    }

    /* 2. crypto KEY_NEW -> wrapped DEK + header */
    Safeshare__CryptoRequest creq = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__Meta cmeta = SAFESHARE__META__INIT;
    Safeshare__KeyNewRequest key_new = SAFESHARE__KEY_NEW_REQUEST__INIT;
    creq.meta = &cmeta;
    creq.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_KEY_NEW;
    creq.key_new = &key_new;
    key_new.file_id = self->file_id;
    key_new.chunk_size = self->chunk_size;
    if (s_call (self, GW_SVC_CRYPTO, &creq.base, NULL,
                &safeshare__crypto_reply__descriptor, &reply, NULL) != 0) {
        return -1;
    }
    Safeshare__CryptoReply *cr = (Safeshare__CryptoReply *)reply;
    Safeshare__KeyNewReply *kn =
        cr->body_case == SAFESHARE__CRYPTO_REPLY__BODY_KEY_NEW ? cr->key_new : NULL;
    ok = kn && kn->kek_id && *kn->kek_id && strlen (kn->kek_id) < sizeof self->kek_id &&
         kn->wrapped_dek.len > 0 && kn->wrapped_dek.len <= S_MAX_WRAPPED &&
         kn->header.len == CM_BLOB_HEADER_LEN;
    if (ok) {
        strcpy (self->kek_id, kn->kek_id);
        memcpy (self->wrapped, kn->wrapped_dek.data, kn->wrapped_dek.len);
        self->wrapped_len = kn->wrapped_dek.len;
        memcpy (self->header, kn->header.data, CM_BLOB_HEADER_LEN);
    }
    protobuf_c_message_free_unpacked (reply, NULL);
    if (!ok) {
        return s_bad_reply (self, "KEY_NEW");
    }

    /* 3. the header opens the blob */
    zmsg_t *frames = zmsg_new ();
    zmsg_addmem (frames, self->header, CM_BLOB_HEADER_LEN);
    return s_append (self, &frames, CM_BLOB_HEADER_LEN);
}

/* Takes the oldest chunk's ciphertext from crypto (wait: until it comes)
   and appends it: 1 done, 0 (!wait) not here yet or none out, -1.    */
static int
s_store_next (gw_upload_t *self, bool wait)
{
    ProtobufCMessage *reply = NULL;
    zmsg_t *cipher = NULL;
    uint64_t len = 0;
    cm_status_t rc = CM_OK;
    int got = gw_window_next (self->window, wait, &reply, &cipher, &len, &rc);
    if (got < 0) {
        return s_fail_transport (self, rc);
    }
    if (got == 0) {
        return 0;
    }
    if (s_check (self, GW_SVC_CRYPTO, &reply, &cipher) != 0) {
        return -1;
    }
    bool ok =
        gw_chunk_reply_ok (reply, true, self->stored, cipher, len + CM_BLOB_TAG_LEN);
    protobuf_c_message_free_unpacked (reply, NULL);
    if (!ok) {
        zmsg_destroy (&cipher);
        return s_bad_reply (self, "ENCRYPT");
    }
    /* The ciphertext frame moves on to storage as received. */
    if (s_append (self, &cipher, len + CM_BLOB_TAG_LEN) != 0) {
        return -1;
    }
    self->stored++;
    return 1;
}

/* Sends the pending chunk (moved out) to ENCRYPT -- once: it is never
   sent again -- after making room in the window, then appends whatever
   ciphertext is already back.                                          */
static int
s_seal (gw_upload_t *self, bool last)
{
    if (self->index > S_MAX_CHUNKS) {
        return s_fail (self, CM_TOO_LARGE, "too_large", "file has too many chunks");
    }
    while (gw_window_full (self->window)) {
        if (s_store_next (self, true) < 0) {
            return -1;
        }
    }
    size_t len = self->fill;
    zframe_t *plain;
    if (self->chunk && len == self->chunk_size) {
        plain = self->chunk; /* a full chunk goes out as is */
        self->chunk = NULL;
    } else {
        /* The short last chunk: one copy into a frame of its size. */
        plain = zframe_new (self->chunk ? zframe_data (self->chunk) : NULL, len);
        zframe_destroy (&self->chunk);
    }
    self->fill = 0;
    zmsg_t *frames = zmsg_new ();
    zmsg_append (frames, &plain);

    gw_chunk_key_t key = {
        self->file_id, self->kek_id, {self->wrapped_len, self->wrapped}, self->header};
    cm_status_t rc =
        gw_chunk_send (self->window, true, &key, self->index, last, &frames, len);
    if (rc != CM_OK) {
        return s_fail_transport (self, rc);
    }
    self->index++;
    int got;
    while ((got = s_store_next (self, false)) > 0) {
    }
    return got;
}

int
gw_upload_write (gw_upload_t *self, const void *data, size_t len)
{
    if (!self->begun || self->failed || self->committed) {
        return s_fail (self, CM_INTERNAL, "internal_error", "upload not writable");
    }
    const uint8_t *p = data;
    while (len > 0) {
        if (self->chunk && self->fill == self->chunk_size) {
            /* More data after a full chunk: it was not the last one. */
            if (s_seal (self, false) != 0) {
                return -1;
            }
        }
        if (self->chunk == NULL) {
            self->chunk = zframe_new (NULL, self->chunk_size);
            self->fill = 0;
        }
        size_t n = self->chunk_size - self->fill;
        if (n > len) {
            n = len;
        }
        memcpy (zframe_data (self->chunk) + self->fill, p, n);
        EVP_DigestUpdate (self->sha, p, n);
        self->fill += n;
        self->size += n;
        p += n;
        len -= n;
    }
    return 0;
}

int
gw_upload_finish (gw_upload_t *self)
{
    if (!self->begun || self->failed || self->committed) {
        return s_fail (self, CM_INTERNAL, "internal_error", "upload not finishable");
    }
    /* The pending chunk (empty only for an empty file) is the last one. */
    if (s_seal (self, true) != 0) {
        return -1;
    }
    while (gw_window_pending (self->window) > 0) {
        if (s_store_next (self, true) < 0) {
            return -1;
        }
    }
    if (self->stored != self->index) {
        cm_error (self->req_id, "upload: %llu of %llu chunks stored",
                  (unsigned long long)self->stored, (unsigned long long)self->index);
        return s_fail (self, CM_INTERNAL, "internal_error", "chunks missing");
    }
    cm_debug (self->req_id, "upload file=%s chunks=%llu at crypto at once: up to %u",
              self->file_id, (unsigned long long)self->index,
              gw_window_peak (self->window));
    uint8_t digest[32];
    unsigned dlen = 0;
    char sha_hex[65];
    if (EVP_DigestFinal_ex (self->sha, digest, &dlen) != 1 || dlen != sizeof digest) {
        cm_log_openssl (self->req_id, "EVP_DigestFinal_ex() failed");
        return s_fail (self, CM_INTERNAL, "internal_error", "digest failed");
    }
    cm_hex_encode (sha_hex, digest, sizeof digest);

    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__FileCommitRequest commit = SAFESHARE__FILE_COMMIT_REQUEST__INIT;
    r.meta = &meta;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_COMMIT;
    r.file_commit = &commit;
    commit.file_id = self->file_id;
    commit.size = self->size;
    commit.sha256 = sha_hex;
    commit.chunk_count = self->index;
    commit.kek_id = self->kek_id;
    commit.wrapped_dek.data = self->wrapped;
    commit.wrapped_dek.len = self->wrapped_len;
    commit.blob_size = self->offset;
    ProtobufCMessage *reply = NULL;
    if (s_call (self, GW_SVC_STORAGE, &r.base, NULL,
                &safeshare__storage_reply__descriptor, &reply, NULL) != 0) {
        return -1;
    }
    Safeshare__StorageReply *sr = (Safeshare__StorageReply *)reply;
    if (sr->body_case != SAFESHARE__STORAGE_REPLY__BODY_FILE_COMMIT || !sr->file_commit ||
        !sr->file_commit->file) {
        protobuf_c_message_free_unpacked (reply, NULL);
        return s_bad_reply (self, "FILE_COMMIT");
    }
    self->commit = sr;
    self->committed = true;
    return 0;
}

const Safeshare__FileInfo *
gw_upload_file (gw_upload_t *self)
{
    return self->commit ? self->commit->file_commit->file : NULL;
}

/* A clean-up call to storage (r's body set by the caller): the status
   of the transport or of the answer; *committed (if given) set when
   storage answered file_committed.                                    */
static cm_status_t
s_storage_status (gw_upload_t *self, Safeshare__StorageRequest *r, bool *committed)
{
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    r->meta = &meta;
    ProtobufCMessage *reply = NULL;
    cm_status_t rc = gw_rpc_call (self->rpc, GW_SVC_STORAGE, self->req_id, &r->base, NULL,
                                  &safeshare__storage_reply__descriptor, 0, &reply, NULL);
    r->meta = NULL;
    const char *code = NULL;
    cm_status_t status = rc == CM_OK ? gw_rpc_status (reply, &code, NULL) : rc;
    if (committed) {
        *committed =
            status == CM_CONFLICT && code && strcmp (code, "file_committed") == 0;
    }
    if (reply) {
        protobuf_c_message_free_unpacked (reply, NULL);
    }
    return status;
}

/* FILE_DELETE of a file committed behind our back (see gw_upload_abort). */
static void
s_delete_committed (gw_upload_t *self)
{
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__FileDeleteRequest body = SAFESHARE__FILE_DELETE_REQUEST__INIT;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_DELETE;
    r.file_delete = &body;
    body.file_id = self->file_id;
    cm_status_t status = s_storage_status (self, &r, NULL);
    if (status == CM_OK) {
        cm_warn (self->req_id,
                 "upload committed after its reply was lost: deleted file=%s",
                 self->file_id);
    } else {
        /* Nothing else can remove it now: say so loudly, once.         */
        cm_error (self->req_id,
                  "FILE_DELETE file=%s of a failed upload failed: %s (stays visible)",
                  self->file_id, cm_status_name (status));
    }
}

void
gw_upload_abort (gw_upload_t *self)
{
    if (!self->begun || self->committed) {
        return;
    }
    self->begun = false;
    /* Chunks still at crypto are dropped with the socket: their replies
       must never reach a later call on this thread.                    */
    gw_window_destroy (&self->window);
    Safeshare__StorageRequest r = SAFESHARE__STORAGE_REQUEST__INIT;
    Safeshare__FileAbortRequest body = SAFESHARE__FILE_ABORT_REQUEST__INIT;
    r.body_case = SAFESHARE__STORAGE_REQUEST__BODY_FILE_ABORT;
    r.file_abort = &body;
    body.file_id = self->file_id;
    bool committed = false;
    cm_status_t status = s_storage_status (self, &r, &committed);
    if (committed) {
        /* Our FILE_COMMIT did land, but its reply was lost and the client
           was told the upload failed: nothing may stay visible.        */
        s_delete_committed (self);
    } else if (status != CM_OK) {
        /* storage's start-up sweep collects what we could not abort. */
        cm_warn (self->req_id, "FILE_ABORT file=%s failed: %s", self->file_id,
                 cm_status_name (status));
    } else {
        cm_info (self->req_id, "upload aborted file=%s", self->file_id);
    }
}

uint64_t
gw_upload_size (gw_upload_t *self)
{
    return self->size;
}

cm_status_t
gw_upload_error (gw_upload_t *self, const char **code, const char **message)
{
    if (code) {
        *code = self->failed ? self->err_code : NULL;
    }
    if (message) {
        *message = self->failed ? self->err_message : NULL;
    }
    return self->failed ? self->err_status : CM_OK;
}
