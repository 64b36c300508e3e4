/*  stord_meta -- file metadata and share links in the storage DB
    (cm_db: SQLite or PostgreSQL; SQL kept to the common dialect).

    A file row is 'pending' from FILE_BEGIN until FILE_COMMIT marks it
    'committed'; only committed rows are visible to get/list/links.
    Link tokens are never stored: only their SHA-256 (hex).

    Calls return a cm_status_t: CM_OK, or the status to answer with
    (CM_UNAVAILABLE when the DB was busy or locked, so a retry can work;
    CM_INTERNAL after any other DB failure; both logged once naming the
    call and `req`).                                                     */
#ifndef STORD_META_H
#define STORD_META_H

#include "cm_status.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORD_ID_HEX           32
#define STORD_NAME_MAX         255
#define STORD_CONTENT_TYPE_MAX 127
#define STORD_KEK_ID_MAX       64
#define STORD_WRAPPED_DEK_MAX  512
#define STORD_TOKEN_MAX        128
#define STORD_CURSOR_MAX       64
#define STORD_LIST_MAX         200
#define STORD_LIST_DEFAULT     50
#define STORD_REWRAP_MAX       10000
/* LINK_LIST answers at most this many (the newest): no paging there.  */
#define STORD_LINK_LIST_MAX 200
/* "clients" | "staff" */
#define STORD_VISIBILITY_MAX 7
/* SAFESHARE_STORAGE_INSTANCE: 1..64 of [A-Za-z0-9._-]                  */
#define STORD_INSTANCE_MAX 64

typedef enum {
    STORD_STATE_NONE = 0,
    STORD_STATE_PENDING = 1,
    STORD_STATE_COMMITTED = 2
} stord_state_t;

typedef struct {
    char id[STORD_ID_HEX + 1];
    char name[STORD_NAME_MAX + 1];
    char content_type[STORD_CONTENT_TYPE_MAX + 1];
    uint64_t size;
    char sha256[65];
    char owner_id[STORD_ID_HEX + 1];
    uint64_t created_at;
    uint32_t chunk_size;
    uint64_t chunk_count;
    char kek_id[STORD_KEK_ID_MAX + 1];
    uint8_t wrapped_dek[STORD_WRAPPED_DEK_MAX];
    size_t wrapped_dek_len;
    uint64_t blob_size;
    stord_state_t state;
    char visibility[STORD_VISIBILITY_MAX + 1]; /* "clients" | "staff" */
    char instance[STORD_INSTANCE_MAX + 1];     /* the storage process that began it */
} stord_file_t;

/* A share link as stored (never its token: only the hash is kept).     */
typedef struct {
    char id[STORD_ID_HEX + 1];
    char file_id[STORD_ID_HEX + 1];
    char creator_id[STORD_ID_HEX + 1];
    uint64_t created_at;
    uint64_t expires_at;
    uint32_t max_downloads;
    uint32_t downloads;
    bool signed_in_only;
    uint64_t revoked_at; /* 0 = not revoked */
    bool revoked;
} stord_link_t;

/* What FILE_LIST may narrow to.                                        */
typedef struct {
    const char *name;  /* substring of the name, ASCII case folded; NULL/"" any */
    bool clients_only; /* only visibility "clients" */
} stord_filter_t;

/* True for the two visibilities a file may have.                       */
bool stord_visibility_valid (const char *s);

typedef struct stord_meta_t stord_meta_t;

/* Opens the DB at url (cm_db) and runs the storage migrations.
   NULL on failure (logged).                                            */
stord_meta_t *stord_meta_new (const char *url);
void stord_meta_destroy (stord_meta_t **self_p);

/* New pending row from id, name, content_type, owner_id, chunk_size,
   created_at and visibility ("" = "clients") of *file. CM_CONFLICT if
   the id exists.                                                       */
cm_status_t stord_meta_file_insert (stord_meta_t *self, const char *req,
                                    const stord_file_t *file);
/* Any state (committed_only false) or committed only. CM_NOT_FOUND.   */
cm_status_t stord_meta_file_get (stord_meta_t *self, const char *req, const char *id,
                                 bool committed_only, stord_file_t *file);
/* Pending -> committed with size, sha256, chunk_count, kek_id,
   wrapped_dek and blob_size of *file; created_at becomes now_s (the
   moment the file became visible). CM_NOT_FOUND if no pending row.     */
cm_status_t stord_meta_file_commit (stord_meta_t *self, const char *req,
                                    const stord_file_t *file, uint64_t now_s);
/* Deletes the row in `state` and its links in one transaction (the
   row holds the only wrapped DEK: crypto-shredding), then scrubs
   (stord_meta_scrub). CM_NOT_FOUND if there was none.                  */
cm_status_t stord_meta_file_delete (stord_meta_t *self, const char *req, const char *id,
                                    stord_state_t state);
/* Committed files, newest first (created_at desc, id desc). cursor: ""
   or a next_cursor from an earlier call (else CM_INVALID). limit is
   1..STORD_LIST_MAX. *files (caller frees) gets *count rows;
   next_cursor is "" when there are no more.                            */
cm_status_t stord_meta_file_list (stord_meta_t *self, const char *req, const char *cursor,
                                  uint32_t limit, stord_file_t **files, size_t *count,
                                  char next_cursor[STORD_CURSOR_MAX + 1]);
/* As stord_meta_file_list, narrowed by *filter (NULL = none): the name
   filter is a case-insensitive substring match, LIKE with %, _ and the
   escape character escaped. Case folding is SQL lower() on both sides:
   ASCII letters on every backend (SQLite folds nothing else), more on
   PostgreSQL (its locale's rules). A cursor from one filter used with
   another still pages correctly (keyset), it just skips what is newer. */
cm_status_t stord_meta_file_find (stord_meta_t *self, const char *req,
                                  const stord_filter_t *filter, const char *cursor,
                                  uint32_t limit, stord_file_t **files, size_t *count,
                                  char next_cursor[STORD_CURSOR_MAX + 1]);
/* Changes the name and/or the visibility (NULL or "" = unchanged) of a
   committed file; *file gets the row as it is now. CM_NOT_FOUND,
   CM_INVALID for a visibility other than "clients"/"staff".           */
cm_status_t stord_meta_file_update (stord_meta_t *self, const char *req, const char *id,
                                    const char *name, const char *visibility,
                                    stord_file_t *file);
/* After deletes: make erased wrapped DEKs unreadable from the DB files
   as far as the backend allows (cm_db_scrub: SQLite checkpoints and
   truncates its WAL; PostgreSQL keeps dead row versions until VACUUM).
   file_delete calls it itself. 0 / -1 (a busy WAL: the next one does). */
int stord_meta_scrub (stord_meta_t *self);

/* ---- KEK rotation (safeshare keys list | rotate | retire) ----------- */

typedef struct {
    char kek_id[STORD_KEK_ID_MAX + 1];
    uint64_t count; /* rows whose wrapped DEK is under this KEK */
} stord_kek_count_t;

/* Stored DEKs per KEK, from one statement (one consistent snapshot):
   *counts (caller frees, NULL when *n is 0) gets one entry per kek_id
   of a row holding a wrapped DEK -- committed or pending --, by kek_id.
   *pending_no_dek gets the number of pending rows created before
   pending_before_s that hold no wrapped DEK (today every pending row:
   the gateway keeps an upload's wrapped DEK until FILE_COMMIT, so such
   an upload may commit a DEK under any KEK that was current when it
   began). CM_INTERNAL on a malformed row.                              */
cm_status_t stord_meta_kek_counts (stord_meta_t *self, const char *req,
                                   uint64_t pending_before_s, stord_kek_count_t **counts,
                                   size_t *n, uint64_t *pending_no_dek);

typedef struct {
    char id[STORD_ID_HEX + 1];
    char kek_id[STORD_KEK_ID_MAX + 1];
    uint8_t wrapped_dek[STORD_WRAPPED_DEK_MAX];
    size_t wrapped_dek_len;
} stord_wrapped_t;

/* Up to `limit` (1..STORD_REWRAP_MAX) rows whose wrapped DEK is not
   under KEK `current` -- committed and pending rows alike; rows with no
   DEK yet are not returned --, with id > after ("" = from the start),
   by id: a caller walks the table once by passing the last id back.
   *rows (caller frees, NULL when *count is 0). CM_INVALID for a bad
   limit, CM_INTERNAL for a malformed row.                              */
cm_status_t stord_meta_rewrap_batch (stord_meta_t *self, const char *req,
                                     const char *current, const char *after,
                                     uint32_t limit, stord_wrapped_t **rows,
                                     size_t *count);

/* The conditional replace: one UPDATE ... SET kek_id, wrapped_dek WHERE
   id AND kek_id AND wrapped_dek still equal *old. So a row is either
   its old or its new DEK at every moment, and a row deleted, committed
   anew or rewrapped by someone else meanwhile is left alone: CM_CONFLICT.
   CM_OK when replaced; CM_INVALID for a bad kek id or length.          */
cm_status_t stord_meta_rewrap_replace (stord_meta_t *self, const char *req,
                                       const stord_wrapped_t *old, const char *new_kek_id,
                                       const uint8_t *new_wrapped, size_t new_len);

/* Ids of pending rows created before cutoff_s, and (instance not NULL
   or "") every pending row that instance began; fn returns 0 to go on. */
cm_status_t stord_meta_pending_before (stord_meta_t *self, const char *req,
                                       uint64_t cutoff_s, const char *instance,
                                       int (*fn) (const char *id, void *arg), void *arg);

/* New link for a committed file (CM_NOT_FOUND otherwise). token gets
   the only copy of the secret (base64url of 32 random bytes; wipe it
   after use).                                                          */
cm_status_t stord_meta_link_create (stord_meta_t *self, const char *req,
                                    const char *file_id, const char *creator_id,
                                    uint64_t now_s, uint64_t expires_in,
                                    uint32_t max_downloads, bool signed_in_only,
                                    char link_id[STORD_ID_HEX + 1],
                                    char token[STORD_TOKEN_MAX + 1],
                                    uint64_t *expires_at);

typedef struct {
    bool signed_in; /* the caller showed a valid access token */
    bool peek;      /* check only: no download is taken */
} stord_redeem_t;

/* Takes one download of the link for token in one conditional UPDATE
   (never read-then-write), or with how->peek only checks it. On CM_OK
   fills *file, *link (downloads after this one) and *downloads_left.
   Otherwise *code, checked in this order: CM_NOT_FOUND
   "link_not_found" (unknown, or its file is gone), CM_UNAUTHENTICATED
   "link_requires_login" (signed_in_only and !how->signed_in), CM_GONE
   "link_revoked" | "link_expired" | "link_exhausted";
   CM_UNAVAILABLE "storage_busy", CM_INTERNAL "storage_error".          */
cm_status_t stord_meta_link_redeem (stord_meta_t *self, const char *req,
                                    const char *token, uint64_t now_s,
                                    const stord_redeem_t *how, stord_file_t *file,
                                    stord_link_t *link, uint32_t *downloads_left,
                                    const char **code);
/* One link by id. CM_NOT_FOUND.                                        */
cm_status_t stord_meta_link_get (stord_meta_t *self, const char *req, const char *link_id,
                                 stord_link_t *link);
/* Links of a committed file (CM_NOT_FOUND otherwise), newest first
   (created_at desc, id desc), at most STORD_LINK_LIST_MAX; creator_id
   NULL or "" = every creator's. *links (caller frees, NULL when none). */
cm_status_t stord_meta_link_list (stord_meta_t *self, const char *req,
                                  const char *file_id, const char *creator_id,
                                  stord_link_t **links, size_t *count);
/* Marks a link revoked at now_s; revoking a revoked link changes
   nothing (revoked_at stays the first one). *link (may be NULL) gets
   the link as it is now. CM_NOT_FOUND.                                 */
cm_status_t stord_meta_link_revoke (stord_meta_t *self, const char *req,
                                    const char *link_id, uint64_t now_s,
                                    stord_link_t *link);
/* "active", "expired", "exhausted" or "revoked" at now_s (in the order
   a redeem checks them).                                               */
const char *stord_link_state (const stord_link_t *link, uint64_t now_s);

#endif
