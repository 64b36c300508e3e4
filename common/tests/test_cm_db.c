/*  DB layer on SQLite: params, results, constraint status, migrations.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cm_db.h"
#include "cm_log.h"
#include "cm_testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char s_url[300];
static char *s_dir;

static int
s_setup (void **state)
{
    (void)state;
    cm_log_init ("test", CM_LOG_ERROR);
    s_dir = cm_test_tmpdir ();
    snprintf (s_url, sizeof s_url, "sqlite:%s/t.db", s_dir);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    cm_test_rmrf (s_dir);
    free (s_dir);
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
    struct stat st;
    assert_int_equal (stat (s_url + 7, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);

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
    const char *p2[] = {"b", "7", "it's \"quoted\""};
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
    assert_string_equal (cm_db_res_get (res, 1, 1), "it's \"quoted\"");
    assert_null (cm_db_res_get (res, 2, 0));
    cm_db_res_free (&res);
    assert_null (res);

    const char *p4[] = {"a"};
    res = cm_db_query (db, "UPDATE items SET n = n + 1 WHERE id = $1", 1, p4);
    assert_int_equal (cm_db_res_changes (res), 1);
    cm_db_res_free (&res);

    /* Missing parameter values and bad SQL are errors, not crashes. */
    assert_int_equal (cm_db_exec (db, "SELECT $2", 1, p4), CM_DB_ERROR);
    assert_int_equal (cm_db_exec (db, "SELEC nonsense", 0, NULL), CM_DB_ERROR);

    /* Rollback discards. */
    assert_int_equal (cm_db_begin (db), 0);
    const char *p5[] = {"c", "1", NULL};
    cm_db_exec (db, "INSERT INTO items (id, n, note) VALUES ($1, $2, $3)", 3, p5);
    assert_int_equal (cm_db_rollback (db), 0);
    res = cm_db_query (db, "SELECT count(*) FROM items", 0, NULL);
    assert_string_equal (cm_db_res_get (res, 0, 0), "2");
    cm_db_res_free (&res);
    cm_db_destroy (&db);
    assert_null (db);

    /* Migrations are recorded: reopen and check the version. */
    db = cm_db_open (s_url);
    res = cm_db_query (
        db, "SELECT max(version) FROM schema_migrations WHERE service = 'test'", 0, NULL);
    assert_string_equal (cm_db_res_get (res, 0, 0), "2");
    cm_db_res_free (&res);
    cm_db_destroy (&db);
}

static void
test_bad_urls (void **state)
{
    (void)state;
    assert_null (cm_db_open ("postgresql://localhost/x"));
    assert_null (cm_db_open ("mysql://x"));
    assert_null (cm_db_open ("sqlite:/nonexistent-dir/x/y.db"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_query_and_migrate),
        cmocka_unit_test (test_bad_urls),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
