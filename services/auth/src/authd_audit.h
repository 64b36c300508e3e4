/*  authd_audit -- the audit log: one row in audit_log (auth DB,
    migration 4) and one structured log line per security event, with
    time, actor, subject, client address and request id. Never a
    password, a token or a hash of one.                                 */
#ifndef AUTHD_AUDIT_H
#define AUTHD_AUDIT_H

#include "cm_db.h"

/* Who asked. Every string borrowed; NULL is taken as "".              */
typedef struct {
    const char *req_id;      /* request id ("" from the CLI) */
    const char *client_addr; /* the HTTP client's address, "" if none */
    const char *actor;       /* acting user id (32 hex), "cli", or "" (anonymous) */
} authd_origin_t;

/* Events (proto/auth.md "Audit"):
   signup, verify, login (outcome ok | the error code), refresh_reuse,
   logout, logout_all, user_create, role_change, user_disable,
   user_enable, jwt_key_rotated.                                        */

/* Inserts the row (inside the caller's transaction when one is open, so
   it commits or rolls back with the change it records) and logs
   `audit event=E outcome=O actor=A subject=S addr=C detail=D` at info
   with o->req_id. event/outcome: snake_case; subject: user id, or the
   normalised e-mail when no user is known; detail: short, no secrets,
   may be NULL. 0, or -1 when the insert failed (logged).              */
int authd_audit (cm_db_t *db, const authd_origin_t *o, const char *event,
                 const char *outcome, const char *subject, const char *detail);

#endif
