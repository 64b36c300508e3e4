/*  cm_layout -- blob layout arithmetic (docs/format.md).               */
#include "cm_layout.h"

uint64_t
cm_blob_offset (uint32_t chunk_size, uint64_t index)
{
    return CM_BLOB_HEADER_LEN + index * ((uint64_t)chunk_size + CM_BLOB_TAG_LEN);
}

uint64_t
cm_blob_chunk_count (uint64_t size, uint32_t chunk_size)
{
    if (chunk_size == 0) {
        return 0;
    }
    if (size == 0) {
        return 1; /* an empty file is one empty last chunk */
    }
    uint64_t count = size / chunk_size + (size % chunk_size != 0);
    return count > CM_BLOB_MAX_CHUNKS ? 0 : count;
}

uint64_t
cm_blob_size (uint64_t size, uint32_t chunk_size)
{
    uint64_t count = cm_blob_chunk_count (size, chunk_size);
    /* count <= 2^32 - 1: the tags add at most 2^36 bytes, no overflow for
       any size a caller has already bounded to INT64_MAX.              */
    return count ? CM_BLOB_HEADER_LEN + size + count * CM_BLOB_TAG_LEN : 0;
}
