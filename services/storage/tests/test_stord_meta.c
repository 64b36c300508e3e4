/*  unit_storage_meta -- file metadata and share links on a temp SQLite
    (or a PostgreSQL schema with SAFESHARE_TEST_DB=pg): visibility, list
    paging and cursors, the name filter (%, _ and \ literal, ASCII case
    folding) and clients_only, FILE_UPDATE, link redeem counting and its
    refusal codes, peek and signed-in-only links, link list / get /
    revoke, a one-time link raced by 50 processes, the upgrade of a
    version-2 database; DEK counts per KEK, the
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

static const stord_redeem_t s_anon = {0};

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
    stord_link_t lk;
    s_committed (f->meta, id, 1000);
    s_pending (f->meta, pending, 1000);

    /* Only committed files get links. */
    assert_int_equal (stord_meta_link_create (f->meta, "t", pending, OWNER, 1000, 60, 1,
                                              false, link_id, token, &expires_at),
                      CM_NOT_FOUND);
    assert_int_equal (
        stord_meta_link_create (f->meta, "t", "ffffffffffffffffffffffffffffffff", OWNER,
                                1000, 60, 1, false, link_id, token, &expires_at),
        CM_NOT_FOUND);

    /* Two downloads, then exhausted. */
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1000, 60, 2, false,
                                              link_id, token, &expires_at),
                      CM_OK);
    assert_int_equal (expires_at, 1060);
    assert_true (cm_is_hex_id (link_id, 32));
    assert_int_equal (strlen (token), 43); /* 32 random bytes, base64url */
    assert_int_equal (strspn (token,
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789-_"),
                      43);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token, 1001, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_OK);
    assert_string_equal (file.id, id);
    assert_int_equal (left, 1);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token, 1002, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_OK);
    assert_int_equal (left, 0);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token, 1003, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_GONE);
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
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1000, 10, 5, false,
                                              link_id, token, &expires_at),
                      CM_OK);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token, 1009, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_OK);
    assert_int_equal (left, 4);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token, 1010, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_GONE);
    assert_string_equal (code, "link_expired");

    /* Revoked beats everything else. */
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1000, 60, 5, false,
                                              link_id, token, &expires_at),
                      CM_OK);
    assert_int_equal (stord_meta_link_revoke (f->meta, "t", link_id, 1000, NULL), CM_OK);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token, 1001, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_GONE);
    assert_string_equal (code, "link_revoked");
    assert_int_equal (stord_meta_link_revoke (
                          f->meta, "t", "ffffffffffffffffffffffffffffffff", 1000, NULL),
                      CM_NOT_FOUND);

    /* Unknown token. */
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", "nosuchtoken", 1001, &s_anon,
                                              &file, &lk, &left, &code),
                      CM_NOT_FOUND);
    assert_string_equal (code, "link_not_found");

    /* Deleting the file takes its links with it. */
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1000, 60, 5, false,
                                              link_id, token, &expires_at),
                      CM_OK);
    assert_int_equal (stord_meta_file_delete (f->meta, "t", id, STORD_STATE_COMMITTED),
                      CM_OK);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token, 1001, &s_anon, &file,
                                              &lk, &left, &code),
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
    enum { N = 50 };
    char id[33], link_id[33], token[STORD_TOKEN_MAX + 1];
    uint64_t expires_at;
    uint64_t now = cm_now_s ();
    s_committed (f->meta, id, now);
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, now, 600, 1, false,
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
            stord_link_t lk;
            uint32_t left;
            const char *code = NULL;
            cm_status_t st = stord_meta_link_redeem (mine, "race", token, now, &s_anon,
                                                     &file, &lk, &left, &code);
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

/* A committed file named name (visibility "" = the default).          */
static void
s_named (stord_meta_t *meta, char id[33], const char *name, const char *visibility,
         uint64_t now)
{
    stord_file_t file = {0};
    assert_int_equal (cm_random_hex (file.id, 16), 0);
    snprintf (file.name, sizeof file.name, "%s", name);
    snprintf (file.content_type, sizeof file.content_type, "text/plain");
    snprintf (file.owner_id, sizeof file.owner_id, OWNER);
    snprintf (file.visibility, sizeof file.visibility, "%s", visibility);
    file.chunk_size = 1048576;
    file.created_at = now - 1;
    assert_int_equal (stord_meta_file_insert (meta, "t", &file), CM_OK);
    s_commit (meta, file.id, now);
    memcpy (id, file.id, 33);
}

/* The names found for a filter, sorted, joined by '|'.                 */
static void
s_find (stord_meta_t *meta, const char *name, bool clients_only, char *out, size_t len)
{
    stord_filter_t filter = {.name = name, .clients_only = clients_only};
    stord_file_t *files = NULL;
    size_t count = 0;
    char next[STORD_CURSOR_MAX + 1];
    assert_int_equal (
        stord_meta_file_find (meta, "t", &filter, "", 200, &files, &count, next), CM_OK);
    assert_string_equal (next, "");
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        /* newest first: the test made them in time order, so reversed  */
        size_t used = strlen (out);
        snprintf (out + used, len - used, "%s%s", i ? "|" : "", files[i].name);
    }
    free (files);
}

static void
test_filter_and_visibility (void **state)
{
    fixture_t *f = *state;
    char ids[8][33];
    s_named (f->meta, ids[0], "Report 100%.pdf", "", 100);
    s_named (f->meta, ids[1], "report_1.txt", "clients", 101);
    s_named (f->meta, ids[2], "REPORT-x.doc", "staff", 102);
    s_named (f->meta, ids[3], "a\\b.txt", "", 103);
    s_named (f->meta, ids[4], "1000 items.txt", "", 104);
    s_named (f->meta, ids[5], "x1 y.txt", "staff", 105);
    s_named (f->meta, ids[6], "ab.txt", "", 106);
    s_named (f->meta, ids[7], "Gr\xc3\xbc\xc3\x9f.txt", "", 107);
    char out[1024];

    /* Default visibility is "clients"; "staff" is kept.                */
    stord_file_t file;
    assert_int_equal (stord_meta_file_get (f->meta, "t", ids[0], true, &file), CM_OK);
    assert_string_equal (file.visibility, "clients");
    assert_int_equal (stord_meta_file_get (f->meta, "t", ids[2], true, &file), CM_OK);
    assert_string_equal (file.visibility, "staff");

    /* ASCII case folding, substring anywhere.                          */
    s_find (f->meta, "rEpOrT", false, out, sizeof out);
    assert_string_equal (out, "REPORT-x.doc|report_1.txt|Report 100%.pdf");
    /* %, _ and \ are literal: unescaped, "100%" would match "1000 ...",
       "_1" any name with a character before a 1 and "a\b" "ab".      */
    s_find (f->meta, "100%", false, out, sizeof out);
    assert_string_equal (out, "Report 100%.pdf");
    s_find (f->meta, "%", false, out, sizeof out);
    assert_string_equal (out, "Report 100%.pdf");
    s_find (f->meta, "_1", false, out, sizeof out);
    assert_string_equal (out, "report_1.txt");
    s_find (f->meta, "a\\b", false, out, sizeof out);
    assert_string_equal (out, "a\\b.txt");
    s_find (f->meta, "\\", false, out, sizeof out);
    assert_string_equal (out, "a\\b.txt");
    s_find (f->meta, "gr\xc3\xbc", false, out, sizeof out); /* ASCII folded, UTF-8 kept */
    assert_string_equal (out, "Gr\xc3\xbc\xc3\x9f.txt");
    s_find (f->meta, "'; DROP TABLE files; --", false, out, sizeof out);
    assert_string_equal (out, "");
    s_find (f->meta, "", false, out, sizeof out);
    assert_int_equal (strlen (out) > 0, 1);

    /* clients_only hides "staff", alone and with a name.              */
    s_find (f->meta, "report", true, out, sizeof out);
    assert_string_equal (out, "report_1.txt|Report 100%.pdf");
    s_find (f->meta, "1", true, out, sizeof out);
    assert_string_equal (out, "1000 items.txt|report_1.txt|Report 100%.pdf");
    s_find (f->meta, NULL, true, out, sizeof out);
    assert_null (strstr (out, "REPORT-x.doc"));
    assert_null (strstr (out, "x1 y.txt"));

    /* Paging under a filter: one at a time, the same three.            */
    stord_filter_t filter = {.name = "REPORT"};
    char cursor[STORD_CURSOR_MAX + 1] = "";
    int pages = 0;
    do {
        stord_file_t *files = NULL;
        size_t count = 0;
        char next[STORD_CURSOR_MAX + 1];
        assert_int_equal (
            stord_meta_file_find (f->meta, "t", &filter, cursor, 1, &files, &count, next),
            CM_OK);
        assert_int_equal (count, 1);
        assert_string_equal (files[0].id, ids[2 - pages]);
        free (files);
        snprintf (cursor, sizeof cursor, "%s", next);
        pages++;
    } while (cursor[0] && pages < 5);
    assert_int_equal (pages, 3);

    /* FILE_UPDATE: name, visibility, both; empty = unchanged.          */
    assert_int_equal (
        stord_meta_file_update (f->meta, "t", ids[2], NULL, "clients", &file), CM_OK);
    assert_string_equal (file.visibility, "clients");
    assert_string_equal (file.name, "REPORT-x.doc");
    s_find (f->meta, "report", true, out, sizeof out);
    assert_string_equal (out, "REPORT-x.doc|report_1.txt|Report 100%.pdf");
    assert_int_equal (
        stord_meta_file_update (f->meta, "t", ids[2], "Renamed.doc", "staff", &file),
        CM_OK);
    assert_string_equal (file.name, "Renamed.doc");
    assert_string_equal (file.visibility, "staff");
    assert_int_equal (stord_meta_file_update (f->meta, "t", ids[2], "", "", &file),
                      CM_OK);
    assert_string_equal (file.name, "Renamed.doc");
    assert_string_equal (file.visibility, "staff");
    assert_int_equal (file.size, 5000000); /* the rest untouched */
    assert_int_equal (stord_meta_file_get (f->meta, "t", ids[2], true, &file), CM_OK);
    assert_string_equal (file.name, "Renamed.doc");
    assert_int_equal (
        stord_meta_file_update (f->meta, "t", ids[2], NULL, "everyone", &file),
        CM_INVALID);
    assert_int_equal (stord_meta_file_update (f->meta, "t",
                                              "ffffffffffffffffffffffffffffffff", "x",
                                              NULL, &file),
                      CM_NOT_FOUND);
    char pending[33];
    s_pending (f->meta, pending, 200);
    assert_int_equal (stord_meta_file_update (f->meta, "t", pending, "x", NULL, &file),
                      CM_NOT_FOUND);
    /* A visibility other than the two is refused at insert as well.   */
    stord_file_t bad = {0};
    assert_int_equal (cm_random_hex (bad.id, 16), 0);
    snprintf (bad.name, sizeof bad.name, "x");
    snprintf (bad.content_type, sizeof bad.content_type, "text/plain");
    snprintf (bad.owner_id, sizeof bad.owner_id, OWNER);
    snprintf (bad.visibility, sizeof bad.visibility, "public");
    bad.chunk_size = 4096;
    assert_int_equal (stord_meta_file_insert (f->meta, "t", &bad), CM_INVALID);
}

#define OTHER "fedcba9876543210fedcba9876543210"

static void
test_link_list_get_revoke (void **state)
{
    fixture_t *f = *state;
    char id[33], other_file[33], pending[33];
    char a[33], b[33], c[33], token_a[STORD_TOKEN_MAX + 1], token_b[STORD_TOKEN_MAX + 1],
        token_c[STORD_TOKEN_MAX + 1];
    uint64_t exp;
    s_committed (f->meta, id, 1000);
    s_committed (f->meta, other_file, 1000);
    s_pending (f->meta, pending, 1000);
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1000, 60, 2, false,
                                              a, token_a, &exp),
                      CM_OK);
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OTHER, 1001, 60, 1, true,
                                              b, token_b, &exp),
                      CM_OK);
    assert_int_equal (stord_meta_link_create (f->meta, "t", id, OWNER, 1002, 5, 3, false,
                                              c, token_c, &exp),
                      CM_OK);
    char x[33], token_x[STORD_TOKEN_MAX + 1];
    assert_int_equal (stord_meta_link_create (f->meta, "t", other_file, OWNER, 1003, 60,
                                              1, false, x, token_x, &exp),
                      CM_OK);

    /* Newest first, the file's links only; by creator.                */
    stord_link_t *links = NULL;
    size_t n = 0;
    assert_int_equal (stord_meta_link_list (f->meta, "t", id, "", &links, &n), CM_OK);
    assert_int_equal (n, 3);
    assert_string_equal (links[0].id, c);
    assert_string_equal (links[1].id, b);
    assert_string_equal (links[2].id, a);
    assert_true (links[1].signed_in_only);
    assert_false (links[0].signed_in_only);
    assert_string_equal (links[1].creator_id, OTHER);
    assert_int_equal (links[1].created_at, 1001);
    assert_int_equal (links[1].expires_at, 1061);
    assert_int_equal (links[1].max_downloads, 1);
    assert_int_equal (links[1].downloads, 0);
    assert_int_equal (links[1].revoked_at, 0);
    free (links);
    assert_int_equal (stord_meta_link_list (f->meta, "t", id, OWNER, &links, &n), CM_OK);
    assert_int_equal (n, 2);
    assert_string_equal (links[0].id, c);
    assert_string_equal (links[1].id, a);
    free (links);
    assert_int_equal (stord_meta_link_list (f->meta, "t", pending, "", &links, &n),
                      CM_NOT_FOUND);
    assert_int_equal (stord_meta_link_list (f->meta, "t",
                                            "ffffffffffffffffffffffffffffffff", "",
                                            &links, &n),
                      CM_NOT_FOUND);
    assert_null (links);

    /* State at read time.                                              */
    stord_link_t lk;
    assert_int_equal (stord_meta_link_get (f->meta, "t", c, &lk), CM_OK);
    assert_string_equal (stord_link_state (&lk, 1006), "active");
    assert_string_equal (stord_link_state (&lk, 1007), "expired");
    assert_int_equal (
        stord_meta_link_get (f->meta, "t", "ffffffffffffffffffffffffffffffff", &lk),
        CM_NOT_FOUND);

    /* Peek takes nothing; a redeem takes one; both give file and link. */
    stord_file_t file;
    uint32_t left = 0;
    const char *code = NULL;
    stord_redeem_t peek = {.peek = true};
    for (int i = 0; i < 3; i++) {
        assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_a, 1010, &peek,
                                                  &file, &lk, &left, &code),
                          CM_OK);
        assert_string_equal (file.id, id);
        assert_string_equal (lk.id, a);
        assert_int_equal (lk.downloads, 0);
        assert_int_equal (left, 2);
    }
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_a, 1010, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_OK);
    assert_int_equal (lk.downloads, 1);
    assert_int_equal (left, 1);
    assert_int_equal (stord_meta_link_get (f->meta, "t", a, &lk), CM_OK);
    assert_int_equal (lk.downloads, 1);

    /* Signed-in only: refused without sign-in (redeem and peek alike),
       and the refusal spends nothing.                                  */
    stord_redeem_t signed_in = {.signed_in = true};
    stord_redeem_t peek_in = {.signed_in = true, .peek = true};
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_b, 1010, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "link_requires_login");
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_b, 1010, &peek, &file,
                                              &lk, &left, &code),
                      CM_UNAUTHENTICATED);
    assert_string_equal (code, "link_requires_login");
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_b, 1010, &peek_in,
                                              &file, &lk, &left, &code),
                      CM_OK);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_b, 1010, &signed_in,
                                              &file, &lk, &left, &code),
                      CM_OK);
    assert_int_equal (left, 0);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_b, 1010, &signed_in,
                                              &file, &lk, &left, &code),
                      CM_GONE);
    assert_string_equal (code, "link_exhausted");
    /* Peek says the same as a redeem would.                            */
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_b, 1010, &peek_in,
                                              &file, &lk, &left, &code),
                      CM_GONE);
    assert_string_equal (code, "link_exhausted");
    assert_int_equal (stord_meta_link_get (f->meta, "t", b, &lk), CM_OK);
    assert_string_equal (stord_link_state (&lk, 1010), "exhausted");
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_c, 1007, &peek, &file,
                                              &lk, &left, &code),
                      CM_GONE);
    assert_string_equal (code, "link_expired");
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", "nosuchtoken", 1007, &peek,
                                              &file, &lk, &left, &code),
                      CM_NOT_FOUND);
    assert_string_equal (code, "link_not_found");

    /* Revoke: the first time is kept, a second revoke is OK as is.     */
    memset (&lk, 0, sizeof lk);
    assert_int_equal (stord_meta_link_revoke (f->meta, "t", a, 1020, &lk), CM_OK);
    assert_true (lk.revoked);
    assert_int_equal (lk.revoked_at, 1020);
    assert_string_equal (stord_link_state (&lk, 1020), "revoked");
    assert_int_equal (stord_meta_link_revoke (f->meta, "t", a, 1030, &lk), CM_OK);
    assert_int_equal (lk.revoked_at, 1020);
    assert_int_equal (lk.downloads, 1);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_a, 1031, &peek, &file,
                                              &lk, &left, &code),
                      CM_GONE);
    assert_string_equal (code, "link_revoked");
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_a, 1031, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_GONE);
    assert_string_equal (code, "link_revoked");
    /* Revoked and signed-in only: sign-in is asked first.              */
    assert_int_equal (stord_meta_link_revoke (f->meta, "t", b, 1032, NULL), CM_OK);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_b, 1033, &s_anon, &file,
                                              &lk, &left, &code),
                      CM_UNAUTHENTICATED);
    assert_int_equal (stord_meta_link_redeem (f->meta, "t", token_b, 1033, &signed_in,
                                              &file, &lk, &left, &code),
                      CM_GONE);
    assert_string_equal (code, "link_revoked");
    assert_int_equal (
        stord_meta_link_revoke (f->meta, "t", "ffffffffffffffffffffffffffffffff", 1, &lk),
        CM_NOT_FOUND);

    /* Bounded: the newest STORD_LINK_LIST_MAX only.                    */
    for (int i = 0; i < STORD_LINK_LIST_MAX; i++) {
        assert_int_equal (stord_meta_link_create (f->meta, "t", other_file, OTHER,
                                                  2000 + (uint64_t)i, 60, 1, false, x,
                                                  token_x, &exp),
                          CM_OK);
    }
    assert_int_equal (stord_meta_link_list (f->meta, "t", other_file, "", &links, &n),
                      CM_OK);
    assert_int_equal (n, STORD_LINK_LIST_MAX);
    assert_int_equal (links[0].created_at, 2000 + STORD_LINK_LIST_MAX - 1);
    assert_int_equal (links[n - 1].created_at, 2000);
    free (links);
}

/* A database made by the previous schema (versions 1-2, as shipped)
   is upgraded in place: rows keep their data, files become "clients",
   links are not signed-in only, a revoked link gets a revoked_at.    */
static void
test_upgrade_from_v2 (void **state)
{
    fixture_t *f = *state;
    /* A fresh DB of its own: the fixture's is at the latest version.   */
    char url[700], schema[40] = "";
    snprintf (url, sizeof url, "sqlite:%s/old.db", f->tmp);
    assert_int_not_equal (cm_test_pg_schema_url (schema, url, sizeof url), -1);
    static const char *const v2[] = {
        "CREATE TABLE files ("
        " id TEXT PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " content_type TEXT NOT NULL,"
        " size BIGINT NOT NULL DEFAULT 0,"
        " sha256 TEXT NOT NULL DEFAULT '',"
        " owner_id TEXT NOT NULL,"
        " created_at BIGINT NOT NULL,"
        " chunk_size BIGINT NOT NULL,"
        " chunk_count BIGINT NOT NULL DEFAULT 0,"
        " kek_id TEXT NOT NULL DEFAULT '',"
        " wrapped_dek TEXT NOT NULL DEFAULT '',"
        " blob_size BIGINT NOT NULL DEFAULT 0,"
        " state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', "
        "'committed')));"
        "CREATE INDEX files_by_state_time ON files (state, created_at, id);"
        "CREATE TABLE links ("
        " id TEXT PRIMARY KEY,"
        " file_id TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,"
        " token_hash TEXT NOT NULL UNIQUE,"
        " creator_id TEXT NOT NULL,"
        " created_at BIGINT NOT NULL,"
        " expires_at BIGINT NOT NULL,"
        " max_downloads BIGINT NOT NULL,"
        " downloads BIGINT NOT NULL DEFAULT 0,"
        " revoked INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX links_by_file ON links (file_id);",
        "CREATE INDEX files_by_kek ON files (kek_id);",
    };
    cm_db_t *db = cm_db_open (url);
    assert_non_null (db);
    assert_int_equal (cm_db_migrate (db, "storage", v2, 2), 0);
    const char *fid = "00112233445566778899aabbccddeeff";
    const char *p[] = {fid};
    assert_int_equal (
        cm_db_exec (
            db,
            "INSERT INTO files (id, name, content_type, size, sha256, owner_id,"
            " created_at, chunk_size, chunk_count, kek_id, wrapped_dek, blob_size,"
            " state) VALUES ($1, 'old.txt', 'text/plain', 1, '"
            "0000000000000000000000000000000000000000000000000000000000000007',"
            " '0123456789abcdef0123456789abcdef', 50, 4096, 1, 'k1', 'aabb', 65,"
            " 'committed')",
            1, p),
        CM_DB_OK);
    assert_int_equal (
        cm_db_exec (db,
                    "INSERT INTO links (id, file_id, token_hash, creator_id, created_at,"
                    " expires_at, max_downloads, downloads, revoked) VALUES"
                    " ('11111111111111111111111111111111', $1, 'h1',"
                    " '0123456789abcdef0123456789abcdef', 60, 9999, 3, 1, 1),"
                    " ('22222222222222222222222222222222', $1, 'h2',"
                    " '0123456789abcdef0123456789abcdef', 70, 9999, 3, 0, 0)",
                    1, p),
        CM_DB_OK);
    cm_db_destroy (&db);

    stord_meta_t *meta = stord_meta_new (url);
    assert_non_null (meta);
    stord_file_t file;
    assert_int_equal (stord_meta_file_get (meta, "t", fid, true, &file), CM_OK);
    assert_string_equal (file.name, "old.txt");
    assert_string_equal (file.visibility, "clients");
    stord_link_t lk;
    assert_int_equal (
        stord_meta_link_get (meta, "t", "11111111111111111111111111111111", &lk), CM_OK);
    assert_true (lk.revoked);
    assert_int_equal (lk.revoked_at, 60);
    assert_false (lk.signed_in_only);
    assert_int_equal (lk.downloads, 1);
    assert_int_equal (
        stord_meta_link_get (meta, "t", "22222222222222222222222222222222", &lk), CM_OK);
    assert_false (lk.revoked);
    assert_int_equal (lk.revoked_at, 0);
    assert_string_equal (stord_link_state (&lk, 100), "active");
    stord_link_t *links = NULL;
    size_t n = 0;
    assert_int_equal (stord_meta_link_list (meta, "t", fid, "", &links, &n), CM_OK);
    assert_int_equal (n, 2);
    assert_string_equal (links[0].id, "22222222222222222222222222222222");
    free (links);
    assert_int_equal (stord_meta_file_update (meta, "t", fid, NULL, "staff", &file),
                      CM_OK);
    stord_meta_destroy (&meta);
    /* Opening again runs nothing twice.                                */
    meta = stord_meta_new (url);
    assert_non_null (meta);
    assert_int_equal (stord_meta_file_get (meta, "t", fid, true, &file), CM_OK);
    assert_string_equal (file.visibility, "staff");
    stord_meta_destroy (&meta);
    assert_int_equal (cm_test_pg_schema_drop (schema), 0);
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
        cmocka_unit_test_setup_teardown (test_filter_and_visibility, setup, teardown),
        cmocka_unit_test_setup_teardown (test_link_list_get_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown (test_upgrade_from_v2, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
