/*  gw_json -- the JSON shapes of the REST API, in one place: the error
    object, the file and the user. Pure (jansson), unit-tested.          */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <jansson.h>
#include "auth.pb-c.h"
#include "storage.pb-c.h"

/* {"error": {"code", "message", "request_id"}} as a compact JSON string
   (caller frees). NULL arguments become "".                            */
char *gw_json_error (const char *code, const char *message, const char *req_id);

/* {"id","name","size","content_type","sha256","owner_id","created_at",
   "visibility"}; never the wrapped DEK or the KEK id. New reference.  */
json_t *gw_json_file (const Safeshare__FileInfo *file);

/* {"id","file_id","creator_id","created_at","expires_at",
   "max_downloads","downloads","downloads_left","signed_in_only",
   "revoked_at" (null when not revoked),"state"}; never a token (storage
   has none to give). New reference.                                   */
json_t *gw_json_link (const Safeshare__LinkInfo *link);

/* {"id","email","role","verified","disabled","created_at"}. New
   reference.                                                          */
json_t *gw_json_user (const Safeshare__User *user);

/* "client" | "ops" | "admin" | "none". */
const char *gw_role_name (Safeshare__Role role);

#endif
