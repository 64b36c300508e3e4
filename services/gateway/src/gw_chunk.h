/*  gw_chunk -- one chunk's call at crypto (ENCRYPT for gw_upload,
    DECRYPT for gw_download) through a gw_window: the request both build
    and the checks both make of its reply (proto/crypto.md).          */
#ifndef GW_CHUNK_H
#define GW_CHUNK_H

#include <stdbool.h>
#include <stdint.h>
#include "gw_window.h"

/* What every chunk of one file carries (borrowed for each call).     */
typedef struct {
    char *file_id;
    char *kek_id;
    ProtobufCBinaryData wrapped_dek;
    uint8_t *header; /* CM_BLOB_HEADER_LEN bytes */
} gw_chunk_key_t;

/* Sends ENCRYPT (encrypt) or DECRYPT of chunk `index` into window with
   *frames (consumed) as its data; tag as gw_window_send's. CM_OK, else
   the window has failed.                                              */
cm_status_t gw_chunk_send (gw_window_t *window, bool encrypt, const gw_chunk_key_t *key,
                           uint64_t index, bool last, zmsg_t **frames, uint64_t tag);

/* True when reply (a CryptoReply whose status is OK) answers ENCRYPT
   (encrypt) or DECRYPT of chunk `index` and blobs is exactly one frame
   of len bytes.                                                       */
bool gw_chunk_reply_ok (const ProtobufCMessage *reply, bool encrypt, uint64_t index,
                        zmsg_t *blobs, uint64_t len);

#endif
