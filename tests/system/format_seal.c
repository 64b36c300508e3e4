/*  format_seal -- test tool: seals a random file with our C code, for the
    independent Python decryptor (format_decrypt.py check) to open.

      format_seal DIR SIZE CHUNK_SIZE

    Writes into DIR (which must exist):
      kek.ring  a fresh ring of two KEKs (cryptod_keyring_generate twice,
                so the reader has to pick the current one)
      plain     SIZE random bytes
      blob      header + chunks (cryptod_header_build, cryptod_chunk_seal)
      meta      "file_id=<32 hex>\nkek_id=<16 hex>\nwrapped_dek=<120 hex>\n
                size=<SIZE>\n" (cryptod_dek_wrap with the current KEK)
    Exit 0 on success, 1 on failure, 2 on usage.                        */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "cm_log.h"
#include "cm_util.h"
#include "cryptod_keyring.h"
#include "cryptod_stream.h"

static int
s_usage (void)
{
    fprintf (stderr, "usage: format_seal DIR SIZE CHUNK_SIZE\n");
    return 2;
}

static bool
s_parse_u64 (const char *s, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull (s, &end, 10);
    if (errno || !end || *end || end == s || s[0] == '-' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static FILE *
s_open (const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (snprintf (path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        return NULL;
    }
    FILE *f = fopen (path, "wbx");
    if (!f) {
        fprintf (stderr, "format_seal: fopen %s: %s\n", path, strerror (errno));
    }
    return f;
}

int
main (int argc, char **argv)
{
    int rc = 1;
    uint64_t size = 0, cs = 0;
    uint8_t dek[CRYPTOD_DEK_LEN];
    uint8_t header[CRYPTOD_HEADER_LEN];
    uint8_t wrapped[CRYPTOD_WRAPPED_DEK_LEN];
    size_t wrapped_len = sizeof wrapped;
    char file_id[33], kek_id[17], id_a[17], id_b[17];
    char wrapped_hex[2 * CRYPTOD_WRAPPED_DEK_LEN + 1];
    char ring_path[PATH_MAX];
    uint8_t *pt = NULL, *ct = NULL;
    FILE *plain = NULL, *blob = NULL, *meta = NULL;
    cryptod_keyring_t *ring = NULL;

    if (argc != 4 || !s_parse_u64 (argv[2], (uint64_t)1 << 40, &size) ||
        !s_parse_u64 (argv[3], CRYPTOD_MAX_CHUNK, &cs)) {
        return s_usage ();
    }
    cm_log_init ("format_seal", CM_LOG_WARN);
    const char *dir = argv[1];
    uint64_t chunks = cryptod_chunk_count (size, (uint32_t)cs);
    if (chunks == 0) {
        fprintf (stderr, "format_seal: bad size or chunk size\n");
        return 2;
    }
    if (snprintf (ring_path, sizeof ring_path, "%s/%s", dir, CRYPTOD_KEYRING_FILE) >=
        (int)sizeof ring_path) {
        return s_usage ();
    }
    if (cryptod_keyring_generate (ring_path, id_a) != 0 ||
        cryptod_keyring_generate (ring_path, id_b) != 0) {
        fprintf (stderr, "format_seal: cryptod_keyring_generate failed\n");
        goto cleanup;
    }
    ring = cryptod_keyring_load (ring_path);
    if (!ring || cryptod_keyring_size (ring) != 2 ||
        strcmp (cryptod_keyring_current (ring), id_b) != 0) {
        fprintf (stderr, "format_seal: cryptod_keyring_load failed\n");
        goto cleanup;
    }
    if (cm_random_hex (file_id, 16) != 0 || cm_random (dek, sizeof dek) != 0 ||
        cryptod_header_build (header, (uint32_t)cs, file_id) != 0 ||
        cryptod_dek_wrap (ring, file_id, dek, kek_id, wrapped, &wrapped_len) != 0) {
        fprintf (stderr, "format_seal: key or header setup failed\n");
        goto cleanup;
    }
    pt = malloc (cs);
    ct = malloc (cs + CRYPTOD_TAG_LEN);
    plain = s_open (dir, "plain");
    blob = s_open (dir, "blob");
    meta = s_open (dir, "meta");
    if (!pt || !ct || !plain || !blob || !meta) {
        goto cleanup;
    }
    if (fwrite (header, 1, sizeof header, blob) != sizeof header) {
        goto cleanup;
    }
    for (uint64_t i = 0; i < chunks; i++) {
        bool last = i + 1 == chunks;
        size_t n = last ? (size_t)(size - i * cs) : (size_t)cs;
        if (cm_random (pt, n) != 0 ||
            cryptod_chunk_seal (dek, header, i, last, pt, n, ct) != 0 ||
            fwrite (pt, 1, n, plain) != n ||
            fwrite (ct, 1, n + CRYPTOD_TAG_LEN, blob) != n + CRYPTOD_TAG_LEN) {
            fprintf (stderr, "format_seal: chunk %llu failed\n", (unsigned long long)i);
            goto cleanup;
        }
    }
    cm_hex_encode (wrapped_hex, wrapped, wrapped_len);
    if (fprintf (meta, "file_id=%s\nkek_id=%s\nwrapped_dek=%s\nsize=%llu\n", file_id,
                 kek_id, wrapped_hex, (unsigned long long)size) < 0) {
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (plain && fclose (plain) != 0) {
        rc = 1;
    }
    if (blob && fclose (blob) != 0) {
        rc = 1;
    }
    if (meta && fclose (meta) != 0) {
        rc = 1;
    }
    OPENSSL_cleanse (dek, sizeof dek);
    if (pt) {
        OPENSSL_cleanse (pt, cs);
    }
    free (pt);
    free (ct);
    cryptod_keyring_destroy (&ring);
    return rc;
}
