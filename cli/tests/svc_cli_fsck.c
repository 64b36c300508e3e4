/*  svc_cli_fsck -- the real `safeshare fsck` on real stored files (made
    as svc_cli_keys makes them: the same core code the stack runs): a
    clean store, each kind of damage (a flipped byte in a chunk, a
    truncated blob, a missing blob, a wrong sha256 in the row), orphan
    blobs and a stale pending upload, then --repair: the orphans and the
    stale upload go, the damaged committed files stay and are reported.
    The storage DB is SQLite, or a fresh PostgreSQL schema per test with
    SAFESHARE_TEST_DB=pg (svc_cli_fsck_pg).

    usage: svc_cli_fsck PATH/TO/safeshare                               */
#include "cli_test_proc.h"
#include "cli_test_store.h"
#include "cm_db.h"
#include "cm_layout.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "cryptod_keyring.h"
#include "cryptod_stream.h"
#include "stord_disk.h"
#include "stord_meta.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#define CHUNK CLI_TEST_CHUNK

static const char *s_bin;

typedef cli_test_store_t s_fixture_t;

/* `safeshare` with the arguments after err, up to a NULL; out / err
   may be NULL (then dropped).                                         */
/* `safeshare` with the arguments after err, up to a NULL. */
#define s_run(out, err, ...) cli_test_runl (s_bin, (out), (err), __VA_ARGS__)

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    cli_test_store_init (f);
    setenv ("SAFESHARE_BLOB_DIR", f->blobs, 1);
    cli_test_store_make (f, s_bin);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    cli_test_store_fini (f);
    free (f);
    return 0;
}

/* A pending upload (row created `age` s ago unless no_row; a partial
   blob last written `age` s ago).                                      */
static void
s_pending (s_fixture_t *f, uint64_t age, bool row, char id[33])
{
    stord_meta_t *meta = stord_meta_new (f->url);
    stord_backend_t *blobs = stord_disk_new (f->blobs);
    assert_non_null (meta);
    assert_non_null (blobs);
    stord_file_t file;
    cli_test_store_row (&file, "partial.bin", age);
    if (row) {
        assert_int_equal (stord_meta_file_insert (meta, "t", &file), CM_OK);
    }
    uint8_t junk[100] = {1, 2, 3};
    uint64_t size = 0;
    assert_int_equal (stord_backend_begin (blobs, "t", file.id), STORD_OK);
    assert_int_equal (
        stord_backend_append (blobs, "t", file.id, 0, junk, sizeof junk, &size),
        STORD_OK);
    char part[800];
    snprintf (part, sizeof part, "%s/tmp/%s.part", f->blobs, file.id);
    struct timeval tv[2] = {{.tv_sec = (time_t)(cm_now_s () - age)},
                            {.tv_sec = (time_t)(cm_now_s () - age)}};
    assert_int_equal (utimes (part, tv), 0);
    memcpy (id, file.id, 33);
    stord_backend_destroy (&blobs);
    stord_meta_destroy (&meta);
}

static void
s_blob_path (s_fixture_t *f, const char *id, char *path, size_t len)
{
    snprintf (path, len, "%s/%.2s/%s", f->blobs, id, id);
}

static void
test_clean (void **state)
{
    s_fixture_t *f = *state;
    const size_t lens[] = {3 * CHUNK + 1234, 0, 17};
    char id[33];
    for (int i = 0; i < 3; i++) {
        uint8_t *p = cli_test_plain (lens[i], (unsigned)i);
        cli_test_store_file (f, p, lens[i], id);
        free (p);
    }
    /* A young upload (inside the grace period) is no problem.         */
    s_pending (f, 10, true, id);
    char *out, *err;
    assert_int_equal (s_run (&out, &err, "fsck", NULL), 0);
    assert_string_equal (
        out, "fsck: 3 committed files checked, 0 problems found, 0 removed\n");
    cli_test_free2 (&out, &err);
    /* --grace 0: now it is stale.                                      */
    assert_int_equal (s_run (&out, &err, "fsck", "--grace", "0", NULL), 1);
    assert_true (cli_test_has_line (out, "stale pending upload %s\n", id));
    cli_test_free2 (&out, &err);
    /* Configuration errors: exit 2.                                    */
    if (strncmp (f->url, "sqlite:", 7) == 0) {
        char url[700];
        snprintf (url, sizeof url, "sqlite:%s/nope.db", f->dir);
        setenv ("SAFESHARE_STORAGE_DB", url, 1);
        assert_int_equal (s_run (&out, &err, "fsck", NULL), 2);
        assert_non_null (strstr (err, "no storage database at"));
        cli_test_free2 (&out, &err);
        setenv ("SAFESHARE_STORAGE_DB", f->url, 1);
    }
    assert_int_equal (s_run (&out, &err, "fsck", "extra", NULL), 2);
    cli_test_free2 (&out, &err);
}

static void
test_damage_repair (void **state)
{
    s_fixture_t *f = *state;
    enum { GOOD, FLIPPED, SHORT, MISSING, BADSUM, N };
    char ids[N][33], path[800];
    size_t len = 4 * CHUNK + 99;
    uint8_t *plain = cli_test_plain (len, 7);
    for (int i = 0; i < N; i++) {
        cli_test_store_file (f, plain, len, ids[i]);
    }
    /* A flipped byte in chunk 3.                                       */
    s_blob_path (f, ids[FLIPPED], path, sizeof path);
    int fd = open (path, O_RDWR);
    assert_true (fd >= 0);
    off_t off = (off_t)cm_blob_offset (CHUNK, 3) + 50;
    uint8_t b;
    assert_int_equal (pread (fd, &b, 1, off), 1);
    b ^= 0x01;
    assert_int_equal (pwrite (fd, &b, 1, off), 1);
    close (fd);
    /* A truncated blob; a missing blob; a wrong sha256 in the row.     */
    s_blob_path (f, ids[SHORT], path, sizeof path);
    assert_int_equal (truncate (path, (off_t)cm_blob_size (len, CHUNK) - 1), 0);
    s_blob_path (f, ids[MISSING], path, sizeof path);
    assert_int_equal (unlink (path), 0);
    cm_db_t *db = cm_db_open (f->url);
    assert_non_null (db);
    const char *p[] = {
        ids[BADSUM], "0000000000000000000000000000000000000000000000000000000000000000"};
    assert_int_equal (cm_db_exec (db, "UPDATE files SET sha256 = $2 WHERE id = $1", 2, p),
                      CM_DB_OK);
    cm_db_destroy (&db);
    /* An orphan committed-path blob (a copy under an id with no row);
       an idle partial blob with no row; a stale pending upload; a
       young one (left alone).                                          */
    char orphan[33], orphan_path[800], lone[33], stale[33], young[33];
    assert_int_equal (cm_random_hex (orphan, 16), 0);
    char shard[800];
    snprintf (shard, sizeof shard, "%s/%.2s", f->blobs, orphan);
    mkdir (shard, 0700);
    s_blob_path (f, orphan, orphan_path, sizeof orphan_path);
    s_blob_path (f, ids[GOOD], path, sizeof path);
    size_t blen = 0;
    char *bytes = cli_test_slurp (path, &blen);
    assert_non_null (bytes);
    FILE *fp = fopen (orphan_path, "wb");
    assert_non_null (fp);
    assert_int_equal (fwrite (bytes, 1, blen, fp), blen);
    fclose (fp);
    free (bytes);
    s_pending (f, 7200, false, lone);
    s_pending (f, 7200, true, stale);
    s_pending (f, 60, true, young);

    char *out, *err;
    assert_int_equal (s_run (&out, &err, "fsck", NULL), 1);
    assert_true (cli_test_has_line (out, "file %s: chunk 3 does not authenticate\n",
                                    ids[FLIPPED]));
    assert_true (cli_test_has_line (out, "file %s: blob size differs from the layout",
                                    ids[SHORT]));
    assert_true (cli_test_has_line (out, "file %s: missing blob\n", ids[MISSING]));
    assert_true (cli_test_has_line (out, "file %s: sha256 mismatch\n", ids[BADSUM]));
    assert_null (strstr (out, ids[GOOD]));
    assert_null (strstr (out, young));
    assert_true (cli_test_has_line (out, "orphan blob %s\n", orphan_path));
    snprintf (path, sizeof path, "%s/tmp/%s.part", f->blobs, lone);
    assert_true (cli_test_has_line (out, "orphan blob %s\n", path));
    assert_true (cli_test_has_line (out, "stale pending upload %s\n", stale));
    assert_true (cli_test_has_line (
        out, "%s", "fsck: 5 committed files checked, 7 problems found, 0 removed\n"));
    assert_null (strstr (out, "removed orphan"));
    cli_test_free2 (&out, &err);
    assert_int_equal (access (orphan_path, F_OK), 0); /* nothing removed */

    assert_int_equal (s_run (&out, &err, "fsck", "--repair", NULL), 1);
    assert_true (cli_test_has_line (out, "removed orphan blob %s\n", orphan_path));
    assert_true (cli_test_has_line (out, "removed orphan blob %s\n", path));
    assert_true (cli_test_has_line (out, "removed stale pending upload %s\n", stale));
    assert_true (cli_test_has_line (
        out, "%s", "fsck: 5 committed files checked, 7 problems found, 3 removed\n"));
    cli_test_free2 (&out, &err);
    assert_int_equal (access (orphan_path, F_OK), -1);
    assert_int_equal (access (path, F_OK), -1);
    snprintf (path, sizeof path, "%s/tmp/%s.part", f->blobs, stale);
    assert_int_equal (access (path, F_OK), -1);
    snprintf (path, sizeof path, "%s/tmp/%s.part", f->blobs, young);
    assert_int_equal (access (path, F_OK), 0);
    stord_meta_t *meta = stord_meta_new (f->url);
    stord_file_t row;
    assert_int_equal (stord_meta_file_get (meta, "t", stale, false, &row), CM_NOT_FOUND);
    assert_int_equal (stord_meta_file_get (meta, "t", young, false, &row), CM_OK);
    /* The damaged committed files keep their rows and blobs.           */
    for (int i = 0; i < N; i++) {
        assert_int_equal (stord_meta_file_get (meta, "t", ids[i], true, &row), CM_OK);
        s_blob_path (f, ids[i], path, sizeof path);
        assert_int_equal (access (path, F_OK), i == MISSING ? -1 : 0);
    }
    stord_meta_destroy (&meta);

    /* Again: only the committed damage is left, still reported.        */
    assert_int_equal (s_run (&out, &err, "fsck", "--repair", NULL), 1);
    assert_true (cli_test_has_line (out, "file %s: chunk 3 does not authenticate\n",
                                    ids[FLIPPED]));
    assert_true (cli_test_has_line (out, "file %s: missing blob\n", ids[MISSING]));
    assert_null (strstr (out, "orphan"));
    assert_null (strstr (out, "stale"));
    assert_true (cli_test_has_line (
        out, "%s", "fsck: 5 committed files checked, 4 problems found, 0 removed\n"));
    cli_test_free2 (&out, &err);
    free (plain);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: svc_cli_fsck PATH/TO/safeshare\n");
        return 2;
    }
    s_bin = argv[1];
    cm_log_init ("test", CM_LOG_ERROR);
    unsetenv ("SAFESHARE_KEY_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_clean, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_damage_repair, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
