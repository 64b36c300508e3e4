/*  The role enum <-> name mapping both auth and the gateway use.        */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cm_role.h"

static void
test_names (void **state)
{
    (void)state;
    assert_string_equal (cm_role_name (SAFESHARE__ROLE__ROLE_CLIENT), "client");
    assert_string_equal (cm_role_name (SAFESHARE__ROLE__ROLE_OPS), "ops");
    assert_string_equal (cm_role_name (SAFESHARE__ROLE__ROLE_ADMIN), "admin");
    assert_null (cm_role_name (SAFESHARE__ROLE__ROLE_NONE));
    assert_null (cm_role_name ((Safeshare__Role)99));
}

static void
test_parse (void **state)
{
    (void)state;
    assert_int_equal (cm_role_parse ("client"), SAFESHARE__ROLE__ROLE_CLIENT);
    assert_int_equal (cm_role_parse ("ops"), SAFESHARE__ROLE__ROLE_OPS);
    assert_int_equal (cm_role_parse ("admin"), SAFESHARE__ROLE__ROLE_ADMIN);
    const char *bad[] = {"", "none", "Admin", "admin ", "adm", "root", NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal (cm_role_parse (bad[i]), SAFESHARE__ROLE__ROLE_NONE);
    }
    assert_int_equal (cm_role_parse (NULL), SAFESHARE__ROLE__ROLE_NONE);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_names),
        cmocka_unit_test (test_parse),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
