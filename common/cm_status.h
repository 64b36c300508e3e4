/*  cm_status -- the shared status enum (proto/common.proto) and its single
    mapping to HTTP status and default error codes.                       */
#ifndef CM_STATUS_H
#define CM_STATUS_H

#include "common.pb-c.h"

typedef Safeshare__Status cm_status_t;

#define CM_OK              SAFESHARE__STATUS__STATUS_OK
#define CM_INVALID         SAFESHARE__STATUS__STATUS_INVALID
#define CM_UNAUTHENTICATED SAFESHARE__STATUS__STATUS_UNAUTHENTICATED
#define CM_FORBIDDEN       SAFESHARE__STATUS__STATUS_FORBIDDEN
#define CM_NOT_FOUND       SAFESHARE__STATUS__STATUS_NOT_FOUND
#define CM_CONFLICT        SAFESHARE__STATUS__STATUS_CONFLICT
#define CM_TOO_LARGE       SAFESHARE__STATUS__STATUS_TOO_LARGE
#define CM_UNSUPPORTED     SAFESHARE__STATUS__STATUS_UNSUPPORTED
#define CM_RATE_LIMITED    SAFESHARE__STATUS__STATUS_RATE_LIMITED
#define CM_UNAVAILABLE     SAFESHARE__STATUS__STATUS_UNAVAILABLE
#define CM_INTERNAL        SAFESHARE__STATUS__STATUS_INTERNAL
#define CM_GONE            SAFESHARE__STATUS__STATUS_GONE
#define CM_UNPROCESSABLE   SAFESHARE__STATUS__STATUS_UNPROCESSABLE

/* 400, 401, ... ; unknown values map to 500. */
int cm_status_http (cm_status_t status);
/* Default snake_case error code for a status ("invalid_request", ...). */
const char *cm_status_code (cm_status_t status);
/* "OK", "INVALID", ... for logs. */
const char *cm_status_name (cm_status_t status);

#endif
