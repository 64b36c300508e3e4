/*  gw_api -- the REST endpoints: authentication of the bearer token,
    role checks, JSON validation, the service calls and the JSON replies.
    gw_server routes each request here after its transport checks.    */
#ifndef GW_API_H
#define GW_API_H

#include "gw_http.h"

/* Answers req (route already matched). Returns the HTTP status sent. */
int gw_api_handle (gw_req_t *req);

#endif
