/*  stord_service -- the storage protocol's handlers (proto/storage.md).  */
#include "stord_service.h"
#include "stord_sweep.h"
#include "cm_layout.h"
#include "cm_log.h"
#include "cm_util.h"
#include "storage.pb-c.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct stord_service_t {
    stord_meta_t *meta;
    stord_backend_t *backend;
    uint64_t link_max_ttl_s;
    uint64_t started_mono_ms;
    char instance[STORD_INSTANCE_MAX + 1]; /* recorded in pending rows */
};

stord_service_t *
stord_service_new (stord_meta_t **meta_p, stord_backend_t **backend_p,
                   uint64_t link_max_ttl_s)
{
    stord_service_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->meta = *meta_p;
    *meta_p = NULL;
    self->backend = *backend_p;
    *backend_p = NULL;
    self->link_max_ttl_s = link_max_ttl_s;
    self->started_mono_ms = cm_mono_ms ();
    strcpy (self->instance, "storage");
    return self;
}

void
stord_service_destroy (stord_service_t **self_p)
{
    if (self_p && *self_p) {
        stord_meta_destroy (&(*self_p)->meta);
        stord_backend_destroy (&(*self_p)->backend);
        free (*self_p);
        *self_p = NULL;
    }
}

int
stord_service_sweep (stord_service_t *self, uint64_t now_s, uint64_t max_age_s,
                     bool restarted)
{
    return stord_sweep (self->meta, self->backend, now_s, max_age_s,
                        restarted ? self->instance : NULL, NULL);
}

int
stord_service_set_instance (stord_service_t *self, const char *instance)
{
    size_t n = instance ? strlen (instance) : 0;
    if (n == 0 || n > STORD_INSTANCE_MAX || !cm_is_request_id (instance)) {
        return -1;
    }
    memcpy (self->instance, instance, n + 1);
    return 0;
}

/* ---- validation ------------------------------------------------------ */

static bool
s_is_id (const char *s)
{
    return s && cm_is_hex_id (s, STORD_ID_HEX);
}

/* 1..255 bytes of well-formed UTF-8 (no overlongs, surrogates or values
   past U+10FFFF) without C0/C1 controls or DEL.                        */
static bool
s_valid_name (const char *s)
{
    size_t len = s ? strlen (s) : 0;
    if (len < 1 || len > STORD_NAME_MAX) {
        return false;
    }
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        int extra;
        if (p[0] < 0x80) {
            cp = p[0], extra = 0;
        } else if ((p[0] & 0xe0) == 0xc0) {
            cp = p[0] & 0x1f, extra = 1;
        } else if ((p[0] & 0xf0) == 0xe0) {
            cp = p[0] & 0x0f, extra = 2;
        } else if ((p[0] & 0xf8) == 0xf0) {
            cp = p[0] & 0x07, extra = 3;
        } else {
            return false;
        }
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return false; /* also stops at the NUL */
            }
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            return false;
        }
        p += extra + 1;
    }
    return true;
}

/* RFC 9110 tchar. */
static bool
s_is_tchar (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr ("!#$%&'*+-.^_`|~", c));
}

/* type "/" subtype, both tokens, at most 127 bytes, no parameters.     */
static bool
s_valid_content_type (const char *s)
{
    size_t len = s ? strlen (s) : 0;
    if (len < 3 || len > STORD_CONTENT_TYPE_MAX) {
        return false;
    }
    const char *slash = strchr (s, '/');
    if (!slash || slash == s || !slash[1]) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (p != slash && !s_is_tchar (*p)) {
            return false;
        }
    }
    return true;
}

/* 1..max of [A-Za-z0-9._-]. */
static bool
s_is_label (const char *s, size_t max)
{
    size_t len = s ? strlen (s) : 0;
    if (len < 1 || len > max) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')) {
            return false;
        }
    }
    return true;
}

/* base64url alphabet, 1..STORD_TOKEN_MAX. */
static bool
s_valid_token (const char *s)
{
    size_t len = s ? strlen (s) : 0;
    if (len < 1 || len > STORD_TOKEN_MAX) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) {
            return false;
        }
    }
    return true;
}

/* ---- replies --------------------------------------------------------- */

static void
s_fail (zsock_t *router, cm_call_t *call, cm_status_t status, const char *code,
        const char *message)
{
    cm_debug (call->req_id, "answered %s %s", cm_status_name (status), code);
    cm_call_reply_error (router, call, &safeshare__storage_reply__descriptor, status,
                         code, message);
}

static void
s_reply (zsock_t *router, cm_call_t *call, Safeshare__StorageReply *reply, zmsg_t **blobs)
{
    reply->status = CM_OK;
    cm_call_reply (router, call, &reply->base, blobs);
}

static void
s_internal (zsock_t *router, cm_call_t *call)
{
    s_fail (router, call, CM_INTERNAL, "storage_error", "storage failed; see its log");
}

/* Answers a failed blob backend call: the store unreachable (S3, after
   its retries) is UNAVAILABLE "storage_unavailable", too many uploads
   in progress UNAVAILABLE "storage_busy" (both may be retried), the
   rest INTERNAL "storage_error".                                      */
static void
s_backend_fail (zsock_t *router, cm_call_t *call, stord_rc_t rc)
{
    if (rc == STORD_UNAVAILABLE) {
        s_fail (router, call, CM_UNAVAILABLE, "storage_unavailable",
                "the blob store is unreachable; retry later");
    } else if (rc == STORD_BUSY) {
        s_fail (router, call, CM_UNAVAILABLE, "storage_busy",
                "too many uploads in progress; retry later");
    } else {
        s_internal (router, call);
    }
}

/* Answers a failed stord_meta call: UNAVAILABLE "storage_busy" when the
   DB was busy or locked (the caller may retry the same request),
   INTERNAL "storage_error" otherwise.                                  */
static void
s_meta_fail (zsock_t *router, cm_call_t *call, cm_status_t st)
{
    if (st == CM_UNAVAILABLE) {
        s_fail (router, call, CM_UNAVAILABLE, "storage_busy",
                "storage database is busy; retry the request");
    } else {
        s_internal (router, call);
    }
}

/* Answers a stord_meta call that failed: NOT_FOUND with (code,
   missing), the rest as s_meta_fail. true, answering nothing, on OK.  */
static bool
s_meta_ok (zsock_t *router, cm_call_t *call, cm_status_t st, const char *code,
           const char *missing)
{
    if (st == CM_NOT_FOUND) {
        s_fail (router, call, CM_NOT_FOUND, code, missing);
    } else if (st != CM_OK) {
        s_meta_fail (router, call, st);
    }
    return st == CM_OK;
}

/* Answers INVALID unless id is a file id; true when it is.             */
static bool
s_file_id_ok (zsock_t *router, cm_call_t *call, const char *id)
{
    if (!s_is_id (id)) {
        s_fail (router, call, CM_INVALID, "invalid_file_id", "file_id must be 32 hex");
        return false;
    }
    return true;
}

/* Loads the file's row into *file (committed ones only if asked);
   answers NOT_FOUND (with `missing`) or INTERNAL and returns false.    */
static bool
s_file_load (stord_service_t *self, zsock_t *router, cm_call_t *call, const char *id,
             bool committed, stord_file_t *file, const char *missing)
{
    cm_status_t st = stord_meta_file_get (self->meta, call->req_id, id, committed, file);
    return s_meta_ok (router, call, st, "file_not_found", missing);
}

/* Borrows from file (valid while file lives).                           */
static void
s_file_info (const stord_file_t *file, Safeshare__FileInfo *info)
{
    safeshare__file_info__init (info);
    info->id = (char *)file->id;
    info->name = (char *)file->name;
    info->content_type = (char *)file->content_type;
    info->size = file->size;
    info->sha256 = (char *)file->sha256;
    info->owner_id = (char *)file->owner_id;
    info->created_at = file->created_at;
    info->chunk_size = file->chunk_size;
    info->chunk_count = file->chunk_count;
    info->kek_id = (char *)file->kek_id;
    info->wrapped_dek.data = (uint8_t *)file->wrapped_dek;
    info->wrapped_dek.len = file->wrapped_dek_len;
    info->blob_size = file->blob_size;
    info->visibility = (char *)file->visibility;
}

/* Borrows from link; state computed at now_s.                          */
static void
s_link_info (const stord_link_t *link, uint64_t now_s, Safeshare__LinkInfo *info)
{
    safeshare__link_info__init (info);
    info->id = (char *)link->id;
    info->file_id = (char *)link->file_id;
    info->creator_id = (char *)link->creator_id;
    info->created_at = link->created_at;
    info->expires_at = link->expires_at;
    info->max_downloads = link->max_downloads;
    info->downloads = link->downloads;
    info->signed_in_only = link->signed_in_only;
    info->revoked_at = link->revoked_at;
    info->state = (char *)stord_link_state (link, now_s);
}

/* Answers INVALID unless id is a link id; true when it is.             */
static bool
s_link_id_ok (zsock_t *router, cm_call_t *call, const char *id)
{
    if (!s_is_id (id)) {
        s_fail (router, call, CM_INVALID, "invalid_link_id", "link_id must be 32 hex");
        return false;
    }
    return true;
}

/* Answers INVALID unless name is a file name (or, if optional, NULL or
   ""); true when it is.                                                */
static bool
s_name_ok (zsock_t *router, cm_call_t *call, const char *name, bool optional)
{
    if (optional && (!name || !*name)) {
        return true;
    }
    if (!s_valid_name (name)) {
        s_fail (router, call, CM_INVALID, "invalid_name",
                "name must be 1..255 bytes of UTF-8 without control characters");
        return false;
    }
    return true;
}

/* "" (the default) or a valid visibility; answers INVALID otherwise.   */
static bool
s_visibility_ok (zsock_t *router, cm_call_t *call, const char *v)
{
    if (v && *v && !stord_visibility_valid (v)) {
        s_fail (router, call, CM_INVALID, "invalid_visibility",
                "visibility must be \"clients\" or \"staff\"");
        return false;
    }
    return true;
}

/* ---- handlers -------------------------------------------------------- */

static void
s_health (stord_service_t *self, zsock_t *router, cm_call_t *call)
{
    Safeshare__HealthReply health = SAFESHARE__HEALTH_REPLY__INIT;
    health.service = "storage";
    health.version = SAFESHARE_VERSION;
    health.uptime_ms = cm_mono_ms () - self->started_mono_ms;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_HEALTH;
    reply.health = &health;
    s_reply (router, call, &reply, NULL);
}

static void
s_file_begin (stord_service_t *self, zsock_t *router, cm_call_t *call,
              const Safeshare__FileBeginRequest *rq)
{
    if (!s_name_ok (router, call, rq->name, false)) {
        return;
    }
    if (!s_valid_content_type (rq->content_type)) {
        s_fail (router, call, CM_INVALID, "invalid_content_type",
                "content_type must be type/subtype, at most 127 bytes");
        return;
    }
    if (!s_is_id (rq->owner_id)) {
        s_fail (router, call, CM_INVALID, "invalid_owner_id", "owner_id must be 32 hex");
        return;
    }
    if (rq->chunk_size < STORD_CHUNK_MIN || rq->chunk_size > STORD_CHUNK_MAX) {
        s_fail (router, call, CM_INVALID, "invalid_chunk_size",
                "chunk_size must be 4096..16777216");
        return;
    }
    if (!s_visibility_ok (router, call, rq->visibility)) {
        return;
    }
    stord_file_t file = {0};
    if (cm_random_hex (file.id, STORD_ID_HEX / 2) != 0) {
        cm_error (call->req_id, "cm_random_hex() failed");
        s_internal (router, call);
        return;
    }
    strcpy (file.name, rq->name);
    strcpy (file.content_type, rq->content_type);
    strcpy (file.owner_id, rq->owner_id);
    file.chunk_size = rq->chunk_size;
    file.created_at = cm_now_s ();
    memcpy (file.instance, self->instance, sizeof file.instance);
    snprintf (file.visibility, sizeof file.visibility, "%s",
              rq->visibility && *rq->visibility ? rq->visibility : "clients");
    /* Row first: a crash before the blob exists leaves a pending row
       that the sweep removes.                                          */
    cm_status_t st = stord_meta_file_insert (self->meta, call->req_id, &file);
    if (st != CM_OK) {
        s_meta_fail (router, call, st);
        return;
    }
    stord_rc_t begun = stord_backend_begin (self->backend, call->req_id, file.id);
    if (begun != STORD_OK) {
        cm_error (call->req_id, "stord_backend_begin() failed for %s", file.id);
        stord_meta_file_delete (self->meta, call->req_id, file.id, STORD_STATE_PENDING);
        s_backend_fail (router, call, begun);
        return;
    }
    cm_info (call->req_id, "file %s begun (chunk_size=%u)", file.id, file.chunk_size);
    Safeshare__FileBeginReply body = SAFESHARE__FILE_BEGIN_REPLY__INIT;
    body.file_id = file.id;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_BEGIN;
    reply.file_begin = &body;
    s_reply (router, call, &reply, NULL);
}

/* NOT_FOUND from the backend: committed already, or no such upload.    */
static void
s_no_pending (stord_service_t *self, zsock_t *router, cm_call_t *call, const char *id)
{
    stord_file_t file;
    cm_status_t st = stord_meta_file_get (self->meta, call->req_id, id, false, &file);
    if (st == CM_INTERNAL || st == CM_UNAVAILABLE) {
        s_meta_fail (router, call, st);
    } else if (st == CM_OK && file.state == STORD_STATE_COMMITTED) {
        s_fail (router, call, CM_CONFLICT, "file_committed", "file is already committed");
    } else {
        s_fail (router, call, CM_NOT_FOUND, "file_not_found", "no such pending file");
    }
}

static void
s_blob_append (stord_service_t *self, zsock_t *router, cm_call_t *call,
               const Safeshare__BlobAppendRequest *rq)
{
    if (!s_file_id_ok (router, call, rq->file_id)) {
        return;
    }
    if (!call->blobs || zmsg_size (call->blobs) != 1) {
        s_fail (router, call, CM_INVALID, "invalid_blob_count",
                "BLOB_APPEND carries exactly one blob frame");
        return;
    }
    zframe_t *blob = zmsg_first (call->blobs);
    if (zframe_size (blob) > CM_MAX_MESSAGE) {
        s_fail (router, call, CM_TOO_LARGE, "blob_too_large", "blob frame too large");
        return;
    }
    uint64_t size = 0;
    stord_rc_t rc =
        stord_backend_append (self->backend, call->req_id, rq->file_id, rq->offset,
                              zframe_data (blob), zframe_size (blob), &size);
    if (rc == STORD_NOT_FOUND) {
        s_no_pending (self, router, call, rq->file_id);
        return;
    }
    if (rc == STORD_MISMATCH) {
        /* The body says how much is stored, so a client can resume.    */
        uint64_t stored = 0;
        stord_backend_stat (self->backend, call->req_id, rq->file_id, true, &stored,
                            NULL);
        char msg[96];
        snprintf (msg, sizeof msg, "offset must equal the bytes stored so far (%llu)",
                  (unsigned long long)stored);
        Safeshare__Error error = SAFESHARE__ERROR__INIT;
        error.code = "offset_mismatch";
        error.message = msg;
        Safeshare__BlobAppendReply body = SAFESHARE__BLOB_APPEND_REPLY__INIT;
        body.blob_size = stored;
        Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
        reply.error = &error;
        reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_BLOB_APPEND;
        reply.blob_append = &body;
        reply.status = CM_CONFLICT;
        cm_call_reply (router, call, &reply.base, NULL);
        return;
    }
    if (rc != STORD_OK) {
        s_backend_fail (router, call, rc);
        return;
    }
    Safeshare__BlobAppendReply body = SAFESHARE__BLOB_APPEND_REPLY__INIT;
    body.blob_size = size;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_BLOB_APPEND;
    reply.blob_append = &body;
    s_reply (router, call, &reply, NULL);
}

static void
s_reply_file (zsock_t *router, cm_call_t *call, const stord_file_t *file, bool commit)
{
    Safeshare__FileInfo info;
    s_file_info (file, &info);
    Safeshare__FileCommitReply commit_body = SAFESHARE__FILE_COMMIT_REPLY__INIT;
    Safeshare__FileGetReply get_body = SAFESHARE__FILE_GET_REPLY__INIT;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    if (commit) {
        commit_body.file = &info;
        reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_COMMIT;
        reply.file_commit = &commit_body;
    } else {
        get_body.file = &info;
        reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_GET;
        reply.file_get = &get_body;
    }
    s_reply (router, call, &reply, NULL);
}

/* The layout arithmetic of docs/format.md (common/cm_layout.h), nothing
   more of the format. A count with an empty last chunk (size = k *
   chunk_size, k + 1 chunks) never decrypts, so it is refused.          */
static bool
s_chunk_count_ok (uint64_t size, uint64_t chunk_count, uint32_t chunk_size)
{
    uint64_t n = cm_blob_chunk_count (size, chunk_size);
    return n != 0 && chunk_count == n;
}

/* size <= INT64_MAX and chunk_count <= 2^32-1 here: no overflow.      */
static bool
s_blob_size_ok (uint64_t size, uint64_t chunk_count, uint64_t blob_size)
{
    return blob_size == CM_BLOB_HEADER_LEN + size + CM_BLOB_TAG_LEN * chunk_count;
}

static void
s_file_commit (stord_service_t *self, zsock_t *router, cm_call_t *call,
               const Safeshare__FileCommitRequest *rq)
{
    if (!s_file_id_ok (router, call, rq->file_id)) {
        return;
    }
    if (!rq->sha256 || !cm_is_hex_id (rq->sha256, 64)) {
        s_fail (router, call, CM_INVALID, "invalid_sha256",
                "sha256 must be 64 lowercase hex");
        return;
    }
    if (!s_is_label (rq->kek_id, STORD_KEK_ID_MAX)) {
        s_fail (router, call, CM_INVALID, "invalid_kek_id",
                "kek_id must be 1..64 of [A-Za-z0-9._-]");
        return;
    }
    if (rq->wrapped_dek.len < 1 || rq->wrapped_dek.len > STORD_WRAPPED_DEK_MAX) {
        s_fail (router, call, CM_INVALID, "invalid_wrapped_dek",
                "wrapped_dek must be 1..512 bytes");
        return;
    }
    if (rq->blob_size < rq->size || rq->blob_size > (uint64_t)INT64_MAX) {
        s_fail (router, call, CM_INVALID, "invalid_blob_size",
                "blob_size cannot be smaller than size");
        return;
    }
    stord_file_t file;
    if (!s_file_load (self, router, call, rq->file_id, false, &file,
                      "no such pending file")) {
        return;
    }
    if (file.state == STORD_STATE_COMMITTED) {
        /* A retry of a commit whose reply was lost is answered again.  */
        if (file.blob_size == rq->blob_size && file.size == rq->size &&
            strcmp (file.sha256, rq->sha256) == 0) {
            s_reply_file (router, call, &file, true);
        } else {
            s_fail (router, call, CM_CONFLICT, "file_committed",
                    "file is already committed");
        }
        return;
    }
    if (!s_chunk_count_ok (rq->size, rq->chunk_count, file.chunk_size)) {
        s_fail (router, call, CM_INVALID, "invalid_chunk_count",
                "chunk_count must be max(1, ceil(size / chunk_size))");
        return;
    }
    if (!s_blob_size_ok (rq->size, rq->chunk_count, rq->blob_size)) {
        s_fail (router, call, CM_INVALID, "invalid_blob_size",
                "blob_size must be 48 + size + 16 * chunk_count");
        return;
    }
    stord_rc_t rc =
        stord_backend_commit (self->backend, call->req_id, file.id, rq->blob_size);
    if (rc == STORD_NOT_FOUND) {
        s_fail (router, call, CM_NOT_FOUND, "file_not_found",
                "no pending blob for the file");
        return;
    }
    if (rc == STORD_MISMATCH) {
        s_fail (router, call, CM_CONFLICT, "blob_size_mismatch",
                "blob_size differs from the bytes stored");
        return;
    }
    if (rc != STORD_OK) {
        s_backend_fail (router, call, rc);
        return;
    }
    file.size = rq->size;
    snprintf (file.sha256, sizeof file.sha256, "%s", rq->sha256);
    file.chunk_count = rq->chunk_count;
    snprintf (file.kek_id, sizeof file.kek_id, "%s", rq->kek_id);
    memcpy (file.wrapped_dek, rq->wrapped_dek.data, rq->wrapped_dek.len);
    file.wrapped_dek_len = rq->wrapped_dek.len;
    file.blob_size = rq->blob_size;
    file.created_at = cm_now_s ();
    file.state = STORD_STATE_COMMITTED;
    /* Blob durable first, row last: until this UPDATE the file is
       invisible, and a crash here leaves a pending row the sweep takes. */
    cm_status_t st =
        stord_meta_file_commit (self->meta, call->req_id, &file, file.created_at);
    if (st != CM_OK) {
        if (st == CM_NOT_FOUND) {
            cm_error (call->req_id, "pending row of %s vanished during commit", file.id);
        }
        /* The blob stays committed-in-place: a retried FILE_COMMIT finds
           it (stord_backend_commit is idempotent) and redoes this step. */
        s_meta_fail (router, call, st);
        return;
    }
    cm_info (call->req_id, "file %s committed (%llu bytes, %llu chunks)", file.id,
             (unsigned long long)file.blob_size, (unsigned long long)file.chunk_count);
    s_reply_file (router, call, &file, true);
}

static void
s_file_abort (stord_service_t *self, zsock_t *router, cm_call_t *call,
              const Safeshare__FileAbortRequest *rq)
{
    if (!s_file_id_ok (router, call, rq->file_id)) {
        return;
    }
    stord_file_t file;
    if (!s_file_load (self, router, call, rq->file_id, false, &file,
                      "no such pending file")) {
        return;
    }
    if (file.state == STORD_STATE_COMMITTED) {
        s_fail (router, call, CM_CONFLICT, "file_committed",
                "file is committed; use FILE_DELETE");
        return;
    }
    /* Blob first: if that fails the row stays and a retry (or the
       sweep) can still find the blob.                                  */
    stord_rc_t aborted = stord_backend_abort (self->backend, call->req_id, file.id);
    if (aborted != STORD_OK && aborted != STORD_NOT_FOUND) {
        s_backend_fail (router, call, aborted);
        return;
    }
    cm_status_t st =
        stord_meta_file_delete (self->meta, call->req_id, file.id, STORD_STATE_PENDING);
    if (st == CM_INTERNAL || st == CM_UNAVAILABLE) {
        s_meta_fail (router, call, st);
        return;
    }
    cm_info (call->req_id, "file %s aborted", file.id);
    Safeshare__FileAbortReply body = SAFESHARE__FILE_ABORT_REPLY__INIT;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_ABORT;
    reply.file_abort = &body;
    s_reply (router, call, &reply, NULL);
}

static void
s_file_get (stord_service_t *self, zsock_t *router, cm_call_t *call,
            const Safeshare__FileGetRequest *rq)
{
    if (!s_file_id_ok (router, call, rq->file_id)) {
        return;
    }
    stord_file_t file;
    if (s_file_load (self, router, call, rq->file_id, true, &file, "no such file")) {
        s_reply_file (router, call, &file, false);
    }
}

static void
s_file_list (stord_service_t *self, zsock_t *router, cm_call_t *call,
             const Safeshare__FileListRequest *rq)
{
    uint32_t limit = rq->limit ? rq->limit : STORD_LIST_DEFAULT;
    if (limit > STORD_LIST_MAX) {
        s_fail (router, call, CM_INVALID, "invalid_limit", "limit must be 1..200");
        return;
    }
    const char *cursor = rq->cursor ? rq->cursor : "";
    if (strlen (cursor) > STORD_CURSOR_MAX) {
        s_fail (router, call, CM_INVALID, "invalid_cursor", "malformed cursor");
        return;
    }
    const char *name = rq->name ? rq->name : "";
    if (!s_name_ok (router, call, name, true)) {
        return;
    }
    stord_filter_t filter = {.name = name, .clients_only = rq->clients_only};
    stord_file_t *files = NULL;
    size_t count = 0;
    char next[STORD_CURSOR_MAX + 1];
    cm_status_t st = stord_meta_file_find (self->meta, call->req_id, &filter, cursor,
                                           limit, &files, &count, next);
    if (st == CM_INVALID) {
        s_fail (router, call, CM_INVALID, "invalid_cursor", "malformed cursor");
        return;
    }
    if (st != CM_OK) {
        s_meta_fail (router, call, st);
        return;
    }
    Safeshare__FileInfo *infos = count ? calloc (count, sizeof *infos) : NULL;
    Safeshare__FileInfo **ptrs = count ? calloc (count, sizeof *ptrs) : NULL;
    if (count && (!infos || !ptrs)) {
        free (infos);
        free (ptrs);
        free (files);
        s_internal (router, call);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        s_file_info (&files[i], &infos[i]);
        ptrs[i] = &infos[i];
    }
    Safeshare__FileListReply body = SAFESHARE__FILE_LIST_REPLY__INIT;
    body.n_files = count;
    body.files = ptrs;
    body.next_cursor = next;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_LIST;
    reply.file_list = &body;
    s_reply (router, call, &reply, NULL);
    free (ptrs);
    free (infos);
    free (files);
}

static void
s_file_delete (stord_service_t *self, zsock_t *router, cm_call_t *call,
               const Safeshare__FileDeleteRequest *rq)
{
    if (!s_file_id_ok (router, call, rq->file_id)) {
        return;
    }
    /* Row (and links) first: with it goes the only wrapped DEK, so the
       blob is unreadable from here on (crypto-shredding).              */
    cm_status_t st = stord_meta_file_delete (self->meta, call->req_id, rq->file_id,
                                             STORD_STATE_COMMITTED);
    if (!s_meta_ok (router, call, st, "file_not_found", "no such file")) {
        return;
    }
    stord_rc_t rc = stord_backend_remove (self->backend, call->req_id, rq->file_id);
    if (rc == STORD_NOT_FOUND) {
        cm_warn (call->req_id, "blob of deleted file %s was already gone", rq->file_id);
    } else if (rc != STORD_OK) {
        /* Key already destroyed; the start-up sweep removes the blob.  */
        cm_warn (call->req_id, "blob of deleted file %s left for the sweep", rq->file_id);
    }
    cm_info (call->req_id, "file %s deleted", rq->file_id);
    Safeshare__FileDeleteReply body = SAFESHARE__FILE_DELETE_REPLY__INIT;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_DELETE;
    reply.file_delete = &body;
    s_reply (router, call, &reply, NULL);
}

static void
s_file_update (stord_service_t *self, zsock_t *router, cm_call_t *call,
               const Safeshare__FileUpdateRequest *rq)
{
    if (!s_file_id_ok (router, call, rq->file_id)) {
        return;
    }
    if (!s_name_ok (router, call, rq->name, true)) {
        return;
    }
    if (!s_visibility_ok (router, call, rq->visibility)) {
        return;
    }
    stord_file_t file;
    cm_status_t st = stord_meta_file_update (self->meta, call->req_id, rq->file_id,
                                             rq->name, rq->visibility, &file);
    if (!s_meta_ok (router, call, st, "file_not_found", "no such file")) {
        return;
    }
    cm_info (call->req_id, "file %s updated (visibility=%s)", file.id, file.visibility);
    Safeshare__FileInfo info;
    s_file_info (&file, &info);
    Safeshare__FileUpdateReply body = SAFESHARE__FILE_UPDATE_REPLY__INIT;
    body.file = &info;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_FILE_UPDATE;
    reply.file_update = &body;
    s_reply (router, call, &reply, NULL);
}

static void
s_blob_read (stord_service_t *self, zsock_t *router, cm_call_t *call,
             const Safeshare__BlobReadRequest *rq)
{
    if (!s_file_id_ok (router, call, rq->file_id)) {
        return;
    }
    if (rq->length < 1 || rq->length > STORD_READ_MAX) {
        s_fail (router, call, CM_INVALID, "invalid_range", "length must be 1..16777232");
        return;
    }
    stord_file_t file;
    if (!s_file_load (self, router, call, rq->file_id, true, &file, "no such file")) {
        return;
    }
    if (rq->offset > file.blob_size || rq->length > file.blob_size - rq->offset) {
        s_fail (router, call, CM_INVALID, "invalid_range",
                "range past the end of the blob");
        return;
    }
    /* Read straight into the frame that goes out: no extra copy.      */
    zframe_t *frame = zframe_new (NULL, rq->length);
    stord_rc_t rc = stord_backend_read (self->backend, call->req_id, file.id, rq->offset,
                                        zframe_data (frame), rq->length);
    if (rc != STORD_OK) {
        zframe_destroy (&frame);
        if (rc == STORD_NOT_FOUND || rc == STORD_MISMATCH) {
            cm_error (call->req_id, "blob of committed file %s is %s", file.id,
                      rc == STORD_NOT_FOUND ? "missing" : "shorter than its metadata");
        }
        s_backend_fail (router, call, rc);
        return;
    }
    zmsg_t *blobs = zmsg_new ();
    zmsg_append (blobs, &frame);
    Safeshare__BlobReadReply body = SAFESHARE__BLOB_READ_REPLY__INIT;
    body.offset = rq->offset;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_BLOB_READ;
    reply.blob_read = &body;
    s_reply (router, call, &reply, &blobs);
}

static void
s_link_create (stord_service_t *self, zsock_t *router, cm_call_t *call,
               const Safeshare__LinkCreateRequest *rq)
{
    if (!s_file_id_ok (router, call, rq->file_id)) {
        return;
    }
    if (!s_is_id (rq->creator_id)) {
        s_fail (router, call, CM_INVALID, "invalid_creator_id",
                "creator_id must be 32 hex");
        return;
    }
    if (rq->expires_in < 1 || rq->expires_in > self->link_max_ttl_s) {
        s_fail (router, call, CM_INVALID, "invalid_expiry",
                "expires_in must be 1..SAFESHARE_LINK_MAX_TTL seconds");
        return;
    }
    if (rq->max_downloads < 1 || rq->max_downloads > STORD_LINK_MAX_USE) {
        s_fail (router, call, CM_INVALID, "invalid_max_downloads",
                "max_downloads must be 1..10000");
        return;
    }
    char link_id[STORD_ID_HEX + 1], token[STORD_TOKEN_MAX + 1];
    uint64_t expires_at = 0;
    cm_status_t st =
        stord_meta_link_create (self->meta, call->req_id, rq->file_id, rq->creator_id,
                                cm_now_s (), rq->expires_in, rq->max_downloads,
                                rq->signed_in_only, link_id, token, &expires_at);
    if (!s_meta_ok (router, call, st, "file_not_found", "no such file")) {
        return;
    }
    cm_info (call->req_id, "link %s created for file %s (max %u downloads%s)", link_id,
             rq->file_id, rq->max_downloads,
             rq->signed_in_only ? ", signed-in only" : "");
    Safeshare__LinkCreateReply body = SAFESHARE__LINK_CREATE_REPLY__INIT;
    body.link_id = link_id;
    body.token = token;
    body.expires_at = expires_at;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_LINK_CREATE;
    reply.link_create = &body;
    s_reply (router, call, &reply, NULL);
    OPENSSL_cleanse (token, sizeof token);
}

static const char *
s_refusal_message (const char *code)
{
    static const char *const map[][2] = {
        {"link_not_found", "no such link"},
        {"link_expired", "the link has expired"},
        {"link_exhausted", "the link has no downloads left"},
        {"link_revoked", "the link was revoked"},
        {"link_requires_login", "the link is for signed-in users only"},
        {"storage_busy", "storage database is busy; retry the request"},
    };
    for (size_t i = 0; code && i < sizeof map / sizeof map[0]; i++) {
        if (strcmp (code, map[i][0]) == 0) {
            return map[i][1];
        }
    }
    return "storage failed; see its log";
}

static void
s_link_redeem (stord_service_t *self, zsock_t *router, cm_call_t *call,
               const Safeshare__LinkRedeemRequest *rq)
{
    if (!s_valid_token (rq->token)) {
        s_fail (router, call, CM_INVALID, "invalid_token",
                "token must be 1..128 base64url characters");
        return;
    }
    stord_file_t file;
    stord_link_t link;
    uint32_t left = 0;
    const char *code = NULL;
    uint64_t now = cm_now_s ();
    stord_redeem_t how = {.signed_in = rq->signed_in, .peek = rq->peek};
    cm_status_t st = stord_meta_link_redeem (self->meta, call->req_id, rq->token, now,
                                             &how, &file, &link, &left, &code);
    if (st != CM_OK) {
        s_fail (router, call, st, code ? code : "storage_error",
                s_refusal_message (code));
        return;
    }
    if (!rq->peek) {
        cm_info (call->req_id, "link %s redeemed for file %s (%u left)", link.id, file.id,
                 left);
    }
    Safeshare__FileInfo info;
    s_file_info (&file, &info);
    Safeshare__LinkInfo link_info;
    s_link_info (&link, now, &link_info);
    Safeshare__LinkRedeemReply body = SAFESHARE__LINK_REDEEM_REPLY__INIT;
    body.file = &info;
    body.downloads_left = left;
    body.link = &link_info;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_LINK_REDEEM;
    reply.link_redeem = &body;
    s_reply (router, call, &reply, NULL);
}

static void
s_link_list (stord_service_t *self, zsock_t *router, cm_call_t *call,
             const Safeshare__LinkListRequest *rq)
{
    if (!s_file_id_ok (router, call, rq->file_id)) {
        return;
    }
    const char *creator = rq->creator_id ? rq->creator_id : "";
    if (*creator && !s_is_id (creator)) {
        s_fail (router, call, CM_INVALID, "invalid_creator_id",
                "creator_id must be empty or 32 hex");
        return;
    }
    stord_link_t *links = NULL;
    size_t count = 0;
    cm_status_t st = stord_meta_link_list (self->meta, call->req_id, rq->file_id, creator,
                                           &links, &count);
    if (!s_meta_ok (router, call, st, "file_not_found", "no such file")) {
        return;
    }
    Safeshare__LinkInfo *infos = count ? calloc (count, sizeof *infos) : NULL;
    Safeshare__LinkInfo **ptrs = count ? calloc (count, sizeof *ptrs) : NULL;
    if (count && (!infos || !ptrs)) {
        free (infos);
        free (ptrs);
        free (links);
        s_internal (router, call);
        return;
    }
    uint64_t now = cm_now_s ();
    for (size_t i = 0; i < count; i++) {
        s_link_info (&links[i], now, &infos[i]);
        ptrs[i] = &infos[i];
    }
    Safeshare__LinkListReply body = SAFESHARE__LINK_LIST_REPLY__INIT;
    body.n_links = count;
    body.links = ptrs;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_LINK_LIST;
    reply.link_list = &body;
    s_reply (router, call, &reply, NULL);
    free (ptrs);
    free (infos);
    free (links);
}

/* The link by id into *link; answers NOT_FOUND link_not_found or the
   failure and returns false.                                           */
static bool
s_link_load (stord_service_t *self, zsock_t *router, cm_call_t *call, const char *id,
             stord_link_t *link)
{
    cm_status_t st = stord_meta_link_get (self->meta, call->req_id, id, link);
    return s_meta_ok (router, call, st, "link_not_found", "no such link");
}

static void
s_link_get (stord_service_t *self, zsock_t *router, cm_call_t *call,
            const Safeshare__LinkGetRequest *rq)
{
    if (!s_link_id_ok (router, call, rq->link_id)) {
        return;
    }
    stord_link_t link;
    stord_file_t file;
    if (!s_link_load (self, router, call, rq->link_id, &link)) {
        return;
    }
    /* Links exist for committed files only; a row without its file is
       answered as no link at all.                                      */
    cm_status_t st =
        stord_meta_file_get (self->meta, call->req_id, link.file_id, true, &file);
    if (!s_meta_ok (router, call, st, "link_not_found", "no such link")) {
        return;
    }
    Safeshare__LinkInfo link_info;
    s_link_info (&link, cm_now_s (), &link_info);
    Safeshare__FileInfo info;
    s_file_info (&file, &info);
    Safeshare__LinkGetReply body = SAFESHARE__LINK_GET_REPLY__INIT;
    body.link = &link_info;
    body.file = &info;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_LINK_GET;
    reply.link_get = &body;
    s_reply (router, call, &reply, NULL);
}

static void
s_link_revoke (stord_service_t *self, zsock_t *router, cm_call_t *call,
               const Safeshare__LinkRevokeRequest *rq)
{
    if (!s_link_id_ok (router, call, rq->link_id)) {
        return;
    }
    stord_link_t link;
    uint64_t now = cm_now_s ();
    cm_status_t st =
        stord_meta_link_revoke (self->meta, call->req_id, rq->link_id, now, &link);
    if (!s_meta_ok (router, call, st, "link_not_found", "no such link")) {
        return;
    }
    cm_info (call->req_id, "link %s revoked", link.id);
    Safeshare__LinkInfo link_info;
    s_link_info (&link, now, &link_info);
    Safeshare__LinkRevokeReply body = SAFESHARE__LINK_REVOKE_REPLY__INIT;
    body.link = &link_info;
    Safeshare__StorageReply reply = SAFESHARE__STORAGE_REPLY__INIT;
    reply.body_case = SAFESHARE__STORAGE_REPLY__BODY_LINK_REVOKE;
    reply.link_revoke = &body;
    s_reply (router, call, &reply, NULL);
}

void
stord_service_handle (stord_service_t *self, zsock_t *router, cm_call_t *call)
{
    const Safeshare__StorageRequest *rq =
        (const Safeshare__StorageRequest *)call->request;
    int case_ = rq ? (int)rq->body_case : 0;
    /* Only BLOB_APPEND carries a blob frame.                            */
    size_t nblobs = call->blobs ? zmsg_size (call->blobs) : 0;
    if (case_ != SAFESHARE__STORAGE_REQUEST__BODY_BLOB_APPEND && nblobs != 0) {
        s_fail (router, call, CM_INVALID, "invalid_blob_count",
                "this request carries no blob frames");
        return;
    }
    switch (case_) {
        case SAFESHARE__STORAGE_REQUEST__BODY_HEALTH:
            s_health (self, router, call);
            return;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_BEGIN:
            if (rq->file_begin) {
                s_file_begin (self, router, call, rq->file_begin);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_BLOB_APPEND:
            if (rq->blob_append) {
                s_blob_append (self, router, call, rq->blob_append);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_COMMIT:
            if (rq->file_commit) {
                s_file_commit (self, router, call, rq->file_commit);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_ABORT:
            if (rq->file_abort) {
                s_file_abort (self, router, call, rq->file_abort);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_GET:
            if (rq->file_get) {
                s_file_get (self, router, call, rq->file_get);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_LIST:
            if (rq->file_list) {
                s_file_list (self, router, call, rq->file_list);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_DELETE:
            if (rq->file_delete) {
                s_file_delete (self, router, call, rq->file_delete);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_BLOB_READ:
            if (rq->blob_read) {
                s_blob_read (self, router, call, rq->blob_read);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_LINK_CREATE:
            if (rq->link_create) {
                s_link_create (self, router, call, rq->link_create);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_LINK_REDEEM:
            if (rq->link_redeem) {
                s_link_redeem (self, router, call, rq->link_redeem);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_FILE_UPDATE:
            if (rq->file_update) {
                s_file_update (self, router, call, rq->file_update);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_LINK_LIST:
            if (rq->link_list) {
                s_link_list (self, router, call, rq->link_list);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_LINK_GET:
            if (rq->link_get) {
                s_link_get (self, router, call, rq->link_get);
                return;
            }
            break;
        case SAFESHARE__STORAGE_REQUEST__BODY_LINK_REVOKE:
            if (rq->link_revoke) {
                s_link_revoke (self, router, call, rq->link_revoke);
                return;
            }
            break;
        default:
            break;
    }
    s_fail (router, call, CM_INVALID, "missing_body", "request has no known body");
}
