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
    /* chunk_size tells a ranged reader where chunks end (each range is
       decrypted chunk by chunk); the KEK id stays inside: it is
       operators' business (safeshare keys list).                       */
    return json_pack ("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:I}", "id",
                      s_str (file->id), "name", s_str (file->name), "size",
                      (json_int_t)file->size, "content_type", s_str (file->content_type),
                      "sha256", s_str (file->sha256), "owner_id", s_str (file->owner_id),
                      "created_at", created, "visibility", s_str (file->visibility),
                      "chunk_size", (json_int_t)file->chunk_size);
}

json_t *
gw_json_link (const Safeshare__LinkInfo *link)
{
    char created[32], expires[32], revoked[32];
    gw_iso8601 (link->created_at, created);
    gw_iso8601 (link->expires_at, expires);
    gw_iso8601 (link->revoked_at, revoked);
    uint32_t left =
        link->downloads < link->max_downloads ? link->max_downloads - link->downloads : 0;
    return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:o, s:s}", "id",
                      s_str (link->id), "file_id", s_str (link->file_id), "creator_id",
                      s_str (link->creator_id), "created_at", created, "expires_at",
                      expires, "max_downloads", (json_int_t)link->max_downloads,
                      "downloads", (json_int_t)link->downloads, "downloads_left",
                      (json_int_t)left, "signed_in_only", link->signed_in_only ? 1 : 0,
                      "revoked_at",
                      link->revoked_at ? json_string (revoked) : json_null (), "state",
                      s_str (link->state));
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
