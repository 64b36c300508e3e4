/*  unit_cli_user -- reading the password line from stdin.              */
#include "cli_user.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* A pipe whose read end holds `data` (then EOF). */
static int
s_feed (const char *data, size_t len)
{
    int p[2];
    assert_int_equal (pipe (p), 0);
    assert_int_equal (write (p[1], data, len), (ssize_t)len);
    close (p[1]);
    return p[0];
}

static void
test_one_line (void **state)
{
    char buf[64];
    int fd = s_feed ("s3cret pass\nnext line\n", 22);
    assert_int_equal (cli_password_read_line (fd, buf, sizeof buf), 11);
    assert_string_equal (buf, "s3cret pass");
    /* nothing past the newline was consumed */
    char rest[16] = "";
    assert_int_equal (read (fd, rest, sizeof rest - 1), 10);
    assert_string_equal (rest, "next line\n");
    close (fd);
}

static void
test_crlf_and_no_newline (void **state)
{
    char buf[64];
    int fd = s_feed ("windows\r\n", 9);
    assert_int_equal (cli_password_read_line (fd, buf, sizeof buf), 7);
    assert_string_equal (buf, "windows");
    close (fd);
    fd = s_feed ("no-newline", 10);
    assert_int_equal (cli_password_read_line (fd, buf, sizeof buf), 10);
    assert_string_equal (buf, "no-newline");
    close (fd);
}

static void
test_empty_and_eof (void **state)
{
    char buf[64];
    int fd = s_feed ("", 0);
    assert_int_equal (cli_password_read_line (fd, buf, sizeof buf), -1);
    close (fd);
    /* an empty line is an empty password: authd's policy refuses it */
    fd = s_feed ("\n", 1);
    assert_int_equal (cli_password_read_line (fd, buf, sizeof buf), 0);
    assert_string_equal (buf, "");
    close (fd);
    assert_int_equal (cli_password_read_line (-1, buf, sizeof buf), -1);
}

/* Too long: refused whole (never cut to a different password), and the
   buffer holds none of it.                                            */
static void
test_too_long (void **state)
{
    char buf[16];
    char line[40];
    memset (line, 'p', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    int fd = s_feed (line, sizeof line);
    assert_int_equal (cli_password_read_line (fd, buf, sizeof buf), -2);
    for (size_t i = 0; i < sizeof buf; i++) {
        assert_int_equal (buf[i], 0);
    }
    close (fd);
    /* exactly len - 1 bytes fit */
    fd = s_feed ("123456789012345\n", 16);
    assert_int_equal (cli_password_read_line (fd, buf, sizeof buf), 15);
    close (fd);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_one_line),
        cmocka_unit_test (test_crlf_and_no_newline),
        cmocka_unit_test (test_empty_and_eof),
        cmocka_unit_test (test_too_long),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
