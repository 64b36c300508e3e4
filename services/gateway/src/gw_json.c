/*  gw_json -- the JSON shapes of the REST API (see gw_json.h).          */
#include "gw_json.h"
#include "gw_text.h"

#include <string.h>
#include "cm_role.h"

char *
gw_json_error (const char *code, const char *message, const char *req_id)
{
    json_t *root =
        json_pack ("{s:{s:s, s:s, s:s}}", "error", "code", code ? code : "", "message",
                   message ? message : "", "request_id", req_id ? req_id : "");
    if (root == NULL) {
        /* Only on invalid UTF-8 in a message: fall back to a fixed body. */
        root =
            json_pack ("{s:{s:s, s:s, s:s}}", "error", "code", "internal_error",
                       "message", "error message could not be encoded", "request_id", "");
    }
    char *text = root ? json_dumps (root, JSON_COMPACT) : NULL;
    json_decref (root);
    return text;
}

static const char *
s_str (const char *s)
{
    return s ? s : "";
}

json_t *
gw_json_file (const Safeshare__FileInfo *file)
{
    char created[32];
    gw_iso8601 (file->created_at, created);
    return json_pack ("{s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "id", s_str (file->id),
                      "name", s_str (file->name), "size", (json_int_t)file->size,
                      "content_type", s_str (file->content_type), "sha256",
                      s_str (file->sha256), "owner_id", s_str (file->owner_id),
                      "created_at", created);
}

const char *
gw_role_name (Safeshare__Role role)
{
    const char *name = cm_role_name (role);
    return name ? name : "none";
}

json_t *
gw_json_user (const Safeshare__User *user)
{
    char created[32];
    gw_iso8601 (user->created_at, created);
    return json_pack ("{s:s, s:s, s:s, s:b, s:b, s:s}", "id", s_str (user->id), "email",
                      s_str (user->email), "role", gw_role_name (user->role), "verified",
                      user->verified ? 1 : 0, "disabled", user->disabled ? 1 : 0,
                      "created_at", created);
}
