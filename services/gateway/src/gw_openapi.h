/*  gw_openapi -- GET /api/openapi.json: the OpenAPI document of the API
    (docs/openapi.json, built into the binary by embed_openapi.cmake).  */
#ifndef GW_OPENAPI_H
#define GW_OPENAPI_H

#include <stddef.h>
#include "gw_http.h"

/* The document as built in: gw_openapi_doc_len bytes of JSON, then a NUL. */
extern const char gw_openapi_doc[];
extern const size_t gw_openapi_doc_len;

/* Answers 200 with the document (compact JSON). Returns the status.   */
int gw_openapi_reply (gw_req_t *req);

#endif
