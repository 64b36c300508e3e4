/*  cryptod_stream: round trips at the chunk boundaries, every tamper case
    of DESIGN §5, layout helpers, and a fixed vector cross-checked with
    Python's `cryptography` AESGCM (docs/format.md).                    */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_util.h"
#include "cryptod_stream.h"

#define CS     4096u
#define FILE_A "00112233445566778899aabbccddeeff"
#define FILE_B "ffeeddccbbaa99887766554433221100"

/* A whole blob in memory, as storage would hold it.                   */
typedef struct {
    uint8_t *bytes;
    size_t len;
    uint64_t chunks;
} s_blob_t;

static void
s_fill (uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 31 + seed);
    }
}

static s_blob_t
s_encrypt (const uint8_t dek[32], const char *file_id, const uint8_t *pt, size_t size)
{
    s_blob_t b = {0};
    b.chunks = cryptod_chunk_count (size, CS);
    assert_true (b.chunks >= 1);
    b.len = cryptod_blob_size (size, CS);
    assert_int_equal (b.len, CRYPTOD_HEADER_LEN + size + b.chunks * CRYPTOD_TAG_LEN);
    b.bytes = calloc (1, b.len);
    assert_non_null (b.bytes);
    assert_int_equal (cryptod_header_build (b.bytes, CS, file_id), 0);
    for (uint64_t i = 0; i < b.chunks; i++) {
        bool last = i + 1 == b.chunks;
        size_t n = last ? size - i * CS : CS;
        uint64_t off = cm_blob_offset (CS, i);
        assert_int_equal (off, CRYPTOD_HEADER_LEN + i * (CS + CRYPTOD_TAG_LEN));
        assert_true (off + n + CRYPTOD_TAG_LEN <= b.len);
        assert_int_equal (
            cryptod_chunk_seal (dek, b.bytes, i, last, pt + i * CS, n, b.bytes + off), 0);
    }
    return b;
}

/* Decrypts a blob chunk by chunk the way a reader does (the reader knows
   the plaintext size from metadata). 0 if every chunk authenticates.  */
static int
s_decrypt (const uint8_t dek[32], const s_blob_t *b, size_t size, uint8_t *out)
{
    uint64_t chunks = cryptod_chunk_count (size, CS);
    for (uint64_t i = 0; i < chunks; i++) {
        bool last = i + 1 == chunks;
        size_t n = last ? size - i * CS : CS;
        uint64_t off = cm_blob_offset (CS, i);
        if (off + n + CRYPTOD_TAG_LEN > b->len) {
            return -1;
        }
        if (cryptod_chunk_open (dek, b->bytes, i, last, b->bytes + off,
                                n + CRYPTOD_TAG_LEN, out + i * CS) != 0) {
            return -1;
        }
    }
    return 0;
}

static void
test_round_trip_sizes (void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, CS - 1, CS, CS + 1, 3 * CS + 7};
    uint8_t dek[32];
    assert_int_equal (cm_random (dek, sizeof dek), 0);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t size = sizes[k];
        uint8_t *pt = malloc (size + 1);
        uint8_t *back = malloc (size + 1);
        s_fill (pt, size, (unsigned)k);
        s_blob_t b = s_encrypt (dek, FILE_A, pt, size);
        /* The ciphertext does not contain the plaintext.              */
        if (size >= 16) {
            assert_null (memmem (b.bytes, b.len, pt, 16));
        }
        memset (back, 0xAA, size + 1);
        assert_int_equal (s_decrypt (dek, &b, size, back), 0);
        assert_memory_equal (back, pt, size);
        free (b.bytes);
        free (pt);
        free (back);
    }
}

static void
test_chunk_counts (void **state)
{
    (void)state;
    assert_int_equal (cryptod_chunk_count (0, CS), 1);
    assert_int_equal (cryptod_chunk_count (1, CS), 1);
    assert_int_equal (cryptod_chunk_count (CS, CS), 1);
    assert_int_equal (cryptod_chunk_count (CS + 1, CS), 2);
    assert_int_equal (cryptod_chunk_count (3 * CS + 7, CS), 4);
    /* Counter overflow: at most 2^32-1 chunks.                        */
    assert_int_equal (cryptod_chunk_count ((uint64_t)CS * 0xFFFFFFFFull, CS),
                      0xFFFFFFFFull);
    assert_int_equal (cryptod_chunk_count ((uint64_t)CS * 0xFFFFFFFFull + 1, CS), 0);
    assert_int_equal (cryptod_chunk_count (10, 100), 0); /* chunk size too small */
    assert_int_equal (cryptod_chunk_count (10, CRYPTOD_MAX_CHUNK + 1), 0);
    assert_int_equal (cm_blob_offset (1048576, 0), 48);
    assert_int_equal (cm_blob_offset (1048576, 2), 48 + 2 * (1048576 + 16));
    assert_int_equal (cryptod_blob_size (0, CS), 48 + 16);
    assert_int_equal (cryptod_chunk_index (CS - 1, CS), 0);
    assert_int_equal (cryptod_chunk_index (CS, CS), 1);

    uint8_t dek[32] = {0}, hdr[48], pt[CS], out[CS + 16];
    assert_int_equal (cryptod_header_build (hdr, CS, FILE_A), 0);
    memset (pt, 1, sizeof pt);
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 0xFFFFFFFEull, true, pt, 5, out), 0);
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 0xFFFFFFFFull, true, pt, 5, out), -1);
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 1ull << 32, true, pt, 5, out), -1);
    /* Length rules: non-last must be full, empty only for index 0.    */
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 0, false, pt, CS - 1, out), -1);
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 2, true, pt, 0, out), -1);
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 0, true, pt, 0, out), 0);
}

static void
test_header (void **state)
{
    (void)state;
    uint8_t h[48], h2[48];
    uint32_t cs = 0;
    char id[33];
    assert_int_equal (cryptod_header_build (h, 1048576, FILE_A), 0);
    assert_memory_equal (h, "SSHRBLOB\x01\x01\x00\x00\x00\x10\x00\x00", 16);
    assert_int_equal (cryptod_header_parse (h, 48, &cs, id), 0);
    assert_int_equal (cs, 1048576);
    assert_string_equal (id, FILE_A);
    /* Fresh random prefix each time.                                   */
    assert_int_equal (cryptod_header_build (h2, 1048576, FILE_A), 0);
    assert_memory_not_equal (h + 16, h2 + 16, 7);

    assert_int_equal (cryptod_header_parse (h, 47, &cs, id), -1);
    assert_int_equal (cryptod_header_build (h2, 4095, FILE_A), -1);
    assert_int_equal (cryptod_header_build (h2, CRYPTOD_MAX_CHUNK + 1, FILE_A), -1);
    assert_int_equal (cryptod_header_build (h2, CS, "00112233"), -1);
    assert_int_equal (cryptod_header_build (h2, CS, "00112233445566778899AABBCCDDEEFF"),
                      -1);
    /* Each structural byte matters.                                   */
    const size_t bad_at[] = {0, 7, 8, 9, 10, 11, 12, 39, 47};
    for (size_t k = 0; k < sizeof bad_at / sizeof bad_at[0]; k++) {
        memcpy (h2, h, 48);
        h2[bad_at[k]] ^= 0x80;
        assert_int_equal (cryptod_header_parse (h2, 48, &cs, id), -1);
    }
}

static void
test_tamper (void **state)
{
    (void)state;
    const size_t size = 3 * CS + 7; /* chunks: full, full, full, 7 bytes */
    uint8_t dek[32], dek_b[32];
    assert_int_equal (cm_random (dek, sizeof dek), 0);
    assert_int_equal (cm_random (dek_b, sizeof dek_b), 0);
    uint8_t *pt = malloc (size);
    uint8_t *out = malloc (size + CS);
    s_fill (pt, size, 7);
    s_blob_t b = s_encrypt (dek, FILE_A, pt, size);
    s_blob_t orig = b;
    orig.bytes = malloc (b.len);
    memcpy (orig.bytes, b.bytes, b.len);
    assert_int_equal (s_decrypt (dek, &b, size, out), 0);

    /* A flipped bit anywhere after the header (ciphertext or tag of any
       chunk), and in the header (AAD) too, fails.                      */
    const size_t positions[] = {0,
                                16,
                                23,
                                38,
                                48,
                                48 + CS - 1,
                                48 + CS,
                                48 + CS + 15,
                                cm_blob_offset (CS, 1) + 100,
                                cm_blob_offset (CS, 3) + 3,
                                b.len - 1};
    for (size_t k = 0; k < sizeof positions / sizeof positions[0]; k++) {
        memcpy (b.bytes, orig.bytes, b.len);
        b.bytes[positions[k]] ^= 0x01;
        memset (out, 0x5A, size);
        assert_int_equal (s_decrypt (dek, &b, size, out), -1);
    }

    /* Swapped chunks 0 and 1.                                          */
    memcpy (b.bytes, orig.bytes, b.len);
    uint64_t o0 = cm_blob_offset (CS, 0), o1 = cm_blob_offset (CS, 1);
    memcpy (b.bytes + o0, orig.bytes + o1, CS + 16);
    memcpy (b.bytes + o1, orig.bytes + o0, CS + 16);
    assert_int_equal (s_decrypt (dek, &b, size, out), -1);

    /* Dropped last chunk: the reader is told the file is 3*CS bytes, so
       chunk 2 must open as last -- it was sealed as not last.          */
    memcpy (b.bytes, orig.bytes, b.len);
    b.len = cm_blob_offset (CS, 3);
    assert_int_equal (s_decrypt (dek, &b, 3 * CS, out), -1);
    uint64_t o2 = cm_blob_offset (CS, 2);
    assert_int_equal (
        cryptod_chunk_open (dek, b.bytes, 2, true, b.bytes + o2, CS + 16, out), -1);
    /* ... while it opens in its right place.                           */
    assert_int_equal (
        cryptod_chunk_open (dek, b.bytes, 2, false, b.bytes + o2, CS + 16, out), 0);
    b.len = orig.len;

    /* Truncated last chunk (one byte short).                           */
    uint64_t o3 = cm_blob_offset (CS, 3);
    assert_int_equal (
        cryptod_chunk_open (dek, orig.bytes, 3, true, orig.bytes + o3, 7 + 16 - 1, out),
        -1);
    assert_int_equal (
        cryptod_chunk_open (dek, orig.bytes, 3, true, orig.bytes + o3, 7 + 16, out), 0);
    assert_memory_equal (out, pt + 3 * CS, 7);

    /* Chunk moved from another file (other DEK, other header), at the
       same index: fails under this file's header, with either DEK.     */
    s_blob_t other = s_encrypt (dek_b, FILE_B, pt, size);
    memcpy (b.bytes, orig.bytes, b.len);
    memcpy (b.bytes + o1, other.bytes + o1, CS + 16);
    assert_int_equal (s_decrypt (dek, &b, size, out), -1);
    assert_int_equal (s_decrypt (dek_b, &b, size, out), -1);
    /* Same DEK but another header (e.g. the blob of a re-upload).      */
    s_blob_t same_key = s_encrypt (dek, FILE_A, pt, size);
    memcpy (b.bytes + o1, same_key.bytes + o1, CS + 16);
    assert_int_equal (s_decrypt (dek, &b, size, out), -1);

    /* Header naming another file id (AAD changes).                     */
    memcpy (b.bytes, orig.bytes, b.len);
    assert_int_equal (cm_hex_decode (b.bytes + 23, 16, FILE_B), 0);
    assert_int_equal (cryptod_header_parse (b.bytes, 48, NULL, NULL), 0);
    assert_int_equal (s_decrypt (dek, &b, size, out), -1);

    /* Failed open leaves no plaintext in out.                          */
    memcpy (b.bytes, orig.bytes, b.len);
    b.bytes[o0 + 5] ^= 0x10;
    memset (out, 0x5A, CS);
    assert_int_equal (
        cryptod_chunk_open (dek, b.bytes, 0, false, b.bytes + o0, CS + 16, out), -1);
    assert_null (memmem (out, CS, pt + 16, 32));

    free (same_key.bytes);
    free (other.bytes);
    free (orig.bytes);
    free (b.bytes);
    free (pt);
    free (out);
}

/* Computed once with Python `cryptography` AESGCM (docs/format.md).   */
#define VEC_HEADER                                                                       \
    "53534852424c4f420101000000001000a0a1a2a3a4a5a600112233445566778899aabbccddeeff0000" \
    "00000000000000"
#define VEC1_CT                                                                          \
    "23092c3ec97389a36845ba5da0f9d578616453c9a8971166c0ab6f3a292dddce915f5d7209d5ed4b17" \
    "5a6e6d7c20d53cb6f5d1593f57c865093866"
#define VEC2_C0_SHA256 "f269ddeff19c2ed78b28957b637ed3fd9121b7bd7e1049e9e625d6fdf4768dca"
#define VEC2_C1        "8c68a4d0c35df001bdebd9f4934e7a17eb8d6b"
#define VEC_EMPTY      "0c7206b331a458fe6541707a8ed2fd90"

static void
test_vector (void **state)
{
    (void)state;
    uint8_t dek[32], hdr[48], out[CS + 16], back[CS];
    char hex[2 * (CS + 16) + 1];
    uint32_t cs;
    char id[33];
    for (int i = 0; i < 32; i++) {
        dek[i] = (uint8_t)i;
    }
    assert_int_equal (cm_hex_decode (hdr, 48, VEC_HEADER), 0);
    assert_int_equal (cryptod_header_parse (hdr, 48, &cs, id), 0);
    assert_int_equal (cs, 4096);
    assert_string_equal (id, FILE_A);

    /* Vector 1: one-chunk file.                                        */
    const char *pt1 = "The quick brown fox jumps over the lazy dog";
    size_t n1 = strlen (pt1);
    assert_int_equal (
        cryptod_chunk_seal (dek, hdr, 0, true, (const uint8_t *)pt1, n1, out), 0);
    cm_hex_encode (hex, out, n1 + 16);
    assert_string_equal (hex, VEC1_CT);
    assert_int_equal (cryptod_chunk_open (dek, hdr, 0, true, out, n1 + 16, back), 0);
    assert_memory_equal (back, pt1, n1);

    /* Vector 2: 4099-byte file, chunk 0 = bytes i mod 256, chunk 1 "end". */
    uint8_t pt0[CS];
    for (size_t i = 0; i < CS; i++) {
        pt0[i] = (uint8_t)(i % 256);
    }
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 0, false, pt0, CS, out), 0);
    char sha[65];
    cm_sha256_hex (sha, out, CS + 16);
    assert_string_equal (sha, VEC2_C0_SHA256);
    assert_int_equal (
        cryptod_chunk_seal (dek, hdr, 1, true, (const uint8_t *)"end", 3, out), 0);
    cm_hex_encode (hex, out, 3 + 16);
    assert_string_equal (hex, VEC2_C1);

    /* Vector 3: empty file = one empty last chunk (the tag alone).    */
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 0, true, NULL, 0, out), 0);
    cm_hex_encode (hex, out, 16);
    assert_string_equal (hex, VEC_EMPTY);
    assert_int_equal (cryptod_chunk_open (dek, hdr, 0, true, out, 16, back), 0);
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip_sizes), cmocka_unit_test (test_chunk_counts),
        cmocka_unit_test (test_header),           cmocka_unit_test (test_tamper),
        cmocka_unit_test (test_vector),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
