/*  cryptod_stream: round trips at the chunk boundaries, the tamper
    matrix of docs/format.md (each case must fail authentication, not
    just fail), layout helpers, and the docs' test vectors (blob chunks,
    a range read, the wrapped DEK and ring text), computed with Python's
    `cryptography` AESGCM rather than this code.                        */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "cm_util.h"
#include "cryptod_keyring.h"
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

/* How a read of a whole blob ended (s_read).                          */
enum { S_OK = 0, S_AUTH = -1, S_FORMAT = -2 };

/* Reads a blob as the docs' reader does: header checks, then the blob
   length against the plaintext size (from metadata, or with size < 0
   derived by walking the blob: every chunk but the last is CS + 16
   bytes), then every chunk. S_FORMAT when the bytes are refused before
   any decryption; S_AUTH when a chunk's GCM tag does not verify -- the
   structure was checked first with the same rules cryptod_chunk_open
   applies, so its -1 here is the authentication failure.              */
static int
s_read (const uint8_t dek[32], const uint8_t *blob, size_t len, int64_t size,
        uint8_t *out)
{
    uint32_t cs;
    if (len < CRYPTOD_HEADER_LEN ||
        cryptod_header_parse (blob, CRYPTOD_HEADER_LEN, &cs, NULL) != 0) {
        return S_FORMAT;
    }
    if (size < 0) {
        uint64_t body = len - CRYPTOD_HEADER_LEN, step = (uint64_t)cs + 16;
        uint64_t n = (body + step - 1) / step;
        if (n == 0 || body - (n - 1) * step < CRYPTOD_TAG_LEN) {
            return S_FORMAT;
        }
        size = (int64_t)(body - n * CRYPTOD_TAG_LEN);
    }
    uint64_t chunks = cryptod_chunk_count ((uint64_t)size, cs);
    if (chunks == 0 || cryptod_blob_size ((uint64_t)size, cs) != len) {
        return S_FORMAT;
    }
    for (uint64_t i = 0; i < chunks; i++) {
        bool last = i + 1 == chunks;
        size_t n = last ? (size_t)((uint64_t)size - i * cs) : cs;
        if (cryptod_chunk_open (dek, blob, i, last, blob + cm_blob_offset (cs, i),
                                n + CRYPTOD_TAG_LEN, out + i * cs) != 0) {
            return S_AUTH;
        }
    }
    return S_OK;
}

/* Both readers (size from metadata, and walking) refuse with a tag
   mismatch; `meta_size` is what the metadata would say.               */
static void
s_expect_auth (const uint8_t dek[32], const uint8_t *blob, size_t len, int64_t meta_size,
               uint8_t *out, const char *what, size_t k)
{
    int by_size = s_read (dek, blob, len, meta_size, out);
    int walked = s_read (dek, blob, len, -1, out);
    if (by_size != S_AUTH || walked != S_AUTH) {
        print_error ("%s (case %zu): with size %d, walking %d, expected %d\n", what, k,
                     by_size, walked, S_AUTH);
        fail ();
    }
}

/* The tamper matrix of docs/format.md. Every case must fail with the
   authentication error, not merely "fail".                            */
static void
test_tamper (void **state)
{
    (void)state;
    const size_t size = 3 * CS + 7; /* chunks: full, full, full, 7 bytes */
    const size_t size4 = 4 * CS;    /* four full chunks, the last one too */
    uint8_t dek[32], dek_b[32];
    assert_int_equal (cm_random (dek, sizeof dek), 0);
    assert_int_equal (cm_random (dek_b, sizeof dek_b), 0);
    uint8_t *pt = malloc (size4 + CS);
    uint8_t *out = malloc (size4 + 2 * CS);
    uint8_t *work = malloc (cryptod_blob_size (size4, CS) + 2 * (CS + 16));
    assert_non_null (pt);
    assert_non_null (out);
    assert_non_null (work);
    s_fill (pt, size4 + CS, 7);
    s_blob_t b = s_encrypt (dek, FILE_A, pt, size);
    s_blob_t b4 = s_encrypt (dek, FILE_A, pt, size4);
    assert_int_equal (b.chunks, 4);
    assert_int_equal (b4.chunks, 4);
    assert_int_equal (s_read (dek, b.bytes, b.len, (int64_t)size, out), S_OK);
    assert_memory_equal (out, pt, size);
    assert_int_equal (s_read (dek, b.bytes, b.len, -1, out), S_OK);
    assert_int_equal (s_read (dek, b4.bytes, b4.len, -1, out), S_OK);
    assert_memory_equal (out, pt, size4);

    /* 1. A flipped bit in any chunk: every byte of every chunk's
          ciphertext (first, middle and short last chunk) and every bit
          of every tag.                                                  */
    for (uint64_t i = 0; i < b.chunks; i++) {
        uint64_t off = cm_blob_offset (CS, i);
        size_t n = i + 1 == b.chunks ? size - i * CS : CS;
        for (size_t j = 0; j < n; j++) {
            memcpy (work, b.bytes, b.len);
            work[off + j] ^= (uint8_t)(1u << (j % 8));
            s_expect_auth (dek, work, b.len, (int64_t)size, out, "ciphertext bit",
                           (size_t)off + j);
        }
        for (size_t bit = 0; bit < 8 * CRYPTOD_TAG_LEN; bit++) {
            memcpy (work, b.bytes, b.len);
            work[off + n + bit / 8] ^= (uint8_t)(1u << (bit % 8));
            s_expect_auth (dek, work, b.len, (int64_t)size, out, "tag bit",
                           (size_t)i * 1000 + bit);
        }
    }

    /* 2. Every bit of the header, for a 4-chunk, a 1-chunk and an empty
          file. A header the checks refuse is a format error; one they
          accept (nonce prefix, file id, or chunk size bits giving another
          valid size) must fail authentication -- except that a changed
          chunk size in a multi-chunk file may already be refused by the
          blob length.                                                   */
    s_blob_t small = s_encrypt (dek, FILE_A, pt, 7);
    s_blob_t empty = s_encrypt (dek, FILE_A, pt, 0);
    const s_blob_t *hdr_cases[] = {&b, &small, &empty};
    const size_t hdr_sizes[] = {size, 7, 0};
    size_t accepted = 0;
    for (size_t c = 0; c < 3; c++) {
        const s_blob_t *x = hdr_cases[c];
        for (size_t bit = 0; bit < 8 * CRYPTOD_HEADER_LEN; bit++) {
            uint32_t cs2 = 0;
            memcpy (work, x->bytes, x->len);
            work[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            int walked = s_read (dek, work, x->len, -1, out);
            int by_size = s_read (dek, work, x->len, (int64_t)hdr_sizes[c], out);
            if (cryptod_header_parse (work, CRYPTOD_HEADER_LEN, &cs2, NULL) != 0) {
                assert_int_equal (walked, S_FORMAT);
                assert_int_equal (by_size, S_FORMAT);
                continue;
            }
            accepted++;
            if (cs2 == CS || x != &b) {
                /* Same layout: only the AAD and nonce tell.            */
                assert_int_equal (walked, S_AUTH);
                assert_int_equal (by_size, S_AUTH);
            } else {
                /* Another chunk size moves the chunk boundaries: the
                   blob length no longer fits it, or (4097, 4098: still 4
                   chunks) the chunks fail authentication.              */
                assert_true (walked == S_AUTH || walked == S_FORMAT);
                assert_true (by_size == S_AUTH || by_size == S_FORMAT);
            }
            /* The bytes the header checks let through: chunk size,
               nonce prefix, file id.                                   */
            assert_true (bit / 8 >= 12 && bit / 8 <= 38);
        }
    }
    /* prefix + file id = 23 bytes, all bits, in each of the 3 files.   */
    assert_true (accepted >= 3 * 23 * 8);

    /* 3. Swapped chunks: every pair of the 3 full chunks, and the last
          chunk with another one where all are the same length.          */
    const uint64_t pairs[][2] = {{0, 1}, {0, 2}, {1, 2}};
    for (size_t k = 0; k < 3; k++) {
        memcpy (work, b.bytes, b.len);
        uint64_t oa = cm_blob_offset (CS, pairs[k][0]),
                 ob = cm_blob_offset (CS, pairs[k][1]);
        memcpy (work + oa, b.bytes + ob, CS + 16);
        memcpy (work + ob, b.bytes + oa, CS + 16);
        s_expect_auth (dek, work, b.len, (int64_t)size, out, "swap", k);
    }
    const uint64_t pairs4[][2] = {{2, 3}, {0, 3}};
    for (size_t k = 0; k < 2; k++) {
        memcpy (work, b4.bytes, b4.len);
        uint64_t oa = cm_blob_offset (CS, pairs4[k][0]);
        uint64_t ob = cm_blob_offset (CS, pairs4[k][1]);
        memcpy (work + oa, b4.bytes + ob, CS + 16);
        memcpy (work + ob, b4.bytes + oa, CS + 16);
        s_expect_auth (dek, work, b4.len, (int64_t)size4, out, "swap with last", k);
    }

    /* 4. Truncation at every chunk boundary (the last chunk, or the last
          several, dropped): the new final chunk was sealed with last =
          0x00. The metadata is assumed edited to match (k chunks); with
          the true size the length check refuses first.                  */
    const s_blob_t *trunc_cases[] = {&b, &b4};
    for (size_t c = 0; c < 2; c++) {
        const s_blob_t *x = trunc_cases[c];
        size_t xsize = c == 0 ? size : size4;
        for (uint64_t k = 1; k < x->chunks; k++) {
            size_t cut = (size_t)cm_blob_offset (CS, k);
            s_expect_auth (dek, x->bytes, cut, (int64_t)(k * CS), out, "truncated", k);
            assert_int_equal (s_read (dek, x->bytes, cut, (int64_t)xsize, out), S_FORMAT);
        }
        /* All chunks dropped: a header alone is no file, not even empty. */
        assert_int_equal (s_read (dek, x->bytes, CRYPTOD_HEADER_LEN, -1, out), S_FORMAT);
        assert_int_equal (s_read (dek, x->bytes, CRYPTOD_HEADER_LEN, 0, out), S_FORMAT);
    }
    /* Cut inside a chunk (a partial write), the last one included.     */
    for (uint64_t k = 1; k <= b4.chunks; k++) {
        const size_t deltas[] = {1, 15, 16, 17, 100};
        for (size_t d = 0; d < 5; d++) {
            size_t cut = (size_t)cm_blob_offset (CS, k) - deltas[d];
            assert_int_equal (s_read (dek, b4.bytes, cut, -1, out), S_AUTH);
        }
    }
    /* The dropped chunk's predecessor opens only as not last.           */
    uint64_t o2 = cm_blob_offset (CS, 2);
    assert_int_equal (
        cryptod_chunk_open (dek, b.bytes, 2, true, b.bytes + o2, CS + 16, out), -1);
    assert_int_equal (
        cryptod_chunk_open (dek, b.bytes, 2, false, b.bytes + o2, CS + 16, out), 0);

    /* 5. Appended chunks: a copy of a chunk, a bare tag, and a chunk the
          attacker had sealed with the right DEK and header for the next
          index -- the old final chunk was sealed with last = 0x01.       */
    {
        size_t base = b4.len;
        /* copy of chunk 0 after a 4-full-chunk file                     */
        memcpy (work, b4.bytes, base);
        memcpy (work + base, b4.bytes + CRYPTOD_HEADER_LEN, CS + 16);
        s_expect_auth (dek, work, base + CS + 16, (int64_t)(size4 + CS), out, "appended",
                       0);
        /* a sealed chunk 4 (last) after chunk 3 (sealed last too)       */
        assert_int_equal (
            cryptod_chunk_seal (dek, b4.bytes, 4, true, pt + size4, 9, work + base), 0);
        s_expect_auth (dek, work, base + 9 + 16, (int64_t)(size4 + 9), out, "appended",
                       1);
        /* ... and the chunk 4 is authentic where it was sealed.          */
        assert_int_equal (
            cryptod_chunk_open (dek, b4.bytes, 4, true, work + base, 9 + 16, out), 0);
        /* a full chunk after the short last chunk of the 3*CS+7 file     */
        memcpy (work, b.bytes, b.len);
        memcpy (work + b.len, b.bytes + CRYPTOD_HEADER_LEN, CS + 16);
        s_expect_auth (dek, work, b.len + CS + 16, (int64_t)(size + CS), out, "appended",
                       2);
        /* a bare 16-byte tag (an "empty last chunk")                    */
        memcpy (work, b.bytes, b.len);
        memcpy (work + b.len, empty.bytes + CRYPTOD_HEADER_LEN, 16);
        assert_int_equal (s_read (dek, work, b.len + 16, -1, out), S_AUTH);
    }

    /* 6. A chunk moved from another file at the same index and length:
          other DEK and header; same DEK, other header (a re-upload: other
          nonce prefix); same DEK and prefix, other file id.              */
    uint64_t o1 = cm_blob_offset (CS, 1);
    s_blob_t other = s_encrypt (dek_b, FILE_B, pt, size);
    s_blob_t same_key = s_encrypt (dek, FILE_A, pt, size);
    s_blob_t same_prefix = s_encrypt (dek, FILE_B, pt, 0);
    memcpy (same_prefix.bytes + 16, b.bytes + 16, 7); /* FILE_B, b's prefix */
    uint8_t *sealed = malloc (CS + 16);
    assert_non_null (sealed);
    assert_int_equal (
        cryptod_chunk_seal (dek, same_prefix.bytes, 1, false, pt + CS, CS, sealed), 0);
    const uint8_t *moved[] = {other.bytes + o1, same_key.bytes + o1, sealed};
    for (size_t k = 0; k < 3; k++) {
        memcpy (work, b.bytes, b.len);
        memcpy (work + o1, moved[k], CS + 16);
        s_expect_auth (dek, work, b.len, (int64_t)size, out, "moved", k);
        s_expect_auth (dek_b, work, b.len, (int64_t)size, out, "moved, dek b", k);
    }

    /* 7. The header names another file id (the AAD changes); the header
          checks accept it.                                               */
    memcpy (work, b.bytes, b.len);
    assert_int_equal (cm_hex_decode (work + 23, 16, FILE_B), 0);
    assert_int_equal (cryptod_header_parse (work, 48, NULL, NULL), 0);
    s_expect_auth (dek, work, b.len, (int64_t)size, out, "other file id", 0);

    /* 8. The last flag on a middle chunk: opening chunk 1 as the final
          one, and a chunk sealed as final (same DEK, header, index) put
          in the middle.                                                  */
    assert_int_equal (
        cryptod_chunk_open (dek, b.bytes, 1, true, b.bytes + o1, CS + 16, out), -1);
    assert_int_equal (cryptod_chunk_open (dek, b4.bytes, 3, false,
                                          b4.bytes + cm_blob_offset (CS, 3), CS + 16,
                                          out),
                      -1);
    memcpy (work, b.bytes, b.len);
    assert_int_equal (cryptod_chunk_seal (dek, b.bytes, 1, true, pt + CS, CS, work + o1),
                      0);
    s_expect_auth (dek, work, b.len, (int64_t)size, out, "last flag in the middle", 0);

    /* 9. Wrong DEK: another one, and the right one with one bit flipped. */
    s_expect_auth (dek_b, b.bytes, b.len, (int64_t)size, out, "wrong dek", 0);
    for (size_t bit = 0; bit < 256; bit += 37) {
        uint8_t d2[32];
        memcpy (d2, dek, 32);
        d2[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        s_expect_auth (d2, b.bytes, b.len, (int64_t)size, out, "dek bit", bit);
        s_expect_auth (d2, empty.bytes, empty.len, 0, out, "dek bit, empty file", bit);
    }

    /* Truncated last chunk (one byte short) fails; whole it opens.      */
    uint64_t o3 = cm_blob_offset (CS, 3);
    assert_int_equal (
        cryptod_chunk_open (dek, b.bytes, 3, true, b.bytes + o3, 7 + 16 - 1, out), -1);
    assert_int_equal (
        cryptod_chunk_open (dek, b.bytes, 3, true, b.bytes + o3, 7 + 16, out), 0);
    assert_memory_equal (out, pt + 3 * CS, 7);

    /* A failed open leaves no plaintext in out.                         */
    memcpy (work, b.bytes, b.len);
    work[CRYPTOD_HEADER_LEN + 5] ^= 0x10;
    memset (out, 0x5A, CS);
    assert_int_equal (
        cryptod_chunk_open (dek, work, 0, false, work + CRYPTOD_HEADER_LEN, CS + 16, out),
        -1);
    assert_null (memmem (out, CS, pt + 16, 32));

    /* Nothing above changed the originals: they still read back.        */
    assert_int_equal (s_read (dek, b.bytes, b.len, (int64_t)size, out), S_OK);
    assert_memory_equal (out, pt, size);

    free (sealed);
    free (same_prefix.bytes);
    free (same_key.bytes);
    free (other.bytes);
    free (empty.bytes);
    free (small.bytes);
    free (b4.bytes);
    free (b.bytes);
    free (work);
    free (pt);
    free (out);
}

/* The test vectors of docs/format.md, computed with Python's
   `cryptography` AESGCM, not with this code (format_decrypt.py vectors
   checks the same values against the page).                           */
#define VEC_HEADER                                                                       \
    "53534852424c4f420101000000001000a0a1a2a3a4a5a600112233445566778899aabbccddeeff0000" \
    "00000000000000"
#define VEC1_CT                                                                          \
    "23092c3ec97389a36845ba5da0f9d578616453c9a8971166c0ab6f3a292dddce915f5d7209d5ed4b17" \
    "5a6e6d7c20d53cb6f5d1593f57c865093866"
#define VEC2_C0_SHA256 "f269ddeff19c2ed78b28957b637ed3fd9121b7bd7e1049e9e625d6fdf4768dca"
#define VEC2_C0_TAG    "58ac03b8e70a882b423e919c4ad7386c"
#define VEC2_C1        "8c68a4d0c35df001bdebd9f4934e7a17eb8d6b"
#define VEC2_SHA256    "998994f4eb89d4e6220341f80d65e3ef51b6de246e1f3a32d1820b385115811c"
#define VEC_EMPTY      "0c7206b331a458fe6541707a8ed2fd90"
/* Vectors 4-5: DEK bytes 31..0, prefix b0..b6, file id FILE_V4.        */
#define FILE_V4 "0123456789abcdeffedcba9876543210"
#define VEC4_HEADER                                                                      \
    "53534852424c4f420101000000001000b0b1b2b3b4b5b60123456789abcdeffedcba98765432100000" \
    "00000000000000"
#define VEC4_LEN    8197
#define VEC4_PT_SHA "dff769cbb24b06576c9726c9a82c2a4de9bd15bf047b077d0231e0033badd164"
static const char *const s_vec4_head[2] = {"083dabc35d463449a50b4b58e78e372a",
                                           "123d241740923f43322e27282918622e"};
static const char *const s_vec4_tag[2] = {"22d31e80c27acc8cf8dca6b2409795a5",
                                          "a8e514a6220e5f3de844b4a463b9bfe3"};
static const char *const s_vec4_sha[2] = {
    "4be76c284b3cb4cea9e299b6488864d90f141552c3ff4cf037ddbfb7e9790cd4",
    "b0d78304bd2e0f99586085106aa5272547c881274ade2b8e983d64581d6c46c4"};
#define VEC4_C2       "2a8edfb172787505b9ddc8ebc8a1cef777a15d5814"
#define VEC4_BLOB_LEN 8293
#define VEC4_BLOB_SHA "faf27bb1e7c94e81e61f000ed9200bf7e3a840d57e219ed0a368d5eb96e2461f"
#define VEC4_RANGE    "4a4b4c4d4e4f505152535455" /* plaintext 4090..4101 */
#define VEC5_BLOB                                                                        \
    "53534852424c4f420101000000001000b0b1b2b3b4b5b60123456789abcdeffedcba98765432100000" \
    "00000000000000e1be330b667b04bf2780b913e3a3b811"
/* Vector 6: vector 4's DEK wrapped by KEK 1a2b3c4d5e6f7081 (the ring's
   current one) with nonce 101112131415161718191a1b.                    */
#define VEC6_KEK_ID "1a2b3c4d5e6f7081"
#define VEC6_RING                                                                        \
    "# vector 6\n\n"                                                                     \
    "0f0e0d0c0b0a0908 "                                                                  \
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f\n"                 \
    "1a2b3c4d5e6f7081 "                                                                  \
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f\n"
#define VEC6_WRAPPED                                                                     \
    "101112131415161718191a1b662420cd4d8b0d3bb9b0c344f8ea1ea60a1989c50d1b43037f68ccd5d8" \
    "6bb3d05386b822324580f239df5635a1a9ae81"

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
    assert_int_equal (cryptod_blob_size (n1, cs), 107);

    /* Vector 2: 4099-byte file, chunk 0 = bytes i mod 256, chunk 1 "end". */
    uint8_t pt2[CS + 3];
    for (size_t i = 0; i < CS; i++) {
        pt2[i] = (uint8_t)(i % 256);
    }
    memcpy (pt2 + CS, "end", 3);
    s_blob_t b2 = {.len = cryptod_blob_size (sizeof pt2, cs)};
    assert_int_equal (b2.len, 4179);
    b2.bytes = malloc (b2.len);
    assert_non_null (b2.bytes);
    memcpy (b2.bytes, hdr, 48);
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 0, false, pt2, CS, b2.bytes + 48), 0);
    char sha[65];
    cm_sha256_hex (sha, b2.bytes + 48, CS + 16);
    assert_string_equal (sha, VEC2_C0_SHA256);
    cm_hex_encode (hex, b2.bytes + 48 + CS, 16);
    assert_string_equal (hex, VEC2_C0_TAG);
    uint8_t *c1 = b2.bytes + cm_blob_offset (cs, 1);
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 1, true, pt2 + CS, 3, c1), 0);
    cm_hex_encode (hex, c1, 3 + 16);
    assert_string_equal (hex, VEC2_C1);
    cm_sha256_hex (sha, b2.bytes, b2.len);
    assert_string_equal (sha, VEC2_SHA256);
    free (b2.bytes);

    /* Vector 3: empty file = one empty last chunk (the tag alone).    */
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 0, true, NULL, 0, out), 0);
    cm_hex_encode (hex, out, 16);
    assert_string_equal (hex, VEC_EMPTY);
    assert_int_equal (cryptod_chunk_open (dek, hdr, 0, true, out, 16, back), 0);
}

/* Vectors 4 and 5: three chunks (full, full, 5 bytes) as a whole blob,
   a range read of it, and an empty file's whole blob.                 */
static void
test_vector_multi (void **state)
{
    (void)state;
    uint8_t dek[32], hdr[48];
    char hex[2 * (CS + 16) + 1], sha[65], id[33];
    uint32_t cs;
    for (int i = 0; i < 32; i++) {
        dek[i] = (uint8_t)(31 - i);
    }
    assert_int_equal (cm_hex_decode (hdr, 48, VEC4_HEADER), 0);
    assert_int_equal (cryptod_header_parse (hdr, 48, &cs, id), 0);
    assert_int_equal (cs, 4096);
    assert_string_equal (id, FILE_V4);

    uint8_t *pt = malloc (VEC4_LEN);
    assert_non_null (pt);
    for (size_t k = 0; k < VEC4_LEN; k++) {
        pt[k] = (uint8_t)(k % 251);
    }
    cm_sha256_hex (sha, pt, VEC4_LEN);
    assert_string_equal (sha, VEC4_PT_SHA);
    uint64_t n = cryptod_chunk_count (VEC4_LEN, cs);
    assert_int_equal (n, 3);
    size_t len = cryptod_blob_size (VEC4_LEN, cs);
    assert_int_equal (len, VEC4_BLOB_LEN);
    uint8_t *blob = malloc (len);
    assert_non_null (blob);
    memcpy (blob, hdr, 48);
    for (uint64_t i = 0; i < n; i++) {
        bool last = i + 1 == n;
        size_t pn = last ? VEC4_LEN - i * cs : cs;
        assert_int_equal (cryptod_chunk_seal (dek, hdr, i, last, pt + i * cs, pn,
                                              blob + cm_blob_offset (cs, i)),
                          0);
    }
    assert_int_equal (cm_blob_offset (cs, 1), 4160);
    assert_int_equal (cm_blob_offset (cs, 2), 8272);
    for (size_t i = 0; i < 2; i++) {
        const uint8_t *c = blob + cm_blob_offset (cs, i);
        cm_hex_encode (hex, c, 16);
        assert_string_equal (hex, s_vec4_head[i]);
        cm_hex_encode (hex, c + cs, 16);
        assert_string_equal (hex, s_vec4_tag[i]);
        cm_sha256_hex (sha, c, cs + 16);
        assert_string_equal (sha, s_vec4_sha[i]);
    }
    cm_hex_encode (hex, blob + cm_blob_offset (cs, 2), 5 + 16);
    assert_string_equal (hex, VEC4_C2);
    cm_sha256_hex (sha, blob, len);
    assert_string_equal (sha, VEC4_BLOB_SHA);

    /* The range example: bytes 4090..4101 need chunks 0 and 1 only.    */
    uint64_t a = 4090, z = 4101;
    uint64_t first = cryptod_chunk_index (a, cs), lastc = cryptod_chunk_index (z, cs);
    assert_int_equal (first, 0);
    assert_int_equal (lastc, 1);
    uint8_t chunk_pt[CS], range[16];
    size_t got = 0;
    for (uint64_t i = first; i <= lastc; i++) {
        assert_int_equal (cryptod_chunk_open (dek, hdr, i, i + 1 == n,
                                              blob + cm_blob_offset (cs, i), cs + 16,
                                              chunk_pt),
                          0);
        size_t lo = i == first ? a % cs : 0;
        size_t hi = i == lastc ? z % cs : cs - 1;
        memcpy (range + got, chunk_pt + lo, hi - lo + 1);
        got += hi - lo + 1;
    }
    assert_int_equal (got, 12);
    cm_hex_encode (hex, range, got);
    assert_string_equal (hex, VEC4_RANGE);

    /* The whole blob reads back, with the size and by walking.         */
    uint8_t *back = malloc (VEC4_LEN + CS);
    assert_non_null (back);
    assert_int_equal (s_read (dek, blob, len, VEC4_LEN, back), S_OK);
    assert_memory_equal (back, pt, VEC4_LEN);
    assert_int_equal (s_read (dek, blob, len, -1, back), S_OK);
    assert_memory_equal (back, pt, VEC4_LEN);

    /* Vector 5: the empty file's blob, all 64 bytes.                   */
    uint8_t b5[64];
    memcpy (b5, hdr, 48);
    assert_int_equal (cryptod_blob_size (0, cs), 64);
    assert_int_equal (cryptod_chunk_seal (dek, hdr, 0, true, NULL, 0, b5 + 48), 0);
    cm_hex_encode (hex, b5, sizeof b5);
    assert_string_equal (hex, VEC5_BLOB);
    assert_int_equal (s_read (dek, b5, sizeof b5, 0, back), S_OK);

    free (back);
    free (blob);
    free (pt);
}

/* Vector 6: the wrapped DEK and the ring text. cryptod_dek_wrap draws
   its nonce at random, so the C side checks the unwrap direction (the
   wrap direction with a fixed nonce is checked by format_decrypt.py,
   and C-wrapped DEKs are unwrapped there by the format_independent
   test).                                                               */
static void
test_vector_wrap (void **state)
{
    (void)state;
    uint8_t wrapped[60], dek[32], want[32];
    for (int i = 0; i < 32; i++) {
        want[i] = (uint8_t)(31 - i);
    }
    assert_int_equal (cm_hex_decode (wrapped, sizeof wrapped, VEC6_WRAPPED), 0);
    cryptod_keyring_t *ring =
        cryptod_keyring_parse (VEC6_RING, strlen (VEC6_RING), false, "vector 6");
    assert_non_null (ring);
    assert_int_equal (cryptod_keyring_size (ring), 2);
    assert_string_equal (cryptod_keyring_current (ring), VEC6_KEK_ID);
    assert_int_equal (
        cryptod_dek_unwrap (ring, VEC6_KEK_ID, FILE_V4, wrapped, sizeof wrapped, dek), 0);
    assert_memory_equal (dek, want, 32);
    /* Bound to its file and to its KEK; any flipped bit fails.         */
    assert_int_equal (
        cryptod_dek_unwrap (ring, VEC6_KEK_ID, FILE_A, wrapped, sizeof wrapped, dek), -1);
    assert_int_equal (cryptod_dek_unwrap (ring, "0f0e0d0c0b0a0908", FILE_V4, wrapped,
                                          sizeof wrapped, dek),
                      -1);
    for (size_t k = 0; k < sizeof wrapped; k++) {
        wrapped[k] ^= 0x20;
        assert_int_equal (
            cryptod_dek_unwrap (ring, VEC6_KEK_ID, FILE_V4, wrapped, sizeof wrapped, dek),
            -1);
        wrapped[k] ^= 0x20;
    }
    /* A DEK wrapped by this code for this file unwraps to the same DEK
       (the fresh nonce makes the bytes differ from the vector's).       */
    char kek_id[17];
    uint8_t w2[60];
    size_t w2_len = sizeof w2;
    assert_int_equal (cryptod_dek_wrap (ring, FILE_V4, want, kek_id, w2, &w2_len), 0);
    assert_int_equal (w2_len, 60);
    assert_string_equal (kek_id, VEC6_KEK_ID);
    assert_memory_not_equal (w2, wrapped, 12);
    assert_int_equal (cryptod_dek_unwrap (ring, kek_id, FILE_V4, w2, w2_len, dek), 0);
    assert_memory_equal (dek, want, 32);
    cryptod_keyring_destroy (&ring);

    /* The same ring as a SAFESHARE_KEK_RING value unwraps the same.    */
    const char *env = " 0f0e0d0c0b0a0908 "
                      "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f ;"
                      "1a2b3c4d5e6f7081 "
                      "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f;";
    ring = cryptod_keyring_parse (env, strlen (env), true, "vector 6 env");
    assert_non_null (ring);
    assert_string_equal (cryptod_keyring_current (ring), VEC6_KEK_ID);
    assert_int_equal (
        cryptod_dek_unwrap (ring, VEC6_KEK_ID, FILE_V4, wrapped, sizeof wrapped, dek), 0);
    assert_memory_equal (dek, want, 32);
    cryptod_keyring_destroy (&ring);

    /* The ring line rules of docs/format.md: upper-case hex, blanks
       around the line, a short key are refused.                        */
    const char *bad[] = {
        "1A2B3C4D5E6F7081 "
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f\n",
        "1a2b3c4d5e6f7081 "
        "404142434445464748494A4B4C4D4E4F505152535455565758595a5b5c5d5e5f\n",
        " 1a2b3c4d5e6f7081 "
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f\n",
        "1a2b3c4d5e6f7081 "
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f \n",
        "1a2b3c4d5e6f7081 "
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e\n",
        "# only a comment\n",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ring = cryptod_keyring_parse (bad[k], strlen (bad[k]), false, "bad ring");
        assert_null (ring);
    }
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip_sizes), cmocka_unit_test (test_chunk_counts),
        cmocka_unit_test (test_header),           cmocka_unit_test (test_tamper),
        cmocka_unit_test (test_vector),           cmocka_unit_test (test_vector_multi),
        cmocka_unit_test (test_vector_wrap),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
