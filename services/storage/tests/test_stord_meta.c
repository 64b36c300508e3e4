/*  unit_storage_meta -- file metadata and share links on a temp SQLite
    (or a PostgreSQL schema with SAFESHARE_TEST_DB=pg): visibility, list
    paging and cursors, link redeem counting and its refusal codes, a
    one-time link raced by several processes; DEK counts per KEK, the
    rewrap batches and the conditional replace (raced too), and that a
    delete leaves no wrapped DEK in the SQLite files.                   */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cm_db.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "stord_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OWNER "0123456789abcdef0123456789abcdef"

typedef struct {
    char *tmp;
    char url[700];
    stord_meta_t *meta;
    char schema[40]; /* PostgreSQL run: this test's schema */
} fixture_t;

static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    f->tmp = cm_test_tmpdir ();
    assert_non_null (f->tmp);
    snprintf (f->url, sizeof f->url, "sqlite:%s/storage.db", f->tmp);
    assert_int_not_equal (cm_test_pg_schema_url (f->schema, f->url, sizeof f->url), -1);
    f->meta = stord_meta_new (f->url);
    assert_non_null (f->meta);
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    stord_meta_destroy (&f->meta);
    stord_meta_destroy (&f->meta);
    assert_int_equal (cm_test_pg_schema_drop (f->schema), 0);
    cm_test_rmrf (f->tmp);
    free (f->tmp);
    free (f);
    return 0;
}

static void
s_pending (stord_meta_t *meta, char id[33], uint64_t created_at)
{
    stord_file_t file = {0};
    assert_int_equal (cm_random_hex (file.id, 16), 0);
    snprintf (file.name, sizeof file.name, "Quarterly report \xc3\xbc.pptx");
    snprintf (file.content_type, sizeof file.content_type, "application/octet-stream");
    snprintf (file.owner_id, sizeof file.owner_id, OWNER);
    file.chunk_size = 1048576;
    file.created_at = created_at;
    assert_int_equal (stord_meta_file_insert (meta, "t", &file), CM_OK);
    memcpy (id, file.id, 33);
}

static void
s_commit (stord_meta_t *meta, const char *id, uint64_t now)
{
    stord_file_t file = {0};
    snprintf (file.id, sizeof file.id, "%s", id);
    file.size = 5000000;
    snprintf (file.sha256, sizeof file.sha256, "%064d", 7);
    file.chunk_count = 5;
    snprintf (file.kek_id, sizeof file.kek_id, "00112233aabbccdd");
    file.wrapped_dek_len = 60;
    for (int i = 0; i < 60; i++) {
        file.wrapped_dek[i] = (uint8_t)(i * 7);
    }
    file.blob_size = 5000000 + 48 + 5 * 16;
    assert_int_equal (stord_meta_file_commit (meta, "t", &file, now), CM_OK);
}

static void
s_committed (stord_meta_t *meta, char id[33], uint64_t now)
{
    s_pending (meta, id, now - 10);
    s_commit (meta, id, now);
}

static void
test_file_lifecycle (void **state)
{
    fixture_t *f = *state;
    char id[33];
    stord_file_t file;
    s_pending (f->meta, id, 1000);

    /* Pending: visible to the service itself, not to readers.          */
    assert_int_equal (stord_meta_file_get (f->meta, "t", id, false, &file), CM_OK);
    assert_int_equal (file.state, STORD_STATE_PENDING);
    assert_int_equal (stord_meta_file_get (f->meta, "t", id, true, &file), CM_NOT_FOUND);

    /* Same id twice is a conflict.                                      */
    stord_file_t dup = file;
    assert_int_equal (stord_meta_file_insert (f->meta, "t", &dup), CM_CONFLICT);

    s_commit (f->meta, id, 2000);
    memset (&file, 0, sizeof file);
    assert_int_equal (stord_meta_file_get (f->meta, "t", id, true, &file), CM_OK);
    assert_int_equal (file.state, STORD_STATE_COMMITTED);
    assert_string_equal (file.id, id);
    assert_string_equal (file.name, "Quarterly report \xc3\xbc.pptx");
    assert_string_equal (file.content_type, "application/octet-stream");
    assert_string_equal (file.owner_id, OWNER);
    assert_int_equal (file.size, 5000000);
    assert_int_equal (file.chunk_size, 1048576);
    assert_int_equal (file.chunk_count, 5);
    assert_int_equal (file.created_at, 2000); /* the moment it became visible */
    assert_string_equal (file.kek_id, "00112233aabbccdd");
    assert_int_equal (file.wrapped_dek_len, 60);
    for (int i = 0; i < 60; i++) {
        assert_int_equal (file.wrapped_dek[i], (uint8_t)(i * 7));
    }
    assert_int_equal (file.blob_size, 5000000 + 48 + 80);

    /* No second commit; abort-style delete does not touch committed.   */
    stord_file_t again = file;
    assert_int_equal (stord_meta_file_commit (f->meta, "t", &again, 3000), CM_NOT_FOUND);
    assert_int_equal (stord_meta_file_delete (f->meta, "t", id, STORD_STATE_PENDING),
                      CM_NOT_FOUND);
    assert_int_equal (stord_meta_file_delete (f->meta, "t", id, STORD_STATE_COMMITTED),
                      CM_OK);
    assert_int_equal (stord_meta_file_get (f->meta, "t", id, false, &file), CM_NOT_FOUND);
    assert_int_equal (stord_meta_file_delete (f->meta, "t", id, STORD_STATE_COMMITTED),
                      CM_NOT_FOUND);
    /* Unknown ids. */
    assert_int_equal (stord_meta_file_commit (f->meta, "t", &again, 3000), CM_NOT_FOUND);
}

static void
test_list_paging (void **state)
{
    fixture_t *f = *state;
    /* 7 committed files, several sharing a second (id breaks the tie),
       plus a pending one that must never show.                         */
    const uint64_t times[7] = {100, 200, 200, 200, 300, 300, 400};
    char ids[7][33], pending[33];
    for (int i = 0; i < 7; i++) {
        s_committed (f->meta, ids[i], times[i]);
    }
    s_pending (f->meta, pending, 500);

    char cursor[STORD_CURSOR_MAX + 1] = "";
    char seen[7][33];
    size_t total = 0, pages = 0;
    uint64_t last_t = UINT64_MAX;
    char last_id[33] = "gggggggggggggggggggggggggggggggg";
    do {
        stord_file_t *files = NULL;
        size_t count = 0;
        char next[STORD_CURSOR_MAX + 1];
        assert_int_equal (
            stord_meta_file_list (f->meta, "t", cursor, 3, &files, &count, next), CM_OK);
        pages++;
        assert_true (count <= 3);
        for (size_t i = 0; i < count; i++) {
            /* Strictly newest first: (created_at desc, id desc).       */
            assert_true (
                files[i].created_at < last_t ||
                (files[i].created_at == last_t && strcmp (files[i].id, last_id) < 0));
            assert_int_equal (files[i].state, STORD_STATE_COMMITTED);
            assert_string_not_equal (files[i].id, pending);
            last_t = files[i].created_at;
            memcpy (last_id, files[i].id, 33);
            assert_true (total < 7);
            memcpy (seen[total++], files[i].id, 33);
        }
        free (files);
        snprintf (cursor, sizeof cursor, "%s", next);
    } while (cursor[0]);
    assert_int_equal (total, 7);
    assert_int_equal (pages, 3);
    for (int i = 0; i < 7; i++) {
        int found = 0;
        for (int j = 0; j < 7; j++) {
            found += strcmp (ids[i], seen[j]) == 0;
        }
        assert_int_equal (found, 1);
    }

    /* Exactly a page: no next cursor. */
    stord_file_t *files = NULL;
    size_t count = 0;
    char next[STORD_CURSOR_MAX + 1];
    assert_int_equal (stord_meta_file_list (f->meta, "t", "", 7, &files, &count, next),
                      CM_OK);
    assert_int_equal (count, 7);
    assert_string_equal (next, "");
    assert_int_equal (files[0].created_at, 400);
    free (files);

    /* Bad cursors and limits. */
    const char *bad[] = {"abc",
                         "123",
                         "123.",
                         ".0123456789abcdef0123456789abcdef",
                         "-1.0123456789abcdef0123456789abcdef",
                         "1.0123456789ABCDEF0123456789ABCDEF",
                         "1.0123456789abcdef0123456789abcdef0",
                         "99999999999999999999.0123456789abcdef0123456789abcdef",
                         "1 .0123456789abcdef0123456789abcdef",
                         "1.0123456789abcdef0123456789abcde'",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal (
            stord_meta_file_list (f->meta, "t", bad[i], 3, &files, &count, next),
            CM_INVALID);
        assert_null (files);
    }
    assert_int_equal (stord_meta_file_list (f->meta, "t", "", 0, &files, &count, next),
                      CM_INVALID);
    assert_int_equal (stord_meta_file_list (f->meta, "t", "", 201, &files, &count, next),
                      CM_INVALID);
}

static void
test_links (void **state)
{
    fixture_t *f = *state;
    char id[33], pending[33], link_id[33], token[STORD_TOKEN_MAX + 1];
    uint64_t expires_at = 0;
    stord_file_t file;
    uint32_t left = 99;
    const char *code = NULL;
    s_committed (f->meta, id, 1000);
    s_pending (f->meta, pending, 1000);

    /* Only committed files get links. */
    assert_int_equal (stord_meta_link_create (f->meta, "t", pending, OWNER, 1000, 60, 1,
                                              link_id, token, &expires_at),
                      CM_NOT_FOUND);
    assert_int_equal (stord_meta_link_create (f->meta, "t",
                                              "ffffffffffffffffffffffffffffffff", OWNER,
                                              1000, 60, 1, link_id, token, &expires_at),
                      CM_NOT_FOUND);

    /* Two downloads, then exhausted. */
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1000, 60, 2,
                                              link_id, token, &expires_at),
                      CM_OK);
    assert_int_equal (expires_at, 1060);
    assert_true (cm_is_hex_id (link_id, 32));
    assert_int_equal (strlen (token), 43); /* 32 random bytes, base64url */
    assert_int_equal (strspn (token,
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789-_"),
                      43);
    assert_int_equal (
        stord_meta_link_redeem (f->meta, "t", token, 1001, &file, &left, &code), CM_OK);
    assert_string_equal (file.id, id);
    assert_int_equal (left, 1);
    assert_int_equal (
        stord_meta_link_redeem (f->meta, "t", token, 1002, &file, &left, &code), CM_OK);
    assert_int_equal (left, 0);
    assert_int_equal (
        stord_meta_link_redeem (f->meta, "t", token, 1003, &file, &left, &code), CM_GONE);
    assert_string_equal (code, "link_exhausted");

    /* Only the hash is stored: the token appears nowhere in the DB.    */
    cm_db_t *db = cm_db_open (f->url);
    assert_non_null (db);
    char hash[65];
    cm_sha256_hex (hash, token, strlen (token));
    const char *p[] = {token, hash};
    cm_db_res_t *res = cm_db_query (
        db,
        "SELECT count(*) FROM links WHERE id = $1 OR token_hash = $1 OR creator_id = $1",
        1, p);
    assert_string_equal (cm_db_res_get (res, 0, 0), "0");
    cm_db_res_free (&res);
    res = cm_db_query (db, "SELECT downloads FROM links WHERE token_hash = $2", 2, p);
    assert_string_equal (cm_db_res_get (res, 0, 0), "2");
    cm_db_res_free (&res);
    cm_db_destroy (&db);

    /* Expiry is exclusive at expires_at. */
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1000, 10, 5,
                                              link_id, token, &expires_at),
                      CM_OK);
    assert_int_equal (
        stord_meta_link_redeem (f->meta, "t", token, 1009, &file, &left, &code), CM_OK);
    assert_int_equal (left, 4);
    assert_int_equal (
        stord_meta_link_redeem (f->meta, "t", token, 1010, &file, &left, &code), CM_GONE);
    assert_string_equal (code, "link_expired");

    /* Revoked beats everything else. */
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1000, 60, 5,
                                              link_id, token, &expires_at),
                      CM_OK);
    assert_int_equal (stord_meta_link_revoke (f->meta, "t", link_id), CM_OK);
    assert_int_equal (
        stord_meta_link_redeem (f->meta, "t", token, 1001, &file, &left, &code), CM_GONE);
    assert_string_equal (code, "link_revoked");
    assert_int_equal (
        stord_meta_link_revoke (f->meta, "t", "ffffffffffffffffffffffffffffffff"),
        CM_NOT_FOUND);

    /* Unknown token. */
    assert_int_equal (
        stord_meta_link_redeem (f->meta, "t", "nosuchtoken", 1001, &file, &left, &code),
        CM_NOT_FOUND);
    assert_string_equal (code, "link_not_found");

    /* Deleting the file takes its links with it. */
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1000, 60, 5,
                                              link_id, token, &expires_at),
                      CM_OK);
    assert_int_equal (stord_meta_file_delete (f->meta, "t", id, STORD_STATE_COMMITTED),
                      CM_OK);
    assert_int_equal (
        stord_meta_link_redeem (f->meta, "t", token, 1001, &file, &left, &code),
        CM_NOT_FOUND);
    assert_string_equal (code, "link_not_found");
    db = cm_db_open (f->url);
    res = cm_db_query (db, "SELECT count(*) FROM links", 0, NULL);
    assert_string_equal (cm_db_res_get (res, 0, 0), "0");
    cm_db_res_free (&res);
    cm_db_destroy (&db);
}

/* N processes, each with its own connection, redeem one one-time link
   at the same moment: exactly one gets the file.                       */
static void
test_one_time_link_race (void **state)
{
    fixture_t *f = *state;
    enum { N = 12 };
    char id[33], link_id[33], token[STORD_TOKEN_MAX + 1];
    uint64_t expires_at;
    uint64_t now = cm_now_s ();
    s_committed (f->meta, id, now);
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, now, 600, 1,
                                              link_id, token, &expires_at),
                      CM_OK);
    int gate[2], ready[2];
    assert_int_equal (pipe (gate), 0);
    assert_int_equal (pipe (ready), 0);
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork ();
        assert_true (pids[i] >= 0);
        if (pids[i] == 0) {
            close (gate[1]);
            close (ready[0]);
            stord_meta_t *mine = stord_meta_new (f->url);
            char c = 'r';
            /* Say we are connected, then wait for the gate (EOF).      */
            if (!mine || write (ready[1], &c, 1) != 1 || read (gate[0], &c, 1) != 0) {
                _exit (3);
            }
            stord_file_t file;
            uint32_t left;
            const char *code = NULL;
            cm_status_t st =
                stord_meta_link_redeem (mine, "race", token, now, &file, &left, &code);
            int rc = 2;
            if (st == CM_OK && strcmp (file.id, id) == 0 && left == 0) {
                rc = 0;
            } else if (st == CM_GONE && strcmp (code, "link_exhausted") == 0) {
                rc = 1;
            }
            stord_meta_destroy (&mine);
            _exit (rc);
        }
    }
    close (gate[0]);
    close (ready[1]);
    /* Open the gate once every child is connected (or has died).      */
    char c;
    for (int i = 0; i < N && read (ready[0], &c, 1) == 1; i++) {
    }
    close (ready[0]);
    close (gate[1]);
    int won = 0, lost = 0;
    for (int i = 0; i < N; i++) {
        int status;
        assert_int_equal (waitpid (pids[i], &status, 0), pids[i]);
        assert_true (WIFEXITED (status));
        int rc = WEXITSTATUS (status);
        assert_true (rc == 0 || rc == 1);
        won += rc == 0;
        lost += rc == 1;
    }
    assert_int_equal (won, 1);
    assert_int_equal (lost, N - 1);
    cm_db_t *db = cm_db_open (f->url);
    const char *p[] = {link_id};
    cm_db_res_t *res =
        cm_db_query (db, "SELECT downloads FROM links WHERE id = $1", 1, p);
    assert_string_equal (cm_db_res_get (res, 0, 0), "1");
    cm_db_res_free (&res);
    cm_db_destroy (&db);
}

static void
test_reopen_keeps_schema (void **state)
{
    fixture_t *f = *state;
    char id[33];
    s_committed (f->meta, id, 1234);
    stord_meta_destroy (&f->meta);
    f->meta = stord_meta_new (f->url); /* migrations run once */
    assert_non_null (f->meta);
    stord_file_t file;
    assert_int_equal (stord_meta_file_get (f->meta, "t", id, true, &file), CM_OK);
    assert_int_equal (file.created_at, 1234);
}

#define KEK1 "00112233aabbccdd"
#define KEK2 "99887766ffeeddcc"

/* A committed row under `kek` whose wrapped DEK is 60 bytes of `fill`. */
static void
s_committed_kek (stord_meta_t *meta, char id[33], const char *kek, uint8_t fill)
{
    s_pending (meta, id, 900);
    stord_file_t file = {0};
    snprintf (file.id, sizeof file.id, "%s", id);
    file.size = 10;
    snprintf (file.sha256, sizeof file.sha256, "%064d", 1);
    file.chunk_count = 1;
    snprintf (file.kek_id, sizeof file.kek_id, "%s", kek);
    file.wrapped_dek_len = 60;
    memset (file.wrapped_dek, fill, 60);
    file.blob_size = 10 + 48 + 16;
    assert_int_equal (stord_meta_file_commit (meta, "t", &file, 1000), CM_OK);
}

static void
s_sql (const char *url, const char *sql, int n, const char *const *p)
{
    cm_db_t *db = cm_db_open (url);
    assert_non_null (db);
    assert_int_equal (cm_db_exec (db, sql, n, p), CM_DB_OK);
    cm_db_destroy (&db);
}

static uint64_t
s_count_of (const stord_kek_count_t *c, size_t n, const char *kek)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp (c[i].kek_id, kek) == 0) {
            return c[i].count;
        }
    }
    return 0;
}

static int
s_cmp_id (const void *a, const void *b)
{
    return strcmp (a, b);
}

static void
test_kek_rewrap (void **state)
{
    fixture_t *f = *state;
    char k1[4][33], k2[2][33], old_pending[33], new_pending[33];
    for (int i = 0; i < 3; i++) {
        s_committed_kek (f->meta, k1[i], KEK1, (uint8_t)(0x10 + i));
    }
    for (int i = 0; i < 2; i++) {
        s_committed_kek (f->meta, k2[i], KEK2, (uint8_t)(0x20 + i));
    }
    /* A pending row holding a DEK under KEK1 (rewrapped like the others),
       and two without one, begun before and after the cutoff 1000.     */
    s_pending (f->meta, k1[3], 500);
    char hex[121];
    memset (hex, 'a', 120);
    hex[120] = '\0';
    const char *p[] = {k1[3], KEK1, hex};
    s_sql (f->url, "UPDATE files SET kek_id = $2, wrapped_dek = $3 WHERE id = $1", 3, p);
    s_pending (f->meta, old_pending, 700);
    s_pending (f->meta, new_pending, 5000);

    stord_kek_count_t *c = NULL;
    size_t n = 0;
    uint64_t no_dek = 0;
    assert_int_equal (stord_meta_kek_counts (f->meta, "t", 1000, &c, &n, &no_dek), CM_OK);
    assert_int_equal (n, 2);
    assert_string_equal (c[0].kek_id, KEK1); /* by kek id */
    assert_int_equal (c[0].count, 4);
    assert_string_equal (c[1].kek_id, KEK2);
    assert_int_equal (c[1].count, 2);
    assert_int_equal (no_dek, 1);
    free (c);
    assert_int_equal (stord_meta_kek_counts (f->meta, "t", 6000, &c, &n, &no_dek), CM_OK);
    assert_int_equal (no_dek, 2);
    free (c);

    /* Walk the rows not under KEK2, two at a time, by id.              */
    char seen[8][33];
    size_t nseen = 0;
    char after[33] = "";
    for (;;) {
        stord_wrapped_t *rows = NULL;
        size_t count = 0;
        assert_int_equal (
            stord_meta_rewrap_batch (f->meta, "t", KEK2, after, 2, &rows, &count), CM_OK);
        assert_true (count <= 2);
        if (count == 0) {
            assert_null (rows);
            break;
        }
        for (size_t i = 0; i < count; i++) {
            assert_string_equal (rows[i].kek_id, KEK1);
            assert_int_equal (rows[i].wrapped_dek_len, 60);
            assert_true (strcmp (rows[i].id, after) > 0);
            assert_true (nseen < 8);
            memcpy (seen[nseen++], rows[i].id, 33);
            snprintf (after, sizeof after, "%s", rows[i].id);
        }
        free (rows);
    }
    assert_int_equal (nseen, 4);
    char want[4][33];
    memcpy (want, k1, sizeof want);
    qsort (want, 4, 33, s_cmp_id);
    for (int i = 0; i < 4; i++) {
        assert_string_equal (seen[i], want[i]);
    }

    /* Replace each; a second replace of the same old value, one with a
       stale wrapped DEK and one of a deleted row change nothing.       */
    stord_wrapped_t *rows = NULL;
    size_t count = 0;
    assert_int_equal (stord_meta_rewrap_batch (f->meta, "t", KEK2, "", 10, &rows, &count),
                      CM_OK);
    assert_int_equal (count, 4);
    uint8_t fresh[60];
    memset (fresh, 0x77, sizeof fresh);
    /* (the lowest id may be the pending row)                          */
    assert_int_equal (stord_meta_file_delete (f->meta, "t", rows[0].id,
                                              strcmp (rows[0].id, k1[3]) == 0
                                                  ? STORD_STATE_PENDING
                                                  : STORD_STATE_COMMITTED),
                      CM_OK);
    assert_int_equal (
        stord_meta_rewrap_replace (f->meta, "t", &rows[0], KEK2, fresh, sizeof fresh),
        CM_CONFLICT);
    stord_wrapped_t stale = rows[1];
    stale.wrapped_dek[5] ^= 1;
    assert_int_equal (
        stord_meta_rewrap_replace (f->meta, "t", &stale, KEK2, fresh, sizeof fresh),
        CM_CONFLICT);
    for (size_t i = 1; i < count; i++) {
        assert_int_equal (
            stord_meta_rewrap_replace (f->meta, "t", &rows[i], KEK2, fresh, sizeof fresh),
            CM_OK);
        assert_int_equal (
            stord_meta_rewrap_replace (f->meta, "t", &rows[i], KEK2, fresh, sizeof fresh),
            CM_CONFLICT);
    }
    /* Arguments a caller can get wrong.                                */
    assert_int_equal (stord_meta_rewrap_replace (f->meta, "t", &rows[1], "", fresh, 60),
                      CM_INVALID);
    assert_int_equal (stord_meta_rewrap_replace (f->meta, "t", &rows[1], KEK2, fresh, 0),
                      CM_INVALID);
    free (rows);
    assert_int_equal (stord_meta_rewrap_batch (f->meta, "t", KEK2, "", 0, &rows, &count),
                      CM_INVALID);
    assert_int_equal (stord_meta_rewrap_batch (f->meta, "t", KEK2, "",
                                               STORD_REWRAP_MAX + 1, &rows, &count),
                      CM_INVALID);
    assert_int_equal (stord_meta_rewrap_batch (f->meta, "t", KEK2, "", 10, &rows, &count),
                      CM_OK);
    assert_int_equal (count, 0);

    /* Every DEK left is under KEK2, the rewrapped ones with the new bytes. */
    assert_int_equal (stord_meta_kek_counts (f->meta, "t", 1000, &c, &n, &no_dek), CM_OK);
    assert_int_equal (n, 1);
    assert_int_equal (s_count_of (c, n, KEK2), 5);
    assert_int_equal (s_count_of (c, n, KEK1), 0);
    free (c);
    stord_file_t file;
    for (int i = 0; i < 3; i++) {
        cm_status_t st = stord_meta_file_get (f->meta, "t", k1[i], true, &file);
        if (strcmp (k1[i], want[0]) == 0) {
            assert_int_equal (st, CM_NOT_FOUND); /* the deleted one */
            continue;
        }
        assert_int_equal (st, CM_OK);
        assert_string_equal (file.kek_id, KEK2);
        assert_memory_equal (file.wrapped_dek, fresh, 60);
    }
    assert_int_equal (stord_meta_file_get (f->meta, "t", k2[0], true, &file), CM_OK);
    assert_int_equal (file.wrapped_dek[0], 0x20); /* untouched */
}

/* N processes rewrap the same rows at once, each to its own bytes:
   every row is replaced exactly once, and holds one winner's bytes.   */
static void
test_rewrap_race (void **state)
{
    fixture_t *f = *state;
    enum { N = 4, ROWS = 20 };
    char ids[ROWS][33];
    for (int i = 0; i < ROWS; i++) {
        s_committed_kek (f->meta, ids[i], KEK1, (uint8_t)i);
    }
    int gate[2], ready[2], result[2];
    assert_int_equal (pipe (gate), 0);
    assert_int_equal (pipe (ready), 0);
    assert_int_equal (pipe (result), 0);
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork ();
        assert_true (pids[i] >= 0);
        if (pids[i] == 0) {
            close (gate[1]);
            close (ready[0]);
            close (result[0]);
            stord_meta_t *mine = stord_meta_new (f->url);
            char c = 'r';
            if (!mine || write (ready[1], &c, 1) != 1 || read (gate[0], &c, 1) != 0) {
                _exit (3);
            }
            stord_wrapped_t *rows = NULL;
            size_t count = 0;
            if (stord_meta_rewrap_batch (mine, "race", KEK2, "", ROWS, &rows, &count) !=
                CM_OK) {
                _exit (2);
            }
            uint8_t mine_bytes[60];
            memset (mine_bytes, 0xa0 + i, sizeof mine_bytes);
            uint8_t won = 0;
            for (size_t r = 0; r < count; r++) {
                cm_status_t st = CM_UNAVAILABLE;
                /* SQLite answers BUSY under contention: try again.    */
                for (int a = 0; a < 50 && st == CM_UNAVAILABLE; a++) {
                    st = stord_meta_rewrap_replace (mine, "race", &rows[r], KEK2,
                                                    mine_bytes, 60);
                }
                if (st == CM_OK) {
                    won++;
                } else if (st != CM_CONFLICT) {
                    _exit (2);
                }
            }
            free (rows);
            stord_meta_destroy (&mine);
            _exit (write (result[1], &won, 1) == 1 ? 0 : 2);
        }
    }
    close (gate[0]);
    close (ready[1]);
    close (result[1]);
    char c;
    for (int i = 0; i < N && read (ready[0], &c, 1) == 1; i++) {
    }
    close (ready[0]);
    close (gate[1]);
    for (int i = 0; i < N; i++) {
        int status;
        assert_int_equal (waitpid (pids[i], &status, 0), pids[i]);
        assert_true (WIFEXITED (status));
        assert_int_equal (WEXITSTATUS (status), 0);
    }
    int total = 0;
    uint8_t won;
    while (read (result[0], &won, 1) == 1) {
        total += won;
    }
    close (result[0]);
    assert_int_equal (total, ROWS);
    for (int i = 0; i < ROWS; i++) {
        stord_file_t file;
        assert_int_equal (stord_meta_file_get (f->meta, "t", ids[i], true, &file), CM_OK);
        assert_string_equal (file.kek_id, KEK2);
        assert_true (file.wrapped_dek[0] >= 0xa0 && file.wrapped_dek[0] < 0xa0 + N);
        for (int b = 1; b < 60; b++) {
            assert_int_equal (file.wrapped_dek[b], file.wrapped_dek[0]);
        }
    }
}

/* SQLite: after a delete, the wrapped DEK is in neither the DB file nor
   its WAL (secure_delete + the scrub). PostgreSQL keeps dead row
   versions until VACUUM (docs/keys.md): nothing to check on disk here. */
static void
test_delete_shreds (void **state)
{
    fixture_t *f = *state;
    if (strncmp (f->url, "sqlite:", 7) != 0) {
        /* The same calls still work on PostgreSQL.                    */
        char id[33];
        s_committed_kek (f->meta, id, KEK1, 0x5c);
        assert_int_equal (
            stord_meta_file_delete (f->meta, "t", id, STORD_STATE_COMMITTED), CM_OK);
        assert_int_equal (stord_meta_scrub (f->meta), 0);
        return;
    }
    char id[33], other[33];
    s_committed_kek (f->meta, id, KEK1, 0x5c);
    s_committed_kek (f->meta, other, KEK1, 0x6d);
    char gone[121], kept[121];
    memset (gone, 0, sizeof gone);
    uint8_t b[60];
    memset (b, 0x5c, 60);
    cm_hex_encode (gone, b, 60);
    memset (b, 0x6d, 60);
    cm_hex_encode (kept, b, 60);
    const char *files[] = {"storage.db", "storage.db-wal"};
    /* Before: the hex is there (in the WAL at least).                  */
    int found = 0;
    for (int i = 0; i < 2; i++) {
        char path[600];
        snprintf (path, sizeof path, "%s/%s", f->tmp, files[i]);
        size_t len = 0;
        char *bytes = cm_file_read (path, 64 << 20, &len);
        if (bytes) {
            found += memmem (bytes, len, gone, 120) != NULL;
            free (bytes);
        }
    }
    assert_true (found > 0);
    assert_int_equal (stord_meta_file_delete (f->meta, "t", id, STORD_STATE_COMMITTED),
                      CM_OK);
    int kept_found = 0;
    for (int i = 0; i < 2; i++) {
        char path[600];
        snprintf (path, sizeof path, "%s/%s", f->tmp, files[i]);
        size_t len = 0;
        char *bytes = cm_file_read (path, 64 << 20, &len);
        if (bytes) {
            assert_null (memmem (bytes, len, gone, 120));
            kept_found += memmem (bytes, len, kept, 120) != NULL;
            free (bytes);
        }
    }
    assert_int_equal (kept_found, 1); /* the other file's row is intact */
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_file_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown (test_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown (test_links, setup, teardown),
        cmocka_unit_test_setup_teardown (test_one_time_link_race, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reopen_keeps_schema, setup, teardown),
        cmocka_unit_test_setup_teardown (test_kek_rewrap, setup, teardown),
        cmocka_unit_test_setup_teardown (test_rewrap_race, setup, teardown),
        cmocka_unit_test_setup_teardown (test_delete_shreds, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
