/*  cm_status -- the one place a service status becomes an HTTP status.  */
#include "cm_status.h"

typedef struct {
    int http;
    const char *code;
    const char *name;
} s_status_row_t;

static const s_status_row_t s_rows[] = {
    [CM_OK] = {200, "ok", "OK"},
    [CM_INVALID] = {400, "invalid_request", "INVALID"},
    [CM_UNAUTHENTICATED] = {401, "unauthenticated", "UNAUTHENTICATED"},
    [CM_FORBIDDEN] = {403, "forbidden", "FORBIDDEN"},
    [CM_NOT_FOUND] = {404, "not_found", "NOT_FOUND"},
    [CM_CONFLICT] = {409, "conflict", "CONFLICT"},
    [CM_TOO_LARGE] = {413, "too_large", "TOO_LARGE"},
    [CM_UNSUPPORTED] = {415, "unsupported", "UNSUPPORTED"},
    [CM_RATE_LIMITED] = {429, "rate_limited", "RATE_LIMITED"},
    [CM_UNAVAILABLE] = {503, "service_unavailable", "UNAVAILABLE"},
    [CM_INTERNAL] = {500, "internal_error", "INTERNAL"},
    [CM_GONE] = {410, "gone", "GONE"},
    [CM_UNPROCESSABLE] = {422, "unprocessable", "UNPROCESSABLE"},
};

static const s_status_row_t *
s_row (cm_status_t status)
{
    if ((unsigned)status < sizeof s_rows / sizeof s_rows[0] && s_rows[status].code) {
        return &s_rows[status];
    }
    return &s_rows[CM_INTERNAL];
}

int
cm_status_http (cm_status_t status)
{
    return s_row (status)->http;
}

const char *
cm_status_code (cm_status_t status)
{
    return s_row (status)->code;
}

const char *
cm_status_name (cm_status_t status)
{
    return s_row (status)->name;
}
