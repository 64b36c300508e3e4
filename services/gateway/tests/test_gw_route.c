/*  unit_gateway_route -- the routing table: paths, ids, tokens, 404/405
    (PATCH included).                                                  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "gw_route.h"

#define ID "0123456789abcdef0123456789abcdef"

static void
test_routes (void **state)
{
    gw_route_t r;
    assert_int_equal (gw_route_match ("GET", "/healthz", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_HEALTHZ);
    assert_false (r.auth);
    assert_int_equal (gw_route_match ("POST", "/api/auth/signup", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_SIGNUP);
    assert_true (r.json_body);
    assert_int_equal (gw_route_match ("GET", "/api/auth/verify", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_VERIFY);
    assert_int_equal (gw_route_match ("POST", "/api/auth/verify/resend", &r),
                      GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_RESEND);
    assert_false (r.auth);
    assert_true (r.json_body);
    assert_int_equal (gw_route_match ("GET", "/api/auth/verify/resend", &r),
                      GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "POST");
    assert_int_equal (gw_route_match ("GET", "/api/files", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_FILES_LIST);
    assert_true (r.auth);
    assert_int_equal (gw_route_match ("POST", "/api/files", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_FILES_UPLOAD);
    assert_int_equal (gw_route_match ("GET", "/api/files/" ID, &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_FILE_GET);
    assert_string_equal (r.param, ID);
    assert_true (r.param_valid);
    assert_int_equal (gw_route_match ("DELETE", "/api/files/" ID, &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_FILE_DELETE);
    assert_int_equal (gw_route_match ("GET", "/api/files/" ID "/content", &r),
                      GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_FILE_CONTENT);
    assert_int_equal (gw_route_match ("POST", "/api/files/" ID "/links", &r),
                      GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_LINK_CREATE);
    assert_int_equal (gw_route_match ("GET", "/api/files/" ID "/links", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_LINKS_LIST);
    assert_true (r.auth);
    assert_false (r.json_body);
    assert_string_equal (r.param, ID);
    assert_int_equal (gw_route_match ("PATCH", "/api/files/" ID, &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_FILE_UPDATE);
    assert_true (r.auth);
    assert_true (r.json_body);
    assert_int_equal (gw_route_match ("DELETE", "/api/links/" ID, &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_LINK_REVOKE);
    assert_true (r.auth);
    assert_true (r.param_valid);
    assert_int_equal (gw_route_match ("DELETE", "/api/links/not-an-id", &r), GW_MATCH_OK);
    assert_false (r.param_valid);
    assert_int_equal (gw_route_match ("DELETE", "/api/links", &r), GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("GET", "/api/download/abc-_XYZ09", &r),
                      GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_DOWNLOAD);
    assert_false (r.auth);
    assert_true (r.param_valid);
}

static void
test_session_and_user_routes (void **state)
{
    gw_route_t r;
    /* Refresh and logout carry a refresh token, not a bearer token. */
    assert_int_equal (gw_route_match ("POST", "/api/auth/refresh", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_REFRESH);
    assert_string_equal (r.name, "refresh");
    assert_false (r.auth);
    assert_true (r.json_body);
    assert_int_equal (gw_route_match ("POST", "/api/auth/logout", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_LOGOUT);
    assert_false (r.auth);
    assert_true (r.json_body);
    assert_int_equal (gw_route_match ("POST", "/api/auth/logout-all", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_LOGOUT_ALL);
    assert_string_equal (r.name, "logout_all");
    assert_true (r.auth);
    assert_int_equal (gw_route_match ("GET", "/api/users", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_USERS_LIST);
    assert_true (r.auth);
    assert_false (r.json_body);
    assert_int_equal (gw_route_match ("POST", "/api/users", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_USER_CREATE);
    assert_true (r.auth);
    assert_true (r.json_body);
    assert_int_equal (gw_route_match ("PATCH", "/api/users/" ID, &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_USER_UPDATE);
    assert_string_equal (r.name, "user_update");
    assert_true (r.auth);
    assert_true (r.json_body);
    assert_string_equal (r.param, ID);
    assert_true (r.param_valid);
    /* Routed, flagged: the handler answers 404 user_not_found. */
    assert_int_equal (gw_route_match ("PATCH", "/api/users/nobody", &r), GW_MATCH_OK);
    assert_int_equal (r.id, GW_ROUTE_USER_UPDATE);
    assert_false (r.param_valid);
    assert_int_equal (gw_route_match ("PATCH", "/api/users/" ID "0", &r), GW_MATCH_OK);
    assert_false (r.param_valid);
    /* Never the parameter in the name that goes to the logs. */
    assert_null (strstr (r.name, ID));
}

static void
test_bad_params (void **state)
{
    gw_route_t r;
    /* Routed, but flagged: the handler answers 404 file_not_found. */
    assert_int_equal (gw_route_match ("GET", "/api/files/xyz", &r), GW_MATCH_OK);
    assert_false (r.param_valid);
    assert_int_equal (
        gw_route_match ("GET", "/api/files/0123456789ABCDEF0123456789ABCDEF", &r),
        GW_MATCH_OK);
    assert_false (r.param_valid); /* ids are lowercase */
    assert_int_equal (gw_route_match ("GET", "/api/files/" ID "0", &r), GW_MATCH_OK);
    assert_false (r.param_valid);
    assert_int_equal (gw_route_match ("GET", "/api/download/a.b", &r), GW_MATCH_OK);
    assert_false (r.param_valid);
    char longpath[400] = "/api/download/";
    memset (longpath + strlen (longpath), 'a', 200);
    assert_int_equal (gw_route_match ("GET", longpath, &r), GW_MATCH_OK);
    assert_false (r.param_valid);
}

static void
test_not_found (void **state)
{
    gw_route_t r;
    assert_int_equal (gw_route_match ("GET", "/", &r), GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("GET", "/api/nope", &r), GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("GET", "/api/files/", &r), GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("GET", "/api/files/" ID "/", &r),
                      GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("GET", "/api/files/" ID "/x", &r),
                      GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("GET", "/healthz/x", &r), GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("GET", "/api/download/", &r), GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match (NULL, "/healthz", &r), GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("PATCH", "/api/users/", &r), GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("PATCH", "/api/users/" ID "/x", &r),
                      GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("POST", "/api/auth/logout-all/x", &r),
                      GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("POST", "/api/auth/logout_all", &r),
                      GW_MATCH_NOT_FOUND);
    assert_int_equal (gw_route_match ("GET", "/api/user", &r), GW_MATCH_NOT_FOUND);
}

static void
test_bad_method (void **state)
{
    gw_route_t r;
    assert_int_equal (gw_route_match ("PUT", "/api/files", &r), GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "GET, POST");
    assert_int_equal (gw_route_match ("POST", "/api/files/" ID, &r), GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "GET, DELETE, PATCH");
    assert_int_equal (gw_route_match ("GET", "/api/auth/login", &r), GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "POST");
    assert_int_equal (gw_route_match ("DELETE", "/api/files/" ID "/links", &r),
                      GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "POST, GET");
    assert_int_equal (gw_route_match ("GET", "/api/links/" ID, &r), GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "DELETE");
    /* PATCH is a method like the others: in Allow where a path takes it,
       refused where it does not.                                       */
    assert_int_equal (gw_route_match ("GET", "/api/users/" ID, &r), GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "PATCH");
    assert_int_equal (gw_route_match ("PUT", "/api/users/" ID, &r), GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "PATCH");
    assert_int_equal (gw_route_match ("DELETE", "/api/users/xyz", &r),
                      GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "PATCH");
    assert_int_equal (gw_route_match ("PATCH", "/api/users", &r), GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "GET, POST");
    assert_int_equal (gw_route_match ("DELETE", "/api/users", &r), GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "GET, POST");
    assert_int_equal (gw_route_match ("PUT", "/api/files/" ID, &r), GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "GET, DELETE, PATCH");
    assert_int_equal (gw_route_match ("patch", "/api/users/" ID, &r),
                      GW_MATCH_BAD_METHOD);
    assert_string_equal (r.allow, "PATCH");
    const char *post_only[] = {"/api/auth/refresh", "/api/auth/logout",
                               "/api/auth/logout-all"};
    for (size_t i = 0; i < sizeof post_only / sizeof post_only[0]; i++) {
        assert_int_equal (gw_route_match ("GET", post_only[i], &r), GW_MATCH_BAD_METHOD);
        assert_string_equal (r.allow, "POST");
        assert_int_equal (gw_route_match ("PATCH", post_only[i], &r),
                          GW_MATCH_BAD_METHOD);
        assert_string_equal (r.allow, "POST");
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_routes),
        cmocka_unit_test (test_session_and_user_routes),
        cmocka_unit_test (test_bad_params),
        cmocka_unit_test (test_not_found),
        cmocka_unit_test (test_bad_method),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
