/*  Config loader: defaults <- file <- environment, validation.         */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cm_config.h"
#include "cm_testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char s_dir[256];

static int
s_setup (void **state)
{
    (void)state;
    char *dir = cm_test_tmpdir ();
    snprintf (s_dir, sizeof s_dir, "%s", dir);
    free (dir);
    /* The test must not see the caller's configuration. */
    unsetenv ("SAFESHARE_DATA_DIR");
    unsetenv ("SAFESHARE_HTTP_ADDR");
    unsetenv ("SAFESHARE_CHUNK_SIZE");
    unsetenv ("SAFESHARE_AUTH_DB");
    unsetenv ("SAFESHARE_REFRESH_TTL");
    unsetenv ("SAFESHARE_SESSION_TTL");
    unsetenv ("SAFESHARE_USER_CACHE_TTL");
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    cm_test_rmrf (s_dir);
    return 0;
}

static char *
s_write (const char *name, const char *text)
{
    static char path[512];
    snprintf (path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen (path, "w");
    fputs (text, f);
    fclose (f);
    return path;
}

static void
test_defaults (void **state)
{
    (void)state;
    char err[256] = "";
    cm_config_t *c = cm_config_load (NULL, err, sizeof err);
    assert_non_null (c);
    assert_string_equal (cm_config_get (c, "SAFESHARE_DATA_DIR"), "./var");
    assert_string_equal (cm_config_get (c, "SAFESHARE_HTTP_ADDR"), "127.0.0.1:8000");
    assert_string_equal (cm_config_get (c, "SAFESHARE_AUTH_DB"), "sqlite:./var/auth.db");
    assert_string_equal (cm_config_get (c, "SAFESHARE_CRYPTO_ENDPOINT"),
                         "ipc://./var/run/crypto.sock");
    assert_int_equal (cm_config_int (c, "SAFESHARE_CHUNK_SIZE"), 1048576);
    assert_null (cm_config_get (c, "SAFESHARE_NO_SUCH_KEY"));
    /* Sessions: refresh tokens 14 days, sessions 30 days, user cache 5 s. */
    assert_int_equal (cm_config_int (c, "SAFESHARE_REFRESH_TTL"), 1209600);
    assert_int_equal (cm_config_int (c, "SAFESHARE_SESSION_TTL"), 2592000);
    assert_int_equal (cm_config_int (c, "SAFESHARE_USER_CACHE_TTL"), 5);
    cm_config_destroy (&c);
    assert_null (c);
    cm_config_destroy (&c); /* safe twice */
}

static void
test_file_then_env_wins (void **state)
{
    (void)state;
    char *path = s_write ("a.conf", "# comment\n\nSAFESHARE_DATA_DIR=/srv/ss\n"
                                    "  SAFESHARE_HTTP_ADDR=0.0.0.0:9000  \n"
                                    "SAFESHARE_CHUNK_SIZE=65536\n");
    char err[256] = "";
    cm_config_t *c = cm_config_load (path, err, sizeof err);
    assert_non_null (c);
    assert_string_equal (cm_config_get (c, "SAFESHARE_HTTP_ADDR"), "0.0.0.0:9000");
    /* Derived defaults follow the data dir from the file. */
    assert_string_equal (cm_config_get (c, "SAFESHARE_STORAGE_DB"),
                         "sqlite:/srv/ss/storage.db");
    assert_int_equal (cm_config_int (c, "SAFESHARE_CHUNK_SIZE"), 65536);
    cm_config_destroy (&c);

    setenv ("SAFESHARE_CHUNK_SIZE", "8192", 1);
    setenv ("SAFESHARE_DATA_DIR", "/env/dir", 1);
    c = cm_config_load (path, err, sizeof err);
    assert_non_null (c);
    assert_int_equal (cm_config_int (c, "SAFESHARE_CHUNK_SIZE"), 8192);
    assert_string_equal (cm_config_get (c, "SAFESHARE_BLOB_DIR"), "/env/dir/blobs");
    /* An explicit value is not rewritten by the data dir. */
    setenv ("SAFESHARE_AUTH_DB", "sqlite:/elsewhere/a.db", 1);
    cm_config_destroy (&c);
    c = cm_config_load (path, err, sizeof err);
    assert_string_equal (cm_config_get (c, "SAFESHARE_AUTH_DB"),
                         "sqlite:/elsewhere/a.db");
    cm_config_destroy (&c);
    unsetenv ("SAFESHARE_CHUNK_SIZE");
    unsetenv ("SAFESHARE_DATA_DIR");
    unsetenv ("SAFESHARE_AUTH_DB");
}

static void
s_expect_error (const char *key, const char *value, const char *fragment)
{
    char err[256] = "";
    setenv (key, value, 1);
    cm_config_t *c = cm_config_load (NULL, err, sizeof err);
    unsetenv (key);
    assert_null (c);
    assert_non_null (strstr (err, key));
    assert_non_null (strstr (err, fragment));
}

static void
test_validation (void **state)
{
    (void)state;
    s_expect_error ("SAFESHARE_CHUNK_SIZE", "12", "integer from 4096");
    s_expect_error ("SAFESHARE_CHUNK_SIZE", "1MiB", "integer");
    s_expect_error ("SAFESHARE_HTTP_ADDR", "localhost", "HOST:PORT");
    s_expect_error ("SAFESHARE_HTTP_ADDR", "127.0.0.1:99999", "HOST:PORT");
    s_expect_error ("SAFESHARE_LOG_LEVEL", "loud", "one of");
    s_expect_error ("SAFESHARE_AUTH_DB", "mysql://x", "sqlite:PATH");
    s_expect_error ("SAFESHARE_AUTH_ENDPOINT", "udp://1.2.3.4:5", "ipc://");
    s_expect_error ("SAFESHARE_PUBLIC_URL", "ftp://x", "http");
    s_expect_error ("SAFESHARE_PUBLIC_URL", "http://x/", "must not end");
    s_expect_error ("SAFESHARE_JWT_ISSUER", "a\tb", "printable");
    s_expect_error ("SAFESHARE_JWT_ISSUER", "", "non-empty");
    s_expect_error ("SAFESHARE_REFRESH_TTL", "59", "integer from 60 to 31536000");
    s_expect_error ("SAFESHARE_REFRESH_TTL", "31536001", "integer from 60 to 31536000");
    s_expect_error ("SAFESHARE_SESSION_TTL", "59", "integer from 60 to 31536000");
    s_expect_error ("SAFESHARE_SESSION_TTL", "31536001", "integer from 60 to 31536000");
    s_expect_error ("SAFESHARE_USER_CACHE_TTL", "-1", "integer from 0 to 60");
    s_expect_error ("SAFESHARE_USER_CACHE_TTL", "61", "integer from 0 to 60");
    s_expect_error ("SAFESHARE_USER_CACHE_TTL", "5s", "integer from 0 to 60");
}

/* The edges of each new range load, from the file and the environment. */
static void
test_session_ttls (void **state)
{
    (void)state;
    char err[256] = "";
    char *path = s_write ("ttl.conf", "SAFESHARE_REFRESH_TTL=60\n"
                                      "SAFESHARE_SESSION_TTL=31536000\n"
                                      "SAFESHARE_USER_CACHE_TTL=0\n");
    cm_config_t *c = cm_config_load (path, err, sizeof err);
    assert_non_null (c);
    assert_int_equal (cm_config_int (c, "SAFESHARE_REFRESH_TTL"), 60);
    assert_int_equal (cm_config_int (c, "SAFESHARE_SESSION_TTL"), 31536000);
    assert_int_equal (cm_config_int (c, "SAFESHARE_USER_CACHE_TTL"), 0);
    cm_config_destroy (&c);
    setenv ("SAFESHARE_REFRESH_TTL", "31536000", 1);
    setenv ("SAFESHARE_SESSION_TTL", "60", 1);
    setenv ("SAFESHARE_USER_CACHE_TTL", "60", 1);
    c = cm_config_load (path, err, sizeof err);
    unsetenv ("SAFESHARE_REFRESH_TTL");
    unsetenv ("SAFESHARE_SESSION_TTL");
    unsetenv ("SAFESHARE_USER_CACHE_TTL");
    assert_non_null (c);
    assert_int_equal (cm_config_int (c, "SAFESHARE_REFRESH_TTL"), 31536000);
    assert_int_equal (cm_config_int (c, "SAFESHARE_SESSION_TTL"), 60);
    assert_int_equal (cm_config_int (c, "SAFESHARE_USER_CACHE_TTL"), 60);
    cm_config_destroy (&c);
}

static void
test_bad_files (void **state)
{
    (void)state;
    char err[256] = "";
    char *path = s_write ("b.conf", "SAFESHARE_NOPE=1\n");
    assert_null (cm_config_load (path, err, sizeof err));
    assert_non_null (strstr (err, "unknown key SAFESHARE_NOPE"));
    assert_non_null (strstr (err, ":1:"));
    path = s_write ("c.conf", "SAFESHARE_LOG_LEVEL=info\njust words\n");
    assert_null (cm_config_load (path, err, sizeof err));
    assert_non_null (strstr (err, ":2: expected KEY=value"));
    path = s_write ("d.conf", "SAFESHARE_CRYPTO_WORKERS=65\n");
    assert_null (cm_config_load (path, err, sizeof err));
    assert_non_null (strstr (err, "SAFESHARE_CRYPTO_WORKERS"));
    char missing[300];
    snprintf (missing, sizeof missing, "%s/absent.conf", s_dir);
    assert_null (cm_config_load (missing, err, sizeof err));
    assert_non_null (strstr (err, "cannot read config file"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_defaults),   cmocka_unit_test (test_file_then_env_wins),
        cmocka_unit_test (test_validation), cmocka_unit_test (test_session_ttls),
        cmocka_unit_test (test_bad_files),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
