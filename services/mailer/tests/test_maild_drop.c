/*  unit_mailer_drop -- the mail drop writes one 0600 file per job in a
    0700 directory, delivers a known job again without rewriting it, and
    never builds a path from anything but a 32-hex job id.            */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maild_drop.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define JOB "0123456789abcdef0123456789abcdef"

static int
s_setup (void **state)
{
    *state = cm_test_tmpdir ();
    return *state ? 0 : -1;
}

static int
s_teardown (void **state)
{
    cm_test_rmrf (*state);
    free (*state);
    return 0;
}

/* Entries in dir other than . and .. */
static int
s_count (const char *dir)
{
    DIR *d = opendir (dir);
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        n += strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0;
    }
    closedir (d);
    return n;
}

static void
test_drop_writes_once (void **state)
{
    char dir[512], path[600];
    snprintf (dir, sizeof dir, "%s/deeper/mail", (char *)*state);
    char err[256] = "";
    maild_transport_t *t = maild_drop_new (dir, err, sizeof err);
    assert_non_null (t);
    assert_string_equal (maild_transport_name (t), "drop");
    struct stat st;
    assert_int_equal (stat (dir, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0700);

    const char *data = "From: a@b\r\n\r\nfirst\r\n";
    char why[200];
    assert_int_equal (maild_transport_deliver (t, "r1", JOB, "c@d", data, strlen (data),
                                               why, sizeof why),
                      MAILD_DELIVERED);
    snprintf (path, sizeof path, "%s/%s.eml", dir, JOB);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    ino_t ino = st.st_ino;
    size_t len = 0;
    char *got = cm_file_read (path, 1 << 20, &len);
    assert_non_null (got);
    assert_int_equal (len, strlen (data));
    assert_memory_equal (got, data, len);
    free (got);

    /* Same job again (a crash before its result was recorded): delivered,
       the file untouched.                                              */
    const char *other = "From: a@b\r\n\r\nsecond\r\n";
    assert_int_equal (maild_transport_deliver (t, "r2", JOB, "c@d", other, strlen (other),
                                               why, sizeof why),
                      MAILD_DELIVERED);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_ino, ino);
    got = cm_file_read (path, 1 << 20, &len);
    assert_non_null (got);
    assert_memory_equal (got, data, strlen (data));
    free (got);
    assert_int_equal (s_count (dir), 1); /* no tmp file left behind */
    maild_transport_destroy (&t);
    assert_null (t);
    maild_transport_destroy (&t);
}

static void
test_drop_refuses_bad_job_ids (void **state)
{
    char err[256] = "";
    maild_transport_t *t = maild_drop_new (*state, err, sizeof err);
    assert_non_null (t);
    static const char *bad[] = {"../../../../tmp/x", "0123456789ABCDEF0123456789ABCDEF",
                                "0123456789abcdef0123456789abcde", "", "a/b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[200];
        assert_int_equal (
            maild_transport_deliver (t, "r", bad[i], "c@d", "x", 1, why, sizeof why),
            MAILD_FAILED);
    }
    assert_int_equal (s_count (*state), 0);
    maild_transport_destroy (&t);
}

static void
test_drop_odd_paths (void **state)
{
    char path[600], err[256] = "";
    /* The mail dir is a file: refused at start with a reason. */
    snprintf (path, sizeof path, "%s/file", (char *)*state);
    assert_int_equal (cm_file_write_atomic (path, "x", 1, 0600), 0);
    assert_null (maild_drop_new (path, err, sizeof err));
    assert_non_null (strstr (err, path));
    assert_null (maild_drop_new ("", err, sizeof err));

    /* Something that is not a regular file where the job's file goes. */
    maild_transport_t *t = maild_drop_new (*state, err, sizeof err);
    assert_non_null (t);
    snprintf (path, sizeof path, "%s/%s.eml", (char *)*state, JOB);
    assert_int_equal (mkdir (path, 0700), 0);
    char why[200];
    assert_int_equal (
        maild_transport_deliver (t, "r", JOB, "c@d", "x", 1, why, sizeof why),
        MAILD_RETRY);
    assert_non_null (strstr (why, "not a regular file"));
    maild_transport_destroy (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_drop_writes_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_drop_refuses_bad_job_ids, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_drop_odd_paths, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
