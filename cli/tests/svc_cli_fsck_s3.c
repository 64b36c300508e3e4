/*  svc_cli_fsck_s3 -- the real `safeshare fsck` and `safeshare decrypt`
    with SAFESHARE_STORAGE_BACKEND=s3: files stored in an S3 server that
    checks signatures (moto; scripts/test.sh exports SAFESHARE_TEST_S3_*,
    without which this FAILS), under a fresh key prefix per test. A clean
    store checks clean and decrypts to the plaintext; then a flipped
    byte, a missing object, an orphan object and an abandoned multipart
    upload are reported, and --repair removes the orphan and the upload
    and keeps the damaged files. Where moto is missing the server is
    s3rver 3.7.1, which cannot list multipart uploads: the abandoned
    upload prints `NOT CHECKED on s3rver: ...`, fsck is asserted to say
    on stderr that it could not list them, and the rest is asserted.

    usage: svc_cli_fsck_s3 PATH/TO/safeshare                            */
#include "cli_test_proc.h"
#include "cli_test_store.h"
#include "cm_config.h"
#include "cm_layout.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "stord_backend.h"
#include "stord_meta.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define CHUNK CLI_TEST_CHUNK

static const char *s_bin;
/* The peer is s3rver (SAFESHARE_TEST_S3_SERVER), not moto.             */
static bool s_s3rver;

/* `safeshare` with the arguments after err, up to a NULL. */
#define s_run(out, err, ...) cli_test_runl (s_bin, (out), (err), __VA_ARGS__)

/* SAFESHARE_S3_* from the test server's SAFESHARE_TEST_S3_*.          */
static bool
s_s3_env (void)
{
    static const char *keys[][2] = {
        {"SAFESHARE_TEST_S3_ENDPOINT", "SAFESHARE_S3_ENDPOINT"},
        {"SAFESHARE_TEST_S3_BUCKET", "SAFESHARE_S3_BUCKET"},
        {"SAFESHARE_TEST_S3_REGION", "SAFESHARE_S3_REGION"},
        {"SAFESHARE_TEST_S3_ACCESS_KEY", "SAFESHARE_S3_ACCESS_KEY"},
        {"SAFESHARE_TEST_S3_SECRET_KEY", "SAFESHARE_S3_SECRET_KEY"}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = getenv (keys[i][0]);
        if (!v || !*v) {
            fprintf (stderr, "FAIL: %s is not set: run scripts/test.sh\n", keys[i][0]);
            return false;
        }
        setenv (keys[i][1], v, 1);
    }
    const char *server = getenv ("SAFESHARE_TEST_S3_SERVER");
    if (!server || (strcmp (server, "moto") != 0 && strcmp (server, "s3rver") != 0)) {
        fprintf (stderr, "FAIL: SAFESHARE_TEST_S3_SERVER must be moto or s3rver\n");
        return false;
    }
    s_s3rver = strcmp (server, "s3rver") == 0;
    char rnd[9], prefix[32];
    if (cm_random_hex (rnd, 4) != 0) {
        return false;
    }
    snprintf (prefix, sizeof prefix, "f%s/blobs/", rnd);
    setenv ("SAFESHARE_S3_PREFIX", prefix, 1);
    setenv ("SAFESHARE_STORAGE_BACKEND", "s3", 1);
    return true;
}

static int
s_setup (void **state)
{
    cli_test_store_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    assert_true (s_s3_env ());
    cli_test_store_init (f);
    cli_test_store_make (f, s_bin);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    cli_test_store_t *f = *state;
    cli_test_store_fini (f);
    free (f);
    return 0;
}

/* The S3 backend as the CLI opens it (same env).                       */
static stord_backend_t *
s_s3 (void)
{
    char err[512] = "";
    cm_config_t *config = cm_config_load (NULL, err, sizeof err);
    assert_non_null (config);
    stord_backend_t *be = stord_backend_open (config, false, err, sizeof err);
    if (!be) {
        fprintf (stderr, "%s\n", err);
    }
    assert_non_null (be);
    cm_config_destroy (&config);
    return be;
}

/* id's object with its bytes replaced by len bytes of data.            */
static void
s_put (stord_backend_t *be, const char *id, const uint8_t *data, size_t len)
{
    uint64_t size = 0;
    assert_int_equal (stord_backend_begin (be, "t", id), STORD_OK);
    assert_int_equal (stord_backend_append (be, "t", id, 0, data, len, &size), STORD_OK);
    assert_int_equal (stord_backend_commit (be, "t", id, len), STORD_OK);
}

static void
test_fsck_decrypt_s3 (void **state)
{
    cli_test_store_t *f = *state;
    enum { GOOD, FLIPPED, MISSING, N };
    char ids[N][33];
    size_t len = 4 * CHUNK + 99;
    uint8_t *plain = cli_test_plain (len, 3);
    for (int i = 0; i < N; i++) {
        cli_test_store_file (f, plain, len, ids[i]);
    }
    char *out, *err;
    assert_int_equal (s_run (&out, &err, "fsck", NULL), 0);
    assert_string_equal (
        out, "fsck: 3 committed files checked, 0 problems found, 0 removed\n");
    cli_test_free2 (&out, &err);
    /* decrypt reads the object back from S3.                           */
    char path[800];
    snprintf (path, sizeof path, "%s/out.bin", f->dir);
    assert_int_equal (
        s_run (&out, &err, "decrypt", "--file", ids[GOOD], "--out", path, NULL), 0);
    cli_test_free2 (&out, &err);
    size_t got = 0;
    char *back = cli_test_slurp (path, &got);
    assert_non_null (back);
    assert_int_equal (got, len);
    assert_memory_equal (back, plain, len);
    free (back);

    /* Damage: a flipped byte in chunk 3, a missing object, an orphan
       object (a copy under an id with no row), an abandoned multipart
       upload with no row (a dead storage's).                          */
    stord_backend_t *be = s_s3 ();
    size_t blen = cm_blob_size (len, CHUNK);
    uint8_t *blob = malloc (blen);
    assert_non_null (blob);
    assert_int_equal (stord_backend_read (be, "t", ids[FLIPPED], 0, blob, blen),
                      STORD_OK);
    blob[cm_blob_offset (CHUNK, 3) + 50] ^= 0x01;
    assert_int_equal (stord_backend_remove (be, "t", ids[FLIPPED]), STORD_OK);
    s_put (be, ids[FLIPPED], blob, blen);
    blob[cm_blob_offset (CHUNK, 3) + 50] ^= 0x01;
    assert_int_equal (stord_backend_remove (be, "t", ids[MISSING]), STORD_OK);
    char orphan[33], lone[33];
    assert_int_equal (cm_random_hex (orphan, 16), 0);
    s_put (be, orphan, blob, blen);
    assert_int_equal (cm_random_hex (lone, 16), 0);
    size_t big = 9u * 1024 * 1024; /* over a part (8 MiB): S3 has the upload */
    uint8_t *junk = calloc (1, big);
    assert_non_null (junk);
    uint64_t size = 0;
    assert_int_equal (stord_backend_begin (be, "t", lone), STORD_OK);
    assert_int_equal (stord_backend_append (be, "t", lone, 0, junk, big, &size),
                      STORD_OK);
    free (junk);
    stord_backend_destroy (&be); /* the upload's process is gone */

    /* --grace 0: moto dates uploads 2010, S3 proper by their start.
       s3rver cannot list the upload: fsck says so and finds one less. */
    if (s_s3rver) {
        printf ("NOT CHECKED on s3rver: fsck reports and --repair removes an abandoned "
                "multipart upload (s3rver 3.7.1 answers ListMultipartUploads 501 "
                "NotImplemented)\n");
    }
    assert_int_equal (s_run (&out, &err, "fsck", "--grace", "0", NULL), 1);
    assert_true (cli_test_has_line (out, "file %s: chunk 3 does not authenticate\n",
                                    ids[FLIPPED]));
    assert_true (cli_test_has_line (out, "file %s: missing blob\n", ids[MISSING]));
    assert_null (strstr (out, ids[GOOD]));
    assert_true (cli_test_has_line (out, "%s", orphan));
    if (s_s3rver) {
        assert_null (strstr (out, lone));
        assert_true (cli_test_has_line (err, "%s", "refused ListMultipartUploads"));
        assert_true (cli_test_has_line (
            out, "%s", "fsck: 3 committed files checked, 3 problems found, 0 removed\n"));
    } else {
        assert_true (cli_test_has_line (out, "%s", lone));
        assert_true (cli_test_has_line (
            out, "%s", "fsck: 3 committed files checked, 4 problems found, 0 removed\n"));
    }
    cli_test_free2 (&out, &err);

    assert_int_equal (s_run (&out, &err, "fsck", "--grace", "0", "--repair", NULL), 1);
    assert_true (cli_test_has_line (out, "%s",
                                    s_s3rver
                                        ? "fsck: 3 committed files checked, 3 problems "
                                          "found, 1 removed\n"
                                        : "fsck: 3 committed files checked, 4 problems "
                                          "found, 2 removed\n"));
    cli_test_free2 (&out, &err);
    be = s_s3 ();
    assert_int_equal (stord_backend_stat (be, "t", orphan, false, NULL, NULL),
                      STORD_NOT_FOUND);
    assert_int_equal (stord_backend_abort (be, "t", lone), STORD_NOT_FOUND);
    assert_int_equal (stord_backend_stat (be, "t", ids[FLIPPED], false, NULL, NULL),
                      STORD_OK);
    stord_backend_destroy (&be);
    /* Again: only the committed damage is left.                        */
    assert_int_equal (s_run (&out, &err, "fsck", "--grace", "0", NULL), 1);
    assert_true (cli_test_has_line (
        out, "%s", "fsck: 3 committed files checked, 2 problems found, 0 removed\n"));
    cli_test_free2 (&out, &err);
    free (blob);
    free (plain);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: svc_cli_fsck_s3 PATH/TO/safeshare\n");
        return 2;
    }
    s_bin = argv[1];
    cm_log_init ("test", CM_LOG_ERROR);
    unsetenv ("SAFESHARE_KEY_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_fsck_decrypt_s3, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
