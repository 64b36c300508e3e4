/*  cm_role -- role enum <-> name.                                       */
#include "cm_role.h"

#include <stddef.h>
#include <string.h>

const char *
cm_role_name (Safeshare__Role role)
{
    switch (role) {
        case SAFESHARE__ROLE__ROLE_CLIENT:
            return "client";
        case SAFESHARE__ROLE__ROLE_OPS:
            return "ops";
        case SAFESHARE__ROLE__ROLE_ADMIN:
            return "admin";
        default:
            return NULL;
    }
}

Safeshare__Role
cm_role_parse (const char *name)
{
    static const Safeshare__Role roles[] = {SAFESHARE__ROLE__ROLE_CLIENT,
                                            SAFESHARE__ROLE__ROLE_OPS,
                                            SAFESHARE__ROLE__ROLE_ADMIN};
    for (size_t i = 0; name && i < sizeof roles / sizeof roles[0]; i++) {
        if (strcmp (name, cm_role_name (roles[i])) == 0) {
            return roles[i];
        }
    }
    return SAFESHARE__ROLE__ROLE_NONE;
}
