/*  gw_intake -- POST /api/files: the HTTP side of an upload, in both
    forms through one path:

      multipart/form-data   civetweb's form parser streams the `file`
                            field (never STORE: no plaintext on disk);
      any other body        a raw upload, read with mg_read: Content-Type
                            application/octet-stream (or absent, or the
                            file's own type), the name in X-File-Name
                            (percent-encoded UTF-8) or ?name=.
                            x-www-form-urlencoded, JSON and other types
                            are refused unread (415): only multipart
                            ever reaches civetweb's form handler
                            (CVE-2025-9648, PLATFORM.md).

    Both: staff only (403 for clients), ?visibility=clients|staff, 413
    before reading when Content-Length is over the limit (and at the
    limit for chunked bodies), the body-read watchdog (408), the upload
    policy (gw_policy) on the name and on the first GW_POLICY_PREFIX
    bytes -- buffered before anything reaches storage, so a refused file
    leaves nothing behind -- then the gw_upload pipeline.              */
#ifndef GW_INTAKE_H
#define GW_INTAKE_H

#include "gw_http.h"

/* Answers the request (201 with the file, or the error); the status. */
int gw_intake_handle (gw_req_t *req);

#endif
