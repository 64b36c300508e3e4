/*  Small shared helpers: the one e-mail rule, hex, random tokens.       */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cm_util.h"

#include <string.h>

static void
test_email (void **state)
{
    (void)state;
    const char *good[] = {"a@b.c", "first.last+tag@example.org", "x_y-z@sub.example.co",
                          "O'Brien@example.ie", NULL};
    for (int i = 0; good[i]; i++) {
        assert_true (cm_email_valid (good[i]));
    }
    const char *bad[] = {"",
                         "a@",
                         "@b",
                         "ab",
                         "a@b@c",
                         "a b@c.d",
                         "a\r\n@c.d",
                         "a@c.d\r\nBcc: x@y.z",
                         "a,b@c.d",
                         "\"q\"@c.d",
                         "a(b)@c.d",
                         "x@[1.2.3.4]",
                         "<a@c.d>",
                         "a;b@c.d",
                         "a:b@c.d",
                         "a\\b@c.d",
                         "\xc3\xa9@c.d",
                         "a\x7f@c.d",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        assert_false (cm_email_valid (bad[i]));
    }
    assert_false (cm_email_valid (NULL));
    char longest[256];
    memset (longest, 'a', sizeof longest);
    memcpy (longest + 248, "@x.org", 7); /* 254 bytes */
    assert_true (cm_email_valid (longest));
    memset (longest, 'a', sizeof longest);
    memcpy (longest + 249, "@x.org", 7); /* 255 bytes */
    assert_false (cm_email_valid (longest));
}

static void
test_hex_and_tokens (void **state)
{
    (void)state;
    uint8_t raw[4] = {0x00, 0x7f, 0xab, 0xff}, back[4];
    char hex[9];
    cm_hex_encode (hex, raw, 4);
    assert_string_equal (hex, "007fabff");
    assert_int_equal (cm_hex_decode (back, 4, hex), 0);
    assert_memory_equal (back, raw, 4);
    assert_int_equal (cm_hex_decode (back, 4, "007fabf"), -1);
    assert_int_equal (cm_hex_decode (back, 4, "007fabfg"), -1);
    assert_true (cm_is_hex_id ("0123456789abcdef0123456789abcdef", 32));
    assert_false (cm_is_hex_id ("0123456789ABCDEF0123456789abcdef", 32));
    char id1[33], id2[33];
    assert_int_equal (cm_random_hex (id1, 16), 0);
    assert_int_equal (cm_random_hex (id2, 16), 0);
    assert_true (cm_is_hex_id (id1, 32));
    assert_string_not_equal (id1, id2);
    char tok[64];
    assert_int_equal (cm_random_token (tok, sizeof tok, 32), 0);
    assert_int_equal (strlen (tok), 43); /* 256 bits, base64url, no padding */
    assert_int_equal (strspn (tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_"),
                      43);
    assert_int_equal (cm_random_token (tok, 10, 32), -1); /* too small */
    /* RFC 4648 section 10 vectors, unpadded; then the two URL-safe
       characters of the alphabet.                                      */
    const char *b64[][2] = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof b64 / sizeof b64[0]; i++) {
        size_t n = strlen (b64[i][0]);
        char enc[16];
        assert_int_equal (cm_b64url_encode (enc, b64[i][0], n), CM_B64URL_LEN (n));
        assert_string_equal (enc, b64[i][1]);
    }
    char url[8];
    assert_int_equal (cm_b64url_encode (url, (const uint8_t[]){0xfb, 0xff}, 2), 3);
    assert_string_equal (url, "-_8");
    char sha[65];
    cm_sha256_hex (sha, "abc", 3);
    assert_string_equal (
        sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true (cm_is_request_id ("abc-DEF_1.2"));
    assert_false (cm_is_request_id ("a b"));
    assert_false (cm_is_request_id (""));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_email),
        cmocka_unit_test (test_hex_and_tokens),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
