/*  unit_auth_policy -- password length and the common-password list.
    argv[1]: the repo's data/common-passwords.txt.                       */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authd_policy.h"
#include "authd_users.h"
#include "cm_testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_repo_list;

static void
s_write (const char *path, const char *text)
{
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    assert_int_equal (fputs (text, f) >= 0, 1);
    assert_int_equal (fclose (f), 0);
}

static void
test_builtin (void **state)
{
    (void)state;
    assert_int_equal (authd_denylist_load (NULL), 0);
    size_t builtin = authd_denylist_size ();
    assert_true (builtin >= 1000);
    /* The embedded copy is the repo file, entry for entry. */
    assert_int_equal (authd_denylist_load (s_repo_list), 0);
    assert_int_equal (authd_denylist_size (), builtin);
    assert_int_equal (authd_denylist_load (""), 0);
    assert_int_equal (authd_denylist_size (), builtin);
}

static void
test_rules (void **state)
{
    (void)state;
    assert_int_equal (authd_denylist_load (NULL), 0);
    const char *common[] = {"password",  "12345678", "qwerty123", "iloveyou",
                            "PassWord1", "P@SSW0RD", "sunshine1", "letmein123"};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        const char *why = authd_password_problem (common[i]);
        assert_non_null (why);
        assert_non_null (strstr (why, "too common"));
        assert_null (strstr (why, common[i]));
    }
    /* The system test's and the CLI test's passwords stay allowed. */
    const char *fine[] = {"correct horse battery", "another good password",
                          "Correct-Horse-Battery-9", "Another-Horse-77", "password1x!"};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        assert_null (authd_password_problem (fine[i]));
    }
    assert_non_null (strstr (authd_password_problem ("short12"), "too short"));
    assert_non_null (strstr (authd_password_problem (""), "too short"));
    assert_non_null (strstr (authd_password_problem (NULL), "too short"));
    char long_pw[AUTHD_PASSWORD_MAX + 2];
    memset (long_pw, 'k', sizeof long_pw - 1);
    long_pw[sizeof long_pw - 1] = '\0';
    assert_non_null (strstr (authd_password_problem (long_pw), "too long"));
    long_pw[AUTHD_PASSWORD_MAX] = '\0';
    assert_null (authd_password_problem (long_pw));
}

static void
test_file (void **state)
{
    (void)state;
    char *dir = cm_test_tmpdir ();
    assert_non_null (dir);
    char path[600], empty[600], missing[600];
    snprintf (path, sizeof path, "%s/list.txt", dir);
    snprintf (empty, sizeof empty, "%s/empty.txt", dir);
    snprintf (missing, sizeof missing, "%s/none.txt", dir);
    /* CRLF, comments, blanks, upper case: all handled. */
    s_write (path, "# ours\r\nZebraStripes42\r\n\r\n  \nhorsebattery\n");
    assert_int_equal (authd_denylist_load (path), 0);
    assert_int_equal (authd_denylist_size (), 2);
    assert_non_null (authd_password_problem ("zebrastripes42"));
    assert_non_null (authd_password_problem ("HORSEBATTERY"));
    /* It replaced the built-in list. */
    assert_null (authd_password_problem ("password"));

    /* A list with no entry, or no file, is refused and the old list stays. */
    s_write (empty, "# nothing\n\n");
    assert_int_equal (authd_denylist_load (empty), -1);
    assert_int_equal (authd_denylist_load (missing), -1);
    assert_int_equal (authd_denylist_size (), 2);
    assert_non_null (authd_password_problem ("zebrastripes42"));

    assert_int_equal (authd_denylist_load (NULL), 0);
    assert_null (authd_password_problem ("zebrastripes42"));
    cm_test_rmrf (dir);
    free (dir);
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        fprintf (stderr, "usage: %s PATH/TO/common-passwords.txt\n", argv[0]);
        return 2;
    }
    s_repo_list = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_builtin),
        cmocka_unit_test (test_rules),
        cmocka_unit_test (test_file),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
