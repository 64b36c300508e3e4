/*  authd_policy -- the password policy: 8..128 bytes and not one of the
    common passwords (services/auth/data/common-passwords.txt).

    The list is process-wide and read-only once loaded. It is built into
    the binary (embedded at build time, so an installed binary needs no
    repo); SAFESHARE_PASSWORD_DENYLIST names a file that replaces it.
    Services call authd_denylist_load() once at start, before any thread;
    without it the first check loads the built-in list.                 */
#ifndef AUTHD_POLICY_H
#define AUTHD_POLICY_H

#include <stddef.h>

/* Loads the denylist from path (NULL or "": the built-in list), replacing
   any list loaded before. One entry a line, lowercased on load; blank
   lines and lines starting with '#' skipped. 0, or -1 (logged) if the
   file cannot be read or holds no entry: the old list stays.          */
int authd_denylist_load (const char *path);

/* Entries in the current list (loads the built-in one if none). */
size_t authd_denylist_size (void);

/* NULL if password meets the policy, else why not, as a message for the
   user (static; never contains the password): too short, too long or
   too common. Common = equal to a list entry, ignoring ASCII case.     */
const char *authd_password_problem (const char *password);

#endif
