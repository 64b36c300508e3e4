/*  unit_gateway_openapi -- docs/openapi.json against the routing table
    of the binary (gw_route_table): every route is documented with its
    operationId (= the route's name), security (bearer iff the route
    authenticates), JSON body and path parameters; every documented
    operation is a route that gw_route_match dispatches to; the copy
    built into the gateway is the file; every $ref resolves; every
    answer documents X-Request-Id and every error answer the one error
    shape. The checker is also shown to catch each kind of drift.
    argv[1]: docs/openapi.json.                                         */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "gw_openapi.h"
#include "gw_route.h"

static const char *s_doc_path;
/* test_check_catches_drift: the problems printed are the expected ones. */
static bool s_drill;

static const char *s_methods[] = {"get",     "put",  "post",  "delete",
                                  "options", "head", "patch", "trace"};
#define S_METHODS (sizeof s_methods / sizeof s_methods[0])

static json_t *
s_load (void)
{
    json_error_t error;
    json_t *doc = json_load_file (s_doc_path, 0, &error);
    if (doc == NULL) {
        fail_msg ("%s:%d: %s", s_doc_path, error.line, error.text);
    }
    return doc;
}

static int s_problem (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static int
s_problem (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    fprintf (stderr, s_drill ? "openapi (expected, drift drill): " : "openapi: ");
    vfprintf (stderr, fmt, ap);
    fprintf (stderr, "\n");
    va_end (ap);
    return 1;
}

static void
s_lower (const char *in, char *out, size_t outlen)
{
    size_t i = 0;
    for (; in[i] && i + 1 < outlen; i++) {
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
    }
    out[i] = '\0';
}

/* True if the operation (or its path item) declares a required path
   parameter `name`.                                                   */
static bool
s_has_path_param (json_t *item, json_t *operation, const char *name)
{
    json_t *lists[2] = {json_object_get (item, "parameters"),
                        json_object_get (operation, "parameters")};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *p;
        json_array_foreach (lists[l], i, p)
        {
            if (json_is_string (json_object_get (p, "name")) &&
                strcmp (json_string_value (json_object_get (p, "name")), name) == 0 &&
                json_is_string (json_object_get (p, "in")) &&
                strcmp (json_string_value (json_object_get (p, "in")), "path") == 0 &&
                json_is_true (json_object_get (p, "required"))) {
                return true;
            }
        }
    }
    return false;
}

/* True if the operation requires a bearer token: its security lists
   `bearer` and offers no empty (anonymous) alternative.               */
static bool
s_requires_bearer (json_t *operation, bool *anonymous_ok)
{
    json_t *security = json_object_get (operation, "security");
    bool bearer = false;
    *anonymous_ok = !json_is_array (security) || json_array_size (security) == 0;
    size_t i;
    json_t *req;
    json_array_foreach (security, i, req)
    {
        if (json_object_size (req) == 0) {
            *anonymous_ok = true;
        }
        if (json_object_get (req, "bearer")) {
            bearer = true;
        }
    }
    return bearer && !*anonymous_ok;
}

/* A concrete path for a pattern: {id} -> 32 hex, {token} -> "tok". */
static void
s_concrete (const char *pattern, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 40 < outlen;) {
        if (strncmp (p, "{id}", 4) == 0) {
            memcpy (out + o, "0123456789abcdef0123456789abcdef", 32);
            o += 32, p += 4;
        } else if (strncmp (p, "{token}", 7) == 0) {
            memcpy (out + o, "tok", 3);
            o += 3, p += 7;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

/* The two-way comparison. Prints each problem; returns how many.    */
static int
s_check (json_t *doc, const gw_route_def_t *table, size_t n)
{
    int problems = 0;
    json_t *paths = json_object_get (doc, "paths");
    if (!json_is_object (paths)) {
        return s_problem ("no \"paths\" object");
    }
    /* Table -> document. */
    for (size_t i = 0; i < n; i++) {
        const gw_route_def_t *r = &table[i];
        char method[16];
        s_lower (r->method, method, sizeof method);
        json_t *item = json_object_get (paths, r->pattern);
        json_t *operation = json_object_get (item, method);
        if (!json_is_object (operation)) {
            problems += s_problem ("route %s %s (%s) is not documented", r->method,
                                   r->pattern, r->name);
            continue;
        }
        json_t *op_id = json_object_get (operation, "operationId");
        if (!json_is_string (op_id) || strcmp (json_string_value (op_id), r->name) != 0) {
            problems += s_problem (
                "%s %s: operationId is %s, the route is named %s", r->method, r->pattern,
                json_is_string (op_id) ? json_string_value (op_id) : "(none)", r->name);
        }
        bool anonymous_ok = false;
        bool bearer = s_requires_bearer (operation, &anonymous_ok);
        if (bearer != r->auth) {
            problems += s_problem ("%s %s: the route %s a bearer token, the document "
                                   "says it %s",
                                   r->method, r->pattern,
                                   r->auth ? "requires" : "does not require",
                                   bearer ? "does" : "does not");
        }
        json_t *body =
            json_object_get (json_object_get (operation, "requestBody"), "content");
        bool json_body = json_object_get (body, "application/json") != NULL;
        if (json_body != r->json_body) {
            problems += s_problem ("%s %s: the route reads %s JSON body, the document "
                                   "has %s",
                                   r->method, r->pattern, r->json_body ? "a" : "no",
                                   json_body ? "one" : "none");
        }
        for (const char *p = strchr (r->pattern, '{'); p; p = strchr (p + 1, '{')) {
            char name[32];
            const char *close = strchr (p, '}');
            size_t len = close ? (size_t)(close - p - 1) : 0;
            if (len == 0 || len >= sizeof name) {
                continue;
            }
            memcpy (name, p + 1, len);
            name[len] = '\0';
            if (!s_has_path_param (item, operation, name)) {
                problems += s_problem ("%s %s: path parameter %s is not declared",
                                       r->method, r->pattern, name);
            }
        }
    }
    /* Document -> table (and the router really dispatches there). */
    const char *path;
    json_t *item;
    json_object_foreach (paths, path, item)
    {
        for (size_t m = 0; m < S_METHODS; m++) {
            if (!json_object_get (item, s_methods[m])) {
                continue;
            }
            char method[16];
            for (size_t k = 0; k <= strlen (s_methods[m]); k++) {
                method[k] = (char)(s_methods[m][k] >= 'a' && s_methods[m][k] <= 'z'
                                       ? s_methods[m][k] - 32
                                       : s_methods[m][k]);
            }
            const gw_route_def_t *row = NULL;
            for (size_t i = 0; i < n && !row; i++) {
                if (strcmp (table[i].method, method) == 0 &&
                    strcmp (table[i].pattern, path) == 0) {
                    row = &table[i];
                }
            }
            if (row == NULL) {
                problems += s_problem ("documented %s %s is not a route", method, path);
                continue;
            }
            /* Only the real table can be matched against: a test table
               stands for a drifted one.                                */
            size_t real_n;
            if (table == gw_route_table (&real_n)) {
                char concrete[256];
                s_concrete (path, concrete, sizeof concrete);
                gw_route_t route;
                if (gw_route_match (method, concrete, &route) != GW_MATCH_OK ||
                    strcmp (route.name, row->name) != 0) {
                    problems += s_problem ("%s %s does not dispatch to %s", method,
                                           concrete, row->name);
                }
            }
        }
    }
    return problems;
}

static void
test_doc_matches_routes (void **state)
{
    json_t *doc = s_load ();
    size_t n = 0;
    const gw_route_def_t *table = gw_route_table (&n);
    assert_true (n >= 20);
    assert_int_equal (s_check (doc, table, n), 0);
    /* Names are unique: each is one operationId. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            assert_string_not_equal (table[i].name, table[j].name);
        }
    }
    json_decref (doc);
}

static void
test_built_in_copy_is_the_file (void **state)
{
    FILE *f = fopen (s_doc_path, "rb");
    assert_non_null (f);
    char *text = malloc (gw_openapi_doc_len + 2);
    assert_non_null (text);
    size_t got = fread (text, 1, gw_openapi_doc_len + 1, f);
    fclose (f);
    assert_int_equal (got, gw_openapi_doc_len);
    assert_memory_equal (text, gw_openapi_doc, gw_openapi_doc_len);
    assert_int_equal (gw_openapi_doc[gw_openapi_doc_len], '\0');
    free (text);
}

/* The checker fails for each kind of drift it exists to catch. */
static void
test_check_catches_drift (void **state)
{
    size_t n = 0;
    const gw_route_def_t *real = gw_route_table (&n);
    gw_route_def_t *table = calloc (n + 1, sizeof *table);
    assert_non_null (table);
    memcpy (table, real, n * sizeof *table);
    s_drill = true;

    /* A route the document lacks. */
    table[n] = (gw_route_def_t){
        "GET", "/api/undocumented", GW_ROUTE_NONE, "undocumented", false, false};
    json_t *doc = s_load ();
    assert_int_equal (s_check (doc, table, n + 1), 1);

    /* A documented operation that is no route. */
    json_t *paths = json_object_get (doc, "paths");
    json_object_set_new (
        paths, "/api/ghost",
        json_pack ("{s:{s:s, s:{}}}", "get", "operationId", "ghost", "responses"));
    assert_int_equal (s_check (doc, table, n), 1);
    json_object_del (paths, "/api/ghost");
    assert_int_equal (s_check (doc, table, n), 0);

    /* A route removed from the document; then an extra method. */
    json_t *files = json_object_get (paths, "/api/files");
    json_t *upload = json_incref (json_object_get (files, "post"));
    json_object_del (files, "post");
    assert_int_equal (s_check (doc, table, n), 1);
    json_object_set_new (files, "put", json_incref (upload));
    assert_int_equal (s_check (doc, table, n), 2);
    json_object_del (files, "put");
    json_object_set_new (files, "post", upload);
    assert_int_equal (s_check (doc, table, n), 0);

    /* Auth, JSON body, operationId and path parameter disagreements. */
    for (size_t i = 0; i < n; i++) {
        if (strcmp (table[i].name, "me") == 0) {
            table[i].auth = false;
        }
        if (strcmp (table[i].name, "login") == 0) {
            table[i].json_body = false;
        }
        if (strcmp (table[i].name, "file_get") == 0) {
            table[i].name = "file_meta";
        }
    }
    assert_int_equal (s_check (doc, table, n), 3);
    memcpy (table, real, n * sizeof *table);
    json_t *link = json_object_get (paths, "/api/links/{id}");
    json_object_del (link, "parameters");
    assert_int_equal (s_check (doc, table, n), 1);

    json_decref (doc);
    free (table);
    s_drill = false;
}

/* Every "$ref" of the document points at something in it. */
static int
s_refs_resolve (json_t *doc, json_t *node)
{
    int problems = 0;
    if (json_is_object (node)) {
        json_t *ref = json_object_get (node, "$ref");
        if (json_is_string (ref)) {
            const char *s = json_string_value (ref);
            json_t *at = strncmp (s, "#/", 2) == 0 ? doc : NULL;
            char part[128];
            for (const char *p = s + 2; at && *p;) {
                const char *slash = strchr (p, '/');
                size_t len = slash ? (size_t)(slash - p) : strlen (p);
                if (len >= sizeof part) {
                    at = NULL;
                    break;
                }
                memcpy (part, p, len);
                part[len] = '\0';
                at = json_object_get (at, part);
                p += len + (slash ? 1 : 0);
            }
            if (at == NULL) {
                problems += s_problem ("$ref %s does not resolve", s);
            }
        }
        const char *key;
        json_t *v;
        json_object_foreach (node, key, v)
        {
            problems += s_refs_resolve (doc, v);
        }
    } else if (json_is_array (node)) {
        size_t i;
        json_t *v;
        json_array_foreach (node, i, v)
        {
            problems += s_refs_resolve (doc, v);
        }
    }
    return problems;
}

static void
test_doc_structure (void **state)
{
    json_t *doc = s_load ();
    assert_int_equal (s_refs_resolve (doc, doc), 0);
    assert_true (json_is_string (json_object_get (doc, "openapi")));
    assert_true (
        strncmp (json_string_value (json_object_get (doc, "openapi")), "3.1.", 4) == 0);
    const char *path;
    json_t *item;
    int problems = 0;
    json_object_foreach (json_object_get (doc, "paths"), path, item)
    {
        for (size_t m = 0; m < S_METHODS; m++) {
            json_t *operation = json_object_get (item, s_methods[m]);
            if (operation == NULL) {
                continue;
            }
            json_t *responses = json_object_get (operation, "responses");
            if (json_object_size (responses) == 0) {
                problems += s_problem ("%s %s: no responses", s_methods[m], path);
            }
            const char *status;
            json_t *resp;
            json_object_foreach (responses, status, resp)
            {
                if (json_object_get (resp, "$ref")) {
                    continue; /* a shared response, checked under components */
                }
                if (!json_object_get (json_object_get (resp, "headers"),
                                      "X-Request-Id")) {
                    problems += s_problem ("%s %s %s: X-Request-Id not documented",
                                           s_methods[m], path, status);
                }
                json_t *schema =
                    json_object_get (json_object_get (json_object_get (resp, "content"),
                                                      "application/json"),
                                     "schema");
                json_t *ref = json_object_get (schema, "$ref");
                bool error_shape =
                    json_is_string (ref) &&
                    strcmp (json_string_value (ref), "#/components/schemas/Error") == 0;
                /* readyz's 503 is its report or, draining, an error. */
                json_t *one_of = json_object_get (schema, "oneOf");
                for (size_t k = 0; !error_shape && k < json_array_size (one_of); k++) {
                    json_t *r = json_object_get (json_array_get (one_of, k), "$ref");
                    error_shape =
                        json_is_string (r) &&
                        strcmp (json_string_value (r), "#/components/schemas/Error") == 0;
                }
                if (status[0] >= '4' && !error_shape) {
                    problems += s_problem ("%s %s %s: not the error shape", s_methods[m],
                                           path, status);
                }
            }
        }
    }
    assert_int_equal (problems, 0);
    json_decref (doc);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: %s docs/openapi.json\n", argv[0]);
        return 2;
    }
    s_doc_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_doc_matches_routes),
        cmocka_unit_test (test_built_in_copy_is_the_file),
        cmocka_unit_test (test_check_catches_drift),
        cmocka_unit_test (test_doc_structure),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
