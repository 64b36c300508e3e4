/*  gw_route -- the REST routing table: (method, path) -> route + path
    parameter. Pure: no I/O. The table in gw_route.c is the one list of
    endpoints (docs and the OpenAPI document follow it).               */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    GW_ROUTE_NONE = 0,
    GW_ROUTE_HEALTHZ,      /* GET /healthz */
    GW_ROUTE_READYZ,       /* GET /readyz */
    GW_ROUTE_SIGNUP,       /* POST /api/auth/signup */
    GW_ROUTE_VERIFY,       /* GET /api/auth/verify?token= */
    GW_ROUTE_RESEND,       /* POST /api/auth/verify/resend */
    GW_ROUTE_LOGIN,        /* POST /api/auth/login */
    GW_ROUTE_ME,           /* GET /api/auth/me */
    GW_ROUTE_FILES_LIST,   /* GET /api/files */
    GW_ROUTE_FILES_UPLOAD, /* POST /api/files */
    GW_ROUTE_FILE_GET,     /* GET /api/files/{id} */
    GW_ROUTE_FILE_DELETE,  /* DELETE /api/files/{id} */
    GW_ROUTE_FILE_CONTENT, /* GET /api/files/{id}/content */
    GW_ROUTE_LINK_CREATE,  /* POST /api/files/{id}/links */
    GW_ROUTE_DOWNLOAD,     /* GET /api/download/{token} */
    GW_ROUTE_REFRESH,      /* POST /api/auth/refresh */
    GW_ROUTE_LOGOUT,       /* POST /api/auth/logout */
    GW_ROUTE_LOGOUT_ALL,   /* POST /api/auth/logout-all */
    GW_ROUTE_USERS_LIST,   /* GET /api/users (admin) */
    GW_ROUTE_USER_CREATE,  /* POST /api/users (admin) */
    GW_ROUTE_USER_UPDATE,  /* PATCH /api/users/{id} (admin) */
    GW_ROUTE_FILE_UPDATE,  /* PATCH /api/files/{id} (ops: own, admin) */
    GW_ROUTE_LINKS_LIST,   /* GET /api/files/{id}/links */
    GW_ROUTE_LINK_REVOKE,  /* DELETE /api/links/{id} */
    GW_ROUTE_METRICS,      /* GET /metrics (gw_metrics; SAFESHARE_METRICS_*) */
    GW_ROUTE_OPENAPI,      /* GET /api/openapi.json (gw_openapi) */
} gw_route_id_t;

typedef enum {
    GW_MATCH_OK = 0,
    GW_MATCH_NOT_FOUND = 1,  /* no such path: 404 not_found */
    GW_MATCH_BAD_METHOD = 2, /* path exists, method does not: 405 + Allow */
} gw_match_t;

/* Longest path parameter kept (share-link tokens are <= 128 chars). */
#define GW_PARAM_MAX 128

typedef struct {
    gw_route_id_t id;
    const char *name;             /* for logs: never contains the parameter */
    bool auth;                    /* needs a bearer token */
    bool json_body;               /* POST/PATCH with a JSON body */
    char param[GW_PARAM_MAX + 1]; /* {id} or {token}, "" if none */
    bool param_valid;             /* {id}: 32 lowercase hex; {token}: 1..128 base64url */
    char allow[32];               /* on GW_MATCH_BAD_METHOD: the Allow header value */
} gw_route_t;

/* One row of the routing table. */
typedef struct {
    const char *method;
    const char *pattern; /* literal segments, "{id}" (32 hex) or "{token}" */
    gw_route_id_t id;
    const char *name; /* also the operationId in docs/openapi.json */
    bool auth;
    bool json_body;
} gw_route_def_t;

/* The whole table (*count rows): what the OpenAPI check compares with
   docs/openapi.json, so neither can name a route the other lacks.    */
const gw_route_def_t *gw_route_table (size_t *count);

/* Matches method + path (the path without query string). */
gw_match_t gw_route_match (const char *method, const char *path, gw_route_t *route);

/* The route's name (as in gw_route_t.name) for a table id, NULL for
   GW_ROUTE_NONE or an id the table does not hold (gw_metrics labels). */
const char *gw_route_name (gw_route_id_t id);

/* True if s is a plausible share-link token: 1..128 of [A-Za-z0-9_-]. */
bool gw_token_plausible (const char *s);

#endif
