/*  gw_upload -- the upload pipeline of one file, fed plaintext pieces as
    they arrive, memory bounded by one chunk whatever the file size:

      storage FILE_BEGIN -> crypto KEY_NEW -> storage BLOB_APPEND(header)
      then per chunk: crypto ENCRYPT(index, last) -> storage BLOB_APPEND
      (the ciphertext frame moved on, not copied)
      end: storage FILE_COMMIT (size, SHA-256, chunk count, wrapped DEK).

    A full chunk is sealed only when more data arrives, so the final chunk
    always carries the STREAM last flag (an empty file is one empty last
    chunk). One chunk is in flight at a time; a window of chunks (issue 4)
    slots in behind the same calls. Blob layout: docs/format.md.
    Any failure leaves the object failed: further writes are refused and
    destroy (or gw_upload_abort) sends FILE_ABORT -- or FILE_DELETE when
    storage answers file_committed (a FILE_COMMIT whose reply was lost). */
#ifndef GW_UPLOAD_H
#define GW_UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include "cm_layout.h"
#include "cm_status.h"
#include "gw_rpc.h"
#include "storage.pb-c.h"

typedef struct gw_upload_t gw_upload_t;

/* Borrows rpc (the calling thread's); req_id is copied. */
gw_upload_t *gw_upload_new (gw_rpc_t *rpc, const char *req_id, uint32_t chunk_size);
/* Aborts an upload that was begun and not committed. */
void gw_upload_destroy (gw_upload_t **self_p);

/* FILE_BEGIN + KEY_NEW + header append. 0 / -1 (see gw_upload_error). */
int gw_upload_begin (gw_upload_t *self, const char *name, const char *content_type,
                     const char *owner_id);
/* Feeds plaintext bytes. 0 / -1. */
int gw_upload_write (gw_upload_t *self, const void *data, size_t len);
/* Seals the last chunk and commits (then gw_upload_file). 0 / -1.   */
int gw_upload_finish (gw_upload_t *self);
/* The committed file (borrowed, valid until destroy), or NULL.        */
const Safeshare__FileInfo *gw_upload_file (gw_upload_t *self);
/* Sends FILE_ABORT if begun and not committed (idempotent); deletes the
   file if storage says the commit landed after all.                   */
void gw_upload_abort (gw_upload_t *self);

/* Plaintext bytes accepted so far. */
uint64_t gw_upload_size (gw_upload_t *self);

/* Why the last call failed: status (CM_UNAVAILABLE for timeouts), a
   stable code and a message for the client. Borrowed strings.        */
cm_status_t gw_upload_error (gw_upload_t *self, const char **code, const char **message);

#endif
