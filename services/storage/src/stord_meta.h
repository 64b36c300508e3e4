/*  stord_meta -- file metadata and share links in the storage DB
    (cm_db: SQLite now, PostgreSQL later; SQL kept to the common dialect).

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
} stord_file_t;

typedef struct stord_meta_t stord_meta_t;

/* Opens the DB at url (cm_db) and runs the storage migrations.
   NULL on failure (logged).                                            */
stord_meta_t *stord_meta_new (const char *url);
void stord_meta_destroy (stord_meta_t **self_p);

/* New pending row from id, name, content_type, owner_id, chunk_size and
   created_at of *file. CM_CONFLICT if the id exists.                   */
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
   row holds the only wrapped DEK). CM_NOT_FOUND if there was none.     */
cm_status_t stord_meta_file_delete (stord_meta_t *self, const char *req, const char *id,
                                    stord_state_t state);
/* Committed files, newest first (created_at desc, id desc). cursor: ""
   or a next_cursor from an earlier call (else CM_INVALID). limit is
   1..STORD_LIST_MAX. *files (caller frees) gets *count rows;
   next_cursor is "" when there are no more.                            */
cm_status_t stord_meta_file_list (stord_meta_t *self, const char *req, const char *cursor,
                                  uint32_t limit, stord_file_t **files, size_t *count,
                                  char next_cursor[STORD_CURSOR_MAX + 1]);
/* Ids of pending rows created before cutoff_s; fn returns 0 to go on. */
cm_status_t stord_meta_pending_before (stord_meta_t *self, const char *req,
                                       uint64_t cutoff_s,
                                       int (*fn) (const char *id, void *arg), void *arg);

/* New link for a committed file (CM_NOT_FOUND otherwise). token gets
   the only copy of the secret (base64url of 32 random bytes; wipe it
   after use).                                                          */
cm_status_t
stord_meta_link_create (stord_meta_t *self, const char *req, const char *file_id,
                        const char *creator_id, uint64_t now_s, uint64_t expires_in,
                        uint32_t max_downloads, char link_id[STORD_ID_HEX + 1],
                        char token[STORD_TOKEN_MAX + 1], uint64_t *expires_at);
/* Atomically takes one download of the link for token (one conditional
   UPDATE). On CM_OK fills *file and *downloads_left. Otherwise *code:
   CM_NOT_FOUND "link_not_found", CM_GONE "link_expired" |
   "link_exhausted" | "link_revoked", CM_INTERNAL "storage_error".      */
cm_status_t stord_meta_link_redeem (stord_meta_t *self, const char *req,
                                    const char *token, uint64_t now_s, stord_file_t *file,
                                    uint32_t *downloads_left, const char **code);
/* Marks a link revoked (used by tests now, DELETE /api/links later).  */
cm_status_t stord_meta_link_revoke (stord_meta_t *self, const char *req,
                                    const char *link_id);

#endif
