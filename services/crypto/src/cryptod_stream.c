/*  cryptod_stream -- the encrypted blob format. See cryptod_stream.h and
    docs/format.md (byte-exact, with a test vector).                     */
#include "cryptod_stream.h"

#include <string.h>
#include <openssl/crypto.h>

#include "cm_log.h"
#include "cryptod_aead.h"
#include "cm_util.h"

static const uint8_t s_magic[8] = {'S', 'S', 'H', 'R', 'B', 'L', 'O', 'B'};

/* Header field offsets (docs/format.md). */
#define HDR_MAGIC   0
#define HDR_VERSION 8
#define HDR_ALG     9
#define HDR_CHUNK   12
#define HDR_PREFIX  16
#define HDR_FILE_ID 23
#define HDR_PAD     39

static bool
s_chunk_size_ok (uint32_t chunk_size)
{
    return chunk_size >= CRYPTOD_MIN_CHUNK && chunk_size <= CRYPTOD_MAX_CHUNK;
}

int
cryptod_header_build (uint8_t out[CRYPTOD_HEADER_LEN], uint32_t chunk_size,
                      const char *file_id_hex)
{
    if (!out || !s_chunk_size_ok (chunk_size) || !file_id_hex ||
        !cm_is_hex_id (file_id_hex, 32)) {
        return -1;
    }
    memset (out, 0, CRYPTOD_HEADER_LEN);
    memcpy (out + HDR_MAGIC, s_magic, sizeof s_magic);
    out[HDR_VERSION] = CRYPTOD_FORMAT_VERSION;
    out[HDR_ALG] = CRYPTOD_ALG_AES256_GCM;
    out[HDR_CHUNK] = (uint8_t)(chunk_size >> 24);
    out[HDR_CHUNK + 1] = (uint8_t)(chunk_size >> 16);
    out[HDR_CHUNK + 2] = (uint8_t)(chunk_size >> 8);
    out[HDR_CHUNK + 3] = (uint8_t)chunk_size;
    if (cm_hex_decode (out + HDR_FILE_ID, 16, file_id_hex) != 0) {
        return -1;
    }
    /* The prefix is random per file; with the DEK also per file, a nonce
       never repeats under one key even if a file id were reused.        */
    if (cm_random (out + HDR_PREFIX, CRYPTOD_PREFIX_LEN) != 0) {
        return -1;
    }
    return 0;
}

int
cryptod_header_parse (const uint8_t *h, size_t len, uint32_t *chunk_size,
                      char file_id_hex[33])
{
    if (!h || len != CRYPTOD_HEADER_LEN) {
        return -1;
    }
    if (memcmp (h + HDR_MAGIC, s_magic, sizeof s_magic) != 0 ||
        h[HDR_VERSION] != CRYPTOD_FORMAT_VERSION ||
        h[HDR_ALG] != CRYPTOD_ALG_AES256_GCM || h[10] != 0 || h[11] != 0) {
        return -1;
    }
    for (size_t i = HDR_PAD; i < CRYPTOD_HEADER_LEN; i++) {
        if (h[i] != 0) {
            return -1;
        }
    }
    uint32_t cs = (uint32_t)h[HDR_CHUNK] << 24 | (uint32_t)h[HDR_CHUNK + 1] << 16 |
                  (uint32_t)h[HDR_CHUNK + 2] << 8 | (uint32_t)h[HDR_CHUNK + 3];
    if (!s_chunk_size_ok (cs)) {
        return -1;
    }
    if (chunk_size) {
        *chunk_size = cs;
    }
    if (file_id_hex) {
        cm_hex_encode (file_id_hex, h + HDR_FILE_ID, 16);
    }
    return 0;
}

/* Checks index/last/len against the header and builds the nonce.
   pt_len is the plaintext length of the chunk.                        */
static int
s_chunk_prepare (const uint8_t *header, uint64_t index, bool last, size_t pt_len,
                 uint8_t nonce[CRYPTOD_NONCE_LEN])
{
    uint32_t chunk_size;
    if (cryptod_header_parse (header, CRYPTOD_HEADER_LEN, &chunk_size, NULL) != 0) {
        return -1;
    }
    if (index >= CRYPTOD_MAX_CHUNKS) {
        return -1;
    }
    if (last) {
        /* Empty last chunk only for an empty file: otherwise a blob could
           gain a trailing empty chunk and still authenticate.          */
        if (pt_len > chunk_size || (pt_len == 0 && index != 0)) {
            return -1;
        }
    } else if (pt_len != chunk_size) {
        return -1;
    }
    memcpy (nonce, header + HDR_PREFIX, CRYPTOD_PREFIX_LEN);
    nonce[7] = (uint8_t)(index >> 24);
    nonce[8] = (uint8_t)(index >> 16);
    nonce[9] = (uint8_t)(index >> 8);
    nonce[10] = (uint8_t)index;
    nonce[11] = last ? 0x01 : 0x00;
    return 0;
}

int
cryptod_chunk_seal (const uint8_t dek[CRYPTOD_DEK_LEN],
                    const uint8_t header[CRYPTOD_HEADER_LEN], uint64_t index, bool last,
                    const uint8_t *pt, size_t len, uint8_t *out)
{
    uint8_t nonce[CRYPTOD_NONCE_LEN];
    if (!dek || !header || !out || (len > 0 && !pt)) {
        return -1;
    }
    if (s_chunk_prepare (header, index, last, len, nonce) != 0) {
        return -1;
    }
    if (cryptod_aead_seal (dek, nonce, header, CRYPTOD_HEADER_LEN, pt, len, out,
                           out + len) != 0) {
        cm_log_openssl (NULL, "cryptod_chunk_seal: EVP AES-256-GCM failed");
        return -1;
    }
    return 0;
}

int
cryptod_chunk_open (const uint8_t dek[CRYPTOD_DEK_LEN],
                    const uint8_t header[CRYPTOD_HEADER_LEN], uint64_t index, bool last,
                    const uint8_t *ct, size_t len, uint8_t *out)
{
    uint8_t nonce[CRYPTOD_NONCE_LEN];
    if (!dek || !header || !out || !ct || len < CRYPTOD_TAG_LEN) {
        return -1;
    }
    size_t pt_len = len - CRYPTOD_TAG_LEN;
    if (s_chunk_prepare (header, index, last, pt_len, nonce) != 0) {
        return -1;
    }
    /* On failure cryptod_aead_open wipes out: unauthenticated plaintext
       never leaves this function.                                     */
    if (cryptod_aead_open (dek, nonce, header, CRYPTOD_HEADER_LEN, ct, pt_len, out,
                           ct + pt_len) != 0) {
        return -1;
    }
    return 0;
}

uint64_t
cryptod_chunk_count (uint64_t plaintext_size, uint32_t chunk_size)
{
    /* The format's chunk-size bounds on top of the shared arithmetic. */
    return s_chunk_size_ok (chunk_size) ? cm_blob_chunk_count (plaintext_size, chunk_size)
                                        : 0;
}

uint64_t
cryptod_blob_size (uint64_t plaintext_size, uint32_t chunk_size)
{
    return s_chunk_size_ok (chunk_size) ? cm_blob_size (plaintext_size, chunk_size) : 0;
}

uint64_t
cryptod_chunk_index (uint64_t offset, uint32_t chunk_size)
{
    return chunk_size ? offset / chunk_size : 0;
}
