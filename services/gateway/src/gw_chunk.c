/*  gw_chunk -- one chunk's call at crypto (see gw_chunk.h).            */
#include "gw_chunk.h"

#include "cm_layout.h"
#include "crypto.pb-c.h"

cm_status_t
gw_chunk_send (gw_window_t *window, bool encrypt, const gw_chunk_key_t *key,
               uint64_t index, bool last, zmsg_t **frames, uint64_t tag)
{
    Safeshare__CryptoRequest r = SAFESHARE__CRYPTO_REQUEST__INIT;
    Safeshare__Meta meta = SAFESHARE__META__INIT;
    Safeshare__ChunkRequest chunk = SAFESHARE__CHUNK_REQUEST__INIT;
    r.meta = &meta;
    if (encrypt) {
        r.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_ENCRYPT;
        r.encrypt = &chunk;
    } else {
        r.body_case = SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT;
        r.decrypt = &chunk;
    }
    chunk.file_id = key->file_id;
    chunk.kek_id = key->kek_id;
    chunk.wrapped_dek = key->wrapped_dek;
    chunk.header.data = key->header;
    chunk.header.len = CM_BLOB_HEADER_LEN;
    chunk.index = index;
    chunk.last = last;
    return gw_window_send (window, &r.base, frames, tag);
}

bool
gw_chunk_reply_ok (const ProtobufCMessage *reply, bool encrypt, uint64_t index,
                   zmsg_t *blobs, uint64_t len)
{
    const Safeshare__CryptoReply *cr = (const Safeshare__CryptoReply *)reply;
    const Safeshare__ChunkReply *chunk = NULL;
    if (encrypt && cr->body_case == SAFESHARE__CRYPTO_REPLY__BODY_ENCRYPT) {
        chunk = cr->encrypt;
    } else if (!encrypt && cr->body_case == SAFESHARE__CRYPTO_REPLY__BODY_DECRYPT) {
        chunk = cr->decrypt;
    }
    return chunk && chunk->index == index && blobs && zmsg_size (blobs) == 1 &&
           zframe_size (zmsg_first (blobs)) == len;
}
