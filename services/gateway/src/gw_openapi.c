/*  gw_openapi -- the API's own description (see gw_openapi.h).         */
#include "gw_openapi.h"

#include "cm_log.h"

int
gw_openapi_reply (gw_req_t *req)
{
    /* Parsed per request, not cached: a shared json_t would be touched
       by many worker threads, and the call is rare and ~1 ms.         */
    json_error_t error;
    json_t *doc = json_loadb (gw_openapi_doc, gw_openapi_doc_len, 0, &error);
    if (doc == NULL) {
        /* The build checked it: only out of memory gets here. */
        cm_error (req->req_id, "json_loadb() failed for the OpenAPI document: %s",
                  error.text);
        return gw_reply_error (req, 500, "internal_error",
                               "the API description could not be loaded");
    }
    int status = gw_reply_json (req, 200, doc);
    json_decref (doc);
    return status;
}
