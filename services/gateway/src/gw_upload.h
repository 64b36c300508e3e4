/*  gw_upload -- the upload pipeline of one file, fed plaintext pieces as
    they arrive (at the client's pace):

      storage FILE_BEGIN -> crypto KEY_NEW -> storage BLOB_APPEND(header)
      then per chunk: crypto ENCRYPT(index, last) -> storage BLOB_APPEND
      (the ciphertext frame moved on, not copied)
      end: storage FILE_COMMIT (size, SHA-256, chunk count, wrapped DEK).

    Up to `window` chunks (SAFESHARE_CRYPTO_WINDOW) are at crypto at once
    (gw_window), so that reading the next chunk from the client, sealing
    the previous ones on several crypto workers and appending the sealed
    ones to storage overlap; ciphertext is appended strictly in index
    order whatever order crypto answers in. Memory: the chunk being
    filled plus at most `window` chunks out or sealed and waiting for an
    older one -- (window + 1) x chunk size, whatever the file size.
    A full chunk is sealed only when more data arrives, so the final
    chunk always carries the STREAM last flag (an empty file is one empty
    last chunk). Each chunk is sent to ENCRYPT once, never again (a chunk
    that fails fails the upload). Blob layout: docs/format.md.
    Any failure leaves the object failed: further writes are refused and
    destroy (or gw_upload_abort) drops what is still out at crypto and
    sends FILE_ABORT -- or FILE_DELETE when storage answers
    file_committed (a FILE_COMMIT whose reply was lost).               */
#ifndef GW_UPLOAD_H
#define GW_UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include "cm_layout.h"
#include "cm_status.h"
#include "gw_rpc.h"
#include "storage.pb-c.h"

typedef struct gw_upload_t gw_upload_t;

/* Borrows rpc (the calling thread's); req_id is copied. window: chunks
   at crypto at once, 1..GW_CRYPTO_WINDOW_MAX.                         */
gw_upload_t *gw_upload_new (gw_rpc_t *rpc, const char *req_id, uint32_t chunk_size,
                            unsigned window);
/* Aborts an upload that was begun and not committed. */
void gw_upload_destroy (gw_upload_t **self_p);

/* FILE_BEGIN + KEY_NEW + header append. visibility: "clients", "staff"
   (NULL or "": storage's default, clients). 0 / -1 (see
   gw_upload_error).                                                   */
int gw_upload_begin (gw_upload_t *self, const char *name, const char *content_type,
                     const char *owner_id, const char *visibility);
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
