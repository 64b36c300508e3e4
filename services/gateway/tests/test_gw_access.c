/*  test_gw_access -- address lists, CORS origins and the metrics token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "gw_access.h"

static void
test_cidr_v4_and_v6 (void **state)
{
    (void)state;
    gw_cidr_list_t l;
    char err[256] = "";
    assert_int_equal (gw_cidr_list_parse (&l, " 127.0.0.0/8 , ::1/128,10.1.2.3, fd00::/8",
                                          "K", err, sizeof err),
                      0);
    assert_int_equal (l.count, 4);
    assert_true (gw_cidr_list_has (&l, "127.0.0.1"));
    assert_true (gw_cidr_list_has (&l, "127.255.255.254"));
    assert_false (gw_cidr_list_has (&l, "128.0.0.1"));
    assert_true (gw_cidr_list_has (&l, "::1"));
    assert_false (gw_cidr_list_has (&l, "::2"));
    assert_true (gw_cidr_list_has (&l, "10.1.2.3"));
    assert_false (gw_cidr_list_has (&l, "10.1.2.4"));
    assert_true (gw_cidr_list_has (&l, "fdab::1"));
    /* An IPv4-mapped peer is the IPv4 address. */
    assert_true (gw_cidr_list_has (&l, "::ffff:127.0.0.9"));
    assert_false (gw_cidr_list_has (&l, "not an address"));
    assert_false (gw_cidr_list_has (&l, ""));
    assert_false (gw_cidr_list_has (&l, NULL));
    /* /0 allows every address of its family. */
    assert_int_equal (gw_cidr_list_parse (&l, "0.0.0.0/0", "K", err, sizeof err), 0);
    assert_true (gw_cidr_list_has (&l, "203.0.113.7"));
    assert_false (gw_cidr_list_has (&l, "2001:db8::1"));
    /* Odd prefix lengths mask inside a byte. */
    assert_int_equal (gw_cidr_list_parse (&l, "192.168.0.0/23", "K", err, sizeof err), 0);
    assert_true (gw_cidr_list_has (&l, "192.168.1.200"));
    assert_false (gw_cidr_list_has (&l, "192.168.2.1"));
}

static void
test_cidr_refused (void **state)
{
    (void)state;
    gw_cidr_list_t l;
    char err[256] = "";
    const char *bad[] = {"127.0.0.1/33", "::1/129",      "1.2.3",
                         "127.0.0.1/",   "127.0.0.1/x",  "a,,b",
                         "127.0.0.1,",   "host.example", "1.2.3.4/-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal (gw_cidr_list_parse (&l, bad[i], "SAFESHARE_X", err, sizeof err),
                          -1);
        assert_non_null (strstr (err, "SAFESHARE_X"));
    }
    /* "none" is the empty list: nothing matches. */
    assert_int_equal (gw_cidr_list_parse (&l, "none", "K", err, sizeof err), 0);
    assert_int_equal (l.count, 0);
    assert_false (gw_cidr_list_has (&l, "127.0.0.1"));
}

static void
test_client_addr (void **state)
{
    (void)state;
    gw_cidr_list_t trusted;
    char err[256];
    char buf[64];
    assert_int_equal (gw_cidr_list_parse (&trusted, "10.0.0.1", "K", err, sizeof err), 0);
    /* From the proxy: the rightmost entry (what the proxy saw). */
    assert_string_equal (
        gw_client_addr (&trusted, "10.0.0.1", "127.0.0.1, 203.0.113.9", buf, sizeof buf),
        "203.0.113.9");
    /* From anyone else: the peer, whatever it claims. */
    assert_string_equal (
        gw_client_addr (&trusted, "198.51.100.2", "127.0.0.1", buf, sizeof buf),
        "198.51.100.2");
    assert_string_equal (gw_client_addr (&trusted, "10.0.0.1", NULL, buf, sizeof buf),
                         "10.0.0.1");
}

static void
test_origins (void **state)
{
    (void)state;
    gw_origins_t o;
    char err[256];
    assert_int_equal (gw_origins_parse (&o, NULL, err, sizeof err), 0);
    assert_int_equal (o.count, 0);
    assert_int_equal (gw_origins_parse (&o, "https://app.example, http://localhost:3000",
                                        err, sizeof err),
                      0);
    assert_int_equal (o.count, 2);
    assert_string_equal (gw_origins_find (&o, "https://app.example"),
                         "https://app.example");
    assert_string_equal (gw_origins_find (&o, "http://localhost:3000"),
                         "http://localhost:3000");
    /* Exact: no prefix, suffix, scheme or port games. */
    assert_null (gw_origins_find (&o, "https://app.example.evil"));
    assert_null (gw_origins_find (&o, "http://app.example"));
    assert_null (gw_origins_find (&o, "https://app.example:443"));
    assert_null (gw_origins_find (&o, "null"));
    assert_null (gw_origins_find (&o, NULL));
    const char *bad[] = {"*",
                         "https://a.example/",
                         "https://a.example/path",
                         "a.example",
                         "ftp://a.example",
                         "https://",
                         "https://a.example,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (gw_origins_parse (&o, bad[i], err, sizeof err), -1);
    }
}

static void
test_token (void **state)
{
    (void)state;
    gw_token_hash_t th;
    char err[256];
    assert_int_equal (gw_token_hash_set (&th, NULL, err, sizeof err), 0);
    assert_false (th.set);
    assert_true (gw_token_hash_check (&th, NULL)); /* no token configured */
    assert_int_equal (gw_token_hash_set (&th, "short", err, sizeof err), -1);
    const char *tok = "0123456789abcdef-scrape";
    assert_int_equal (gw_token_hash_set (&th, tok, err, sizeof err), 0);
    assert_true (th.set);
    assert_true (gw_token_hash_check (&th, "Bearer 0123456789abcdef-scrape"));
    assert_true (gw_token_hash_check (&th, "bearer 0123456789abcdef-scrape"));
    assert_false (gw_token_hash_check (&th, "Bearer 0123456789abcdef-scrapE"));
    assert_false (gw_token_hash_check (&th, "Bearer 0123456789abcdef-scrap"));
    assert_false (gw_token_hash_check (&th, "Basic 0123456789abcdef-scrape"));
    assert_false (gw_token_hash_check (&th, "0123456789abcdef-scrape"));
    assert_false (gw_token_hash_check (&th, NULL));
    assert_false (gw_token_hash_check (&th, ""));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_cidr_v4_and_v6), cmocka_unit_test (test_cidr_refused),
        cmocka_unit_test (test_client_addr),    cmocka_unit_test (test_origins),
        cmocka_unit_test (test_token),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
