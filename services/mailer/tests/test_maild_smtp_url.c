/*  unit_mailer_smtp_url -- SAFESHARE_SMTP_URL parsing: defaults (587,
    STARTTLS required), credentials percent-decoded, tls=none only when
    written, and every malformed URL refused without echoing a password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maild_smtp.h"

#include <stdio.h>
#include <string.h>

static void
test_good (void **state)
{
    (void)state;
    maild_smtp_url_t u;
    char err[256];
    assert_int_equal (
        maild_smtp_url_parse ("smtp://mail.example.com", &u, err, sizeof err), 0);
    assert_string_equal (u.host, "mail.example.com");
    assert_string_equal (u.port, "587");
    assert_true (u.starttls);
    assert_null (u.user);
    maild_smtp_url_clear (&u);
    assert_int_equal (
        maild_smtp_url_parse ("smtp://user%40x.org:p%40ss%3Aw%2F@10.0.0.1:2525/", &u, err,
                              sizeof err),
        0);
    assert_string_equal (u.user, "user@x.org");
    assert_string_equal (u.password, "p@ss:w/");
    assert_string_equal (u.host, "10.0.0.1");
    assert_string_equal (u.port, "2525");
    assert_true (u.starttls);
    maild_smtp_url_clear (&u);
    assert_null (u.user);
    assert_null (u.password);
    /* An unencoded @ in the password: the last @ ends the credentials. */
    assert_int_equal (
        maild_smtp_url_parse ("smtp://u:a@b@h:25?tls=none", &u, err, sizeof err), 0);
    assert_string_equal (u.password, "a@b");
    assert_string_equal (u.host, "h");
    assert_false (u.starttls);
    maild_smtp_url_clear (&u);
    assert_int_equal (maild_smtp_url_parse ("smtp://h?tls=starttls", &u, err, sizeof err),
                      0);
    assert_true (u.starttls);
    maild_smtp_url_clear (&u);
}

static void
test_bad (void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "smtps://h",
        "http://h",
        "smtp://",
        "smtp://:25",
        "smtp://h:0",
        "smtp://h:65536",
        "smtp://h:25x",
        "smtp://h:",
        "smtp://h?tls=NONE",
        "smtp://h?tls=none&x=1",
        "smtp://h?tls=",
        "smtp://h/path",
        "smtp://[::1]:25",
        "smtp://h h",
        "smtp://u:secret%0d%0aX@h",
        "smtp://u:secret%zz@h",
        "smtp://:secret@h",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        maild_smtp_url_t u;
        char err[256] = "";
        if (maild_smtp_url_parse (bad[i], &u, err, sizeof err) == 0) {
            fail_msg ("accepted %s", bad[i]);
        }
        assert_true (strlen (err) > 0);
        assert_null (strstr (err, "secret"));
        assert_null (u.user);
        assert_null (u.password);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_good),
        cmocka_unit_test (test_bad),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
