/*  authd_test_db -- the auth store a unit test runs on: a new temporary
    directory with the SQLite file in it, or a fresh PostgreSQL schema
    with SAFESHARE_TEST_DB=pg (cm_test_pg_schema_url), migrated. And the
    one-value queries the tests check rows with. Failures are cmocka
    assertions. Linked into the auth unit tests only.                   */
#ifndef AUTHD_TEST_DB_H
#define AUTHD_TEST_DB_H

#include "cm_db.h"

#include <stddef.h>

typedef struct {
    char *dir;       /* the temporary directory (the SQLite file, other files) */
    char url[700];   /* what the store was opened with */
    char schema[40]; /* PostgreSQL run: this test's schema, else "" */
    cm_db_t *db;
} authd_test_db_t;

/* Fills t (zeroed first) and opens the migrated store. */
void authd_test_db_open (authd_test_db_t *t);
/* Closes the store, drops the schema, removes the directory. */
void authd_test_db_close (authd_test_db_t *t);

/* cmocka setup / teardown whose state is an authd_test_db_t, for tests
   that need nothing else.                                             */
int authd_test_db_setup (void **state);
int authd_test_db_teardown (void **state);
/* A cmocka test with those. */
#define AUTHD_TEST_DB(test)                                                              \
    cmocka_unit_test_setup_teardown (test, authd_test_db_setup, authd_test_db_teardown)

/* First column of the first row of sql (param: $1, or NULL for none),
   copied into out; "" for no row or NULL.                             */
void authd_test_scalar (cm_db_t *db, const char *sql, const char *param, char *out,
                        size_t outlen);
/* The same as a number (a COUNT(*) or a counter column). */
long authd_test_count (cm_db_t *db, const char *sql, const char *param);

#endif
