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

/* One resolution; checks address, forwarded state and scheme. */
static void
s_resolve (const gw_cidr_list_t *trusted, const char *peer, const char *xff,
           int xff_count, const char *xfp, int xfp_count, const char *want_addr,
           gw_forwarded_t want_forwarded, const char *want_scheme)
{
    gw_client_t c;
    memset (&c, 0x5a, sizeof c); /* nothing may be left from before */
    gw_client_resolve (&c, trusted, peer, false, xff, xff_count, xfp, xfp_count);
    assert_string_equal (c.addr, want_addr);
    assert_int_equal (c.forwarded, want_forwarded);
    assert_string_equal (c.scheme, want_scheme);
}

static void
test_client_trusted (void **state)
{
    (void)state;
    gw_cidr_list_t trusted;
    char err[256];
    assert_int_equal (
        gw_cidr_list_parse (&trusted, "10.0.0.1, fd00::/8", "K", err, sizeof err), 0);
    /* The rightmost entry: the one the proxy appended itself. */
    s_resolve (&trusted, "10.0.0.1", "127.0.0.1, 203.0.113.9", 1, NULL, 0, "203.0.113.9",
               GW_FORWARDED_YES, "http");
    s_resolve (&trusted, "10.0.0.1", "203.0.113.9", 1, NULL, 0, "203.0.113.9",
               GW_FORWARDED_YES, "http");
    s_resolve (&trusted, "10.0.0.1", "1.1.1.1,198.51.100.7  ", 1, NULL, 0, "198.51.100.7",
               GW_FORWARDED_YES, "http");
    /* No header from the proxy: the proxy's own address. */
    s_resolve (&trusted, "10.0.0.1", NULL, 0, NULL, 0, "10.0.0.1", GW_FORWARDED_NO,
               "http");
    /* X-Forwarded-Proto: http/https in any case, once; else the peer's. */
    s_resolve (&trusted, "10.0.0.1", "203.0.113.9", 1, "https", 1, "203.0.113.9",
               GW_FORWARDED_YES, "https");
    s_resolve (&trusted, "10.0.0.1", NULL, 0, " HTTPS ", 1, "10.0.0.1", GW_FORWARDED_NO,
               "https");
    s_resolve (&trusted, "10.0.0.1", NULL, 0, "http", 1, "10.0.0.1", GW_FORWARDED_NO,
               "http");
    const char *bad_proto[] = {"ftp", "https, http", "", "httpss", "wss", "https:"};
    for (size_t i = 0; i < sizeof bad_proto / sizeof bad_proto[0]; i++) {
        s_resolve (&trusted, "10.0.0.1", NULL, 0, bad_proto[i], 1, "10.0.0.1",
                   GW_FORWARDED_NO, "http");
    }
    s_resolve (&trusted, "10.0.0.1", NULL, 0, "https", 2, "10.0.0.1", GW_FORWARDED_NO,
               "http");
    /* The peer's own TLS is its scheme when no usable header says else. */
    gw_client_t c;
    gw_client_resolve (&c, &trusted, "10.0.0.1", true, NULL, 0, "gopher", 1);
    assert_string_equal (c.scheme, "https");
    gw_client_resolve (&c, &trusted, "10.0.0.1", true, NULL, 0, "http", 1);
    assert_string_equal (c.scheme, "http");
}

static void
test_client_untrusted (void **state)
{
    (void)state;
    gw_cidr_list_t trusted;
    char err[256];
    assert_int_equal (gw_cidr_list_parse (&trusted, "10.0.0.1", "K", err, sizeof err), 0);
    /* From anyone else both headers are ignored, whatever they claim. */
    s_resolve (&trusted, "198.51.100.2", "127.0.0.1", 1, "https", 1, "198.51.100.2",
               GW_FORWARDED_NO, "http");
    s_resolve (&trusted, "10.0.0.2", "10.0.0.1", 1, NULL, 0, "10.0.0.2", GW_FORWARDED_NO,
               "http");
    s_resolve (&trusted, "198.51.100.2", "garbage", 2, "https", 2, "198.51.100.2",
               GW_FORWARDED_NO, "http");
    /* "none" trusts nobody, loopback included. */
    assert_int_equal (gw_cidr_list_parse (&trusted, "none", "K", err, sizeof err), 0);
    s_resolve (&trusted, "127.0.0.1", "203.0.113.9", 1, "https", 1, "127.0.0.1",
               GW_FORWARDED_NO, "http");
    /* A peer that is no address at all (never from civetweb) is kept as
       it is and trusts nothing.                                       */
    s_resolve (&trusted, "", "203.0.113.9", 1, NULL, 0, "", GW_FORWARDED_NO, "http");
    s_resolve (&trusted, NULL, "203.0.113.9", 1, NULL, 0, "", GW_FORWARDED_NO, "http");
}

static void
test_client_malformed (void **state)
{
    (void)state;
    gw_cidr_list_t trusted;
    char err[256];
    assert_int_equal (gw_cidr_list_parse (&trusted, "10.0.0.0/8", "K", err, sizeof err),
                      0);
    /* Not an address (the rightmost is what counts): the proxy itself,
       marked so that /metrics refuses.                                */
    const char *bad[] = {
        "",
        " ",
        "203.0.113.9,",
        "203.0.113.9, ",
        "unknown",
        "203.0.113.9:4711",
        "[2001:db8::1]",
        "[2001:db8::1]:443",
        "fe80::1%eth0",
        "203.0.113.9/32",
        "203.0.113.9 198.51.100.1",
        "203.0.113.256",
        "1.2.3",
        "example.org",
        "198.51.100.1, 2001:db8::1::2",
        "2001:db8:0:0:0:0:0:0:1111111111111111111111111111111111111111111111"
        "11111111"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_resolve (&trusted, "10.1.2.3", bad[i], 1, NULL, 0, "10.1.2.3", GW_FORWARDED_BAD,
                   "http");
    }
    /* A valid address left of a malformed rightmost entry is not used. */
    s_resolve (&trusted, "10.1.2.3", "203.0.113.9, garbage", 1, NULL, 0, "10.1.2.3",
               GW_FORWARDED_BAD, "http");
    /* Twice: which copy the proxy wrote is unknown, even if both agree. */
    s_resolve (&trusted, "10.1.2.3", "203.0.113.9", 2, NULL, 0, "10.1.2.3",
               GW_FORWARDED_BAD, "http");
    /* Unknown (civetweb's header table was full, the rest dropped
       unseen): as twice; the proxy's scheme header likewise unknown.  */
    s_resolve (&trusted, "10.1.2.3", "203.0.113.9", -1, "https", -1, "10.1.2.3",
               GW_FORWARDED_BAD, "http");
    s_resolve (&trusted, "10.1.2.3", NULL, -1, NULL, -1, "10.1.2.3", GW_FORWARDED_BAD,
               "http");
    /* ... but only a trusted proxy's headers are judged at all. */
    s_resolve (&trusted, "198.51.100.2", "203.0.113.9", -1, NULL, -1, "198.51.100.2",
               GW_FORWARDED_NO, "http");
    /* Counted but no value (cannot come from civetweb): still refused. */
    s_resolve (&trusted, "10.1.2.3", NULL, 1, NULL, 0, "10.1.2.3", GW_FORWARDED_BAD,
               "http");
    /* A malformed address does not spoil a good X-Forwarded-Proto. */
    s_resolve (&trusted, "10.1.2.3", "nope", 1, "https", 1, "10.1.2.3", GW_FORWARDED_BAD,
               "https");
}

static void
test_client_ipv6 (void **state)
{
    (void)state;
    gw_cidr_list_t trusted;
    char err[256];
    assert_int_equal (
        gw_cidr_list_parse (&trusted, "2001:db8:1::/48, 10.0.0.1", "K", err, sizeof err),
        0);
    /* An IPv6 proxy, an IPv6 client: canonical text (one client, one
       throttling key however the proxy spells it).                    */
    s_resolve (&trusted, "2001:db8:1::5", "2001:0DB8:0000:0000:0000:0000:0000:0007", 1,
               NULL, 0, "2001:db8::7", GW_FORWARDED_YES, "http");
    s_resolve (&trusted, "2001:db8:1::5", "2001:db8::7", 1, NULL, 0, "2001:db8::7",
               GW_FORWARDED_YES, "http");
    /* An IPv4 client through an IPv6 proxy, and IPv4-mapped forms. */
    s_resolve (&trusted, "2001:db8:1::5", "2001:db8::7, 203.0.113.9", 1, NULL, 0,
               "203.0.113.9", GW_FORWARDED_YES, "http");
    s_resolve (&trusted, "2001:db8:1::5", "::ffff:203.0.113.9", 1, NULL, 0, "203.0.113.9",
               GW_FORWARDED_YES, "http");
    /* An IPv4 proxy seen through a dual-stack socket (IPv4-mapped). */
    s_resolve (&trusted, "::ffff:10.0.0.1", "::1", 1, "https", 1, "::1", GW_FORWARDED_YES,
               "https");
    /* Outside the IPv6 range: ignored; the peer written canonically. */
    s_resolve (&trusted, "2001:DB8:2::5", "203.0.113.9", 1, NULL, 0, "2001:db8:2::5",
               GW_FORWARDED_NO, "http");
    s_resolve (&trusted, "::ffff:198.51.100.2", "203.0.113.9", 1, NULL, 0, "198.51.100.2",
               GW_FORWARDED_NO, "http");
    /* The longest IPv6 text fits. */
    s_resolve (&trusted, "10.0.0.1", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 1,
               NULL, 0, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", GW_FORWARDED_YES,
               "http");
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
        cmocka_unit_test (test_cidr_v4_and_v6),
        cmocka_unit_test (test_cidr_refused),
        cmocka_unit_test (test_client_trusted),
        cmocka_unit_test (test_client_untrusted),
        cmocka_unit_test (test_client_malformed),
        cmocka_unit_test (test_client_ipv6),
        cmocka_unit_test (test_origins),
        cmocka_unit_test (test_token),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
