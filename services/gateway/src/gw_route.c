/*  gw_route -- the REST routing table (see gw_route.h).                 */
#include "gw_route.h"

#include <stdio.h>
#include <string.h>
#include "cm_util.h"

/* A path pattern: literal segments, "{id}" (file or user id) or "{token}". */
typedef gw_route_def_t s_entry_t;

static const s_entry_t s_table[] = {
    {"GET", "/healthz", GW_ROUTE_HEALTHZ, "healthz", false, false},
    {"GET", "/readyz", GW_ROUTE_READYZ, "readyz", false, false},
    {"POST", "/api/auth/signup", GW_ROUTE_SIGNUP, "signup", false, true},
    {"GET", "/api/auth/verify", GW_ROUTE_VERIFY, "verify", false, false},
    {"POST", "/api/auth/verify/resend", GW_ROUTE_RESEND, "verify_resend", false, true},
    {"POST", "/api/auth/login", GW_ROUTE_LOGIN, "login", false, true},
    {"GET", "/api/auth/me", GW_ROUTE_ME, "me", true, false},
    {"GET", "/api/files", GW_ROUTE_FILES_LIST, "files_list", true, false},
    {"POST", "/api/files", GW_ROUTE_FILES_UPLOAD, "files_upload", true, false},
    {"GET", "/api/files/{id}", GW_ROUTE_FILE_GET, "file_get", true, false},
    {"DELETE", "/api/files/{id}", GW_ROUTE_FILE_DELETE, "file_delete", true, false},
    {"PATCH", "/api/files/{id}", GW_ROUTE_FILE_UPDATE, "file_update", true, true},
    {"GET", "/api/files/{id}/content", GW_ROUTE_FILE_CONTENT, "file_content", true,
     false},
    {"POST", "/api/files/{id}/links", GW_ROUTE_LINK_CREATE, "link_create", true, true},
    {"GET", "/api/files/{id}/links", GW_ROUTE_LINKS_LIST, "links_list", true, false},
    {"DELETE", "/api/links/{id}", GW_ROUTE_LINK_REVOKE, "link_revoke", true, false},
    {"GET", "/api/download/{token}", GW_ROUTE_DOWNLOAD, "download", false, false},
    /* Refresh and logout present a refresh token, not a bearer one. */
    {"POST", "/api/auth/refresh", GW_ROUTE_REFRESH, "refresh", false, true},
    {"POST", "/api/auth/logout", GW_ROUTE_LOGOUT, "logout", false, true},
    {"POST", "/api/auth/logout-all", GW_ROUTE_LOGOUT_ALL, "logout_all", true, true},
    {"GET", "/api/users", GW_ROUTE_USERS_LIST, "users_list", true, false},
    {"POST", "/api/users", GW_ROUTE_USER_CREATE, "user_create", true, true},
    {"PATCH", "/api/users/{id}", GW_ROUTE_USER_UPDATE, "user_update", true, true},
    /* Its own access rule (SAFESHARE_METRICS_ALLOW / _TOKEN), not a JWT. */
    {"GET", "/metrics", GW_ROUTE_METRICS, "metrics", false, false},
    {"GET", "/api/openapi.json", GW_ROUTE_OPENAPI, "openapi", false, false},
};
#define S_TABLE_LEN (sizeof s_table / sizeof s_table[0])

const gw_route_def_t *
gw_route_table (size_t *count)
{
    *count = S_TABLE_LEN;
    return s_table;
}

const char *
gw_route_name (gw_route_id_t id)
{
    for (size_t i = 0; id != GW_ROUTE_NONE && i < S_TABLE_LEN; i++) {
        if (s_table[i].id == id) {
            return s_table[i].name;
        }
    }
    return NULL;
}

bool
gw_token_plausible (const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok || n >= GW_PARAM_MAX) {
            return false;
        }
    }
    return n > 0;
}

/* Matches path against pattern; a parameter segment is copied (cut to
   GW_PARAM_MAX, then flagged invalid) into param. True on a match.    */
static bool
s_match (const char *pattern, const char *path, char *param, bool *param_valid,
         bool *too_long)
{
    const char *p = pattern;
    const char *s = path;
    while (*p) {
        if (*p == '{') {
            const char *close = strchr (p, '}');
            const char *end = strchr (s, '/');
            size_t len = end ? (size_t)(end - s) : strlen (s);
            if (len == 0) {
                return false;
            }
            size_t keep = len > GW_PARAM_MAX ? GW_PARAM_MAX : len;
            memcpy (param, s, keep);
            param[keep] = '\0';
            *too_long = len > GW_PARAM_MAX;
            bool is_id = strncmp (p, "{id}", 4) == 0;
            *param_valid = !*too_long && (is_id ? cm_is_hex_id (param, 32)
                                                : gw_token_plausible (param));
            p = close + 1;
            s += len;
            continue;
        }
        if (*p != *s) {
            return false;
        }
        p++, s++;
    }
    return *s == '\0';
}

gw_match_t
gw_route_match (const char *method, const char *path, gw_route_t *route)
{
    memset (route, 0, sizeof *route);
    if (!method || !path) {
        return GW_MATCH_NOT_FOUND;
    }
    bool path_known = false;
    for (size_t i = 0; i < S_TABLE_LEN; i++) {
        char param[GW_PARAM_MAX + 1] = "";
        bool valid = false;
        bool too_long = false;
        if (!s_match (s_table[i].pattern, path, param, &valid, &too_long)) {
            continue;
        }
        if (strcmp (method, s_table[i].method) != 0) {
            /* Collect the methods this path takes, for Allow. */
            size_t used = strlen (route->allow);
            size_t need = strlen (s_table[i].method) + (path_known ? 2 : 0);
            if (used + need < sizeof route->allow) {
                snprintf (route->allow + used, sizeof route->allow - used, "%s%s",
                          path_known ? ", " : "", s_table[i].method);
            }
            path_known = true;
            continue;
        }
        memset (route, 0, sizeof *route);
        route->id = s_table[i].id;
        route->name = s_table[i].name;
        route->auth = s_table[i].auth;
        route->json_body = s_table[i].json_body;
        memcpy (route->param, param, sizeof param);
        route->param_valid = valid;
        return GW_MATCH_OK;
    }
    if (!path_known) {
        return GW_MATCH_NOT_FOUND;
    }
    return GW_MATCH_BAD_METHOD;
}
