/*  unit_storage_disk -- the disk backend (append/commit/abort/read,
    offset rules, path safety) and the sweep over backend + metadata.   */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "stord_disk.h"
#include "stord_meta.h"
#include "stord_sweep.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *tmp;
    char blobs[512];
    stord_backend_t *be;
} fixture_t;

static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->tmp = cm_test_tmpdir ();
    assert_non_null (f->tmp);
    snprintf (f->blobs, sizeof f->blobs, "%s/blobs", f->tmp);
    f->be = stord_disk_new (f->blobs);
    assert_non_null (f->be);
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    stord_backend_destroy (&f->be);
    stord_backend_destroy (&f->be); /* safe twice */
    cm_test_rmrf (f->tmp);
    free (f->tmp);
    free (f);
    return 0;
}

static void
s_new_id (char id[33])
{
    assert_int_equal (cm_random_hex (id, 16), 0);
}

static void
s_path (fixture_t *f, const char *id, bool pending, char *out, size_t len)
{
    if (pending) {
        snprintf (out, len, "%s/tmp/%s.part", f->blobs, id);
    } else {
        snprintf (out, len, "%s/%.2s/%s", f->blobs, id, id);
    }
}

static bool
s_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}

static void
test_append_commit_read (void **state)
{
    fixture_t *f = *state;
    stord_backend_t *be = f->be;
    char id[33], part[1024], final[1024];
    s_new_id (id);
    s_path (f, id, true, part, sizeof part);
    s_path (f, id, false, final, sizeof final);
    uint64_t size = 0;

    assert_int_equal (stord_backend_begin (be, "t", id), STORD_OK);
    assert_int_equal (stord_backend_begin (be, "t", id), STORD_EXISTS);
    assert_true (s_exists (part));
    struct stat st;
    assert_int_equal (stat (part, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);

    assert_int_equal (stord_backend_append (be, "t", id, 0, "hello", 5, &size), STORD_OK);
    assert_int_equal (size, 5);
    assert_int_equal (stord_backend_append (be, "t", id, 5, " world", 6, &size),
                      STORD_OK);
    assert_int_equal (size, 11);
    /* A retry of the last append with the same bytes is fine ...        */
    size = 0;
    assert_int_equal (stord_backend_append (be, "t", id, 5, " world", 6, &size),
                      STORD_OK);
    assert_int_equal (size, 11);
    /* ... with other bytes, or any other offset, is not.                */
    assert_int_equal (stord_backend_append (be, "t", id, 5, " WORLD", 6, &size),
                      STORD_MISMATCH);
    assert_int_equal (stord_backend_append (be, "t", id, 3, "xx", 2, &size),
                      STORD_MISMATCH);
    assert_int_equal (stord_backend_append (be, "t", id, 12, "xx", 2, &size),
                      STORD_MISMATCH);
    assert_int_equal (stord_backend_append (be, "t", id, 0, "hello", 5, &size),
                      STORD_MISMATCH);
    uint64_t stored = 0;
    assert_int_equal (stord_backend_stat (be, "t", id, true, &stored, NULL), STORD_OK);
    assert_int_equal (stored, 11);

    /* Not readable before commit. */
    char buf[32];
    assert_int_equal (stord_backend_read (be, "t", id, 0, buf, 5), STORD_NOT_FOUND);
    assert_int_equal (stord_backend_commit (be, "t", id, 10), STORD_MISMATCH);
    assert_int_equal (stord_backend_commit (be, "t", id, 12), STORD_MISMATCH);
    assert_int_equal (stord_backend_commit (be, "t", id, 11), STORD_OK);
    assert_false (s_exists (part));
    assert_true (s_exists (final));
    assert_int_equal (stat (final, &st), 0);
    assert_int_equal (st.st_size, 11);

    memset (buf, 0, sizeof buf);
    assert_int_equal (stord_backend_read (be, "t", id, 0, buf, 11), STORD_OK);
    assert_memory_equal (buf, "hello world", 11);
    memset (buf, 0, sizeof buf);
    assert_int_equal (stord_backend_read (be, "t", id, 6, buf, 5), STORD_OK);
    assert_memory_equal (buf, "world", 5);
    assert_int_equal (stord_backend_read (be, "t", id, 8, buf, 10), STORD_MISMATCH);

    /* Committed blobs take no more appends. A repeated commit of the
       same size is OK (the metadata step of the first one may have
       failed); another size is not.                                    */
    assert_int_equal (stord_backend_append (be, "t", id, 11, "!", 1, &size),
                      STORD_NOT_FOUND);
    assert_int_equal (stord_backend_commit (be, "t", id, 11), STORD_OK);
    assert_int_equal (stord_backend_commit (be, "t", id, 12), STORD_MISMATCH);
    assert_int_equal (stord_backend_commit (be, "t", id, 10), STORD_MISMATCH);
    assert_false (s_exists (part));
    memset (buf, 0, sizeof buf);
    assert_int_equal (stord_backend_read (be, "t", id, 0, buf, 11), STORD_OK);
    assert_memory_equal (buf, "hello world", 11);

    assert_int_equal (stord_backend_remove (be, "t", id), STORD_OK);
    assert_false (s_exists (final));
    assert_int_equal (stord_backend_read (be, "t", id, 0, buf, 1), STORD_NOT_FOUND);
    assert_int_equal (stord_backend_remove (be, "t", id), STORD_NOT_FOUND);
    /* Neither pending nor committed: nothing to commit.                */
    assert_int_equal (stord_backend_commit (be, "t", id, 11), STORD_NOT_FOUND);
}

static void
test_large_append_retry (void **state)
{
    fixture_t *f = *state;
    char id[33];
    s_new_id (id);
    /* Bigger than the compare buffer, so the retry check loops.        */
    size_t len = 300 * 1024 + 7;
    uint8_t *data = malloc (len);
    assert_int_equal (cm_random (data, len), 0);
    uint64_t size = 0;
    assert_int_equal (stord_backend_begin (f->be, "t", id), STORD_OK);
    assert_int_equal (stord_backend_append (f->be, "t", id, 0, data, len, &size),
                      STORD_OK);
    assert_int_equal (stord_backend_append (f->be, "t", id, 0, data, len, &size),
                      STORD_OK);
    assert_int_equal (size, len);
    data[len - 1] ^= 1;
    assert_int_equal (stord_backend_append (f->be, "t", id, 0, data, len, &size),
                      STORD_MISMATCH);
    data[len - 1] ^= 1;
    assert_int_equal (stord_backend_commit (f->be, "t", id, len), STORD_OK);
    uint8_t *back = malloc (len);
    assert_int_equal (stord_backend_read (f->be, "t", id, 0, back, len), STORD_OK);
    assert_memory_equal (back, data, len);
    free (back);
    free (data);
}

static void
test_abort (void **state)
{
    fixture_t *f = *state;
    char id[33], part[1024];
    s_new_id (id);
    s_path (f, id, true, part, sizeof part);
    uint64_t size;
    assert_int_equal (stord_backend_begin (f->be, "t", id), STORD_OK);
    assert_int_equal (stord_backend_append (f->be, "t", id, 0, "abc", 3, &size),
                      STORD_OK);
    assert_int_equal (stord_backend_abort (f->be, "t", id), STORD_OK);
    assert_false (s_exists (part));
    assert_int_equal (stord_backend_append (f->be, "t", id, 3, "d", 1, &size),
                      STORD_NOT_FOUND);
    assert_int_equal (stord_backend_abort (f->be, "t", id), STORD_NOT_FOUND);
    assert_int_equal (stord_backend_commit (f->be, "t", id, 3), STORD_NOT_FOUND);
}

static void
test_ids_are_not_paths (void **state)
{
    fixture_t *f = *state;
    uint64_t size;
    char buf[4];
    const char *bad[] = {"../../../../../../tmp/x",
                         "0123456789ABCDEF0123456789ABCDEF", /* upper case */
                         "0123456789abcdef0123456789abcde",  /* 31 */
                         "0123456789abcdef0123456789abcdef0",
                         "",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal (stord_backend_begin (f->be, "t", bad[i]), STORD_ERROR);
        assert_int_equal (stord_backend_append (f->be, "t", bad[i], 0, "x", 1, &size),
                          STORD_ERROR);
        assert_int_equal (stord_backend_read (f->be, "t", bad[i], 0, buf, 1),
                          STORD_ERROR);
        assert_int_equal (stord_backend_remove (f->be, "t", bad[i]), STORD_ERROR);
        assert_int_equal (stord_backend_abort (f->be, "t", bad[i]), STORD_ERROR);
    }
    assert_int_equal (stord_backend_begin (f->be, "t", NULL), STORD_ERROR);
}

typedef struct {
    char ids[8][33];
    int n;
} seen_t;

static int
s_seen (const char *id, uint64_t mtime_s, void *arg)
{
    seen_t *s = arg;
    assert_true (mtime_s > 0);
    if (s->n < 8) {
        snprintf (s->ids[s->n++], 33, "%s", id);
    }
    return 0;
}

static void
test_scan (void **state)
{
    fixture_t *f = *state;
    char a[33], b[33], junk[1024];
    s_new_id (a);
    s_new_id (b);
    assert_int_equal (stord_backend_begin (f->be, "t", a), STORD_OK);
    assert_int_equal (stord_backend_begin (f->be, "t", b), STORD_OK);
    assert_int_equal (stord_backend_commit (f->be, "t", b, 0), STORD_OK);
    /* Names that are not ours are ignored.                             */
    snprintf (junk, sizeof junk, "%s/tmp/notes.txt", f->blobs);
    assert_int_equal (cm_file_write_atomic (junk, "x", 1, 0600), 0);
    seen_t pending = {0}, committed = {0};
    assert_int_equal (stord_backend_scan (f->be, "t", true, s_seen, &pending), 0);
    assert_int_equal (stord_backend_scan (f->be, "t", false, s_seen, &committed), 0);
    assert_int_equal (pending.n, 1);
    assert_string_equal (pending.ids[0], a);
    assert_int_equal (committed.n, 1);
    assert_string_equal (committed.ids[0], b);
}

/* ---- sweep ------------------------------------------------------------ */

static void
s_age (const char *path, uint64_t when)
{
    struct timespec ts[2] = {{(time_t)when, 0}, {(time_t)when, 0}};
    assert_int_equal (utimensat (AT_FDCWD, path, ts, 0), 0);
}

static void
s_row_of (stord_meta_t *meta, const char *id, uint64_t created_at, const char *instance)
{
    stord_file_t file = {0};
    snprintf (file.instance, sizeof file.instance, "%s", instance);
    snprintf (file.id, sizeof file.id, "%s", id);
    snprintf (file.name, sizeof file.name, "n");
    snprintf (file.content_type, sizeof file.content_type, "a/b");
    snprintf (file.owner_id, sizeof file.owner_id, "%s", id);
    file.chunk_size = 4096;
    file.created_at = created_at;
    assert_int_equal (stord_meta_file_insert (meta, "t", &file), CM_OK);
}

static void
s_row (stord_meta_t *meta, const char *id, uint64_t created_at)
{
    s_row_of (meta, id, created_at, "");
}

static void
s_commit_row (stord_meta_t *meta, const char *id, uint64_t blob_size, uint64_t now)
{
    stord_file_t file = {0};
    snprintf (file.id, sizeof file.id, "%s", id);
    memset (file.sha256, 'a', 64);
    file.chunk_count = 1;
    snprintf (file.kek_id, sizeof file.kek_id, "k1");
    file.wrapped_dek_len = 4;
    file.blob_size = blob_size;
    assert_int_equal (stord_meta_file_commit (meta, "t", &file, now), CM_OK);
}

static stord_state_t
s_state (stord_meta_t *meta, const char *id)
{
    stord_file_t file;
    cm_status_t st = stord_meta_file_get (meta, "t", id, false, &file);
    assert_true (st == CM_OK || st == CM_NOT_FOUND);
    return st == CM_OK ? file.state : STORD_STATE_NONE;
}

static void
test_sweep (void **state)
{
    fixture_t *f = *state;
    char url[600];
    snprintf (url, sizeof url, "sqlite:%s/storage.db", f->tmp);
    stord_meta_t *meta = stord_meta_new (url);
    assert_non_null (meta);
    stord_backend_t *be = f->be;
    uint64_t now = cm_now_s (), old = now - 2 * 3600, size;
    char stale[33], fresh[33], rowless[33], orphan[33], kept[33], crashed[33], stray[33];
    char oldrow_fresh_part[33], path[1024];

    /* A pending upload nobody appended to for two hours.               */
    s_new_id (stale);
    s_row (meta, stale, old);
    assert_int_equal (stord_backend_begin (be, "t", stale), STORD_OK);
    s_path (f, stale, true, path, sizeof path);
    s_age (path, old);
    /* A fresh pending upload.                                           */
    s_new_id (fresh);
    s_row (meta, fresh, now);
    assert_int_equal (stord_backend_begin (be, "t", fresh), STORD_OK);
    /* An old row whose part is still being written (slow upload).      */
    s_new_id (oldrow_fresh_part);
    s_row (meta, oldrow_fresh_part, old);
    assert_int_equal (stord_backend_begin (be, "t", oldrow_fresh_part), STORD_OK);
    /* An old pending row without any blob.                              */
    s_new_id (rowless);
    s_row (meta, rowless, old);
    /* A committed-path blob with no row (delete crashed half way).     */
    s_new_id (orphan);
    assert_int_equal (stord_backend_begin (be, "t", orphan), STORD_OK);
    assert_int_equal (stord_backend_append (be, "t", orphan, 0, "x", 1, &size), STORD_OK);
    assert_int_equal (stord_backend_commit (be, "t", orphan, 1), STORD_OK);
    /* A committed file: never touched.                                  */
    s_new_id (kept);
    s_row (meta, kept, old);
    assert_int_equal (stord_backend_begin (be, "t", kept), STORD_OK);
    assert_int_equal (stord_backend_append (be, "t", kept, 0, "ok", 2, &size), STORD_OK);
    assert_int_equal (stord_backend_commit (be, "t", kept, 2), STORD_OK);
    s_commit_row (meta, kept, 2, old);
    s_path (f, kept, false, path, sizeof path);
    s_age (path, old);
    /* Crash between rename and the row update: old pending row, blob at
       the committed path.                                               */
    s_new_id (crashed);
    s_row (meta, crashed, old);
    assert_int_equal (stord_backend_begin (be, "t", crashed), STORD_OK);
    assert_int_equal (stord_backend_commit (be, "t", crashed, 0), STORD_OK);
    /* An old part with no row at all.                                   */
    s_new_id (stray);
    assert_int_equal (stord_backend_begin (be, "t", stray), STORD_OK);
    s_path (f, stray, true, path, sizeof path);
    s_age (path, old);

    stord_sweep_stats_t stats;
    assert_int_equal (stord_sweep (meta, be, now, 3600, NULL, &stats), 0);

    assert_int_equal (s_state (meta, stale), STORD_STATE_NONE);
    assert_int_equal (stord_backend_stat (be, "t", stale, true, NULL, NULL),
                      STORD_NOT_FOUND);
    assert_int_equal (s_state (meta, fresh), STORD_STATE_PENDING);
    assert_int_equal (stord_backend_stat (be, "t", fresh, true, NULL, NULL), STORD_OK);
    assert_int_equal (s_state (meta, oldrow_fresh_part), STORD_STATE_PENDING);
    assert_int_equal (stord_backend_stat (be, "t", oldrow_fresh_part, true, NULL, NULL),
                      STORD_OK);
    assert_int_equal (s_state (meta, rowless), STORD_STATE_NONE);
    assert_int_equal (stord_backend_stat (be, "t", orphan, false, NULL, NULL),
                      STORD_NOT_FOUND);
    assert_int_equal (s_state (meta, kept), STORD_STATE_COMMITTED);
    char buf[2];
    assert_int_equal (stord_backend_read (be, "t", kept, 0, buf, 2), STORD_OK);
    assert_memory_equal (buf, "ok", 2);
    assert_int_equal (s_state (meta, crashed), STORD_STATE_NONE);
    assert_int_equal (stord_backend_stat (be, "t", crashed, false, NULL, NULL),
                      STORD_NOT_FOUND);
    assert_int_equal (stord_backend_stat (be, "t", stray, true, NULL, NULL),
                      STORD_NOT_FOUND);
    assert_int_equal (stats.rows_removed, 3);    /* stale, rowless, crashed */
    assert_int_equal (stats.parts_removed, 3);   /* stale, crashed, stray   */
    assert_int_equal (stats.orphans_removed, 1); /* orphan                  */

    /* A second sweep finds nothing more.                                */
    assert_int_equal (stord_sweep (meta, be, now, 3600, NULL, &stats), 0);
    assert_int_equal (stats.rows_removed + stats.parts_removed + stats.orphans_removed,
                      0);
    stord_meta_destroy (&meta);
}

/* A restart (instance "a" again) drops the uploads "a" had pending,
   however young, and a young part without a row; another replica's
   ("b") young upload stays.                                          */
static void
test_restart_sweep (void **state)
{
    fixture_t *f = *state;
    char url[600];
    snprintf (url, sizeof url, "sqlite:%s/storage.db", f->tmp);
    stord_meta_t *meta = stord_meta_new (url);
    assert_non_null (meta);
    stord_backend_t *be = f->be;
    uint64_t now = cm_now_s (), size;
    char mine[33], mine_rowonly[33], theirs[33], stray[33], legacy[33];
    s_new_id (mine);
    s_row_of (meta, mine, now, "a");
    assert_int_equal (stord_backend_begin (be, "t", mine), STORD_OK);
    assert_int_equal (stord_backend_append (be, "t", mine, 0, "xy", 2, &size), STORD_OK);
    s_new_id (mine_rowonly);
    s_row_of (meta, mine_rowonly, now, "a");
    s_new_id (theirs);
    s_row_of (meta, theirs, now, "b");
    assert_int_equal (stord_backend_begin (be, "t", theirs), STORD_OK);
    s_new_id (legacy); /* from before instance names: the age rule */
    s_row_of (meta, legacy, now, "");
    assert_int_equal (stord_backend_begin (be, "t", legacy), STORD_OK);
    s_new_id (stray);
    assert_int_equal (stord_backend_begin (be, "t", stray), STORD_OK);

    stord_sweep_stats_t stats;
    assert_int_equal (stord_sweep (meta, be, now, 3600, "a", &stats), 0);
    assert_int_equal (s_state (meta, mine), STORD_STATE_NONE);
    assert_int_equal (stord_backend_stat (be, "t", mine, true, NULL, NULL),
                      STORD_NOT_FOUND);
    assert_int_equal (s_state (meta, mine_rowonly), STORD_STATE_NONE);
    assert_int_equal (stord_backend_stat (be, "t", stray, true, NULL, NULL),
                      STORD_NOT_FOUND);
    assert_int_equal (s_state (meta, theirs), STORD_STATE_PENDING);
    assert_int_equal (stord_backend_stat (be, "t", theirs, true, NULL, NULL), STORD_OK);
    assert_int_equal (s_state (meta, legacy), STORD_STATE_PENDING);
    assert_int_equal (stats.rows_removed, 2);  /* mine, mine_rowonly */
    assert_int_equal (stats.parts_removed, 2); /* mine, stray        */
    /* "b" may commit after all.                                         */
    assert_int_equal (stord_backend_append (be, "t", theirs, 0, "ok", 2, &size),
                      STORD_OK);
    assert_int_equal (stord_backend_commit (be, "t", theirs, 2), STORD_OK);
    stord_meta_destroy (&meta);
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_append_commit_read, setup, teardown),
        cmocka_unit_test_setup_teardown (test_large_append_retry, setup, teardown),
        cmocka_unit_test_setup_teardown (test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown (test_ids_are_not_paths, setup, teardown),
        cmocka_unit_test_setup_teardown (test_scan, setup, teardown),
        cmocka_unit_test_setup_teardown (test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown (test_restart_sweep, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
