/*  cli_test_store -- stored files for the CLI's system tests.          */
#include "cli_test_store.h"
#include "cli_test_proc.h"
#include "cm_config.h"
#include "cm_layout.h"
#include "cm_status.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "cryptod_stream.h"
#include "stord_disk.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The blob backend as storage opens it: the blob dir, or S3 when the
   test set SAFESHARE_STORAGE_BACKEND=s3 and SAFESHARE_S3_*.           */
static stord_backend_t *
s_blobs (cli_test_store_t *st)
{
    const char *backend = getenv ("SAFESHARE_STORAGE_BACKEND");
    if (!backend || strcmp (backend, "s3") != 0) {
        return stord_disk_new (st->blobs);
    }
    char err[512] = "";
    cm_config_t *config = cm_config_load (NULL, err, sizeof err);
    stord_backend_t *blobs =
        config ? stord_backend_open (config, true, err, sizeof err) : NULL;
    if (!blobs) {
        fprintf (stderr, "blob backend: %s\n", err);
    }
    cm_config_destroy (&config);
    return blobs;
}

void
cli_test_store_init (cli_test_store_t *st)
{
    memset (st, 0, sizeof *st);
    st->dir = cm_test_tmpdir ();
    assert_non_null (st->dir);
    snprintf (st->url, sizeof st->url, "sqlite:%s/storage.db", st->dir);
    assert_int_not_equal (cm_test_pg_schema_url (st->schema, st->url, sizeof st->url),
                          -1);
    snprintf (st->ring, sizeof st->ring, "%s/keys/kek.ring", st->dir);
    snprintf (st->blobs, sizeof st->blobs, "%s/blobs", st->dir);
    setenv ("SAFESHARE_DATA_DIR", st->dir, 1);
    setenv ("SAFESHARE_STORAGE_DB", st->url, 1);
    unsetenv ("SAFESHARE_KEK_RING");
}

void
cli_test_store_make (cli_test_store_t *st, const char *binary)
{
    char *argv[] = {"safeshare", "keys", "generate", NULL};
    assert_int_equal (cli_test_run (binary, argv, NULL, NULL, NULL), 0);
    stord_meta_t *meta = stord_meta_new (st->url);
    assert_non_null (meta);
    stord_meta_destroy (&meta);
    stord_backend_t *blobs = s_blobs (st);
    assert_non_null (blobs);
    stord_backend_destroy (&blobs);
}

void
cli_test_store_fini (cli_test_store_t *st)
{
    unsetenv ("SAFESHARE_KEK_RING");
    assert_int_equal (cm_test_pg_schema_drop (st->schema), 0);
    cm_test_rmrf (st->dir);
    free (st->dir);
    st->dir = NULL;
}

uint8_t *
cli_test_plain (size_t len, unsigned seed)
{
    uint8_t *p = malloc (len ? len : 1);
    assert_non_null (p);
    uint32_t x = 2463534242u ^ seed;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

void
cli_test_store_row (stord_file_t *file, const char *name, uint64_t age)
{
    memset (file, 0, sizeof *file);
    assert_int_equal (cm_random_hex (file->id, 16), 0);
    snprintf (file->name, sizeof file->name, "%s", name);
    snprintf (file->content_type, sizeof file->content_type, "application/octet-stream");
    snprintf (file->owner_id, sizeof file->owner_id, CLI_TEST_OWNER);
    file->chunk_size = CLI_TEST_CHUNK;
    file->created_at = cm_now_s () - age;
}

void
cli_test_store_with (cli_test_store_t *st, const cryptod_keyring_t *ring,
                     const uint8_t *plain, size_t len, char id[33])
{
    const uint32_t chunk = CLI_TEST_CHUNK;
    stord_meta_t *meta = stord_meta_new (st->url);
    stord_backend_t *blobs = s_blobs (st);
    assert_non_null (meta);
    assert_non_null (blobs);
    stord_file_t file;
    cli_test_store_row (&file, "report.bin", 5);
    assert_int_equal (stord_meta_file_insert (meta, "t", &file), CM_OK);

    uint8_t dek[32], header[CRYPTOD_HEADER_LEN];
    assert_int_equal (cm_random (dek, sizeof dek), 0);
    file.wrapped_dek_len = sizeof file.wrapped_dek;
    assert_int_equal (cryptod_dek_wrap (ring, file.id, dek, file.kek_id, file.wrapped_dek,
                                        &file.wrapped_dek_len),
                      0);
    assert_int_equal (cryptod_header_build (header, chunk, file.id), 0);
    assert_int_equal (stord_backend_begin (blobs, "t", file.id), STORD_OK);
    uint64_t size = 0;
    assert_int_equal (
        stord_backend_append (blobs, "t", file.id, 0, header, sizeof header, &size),
        STORD_OK);
    uint64_t n = cm_blob_chunk_count (len, chunk);
    uint8_t *ct = malloc (chunk + CRYPTOD_TAG_LEN);
    assert_non_null (ct);
    for (uint64_t i = 0; i < n; i++) {
        bool last = i + 1 == n;
        size_t pl = last ? len - i * chunk : chunk;
        assert_int_equal (
            cryptod_chunk_seal (dek, header, i, last, plain + i * chunk, pl, ct), 0);
        assert_int_equal (stord_backend_append (blobs, "t", file.id, size, ct,
                                                pl + CRYPTOD_TAG_LEN, &size),
                          STORD_OK);
    }
    free (ct);
    assert_int_equal (size, cm_blob_size (len, chunk));
    assert_int_equal (stord_backend_commit (blobs, "t", file.id, size), STORD_OK);
    file.size = len;
    cm_sha256_hex (file.sha256, plain, len);
    file.chunk_count = n;
    file.blob_size = size;
    assert_int_equal (stord_meta_file_commit (meta, "t", &file, cm_now_s ()), CM_OK);
    memcpy (id, file.id, 33);
    stord_backend_destroy (&blobs);
    stord_meta_destroy (&meta);
}

void
cli_test_store_file (cli_test_store_t *st, const uint8_t *plain, size_t len, char id[33])
{
    cryptod_keyring_t *ring = cryptod_keyring_load (st->ring);
    assert_non_null (ring);
    cli_test_store_with (st, ring, plain, len, id);
    cryptod_keyring_destroy (&ring);
}

bool
cli_test_has_line (const char *out, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (line, sizeof line, fmt, ap);
    va_end (ap);
    bool ok = strstr (out, line) != NULL;
    if (!ok) {
        fprintf (stderr, "missing line: %s\nin:\n%s\n", line, out);
    }
    return ok;
}
