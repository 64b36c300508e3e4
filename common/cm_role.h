/*  cm_role -- the one mapping between Safeshare__Role (proto/auth.proto)
    and the role names stored in users.role and JWT "role" claims.      */
#ifndef CM_ROLE_H
#define CM_ROLE_H

#include "auth.pb-c.h"

/* "client", "ops" or "admin"; NULL for ROLE_NONE or an unknown value. */
const char *cm_role_name (Safeshare__Role role);
/* The role named name; ROLE_NONE for NULL or any other string.        */
Safeshare__Role cm_role_parse (const char *name);

#endif
