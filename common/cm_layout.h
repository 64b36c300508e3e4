/*  cm_layout -- the byte layout of a stored blob (docs/format.md), the one
    part of the format that crypto (which builds blobs), the gateway (which
    maps chunks and ranges to offsets) and storage (which checks commits)
    all need. Nothing here knows about keys or ciphers.

      blob = header (48) | chunk 0 | chunk 1 | ...
      chunk i = ciphertext of up to chunk_size plaintext bytes | tag (16)
      chunk_count = max (1, ceil (size / chunk_size)), at most 2^32 - 1 */
#ifndef CM_LAYOUT_H
#define CM_LAYOUT_H

#include <stdint.h>

#define CM_BLOB_HEADER_LEN 48
#define CM_BLOB_TAG_LEN    16
#define CM_BLOB_MAX_CHUNKS 0xFFFFFFFFull

/* Where chunk `index` starts in the blob. */
uint64_t cm_blob_offset (uint32_t chunk_size, uint64_t index);
/* Chunks a plaintext of `size` bytes takes (1 for an empty file); 0 when
   chunk_size is 0 or the count passes CM_BLOB_MAX_CHUNKS.             */
uint64_t cm_blob_chunk_count (uint64_t size, uint32_t chunk_size);
/* Bytes of the whole blob; 0 where cm_blob_chunk_count is 0.         */
uint64_t cm_blob_size (uint64_t size, uint32_t chunk_size);

#endif
