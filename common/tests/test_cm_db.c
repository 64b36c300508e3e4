/*  DB layer: the same cases on SQLite and PostgreSQL (params, NULL,
    constraint status, rollback, migrations, failed commits), plus
    connection failures that must not leak the password.

    Usage: test_cm_db sqlite | pg. "pg" needs SAFESHARE_TEST_PG_URL (a
    database the test may create schemas in; scripts/test.sh starts a
    private cluster and sets it) and fails when it is missing, so a run
    without PostgreSQL cannot pass as if it had been tested.             */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cm_db.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool s_pg;             /* backend under test */
static const char *s_pg_base; /* SAFESHARE_TEST_PG_URL */
static char s_url[600];       /* this test's database */
static char s_schema[40];     /* PostgreSQL: this test's schema */
static char *s_dir;

/* PostgreSQL: a fresh schema per test, selected with search_path in the
   URL, so tests (and parallel runs) never see each other's tables.     */
static int
s_setup (void **state)
{
    (void)state;
    s_dir = cm_test_tmpdir ();
    if (!s_pg) {
        snprintf (s_url, sizeof s_url, "sqlite:%s/t.db", s_dir);
        return 0;
    }
    char hex[17];
    if (cm_random_hex (hex, 8) != 0) {
        return -1;
    }
    snprintf (s_schema, sizeof s_schema, "cm_db_test_%s", hex);
    snprintf (s_url, sizeof s_url, "%s%soptions=-csearch_path%%3D%s", s_pg_base,
              strchr (s_pg_base, '?') ? "&" : "?", s_schema);
    cm_db_t *admin = cm_db_open (s_pg_base);
    if (!admin) {
        return -1;
    }
    char sql[100];
    snprintf (sql, sizeof sql, "CREATE SCHEMA %s", s_schema);
    cm_db_status_t st = cm_db_exec (admin, sql, 0, NULL);
    cm_db_destroy (&admin);
    return st == CM_DB_OK ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void)state;
    cm_test_rmrf (s_dir);
    free (s_dir);
    if (s_pg) {
        cm_db_t *admin = cm_db_open (s_pg_base);
        char sql[100];
        snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE", s_schema);
        cm_db_status_t st = admin ? cm_db_exec (admin, sql, 0, NULL) : CM_DB_ERROR;
        cm_db_destroy (&admin);
        return st == CM_DB_OK ? 0 : -1;
    }
    return 0;
}

static const char *const s_migrations[] = {
    "CREATE TABLE items (id TEXT PRIMARY KEY, n BIGINT NOT NULL, note TEXT)",
    "ALTER TABLE items ADD COLUMN extra TEXT; CREATE INDEX items_n ON items (n)",
};

static void
test_query_and_migrate (void **state)
{
    (void)state;
    cm_db_t *db = cm_db_open (s_url);
    assert_non_null (db);
    if (!s_pg) {
        struct stat st;
        assert_int_equal (stat (s_url + 7, &st), 0);
        assert_int_equal (st.st_mode & 0777, 0600);
    }

    assert_int_equal (cm_db_migrate (db, "test", s_migrations, 2), 0);
    /* Idempotent: running again applies nothing. */
    assert_int_equal (cm_db_migrate (db, "test", s_migrations, 2), 0);

    const char *p1[] = {"a", "5", NULL};
    assert_int_equal (
        cm_db_exec (db, "INSERT INTO items (id, n, note) VALUES ($1, $2, $3)", 3, p1),
        CM_DB_OK);
    assert_int_equal (
        cm_db_exec (db, "INSERT INTO items (id, n, note) VALUES ($1, $2, $3)", 3, p1),
        CM_DB_CONSTRAINT);
    const char *p2[] = {"b", "7", "it's \"quoted\" $1 \\ ünï"};
    assert_int_equal (
        cm_db_exec (db, "INSERT INTO items (id, n, note) VALUES ($1, $2, $3)", 3, p2),
        CM_DB_OK);
    /* A parameter used twice, and SQL NULL. */
    const char *p3[] = {"6"};
    cm_db_res_t *res = cm_db_query (
        db, "SELECT id, note FROM items WHERE n < $1 OR n > $1 ORDER BY id", 1, p3);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    assert_int_equal (cm_db_res_rows (res), 2);
    assert_string_equal (cm_db_res_get (res, 0, 0), "a");
    assert_null (cm_db_res_get (res, 0, 1));
    assert_string_equal (cm_db_res_get (res, 1, 1), "it's \"quoted\" $1 \\ ünï");
    assert_null (cm_db_res_get (res, 2, 0));
    assert_null (cm_db_res_get (res, 0, 2));
    cm_db_res_free (&res);
    assert_null (res);

    const char *p4[] = {"a"};
    res = cm_db_query (db, "UPDATE items SET n = n + 1 WHERE id = $1 RETURNING n", 1, p4);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    assert_int_equal (cm_db_res_changes (res), 1);
    assert_string_equal (cm_db_res_get (res, 0, 0), "6");
    cm_db_res_free (&res);
    res = cm_db_query (db, "DELETE FROM items WHERE id = 'nope'", 0, NULL);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    assert_int_equal (cm_db_res_changes (res), 0);
    cm_db_res_free (&res);
    /* ON CONFLICT DO NOTHING is in the common dialect. */
    res = cm_db_query (
        db, "INSERT INTO items (id, n) VALUES ($1, 1) ON CONFLICT DO NOTHING", 1, p4);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    assert_int_equal (cm_db_res_changes (res), 0);
    cm_db_res_free (&res);

    /* A value the SQL does not use is ignored on both backends. */
    const char *p6[] = {"unused", "a"};
    res = cm_db_query (db, "SELECT n FROM items WHERE id = $2", 2, p6);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    assert_int_equal (cm_db_res_rows (res), 1);
    cm_db_res_free (&res);

    /* Missing parameter values and bad SQL are errors, not crashes. */
    assert_int_equal (cm_db_exec (db, "SELECT $2", 1, p4), CM_DB_ERROR);
    assert_int_equal (cm_db_exec (db, "SELEC nonsense", 0, NULL), CM_DB_ERROR);
    assert_int_equal (cm_db_exec (db, "SELECT 1", 2, NULL), CM_DB_ERROR);

    /* Rollback discards. */
    assert_int_equal (cm_db_begin (db), 0);
    const char *p5[] = {"c", "1", NULL};
    assert_int_equal (
        cm_db_exec (db, "INSERT INTO items (id, n, note) VALUES ($1, $2, $3)", 3, p5),
        CM_DB_OK);
    assert_int_equal (cm_db_rollback (db), 0);
    res = cm_db_query (db, "SELECT count(*) FROM items", 0, NULL);
    assert_string_equal (cm_db_res_get (res, 0, 0), "2");
    cm_db_res_free (&res);
    /* Commit keeps. */
    assert_int_equal (cm_db_begin (db), 0);
    assert_int_equal (
        cm_db_exec (db, "INSERT INTO items (id, n, note) VALUES ($1, $2, $3)", 3, p5),
        CM_DB_OK);
    assert_int_equal (cm_db_commit (db), 0);
    cm_db_destroy (&db);
    assert_null (db);

    /* Migrations are recorded: reopen and check the version. */
    db = cm_db_open (s_url);
    assert_non_null (db);
    res = cm_db_query (db,
                       "SELECT max(version), count(*) FROM schema_migrations"
                       " WHERE service = 'test'",
                       0, NULL);
    assert_string_equal (cm_db_res_get (res, 0, 0), "2");
    assert_string_equal (cm_db_res_get (res, 0, 1), "2");
    cm_db_res_free (&res);
    res = cm_db_query (db, "SELECT count(*) FROM items", 0, NULL);
    assert_string_equal (cm_db_res_get (res, 0, 0), "3");
    cm_db_res_free (&res);
    /* A failing migration is rolled back and reported. */
    const char *const bad[] = {s_migrations[0], s_migrations[1],
                               "CREATE TABLE later (x INT); SELEC broken"};
    assert_int_equal (cm_db_migrate (db, "test", bad, 3), -1);
    assert_int_equal (cm_db_exec (db, "SELECT * FROM later", 0, NULL), CM_DB_ERROR);
    res = cm_db_query (db, "SELECT max(version) FROM schema_migrations", 0, NULL);
    assert_string_equal (cm_db_res_get (res, 0, 0), "2");
    cm_db_res_free (&res);
    cm_db_destroy (&db);
}

/* A COMMIT that fails (deferred foreign key) answers -1, leaves nothing
   behind, and the connection takes the next transaction.               */
static void
test_failed_commit (void **state)
{
    (void)state;
    cm_db_t *db = cm_db_open (s_url);
    assert_non_null (db);
    assert_int_equal (
        cm_db_exec (db, "CREATE TABLE parent (id TEXT PRIMARY KEY)", 0, NULL), CM_DB_OK);
    assert_int_equal (
        cm_db_exec (db,
                    "CREATE TABLE child (id TEXT PRIMARY KEY, parent TEXT"
                    " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
                    0, NULL),
        CM_DB_OK);
    assert_int_equal (cm_db_begin (db), 0);
    assert_int_equal (
        cm_db_exec (db, "INSERT INTO child VALUES ('c1', 'missing')", 0, NULL), CM_DB_OK);
    assert_int_equal (cm_db_commit (db), -1);
    cm_db_res_t *res = cm_db_query (db, "SELECT count(*) FROM child", 0, NULL);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    assert_string_equal (cm_db_res_get (res, 0, 0), "0");
    cm_db_res_free (&res);

    assert_int_equal (cm_db_begin (db), 0);
    assert_int_equal (cm_db_exec (db, "INSERT INTO parent VALUES ('p')", 0, NULL),
                      CM_DB_OK);
    assert_int_equal (cm_db_exec (db, "INSERT INTO child VALUES ('c2', 'p')", 0, NULL),
                      CM_DB_OK);
    assert_int_equal (cm_db_commit (db), 0);
    res = cm_db_query (db, "SELECT id FROM child", 0, NULL);
    assert_int_equal (cm_db_res_rows (res), 1);
    assert_string_equal (cm_db_res_get (res, 0, 0), "c2");
    cm_db_res_free (&res);

    if (s_pg) {
        /* PostgreSQL aborts a transaction at its first failed statement;
           its COMMIT then rolls back. That must read as a failure.     */
        assert_int_equal (cm_db_begin (db), 0);
        assert_int_equal (cm_db_exec (db, "INSERT INTO parent VALUES ('q')", 0, NULL),
                          CM_DB_OK);
        assert_int_equal (cm_db_exec (db, "INSERT INTO parent VALUES ('p')", 0, NULL),
                          CM_DB_CONSTRAINT);
        assert_int_equal (cm_db_commit (db), -1);
        res = cm_db_query (db, "SELECT count(*) FROM parent", 0, NULL);
        assert_string_equal (cm_db_res_get (res, 0, 0), "1");
        cm_db_res_free (&res);
    }
    cm_db_destroy (&db);
}

/* Two replicas starting at once: each version runs exactly once.       */
static const char *const s_counted[] = {
    "CREATE TABLE runs (v INTEGER NOT NULL); INSERT INTO runs VALUES (1)",
    "INSERT INTO runs VALUES (2)",
    "INSERT INTO runs VALUES (3); CREATE TABLE other (x TEXT)",
};
static pthread_barrier_t s_barrier;

static void *
s_migrator (void *arg)
{
    (void)arg;
    cm_db_t *db = cm_db_open (s_url);
    if (!db) {
        return (void *)1;
    }
    pthread_barrier_wait (&s_barrier);
    int rc = cm_db_migrate (db, "race", s_counted, 3);
    cm_db_destroy (&db);
    return rc == 0 ? NULL : (void *)1;
}

static void
test_concurrent_migrate (void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        pthread_t t[2];
        assert_int_equal (pthread_barrier_init (&s_barrier, NULL, 2), 0);
        for (int i = 0; i < 2; i++) {
            assert_int_equal (pthread_create (&t[i], NULL, s_migrator, NULL), 0);
        }
        for (int i = 0; i < 2; i++) {
            void *rc = (void *)1;
            pthread_join (t[i], &rc);
            assert_null (rc);
        }
        pthread_barrier_destroy (&s_barrier);
        cm_db_t *db = cm_db_open (s_url);
        assert_non_null (db);
        cm_db_res_t *res = cm_db_query (
            db, "SELECT count(*), count(DISTINCT v), max(v) FROM runs", 0, NULL);
        assert_int_equal (cm_db_res_status (res), CM_DB_OK);
        assert_string_equal (cm_db_res_get (res, 0, 0), "3");
        assert_string_equal (cm_db_res_get (res, 0, 1), "3");
        cm_db_res_free (&res);
        res = cm_db_query (
            db, "SELECT count(*) FROM schema_migrations WHERE service = 'race'", 0, NULL);
        assert_string_equal (cm_db_res_get (res, 0, 0), "3");
        cm_db_res_free (&res);
        /* Next round races from scratch. */
        assert_int_equal (cm_db_exec (db, "DROP TABLE runs", 0, NULL), CM_DB_OK);
        assert_int_equal (cm_db_exec (db, "DROP TABLE other", 0, NULL), CM_DB_OK);
        assert_int_equal (
            cm_db_exec (db, "DELETE FROM schema_migrations WHERE service = 'race'", 0,
                        NULL),
            CM_DB_OK);
        cm_db_destroy (&db);
    }
}

/* cm_db_open(url) with stderr captured; returns the log text (freed by
   the caller) and asserts the open failed.                             */
static char *
s_open_fails_logging (const char *url)
{
    char path[400];
    snprintf (path, sizeof path, "%s/log", s_dir);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true (fd >= 0);
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    dup2 (fd, STDERR_FILENO);
    cm_db_t *db = cm_db_open (url);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    close (fd);
    assert_null (db);
    FILE *f = fopen (path, "r");
    assert_non_null (f);
    char *text = calloc (1, 4096);
    assert_non_null (text);
    size_t n = fread (text, 1, 4095, f);
    text[n] = '\0';
    fclose (f);
    return text;
}

static void
test_bad_urls (void **state)
{
    (void)state;
    assert_null (cm_db_open ("mysql://x"));
    assert_null (cm_db_open ("sqlite:"));
    assert_null (cm_db_open (NULL));
    assert_null (cm_db_open ("sqlite:/nonexistent-dir/x/y.db"));
    /* Nothing listens on port 1: refused, quickly, password not logged. */
    char *log = s_open_fails_logging ("postgresql://u:Hunter2secret@127.0.0.1:1/db");
    assert_non_null (strstr (log, "PQconnectdbParams"));
    assert_non_null (strstr (log, "127.0.0.1:1/db"));
    assert_null (strstr (log, "Hunter2secret"));
    free (log);
    /* Malformed: libpq's parse error would quote the URL. */
    log = s_open_fails_logging ("postgres://u:Hunter2secret@127.0.0.1:99999999x/%zz");
    assert_non_null (strstr (log, "malformed PostgreSQL URL"));
    assert_null (strstr (log, "Hunter2secret"));
    free (log);
    if (!s_pg) {
        return;
    }
    /* The real server, a wrong password: refused by the server. */
    char url[600];
    const char *at = strrchr (s_pg_base, '@');
    assert_non_null (at);
    snprintf (url, sizeof url, "postgresql://safeshare_test:WrongPass0000@%s", at + 1);
    log = s_open_fails_logging (url);
    assert_non_null (strstr (log, "password authentication failed"));
    assert_null (strstr (log, "WrongPass0000"));
    free (log);
}

int
main (int argc, char **argv)
{
    if (argc != 2 || (strcmp (argv[1], "sqlite") != 0 && strcmp (argv[1], "pg") != 0)) {
        fprintf (stderr, "usage: %s sqlite|pg\n", argv[0]);
        return 2;
    }
    cm_log_init ("test", CM_LOG_ERROR);
    s_pg = strcmp (argv[1], "pg") == 0;
    if (s_pg) {
        s_pg_base = getenv ("SAFESHARE_TEST_PG_URL");
        if (!s_pg_base || !*s_pg_base) {
            fprintf (stderr,
                     "FAIL: SAFESHARE_TEST_PG_URL is not set; the PostgreSQL tests need a"
                     " server (scripts/test.sh starts one: see"
                     " scripts/pg-test-cluster.sh)\n");
            return 1;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_query_and_migrate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_commit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_concurrent_migrate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_urls, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name (s_pg ? "cm_db_pg" : "cm_db_sqlite", tests, NULL,
                                        NULL);
}
