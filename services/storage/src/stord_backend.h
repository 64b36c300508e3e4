/*  stord_backend -- where ciphertext blobs live, behind a small vtable so
    the disk backend (stord_disk) and the S3 backend (issue 5) are
    interchangeable. The backend knows bytes only: metadata, visibility
    and links live in stord_meta.

    `req` (may be NULL) is the request id for the one log line at a
    failure.

    A blob has two lives, both keyed by the file id (32 lowercase hex;
    never a client-supplied name):
      pending    created by begin, grown by append, dropped by abort;
      committed  after commit (durable), read by read, dropped by remove. */
#ifndef STORD_BACKEND_H
#define STORD_BACKEND_H

#include "cm_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    STORD_OK = 0,
    STORD_NOT_FOUND = 1,   /* no such pending / committed blob            */
    STORD_MISMATCH = 2,    /* offset or size differs from what is stored */
    STORD_EXISTS = 3,      /* begin on an id that already has a blob      */
    STORD_ERROR = 4,       /* I/O failure (logged by the backend)         */
    STORD_UNAVAILABLE = 5, /* the store did not answer (S3 down, after
                              retries): the request may be retried     */
    STORD_BUSY = 6         /* too many uploads in progress (S3 buffers) */
} stord_rc_t;

/* Called for each blob found by scan; return 0 to go on, -1 to stop.   */
typedef int (stord_scan_fn) (const char *id, uint64_t mtime_s, void *arg);

typedef struct {
    const char *name;
    stord_rc_t (*begin) (void *impl, const char *req, const char *id);
    /* Appends len bytes at offset (== bytes stored so far); a repeat of
       the last append with the same bytes is OK. *size_out = new size. */
    stord_rc_t (*append) (void *impl, const char *req, const char *id, uint64_t offset,
                          const void *data, size_t len, uint64_t *size_out);
    /* Makes the pending blob durable and committed if its size is size.
       Idempotent: when the pending blob is gone but a committed one of
       this size exists (an earlier commit whose metadata step failed),
       it is made durable again and OK is answered. NOT_FOUND if
       neither exists, MISMATCH if the size differs.                     */
    stord_rc_t (*commit) (void *impl, const char *req, const char *id, uint64_t size);
    /* Drops whatever exists for id: the pending blob and, for an id
       whose commit never reached the metadata, the committed one.      */
    stord_rc_t (*abort) (void *impl, const char *req, const char *id);
    /* Reads exactly len bytes at offset of a committed blob.            */
    stord_rc_t (*read) (void *impl, const char *req, const char *id, uint64_t offset,
                        void *buf, size_t len);
    stord_rc_t (*remove) (void *impl, const char *req, const char *id);
    /* Size and last modification (unix s) of a pending or committed blob. */
    stord_rc_t (*stat) (void *impl, const char *req, const char *id, bool pending,
                        uint64_t *size, uint64_t *mtime_s);
    /* Visits every pending (or committed) blob. 0 / -1.                 */
    int (*scan) (void *impl, const char *req, bool pending, stord_scan_fn *fn, void *arg);
    void (*destroy) (void **impl_p);
    /* Optional (NULL: ignored): the caller's deadline, unix ms, 0 = none,
       for the calls that follow; a network backend ends its retries by
       then rather than outlive the request.                            */
    void (*deadline) (void *impl, uint64_t deadline_ms);
    /* Where a blob is, for an operator's eyes (a path, an s3:// URL).   */
    void (*where) (void *impl, const char *id, bool pending, char *out, size_t outlen);
} stord_backend_ops_t;

typedef struct stord_backend_t stord_backend_t;

/* The backend SAFESHARE_STORAGE_BACKEND names, configured from config
   (disk: SAFESHARE_BLOB_DIR; s3: SAFESHARE_S3_*, the bucket checked).
   create: the disk backend may make a missing blob dir (the service
   does; the CLI refuses one, so a wrong setting does not look like an
   empty store). NULL with one line (no secret in it) in err.            */
stord_backend_t *stord_backend_open (cm_config_t *config, bool create, char *err,
                                     size_t errlen);

/* Takes ownership of impl (freed with ops->destroy). */
stord_backend_t *stord_backend_new (const stord_backend_ops_t *ops, void *impl);
void stord_backend_destroy (stord_backend_t **self_p);
const char *stord_backend_name (stord_backend_t *self);
/* See ops->deadline; storage sets it per request, 0 after.            */
void stord_backend_set_deadline (stord_backend_t *self, uint64_t deadline_ms);
/* See ops->where; "blob ID" for a backend without it. Returns out.     */
const char *stord_backend_where (stord_backend_t *self, const char *id, bool pending,
                                 char *out, size_t outlen);

stord_rc_t stord_backend_begin (stord_backend_t *self, const char *req, const char *id);
stord_rc_t stord_backend_append (stord_backend_t *self, const char *req, const char *id,
                                 uint64_t offset, const void *data, size_t len,
                                 uint64_t *size_out);
stord_rc_t stord_backend_commit (stord_backend_t *self, const char *req, const char *id,
                                 uint64_t size);
stord_rc_t stord_backend_abort (stord_backend_t *self, const char *req, const char *id);
stord_rc_t stord_backend_read (stord_backend_t *self, const char *req, const char *id,
                               uint64_t offset, void *buf, size_t len);
stord_rc_t stord_backend_remove (stord_backend_t *self, const char *req, const char *id);
stord_rc_t stord_backend_stat (stord_backend_t *self, const char *req, const char *id,
                               bool pending, uint64_t *size, uint64_t *mtime_s);
int stord_backend_scan (stord_backend_t *self, const char *req, bool pending,
                        stord_scan_fn *fn, void *arg);

#endif
