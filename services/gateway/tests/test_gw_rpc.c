/*  unit_gateway_rpc -- the wire id of a call: unique per call, prefixed by
    the HTTP request id, always a valid request id of <= 64 chars.      */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "cm_util.h"
#include "gw_rpc.h"

static void
test_wire_id (void **state)
{
    char buf[65];
    gw_rpc_wire_id (buf, "probe-42", 1);
    assert_string_equal (buf, "probe-42.1");
    gw_rpc_wire_id (buf, "probe-42", 2);
    assert_string_equal (buf, "probe-42.2");

    /* A 64-char id is cut so that the counter always fits. */
    char id[65];
    memset (id, 'a', 64);
    id[64] = '\0';
    gw_rpc_wire_id (buf, id, 7);
    assert_int_equal (strlen (buf), 64);
    assert_memory_equal (buf, id, 62);
    assert_string_equal (buf + 62, ".7");
    gw_rpc_wire_id (buf, id, UINT64_MAX);
    assert_int_equal (strlen (buf), 64);
    assert_true (cm_is_request_id (buf));
    assert_string_equal (buf + 64 - 21, ".18446744073709551615");
    char other[65];
    gw_rpc_wire_id (other, id, UINT64_MAX - 1);
    assert_string_not_equal (buf, other);

    /* Never passes on what is not a request id. */
    gw_rpc_wire_id (buf, "a b<c>", 3);
    assert_string_equal (buf, ".3");
    assert_true (cm_is_request_id (buf));
    gw_rpc_wire_id (buf, NULL, 4);
    assert_string_equal (buf, ".4");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_wire_id),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
