/*  authd_test_db -- the auth unit tests' store (see authd_test_db.h).  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authd_test_db.h"
#include "authd_users.h"
#include "cm_testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
authd_test_db_open (authd_test_db_t *t)
{
    memset (t, 0, sizeof *t);
    t->dir = cm_test_tmpdir ();
    assert_non_null (t->dir);
    snprintf (t->url, sizeof t->url, "sqlite:%s/auth.db", t->dir);
    assert_int_not_equal (cm_test_pg_schema_url (t->schema, t->url, sizeof t->url), -1);
    t->db = cm_db_open (t->url);
    assert_non_null (t->db);
    assert_int_equal (authd_store_migrate (t->db), 0);
}

void
authd_test_db_close (authd_test_db_t *t)
{
    cm_db_destroy (&t->db);
    assert_int_equal (cm_test_pg_schema_drop (t->schema), 0);
    cm_test_rmrf (t->dir);
    free (t->dir);
    t->dir = NULL;
}

int
authd_test_db_setup (void **state)
{
    authd_test_db_t *t = calloc (1, sizeof *t);
    assert_non_null (t);
    authd_test_db_open (t);
    *state = t;
    return 0;
}

int
authd_test_db_teardown (void **state)
{
    authd_test_db_t *t = *state;
    authd_test_db_close (t);
    free (t);
    return 0;
}

void
authd_test_scalar (cm_db_t *db, const char *sql, const char *param, char *out,
                   size_t outlen)
{
    const char *p[] = {param};
    cm_db_res_t *res = cm_db_query (db, sql, param ? 1 : 0, param ? p : NULL);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    const char *v = cm_db_res_get (res, 0, 0);
    snprintf (out, outlen, "%s", v ? v : "");
    cm_db_res_free (&res);
}

long
authd_test_count (cm_db_t *db, const char *sql, const char *param)
{
    char buf[32];
    authd_test_scalar (db, sql, param, buf, sizeof buf);
    return strtol (buf, NULL, 10);
}
