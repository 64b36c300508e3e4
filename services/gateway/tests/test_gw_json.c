/*  unit_gateway_json -- the error shape, the file and user objects,
    blob layout formulas.                                               */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "cm_role.h"
#include "gw_json.h"
#include "gw_upload.h"

static void
test_error_shape (void **state)
{
    char *text = gw_json_error ("invalid_json", "body \"x\"\n bad", "req-1");
    assert_non_null (text);
    json_error_t err;
    json_t *root = json_loads (text, 0, &err);
    assert_non_null (root);
    assert_int_equal (json_object_size (root), 1);
    json_t *e = json_object_get (root, "error");
    assert_true (json_is_object (e));
    assert_int_equal (json_object_size (e), 3);
    assert_string_equal (json_string_value (json_object_get (e, "code")), "invalid_json");
    assert_string_equal (json_string_value (json_object_get (e, "message")),
                         "body \"x\"\n bad");
    assert_string_equal (json_string_value (json_object_get (e, "request_id")), "req-1");
    json_decref (root);
    free (text);

    /* Invalid UTF-8 in a message still yields a valid error document. */
    text = gw_json_error ("x", "bad \xff", NULL);
    assert_non_null (text);
    root = json_loads (text, 0, &err);
    assert_non_null (root);
    assert_non_null (json_object_get (root, "error"));
    json_decref (root);
    free (text);
}

static void
test_file_json (void **state)
{
    Safeshare__FileInfo f = SAFESHARE__FILE_INFO__INIT;
    uint8_t dek[60] = {1};
    f.id = "0123456789abcdef0123456789abcdef";
    f.name = "a.txt";
    f.content_type = "text/plain";
    f.size = 12345678901ULL;
    f.sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    f.owner_id = "fedcba9876543210fedcba9876543210";
    f.created_at = 0;
    f.chunk_size = 1048576;
    f.kek_id = "0011223344556677";
    f.wrapped_dek.data = dek;
    f.wrapped_dek.len = sizeof dek;
    json_t *j = gw_json_file (&f);
    assert_non_null (j);
    assert_int_equal (json_object_size (j), 9);
    assert_int_equal (json_integer_value (json_object_get (j, "chunk_size")), 1048576);
    assert_string_equal (json_string_value (json_object_get (j, "visibility")), "");
    assert_string_equal (json_string_value (json_object_get (j, "id")), f.id);
    assert_int_equal (json_integer_value (json_object_get (j, "size")), 12345678901LL);
    assert_string_equal (json_string_value (json_object_get (j, "created_at")),
                         "1970-01-01T00:00:00Z");
    /* Key material never leaves the gateway. */
    assert_null (json_object_get (j, "wrapped_dek"));
    assert_null (json_object_get (j, "kek_id"));
    json_decref (j);
}

static void
test_link_json (void **state)
{
    Safeshare__LinkInfo l = SAFESHARE__LINK_INFO__INIT;
    l.id = "11112222333344445555666677778888";
    l.file_id = "0123456789abcdef0123456789abcdef";
    l.creator_id = "fedcba9876543210fedcba9876543210";
    l.created_at = 0;
    l.expires_at = 3600;
    l.max_downloads = 3;
    l.downloads = 1;
    l.signed_in_only = true;
    l.state = "active";
    json_t *j = gw_json_link (&l);
    assert_non_null (j);
    assert_int_equal (json_object_size (j), 11);
    assert_string_equal (json_string_value (json_object_get (j, "expires_at")),
                         "1970-01-01T01:00:00Z");
    assert_int_equal (json_integer_value (json_object_get (j, "downloads_left")), 2);
    assert_true (json_is_true (json_object_get (j, "signed_in_only")));
    assert_true (json_is_null (json_object_get (j, "revoked_at")));
    assert_null (json_object_get (j, "token"));
    json_decref (j);
    /* Revoked, and more spent than allowed (never negative).          */
    l.revoked_at = 60;
    l.downloads = 5;
    l.state = "revoked";
    j = gw_json_link (&l);
    assert_string_equal (json_string_value (json_object_get (j, "revoked_at")),
                         "1970-01-01T00:01:00Z");
    assert_int_equal (json_integer_value (json_object_get (j, "downloads_left")), 0);
    assert_string_equal (json_string_value (json_object_get (j, "state")), "revoked");
    json_decref (j);
}

static void
test_user_json (void **state)
{
    Safeshare__User u = SAFESHARE__USER__INIT;
    u.id = "0123456789abcdef0123456789abcdef";
    u.email = "a@b.example";
    u.role = SAFESHARE__ROLE__ROLE_OPS;
    u.verified = true;
    u.disabled = true;
    u.created_at = 1790000000;
    json_t *j = gw_json_user (&u);
    assert_non_null (j);
    char *text = json_dumps (j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal (text, "{\"created_at\":\"2026-09-21T14:13:20Z\","
                               "\"disabled\":true,\"email\":\"a@b.example\","
                               "\"id\":\"0123456789abcdef0123456789abcdef\","
                               "\"role\":\"ops\",\"verified\":true}");
    free (text);
    json_decref (j);
    u.disabled = false;
    j = gw_json_user (&u);
    assert_true (json_is_false (json_object_get (j, "disabled")));
    json_decref (j);
    assert_int_equal (cm_role_parse ("client"), SAFESHARE__ROLE__ROLE_CLIENT);
    assert_int_equal (cm_role_parse ("ops"), SAFESHARE__ROLE__ROLE_OPS);
    assert_int_equal (cm_role_parse ("admin"), SAFESHARE__ROLE__ROLE_ADMIN);
    assert_int_equal (cm_role_parse ("Admin"), SAFESHARE__ROLE__ROLE_NONE);
    assert_int_equal (cm_role_parse ("none"), SAFESHARE__ROLE__ROLE_NONE);
    assert_int_equal (cm_role_parse (""), SAFESHARE__ROLE__ROLE_NONE);
    assert_int_equal (cm_role_parse (NULL), SAFESHARE__ROLE__ROLE_NONE);
    assert_string_equal (gw_role_name (SAFESHARE__ROLE__ROLE_CLIENT), "client");
    assert_string_equal (gw_role_name (SAFESHARE__ROLE__ROLE_ADMIN), "admin");
    assert_string_equal (gw_role_name ((Safeshare__Role)99), "none");
}

static void
test_layout (void **state)
{
    /* docs/format.md: header 48, chunk i at 48 + i*(chunk_size+16). */
    assert_int_equal (cm_blob_offset (4096, 0), 48);
    assert_int_equal (cm_blob_offset (4096, 3), 48 + 3 * 4112);
    assert_int_equal (cm_blob_chunk_count (0, 4096), 1);
    assert_int_equal (cm_blob_chunk_count (1, 4096), 1);
    assert_int_equal (cm_blob_chunk_count (4096, 4096), 1);
    assert_int_equal (cm_blob_chunk_count (4097, 4096), 2);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_error_shape), cmocka_unit_test (test_file_json),
        cmocka_unit_test (test_link_json),   cmocka_unit_test (test_user_json),
        cmocka_unit_test (test_layout),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
