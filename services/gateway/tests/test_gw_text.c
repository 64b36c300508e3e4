/*  unit_gateway_text -- filename cleaning, content types, RFC 6266
    Content-Disposition with nasty names, ISO 8601.                     */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "gw_text.h"

static void
s_clean (const char *in, const char *expect)
{
    char out[GW_NAME_MAX + 1];
    gw_name_clean (in, out);
    assert_string_equal (out, expect);
}

static void
test_name_clean (void **state)
{
    s_clean ("report.pdf", "report.pdf");
    s_clean ("a/b/../../../etc/passwd", "passwd");
    s_clean ("C:\\Users\\x\\secret.txt", "secret.txt");
    s_clean ("dir/", "upload.bin");
    s_clean ("", "upload.bin");
    s_clean (NULL, "upload.bin");
    s_clean ("..", "upload.bin");
    s_clean ("a/..", "upload.bin");
    s_clean ("bad\r\nname\t.txt", "badname.txt");
    s_clean ("nul\x01\x7f.txt", "nul.txt");
    s_clean ("caf\xc3\xa9.txt", "caf\xc3\xa9.txt"); /* UTF-8 kept */
    s_clean ("bad\xff\xfe.txt", "bad__.txt");       /* invalid bytes shown */
    s_clean ("over\xc0\xaflong", "over__long");     /* overlong '/' refused */
    s_clean ("c1\xc2\x85x", "c1x");                 /* U+0085 is a control */
}

static void
test_name_length (void **state)
{
    char in[600];
    memset (in, 'a', sizeof in - 1);
    in[sizeof in - 1] = '\0';
    char out[GW_NAME_MAX + 1];
    gw_name_clean (in, out);
    assert_int_equal (strlen (out), GW_NAME_MAX);
    /* A 2-byte character straddling the limit is dropped whole. */
    memset (in, 'a', 254);
    memcpy (in + 254, "\xc3\xa9zz", 5);
    gw_name_clean (in, out);
    assert_int_equal (strlen (out), 254);
}

static void
test_content_type (void **state)
{
    assert_string_equal (gw_content_type_guess ("a.PDF"), "application/pdf");
    assert_string_equal (gw_content_type_guess ("x.tar.gz"), "application/gzip");
    assert_string_equal (gw_content_type_guess ("photo.jpeg"), "image/jpeg");
    assert_string_equal (gw_content_type_guess ("noext"), "application/octet-stream");
    assert_string_equal (gw_content_type_guess ("trailing."), "application/octet-stream");
    assert_string_equal (gw_content_type_guess ("x.exe"), "application/octet-stream");
    assert_string_equal (gw_content_type_guess ("notes.txt"), "text/plain");
    assert_string_equal (gw_content_type_guess ("data.json"), "application/json");
}

/* Names a browser would run or render as a document get no such type. */
static void
test_content_type_active (void **state)
{
    const char *names[] = {"a.html",  "a.HTM", "a.svg",    "a.xml", "a.js",
                           "a.xhtml", "a.Svg", "x.y.html", "a.mjs", "a.xsl"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_string_equal (gw_content_type_guess (names[i]),
                             "application/octet-stream");
    }
    const char *active[] = {"text/html",
                            "TEXT/HTML; charset=utf-8",
                            " text/html",
                            "application/xhtml+xml",
                            "image/svg+xml",
                            "application/xml",
                            "text/xml",
                            "text/javascript",
                            "application/javascript",
                            "application/rss+xml",
                            "application/atom+XML;x=1"};
    for (size_t i = 0; i < sizeof active / sizeof active[0]; i++) {
        assert_true (gw_content_type_active (active[i]));
    }
    const char *inert[] = {"text/plain",
                           "application/json",
                           "image/png",
                           "application/pdf",
                           "application/octet-stream",
                           "text/htmlx",
                           "",
                           "xml"};
    for (size_t i = 0; i < sizeof inert / sizeof inert[0]; i++) {
        assert_false (gw_content_type_active (inert[i]));
    }
    assert_false (gw_content_type_active (NULL));
}

static void
s_mp (const char *in, int rc, const char *expect)
{
    char out[GW_MULTIPART_TYPE_MAX];
    assert_int_equal (gw_multipart_type (in, out, sizeof out), rc);
    if (rc == 1) {
        assert_string_equal (out, expect);
    }
}

static void
test_multipart_type (void **state)
{
    const char *want = "multipart/form-data; boundary=XyZ";
    s_mp ("multipart/form-data; boundary=XyZ", 1, want);
    s_mp ("multipart/form-data; charset=utf-8; boundary=XyZ", 1, want);
    s_mp ("multipart/form-data; boundary=XyZ; charset=utf-8", 1, want);
    s_mp ("multipart/form-data;boundary=\"XyZ\"", 1, want);
    s_mp ("Multipart/Form-Data ; a=\"x;boundary=no\" ; BOUNDARY=XyZ ;", 1, want);
    s_mp ("multipart/form-data; boundary=\"a b(c)\"", 1,
          "multipart/form-data; boundary=\"a b(c)\"");
    /* 70 chars is the most RFC 2046 allows. */
    char b70[200];
    snprintf (b70, sizeof b70, "multipart/form-data; boundary=%070d", 7);
    s_mp (b70, 1, b70);
    /* Multipart without a usable boundary: 0. */
    s_mp ("multipart/form-data", 0, NULL);
    s_mp ("multipart/form-data; charset=utf-8", 0, NULL);
    s_mp ("multipart/form-data; boundary=", 0, NULL);
    s_mp ("multipart/form-data; boundary=\"\"", 0, NULL);
    s_mp ("multipart/form-data; boundary=a; boundary=b", 0, NULL);
    s_mp ("multipart/form-data; boundary=\"unterminated", 0, NULL);
    s_mp ("multipart/form-data; boundary=\"trailing \"", 0, NULL);
    s_mp ("multipart/form-data; boundary=\"a\r\nX: y\"", 0, NULL);
    s_mp ("multipart/form-data; boundary=\"a<b\"", 0, NULL);
    s_mp ("multipart/form-data boundary=XyZ", 0, NULL);
    s_mp ("multipart/form-data; =x; boundary=XyZ", 0, NULL);
    snprintf (b70, sizeof b70, "multipart/form-data; boundary=%071d", 7);
    s_mp (b70, 0, NULL);
    /* Not multipart/form-data at all: -1. */
    s_mp (NULL, -1, NULL);
    s_mp ("application/json", -1, NULL);
    s_mp ("multipart/form-dataX; boundary=XyZ", -1, NULL);
    s_mp ("multipart/mixed; boundary=XyZ", -1, NULL);
    /* Too small an output buffer is a refusal, never a cut boundary. */
    char tiny[20];
    assert_int_equal (
        gw_multipart_type ("multipart/form-data; boundary=XyZ", tiny, sizeof tiny), 0);
}

static void
test_disposition (void **state)
{
    char out[GW_DISPOSITION_MAX];
    assert_int_equal (gw_disposition_build ("report.pdf", out, sizeof out), 0);
    assert_string_equal (
        out, "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf");

    /* Quotes, backslash, CR/LF, ';' cannot break out of either form. */
    assert_int_equal (
        gw_disposition_build ("a\"b\\c\r\nX-Evil: 1;d.txt", out, sizeof out), 0);
    assert_string_equal (out, "attachment; filename=\"a_b_c__X-Evil: 1;d.txt\"; "
                              "filename*=UTF-8''a%22b%5Cc%0D%0AX-Evil%3A%201%3Bd.txt");
    assert_null (strchr (out, '\r'));
    assert_null (strchr (out, '\n'));

    /* Non-ASCII: '_' in the quoted form, percent-encoded UTF-8 in filename*. */
    assert_int_equal (gw_disposition_build ("caf\xc3\xa9 %.txt", out, sizeof out), 0);
    assert_string_equal (out, "attachment; filename=\"caf__ %.txt\"; "
                              "filename*=UTF-8''caf%C3%A9%20%25.txt");

    /* Too small a buffer is refused, not truncated. */
    char small[16];
    assert_int_equal (gw_disposition_build ("report.pdf", small, sizeof small), -1);

    /* The longest name fits the documented bound. */
    char name[GW_NAME_MAX + 1];
    memset (name, '"', GW_NAME_MAX);
    name[GW_NAME_MAX] = '\0';
    assert_int_equal (gw_disposition_build (name, out, sizeof out), 0);
}

static void
test_iso8601 (void **state)
{
    char out[32];
    gw_iso8601 (0, out);
    assert_string_equal (out, "1970-01-01T00:00:00Z");
    gw_iso8601 (1790000000ULL, out);
    assert_string_equal (out, "2026-09-21T14:13:20Z");
}

static void
s_range (const char *h, uint64_t size, int want, uint64_t a, uint64_t z)
{
    uint64_t first = 77, last = 77;
    int got = gw_range_parse (h, size, &first, &last);
    if (got != want) {
        fprintf (stderr, "range '%s' size %llu: %d, want %d\n", h ? h : "(null)",
                 (unsigned long long)size, got, want);
    }
    assert_int_equal (got, want);
    if (want == 1) {
        assert_int_equal (first, a);
        assert_int_equal (last, z);
    }
}

static void
test_range_parse (void **state)
{
    (void)state;
    s_range ("bytes=0-0", 10, 1, 0, 0);
    s_range ("bytes=0-9", 10, 1, 0, 9);
    s_range ("bytes=3-100", 10, 1, 3, 9);
    s_range ("bytes=9-", 10, 1, 9, 9);
    s_range ("bytes=4-", 10, 1, 4, 9);
    s_range ("bytes=-1", 10, 1, 9, 9);
    s_range ("bytes=-10", 10, 1, 0, 9);
    s_range ("bytes=-11", 10, 1, 0, 9);
    s_range ("BYTES = 2-3 ", 10, 1, 2, 3);
    /* Unsatisfiable: 416. */
    s_range ("bytes=10-", 10, -1, 0, 0);
    s_range ("bytes=10-20", 10, -1, 0, 0);
    s_range ("bytes=-0", 10, -1, 0, 0);
    s_range ("bytes=0-", 0, -1, 0, 0);
    s_range ("bytes=-5", 0, -1, 0, 0);
    /* Ignored: the whole file. */
    s_range (NULL, 10, 0, 0, 0);
    s_range ("", 10, 0, 0, 0);
    s_range ("bytes=", 10, 0, 0, 0);
    s_range ("bytes=-", 10, 0, 0, 0);
    s_range ("bytes=5-2", 10, 0, 0, 0);
    s_range ("bytes=0-1,3-4", 10, 0, 0, 0);
    s_range ("bytes=0-1,", 10, 0, 0, 0);
    s_range ("items=0-1", 10, 0, 0, 0);
    s_range ("bytes=a-b", 10, 0, 0, 0);
    s_range ("bytes=1-2x", 10, 0, 0, 0);
    s_range ("bytes=+1-2", 10, 0, 0, 0);
    s_range ("bytes=99999999999999999999-", 10, 0, 0, 0);
    s_range ("bytes=0-99999999999999999999", 10, 0, 0, 0);
    s_range ("bytes=9223372036854775807-", 10, -1, 0, 0);
}

static void
test_etag_match (void **state)
{
    (void)state;
    const char *e = "\"abc\"";
    assert_true (gw_etag_match_any ("\"abc\"", e));
    assert_true (gw_etag_match_any ("*", e));
    assert_true (gw_etag_match_any (" * ", e));
    assert_true (gw_etag_match_any ("W/\"abc\"", e));
    assert_true (gw_etag_match_any ("\"x\", \"abc\"", e));
    assert_true (gw_etag_match_any ("\"x\",W/\"abc\"", e));
    assert_false (gw_etag_match_any (NULL, e));
    assert_false (gw_etag_match_any ("", e));
    assert_false (gw_etag_match_any ("abc", e));
    assert_false (gw_etag_match_any ("\"ab\"", e));
    assert_false (gw_etag_match_any ("\"abcd\"", e));
    assert_false (gw_etag_match_any ("\"x\" \"abc\"", e));
    assert_false (gw_etag_match_any ("\"abc", e));
    assert_false (gw_etag_match_any ("*, \"abc\"", e));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_name_clean),
        cmocka_unit_test (test_name_length),
        cmocka_unit_test (test_content_type),
        cmocka_unit_test (test_disposition),
        cmocka_unit_test (test_iso8601),
        cmocka_unit_test (test_content_type_active),
        cmocka_unit_test (test_multipart_type),
        cmocka_unit_test (test_range_parse),
        cmocka_unit_test (test_etag_match),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
