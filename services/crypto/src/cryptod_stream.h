/*  cryptod_stream -- the encrypted blob format (docs/format.md, DESIGN §5).

    Blob = header (48 bytes) || chunk 0 || chunk 1 || ...
    Chunk i = AES-256-GCM(DEK, nonce_i, AAD = header, plaintext chunk i)
              as ciphertext || 16-byte tag, and starts at
              48 + i * (chunk_size + 16).
    nonce_i = nonce prefix (7 bytes, from the header) || i (u32 BE) ||
              0x01 for the last chunk, 0x00 otherwise (STREAM).
    Every plaintext chunk is exactly chunk_size bytes except the last one
    (0..chunk_size bytes; empty only when the whole file is empty).

    Pure functions, no state, thread-safe. The gateway and the CLI use the
    layout helpers; the crypto workers use seal/open.                    */
#ifndef CRYPTOD_STREAM_H
#define CRYPTOD_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_layout.h"

#define CRYPTOD_HEADER_LEN     CM_BLOB_HEADER_LEN
#define CRYPTOD_TAG_LEN        CM_BLOB_TAG_LEN
#define CRYPTOD_DEK_LEN        32
#define CRYPTOD_NONCE_LEN      12
#define CRYPTOD_PREFIX_LEN     7
#define CRYPTOD_FORMAT_VERSION 1
#define CRYPTOD_ALG_AES256_GCM 1
#define CRYPTOD_MIN_CHUNK      4096u
#define CRYPTOD_MAX_CHUNK      (16u * 1024u * 1024u)
/* The counter is a u32; a blob has at most 2^32-1 chunks (index < this). */
#define CRYPTOD_MAX_CHUNKS CM_BLOB_MAX_CHUNKS

/* Writes a fresh header: random nonce prefix, chunk_size (4096..16 MiB),
   file id (32 lowercase hex). 0 / -1 (bad argument or no randomness). */
int cryptod_header_build (uint8_t out[CRYPTOD_HEADER_LEN], uint32_t chunk_size,
                          const char *file_id_hex);

/* Checks a header (len must be 48, magic, version, algorithm, reserved
   bytes zero, chunk size in range) and returns its chunk size and file id
   (32 lowercase hex + NUL). Either output may be NULL. 0 / -1.         */
int cryptod_header_parse (const uint8_t *h, size_t len, uint32_t *chunk_size,
                          char file_id_hex[33]);

/* Encrypts plaintext chunk `index` of the blob whose header is `header`:
   out receives len + 16 bytes (ciphertext || tag). len must be exactly
   the header's chunk size unless last (then 0..chunk_size; 0 only for
   index 0). 0 / -1.                                                     */
int cryptod_chunk_seal (const uint8_t dek[CRYPTOD_DEK_LEN],
                        const uint8_t header[CRYPTOD_HEADER_LEN], uint64_t index,
                        bool last, const uint8_t *pt, size_t len, uint8_t *out);

/* Decrypts and authenticates chunk `index` (len = ciphertext + tag, so
   16..chunk_size+16): out receives len - 16 bytes. -1 on any failure --
   then out holds no plaintext (it is wiped).                          */
int cryptod_chunk_open (const uint8_t dek[CRYPTOD_DEK_LEN],
                        const uint8_t header[CRYPTOD_HEADER_LEN], uint64_t index,
                        bool last, const uint8_t *ct, size_t len, uint8_t *out);

/* Number of chunks for a plaintext of `plaintext_size` bytes: 1 for an
   empty file, else ceil(size / chunk_size). 0 if chunk_size is out of
   range or the count would exceed CRYPTOD_MAX_CHUNKS.                  */
uint64_t cryptod_chunk_count (uint64_t plaintext_size, uint32_t chunk_size);

/* Total blob size for a plaintext of `plaintext_size` bytes (header +
   every chunk with its tag). 0 if the size is not representable.       */
uint64_t cryptod_blob_size (uint64_t plaintext_size, uint32_t chunk_size);

/* The chunk holding plaintext byte `offset` (range requests: bytes a..b
   need chunks offset_a / chunk_size .. offset_b / chunk_size).         */
uint64_t cryptod_chunk_index (uint64_t offset, uint32_t chunk_size);

#endif
