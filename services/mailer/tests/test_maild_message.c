/*  unit_mailer_message -- address checks, the Date format and the exact
    bytes of a composed message; nothing a peer sends can add a header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maild_message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOB "0123456789abcdef0123456789abcdef"

static void
test_recipients (void **state)
{
    (void)state;
    assert_true (maild_message_recipient_valid ("a@b"));
    assert_true (maild_message_recipient_valid ("first.last+tag@mail.example.com"));
    char long_ok[256];
    memset (long_ok, 'a', 254);
    long_ok[10] = '@';
    long_ok[254] = '\0';
    assert_true (maild_message_recipient_valid (long_ok));
    long_ok[254] = 'a';
    long_ok[255] = '\0';
    assert_false (maild_message_recipient_valid (long_ok)); /* 255 bytes */

    static const char *bad[] = {
        "",        "a@",     "@b",      "ab",          "a@b@c",
        "a b@c",   "a@b ",   " a@b",    "a\t@b",       "a@b\r\nBcc: victim@example.com",
        "a@b\n",   "a@b\r",  "a\x01@b", "a@b\x7f",     "<a@b>",
        "a@b>",    "a,b@c",  "a@b,c@d", "a;b@c",       "a:b@c",
        "\"a\"@b", "a\\b@c", "a(b)@c",  "a@[1.2.3.4]", "z\xc3\xa9@b", /* non-ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false (maild_message_recipient_valid (bad[i]));
    }
    assert_false (maild_message_recipient_valid (NULL));
}

static void
test_senders (void **state)
{
    (void)state;
    assert_true (maild_message_sender_valid ("safeshare <no-reply@localhost>"));
    assert_true (maild_message_sender_valid ("no-reply@localhost"));
    assert_true (maild_message_sender_valid ("<no-reply@localhost>"));
    assert_false (maild_message_sender_valid ("x <a@b>\r\nBcc: c@d"));
    assert_false (maild_message_sender_valid ("x <a@b\r\nBcc: c@d>"));
    assert_false (maild_message_sender_valid ("Acme, Inc <a@b>"));
    assert_false (maild_message_sender_valid ("x <a@b> y"));
    assert_false (maild_message_sender_valid ("x <a@b"));
    assert_false (maild_message_sender_valid ("x <>"));
    assert_false (maild_message_sender_valid ("Zo\xc3\xab <a@b>"));
    assert_false (maild_message_sender_valid (""));
    assert_false (maild_message_sender_valid (NULL));
}

static void
test_date (void **state)
{
    (void)state;
    char date[40];
    assert_int_equal (maild_message_date (date, sizeof date, 0), 0);
    assert_string_equal (date, "Thu, 01 Jan 1970 00:00:00 +0000");
    assert_int_equal (maild_message_date (date, sizeof date, 1763730000), 0);
    assert_string_equal (date, "Fri, 21 Nov 2025 13:00:00 +0000");
    assert_int_equal (maild_message_date (date, sizeof date, 951782400), 0);
    assert_string_equal (date, "Tue, 29 Feb 2000 00:00:00 +0000");
    assert_int_equal (maild_message_date (date, 10, 0), -1);
}

/* Text-only compose with the given parts (no Reply-To, no HTML). */
static char *
s_compose (const char *from, const char *to, const char *job, const char *subject,
           const char *text, uint64_t date, size_t *len)
{
    maild_message_parts_t m = {.from = from,
                               .to = to,
                               .job_id = job,
                               .subject = subject,
                               .text = text,
                               .date_s = date};
    return maild_message_compose (&m, len);
}

static void
test_compose_exact (void **state)
{
    (void)state;
    size_t len = 0;
    char *msg = s_compose ("safeshare <no-reply@localhost>", "ann@example.com", JOB,
                           "Verify your safeshare account", "Hello,\n\nhttp://x/v?t=1\n",
                           1763730000, &len);
    assert_non_null (msg);
    const char *want = "From: safeshare <no-reply@localhost>\r\n"
                       "To: ann@example.com\r\n"
                       "Subject: Verify your safeshare account\r\n"
                       "Date: Fri, 21 Nov 2025 13:00:00 +0000\r\n"
                       "Message-ID: <" JOB "@localhost>\r\n"
                       "MIME-Version: 1.0\r\n"
                       "Auto-Submitted: auto-generated\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: 7bit\r\n"
                       "\r\n"
                       "Hello,\r\n"
                       "\r\n"
                       "http://x/v?t=1\r\n";
    assert_string_equal (msg, want);
    assert_int_equal (len, strlen (want));
    free (msg);

    /* Non-ASCII text goes as base64 ("Zoë" is Wm/DqwoK... without LF). */
    msg = s_compose ("a@b", "c@d", JOB, "S", "Zo\xc3\xab", 0, &len);
    assert_non_null (msg);
    assert_int_equal (len, strlen (msg));
    assert_non_null (
        strstr (msg, "Content-Transfer-Encoding: base64\r\n\r\nWm/Dqw==\r\n"));
    assert_int_equal (msg[len - 1], '\n');
    free (msg);
}

static void
test_compose_multipart (void **state)
{
    (void)state;
    size_t len = 0;
    maild_message_parts_t m = {
        .from = "safeshare <no-reply@mail.example>",
        .reply_to = "Help <help@example.com>",
        .to = "ann@example.com",
        .job_id = JOB,
        .subject = "Hi",
        .text = "Open:\nhttp://x/v?t=1\n",
        .html = "<a href=\"http://x/v?t=1\">x</a>\n",
        .date_s = 0,
    };
    char *msg = maild_message_compose (&m, &len);
    assert_non_null (msg);
    const char *want =
        "From: safeshare <no-reply@mail.example>\r\n"
        "Reply-To: Help <help@example.com>\r\n"
        "To: ann@example.com\r\n"
        "Subject: Hi\r\n"
        "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"
        "Message-ID: <" JOB "@mail.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Auto-Submitted: auto-generated\r\n"
        "Content-Type: multipart/alternative; boundary=\"=_safeshare_" JOB "\"\r\n"
        "\r\n"
        "This is a multi-part message in MIME format.\r\n"
        "\r\n"
        "--=_safeshare_" JOB "\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        "Open:\r\n"
        "http://x/v?t=1\r\n"
        "\r\n"
        "--=_safeshare_" JOB "\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "PGEgaHJlZj0iaHR0cDovL3gvdj90PTEiPng8L2E+Cg==\r\n"
        "\r\n"
        "--=_safeshare_" JOB "--\r\n";
    assert_string_equal (msg, want);
    free (msg);
    /* A text holding the boundary goes as base64, so it cannot end the part. */
    m.text = "--=_safeshare_" JOB "--\n";
    msg = maild_message_compose (&m, &len);
    assert_non_null (msg);
    assert_non_null (strstr (msg, "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Transfer-Encoding: base64\r\n"));
    free (msg);
}

static void
test_subject_rfc2047 (void **state)
{
    (void)state;
    char *s = maild_message_subject ("Verify your account");
    assert_string_equal (s, "Verify your account");
    free (s);
    s = maild_message_subject ("Bitte best\xc3\xa4tigen");
    assert_string_equal (s, "=?UTF-8?B?Qml0dGUgYmVzdMOkdGlnZW4=?=");
    free (s);
    /* Long: several words, each <= 75 bytes, folded, cut between characters. */
    char longs[200] = "";
    for (int i = 0; i < 30; i++) {
        strcat (longs, "\xc3\xa4\xe2\x9c\x93"); /* ä✓: 5 bytes */
    }
    s = maild_message_subject (longs);
    assert_non_null (s);
    size_t words = 0;
    for (char *w = s; w; w = strstr (w, "\r\n ")) {
        w += w == s ? 0 : 3;
        char *end = strstr (w, "?=");
        assert_non_null (end);
        assert_true (end + 2 - w <= 75);
        assert_int_equal (strncmp (w, "=?UTF-8?B?", 10), 0);
        words++;
        if (!strstr (w, "\r\n ")) {
            break;
        }
    }
    assert_true (words >= 4);
    free (s);
    assert_null (maild_message_subject ("a\r\nBcc: x@y"));
    assert_null (maild_message_subject ("a\nb"));
    assert_null (maild_message_subject ("bad \xff"));
    assert_null (maild_message_subject (""));
}

static void
test_compose_refuses_injection (void **state)
{
    (void)state;
    size_t len = 0;
    const char *from = "safeshare <no-reply@localhost>";
    assert_null (s_compose (from, "a@b\r\nBcc: v@x", JOB, "S", "b\n", 0, &len));
    assert_null (s_compose ("x <a@b>\r\nBcc: v@x", "a@b", JOB, "S", "b\n", 0, &len));
    assert_null (s_compose (from, "a@b", "0123\r\nBcc: v@x", "S", "b\n", 0, &len));
    assert_null (
        s_compose (from, "a@b", "0123456789ABCDEF0123456789ABCDEF", "S", "b\n", 0, &len));
    assert_null (s_compose (from, "a@b", JOB, "S\r\nBcc: v@x", "b\n", 0, &len));
    assert_null (s_compose (from, "a@b", JOB, "", "b\n", 0, &len));
    /* A CR in the body could end a line early; we add every CR ourselves. */
    assert_null (s_compose (from, "a@b", JOB, "S", "b\r\n.\r\n", 0, &len));
    assert_null (s_compose (from, "a@b", JOB, "S", NULL, 0, &len));
    maild_message_parts_t m = {.from = from,
                               .reply_to = "x <a@b>\r\nBcc: v@x",
                               .to = "a@b",
                               .job_id = JOB,
                               .subject = "S",
                               .text = "b\n"};
    assert_null (maild_message_compose (&m, &len));
    char *longline = malloc (1001);
    memset (longline, 'x', 999);
    longline[999] = '\n';
    longline[1000] = '\0';
    assert_null (s_compose (from, "a@b", JOB, "S", longline, 0, &len));
    longline[998] = '\n';
    longline[999] = '\0';
    char *msg = s_compose (from, "a@b", JOB, "S", longline, 0, &len);
    assert_non_null (msg);
    free (msg);
    free (longline);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_recipients),
        cmocka_unit_test (test_senders),
        cmocka_unit_test (test_date),
        cmocka_unit_test (test_compose_exact),
        cmocka_unit_test (test_compose_multipart),
        cmocka_unit_test (test_subject_rfc2047),
        cmocka_unit_test (test_compose_refuses_injection),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
