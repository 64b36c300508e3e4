/*  authd_admin -- what admins (POST/GET/PATCH /api/users) and the CLI
    (`safeshare user add|list|disable|enable`) do to accounts. Every
    change is audited (authd_audit.h) in the transaction that makes it.

    The caller decides who may call: the service checks the actor with
    authd_admin_require first; the CLI is the operator with the database
    in hand and passes an origin whose actor is "cli".                 */
#ifndef AUTHD_ADMIN_H
#define AUTHD_ADMIN_H

#include "authd_audit.h"
#include "authd_users.h"
#include "cm_db.h"
#include "cm_status.h"

#include <stdbool.h>
#include <stddef.h>

#define AUTHD_LIST_LIMIT_MAX     200
#define AUTHD_LIST_LIMIT_DEFAULT 50
/* A next_cursor fits in this many chars. */
#define AUTHD_CURSOR_MAX 64

/* CM_OK if actor_id (32 hex) is an existing, enabled admin; else
   CM_FORBIDDEN "forbidden" (CM_UNAVAILABLE "database_busy" on DB
   trouble).                                                            */
cm_status_t authd_admin_require (cm_db_t *db, const char *actor_id,
                                 const char **err_code);

/* Creates a verified user with role "ops" or "admin" (an admin vouches
   for the address). err_code: "invalid_email", "weak_password",
   "invalid_role" (CM_INVALID), "email_taken" (CM_CONFLICT). Audited as
   user_create (detail = role).                                         */
cm_status_t authd_admin_create (cm_db_t *db, const authd_origin_t *o, const char *email,
                                const char *password, const char *role,
                                authd_user_t *user_out, const char **err_code);

/* Newest first (created_at desc, id desc). limit 0 = default, else
   1..AUTHD_LIST_LIMIT_MAX (CM_INVALID "invalid_limit"); cursor "" or a
   previous next_cursor (CM_INVALID "invalid_cursor"); email_part "" or
   a substring the e-mail must contain (ASCII case-insensitive, <= 254
   bytes, else "invalid_request"); role NULL/"" = any, else
   client|ops|admin ("invalid_role"). users: room for limit entries;
   *n_out entries filled; next_cursor "" when there is no more.         */
cm_status_t authd_admin_list (cm_db_t *db, unsigned limit, const char *cursor,
                              const char *email_part, const char *role,
                              authd_user_t *users, size_t *n_out,
                              char next_cursor[AUTHD_CURSOR_MAX + 1],
                              const char **err_code);

/* disabled: -1 unchanged, 0 enable, 1 disable; role: NULL unchanged, else
   client|ops|admin. At least one change (else CM_INVALID
   "invalid_request"). CM_INVALID "invalid_user_id", "invalid_role";
   CM_NOT_FOUND "user_not_found"; CM_CONFLICT "last_admin" when the
   change would leave no enabled admin. One transaction: the update,
   then on disable authd_sessions_revoke_user (reason "disabled",
   bump_gen), on a role change token_gen + 1 (tokens carry the role;
   sessions stay, so a refresh gets the new role), and the audit rows
   (user_disable / user_enable / role_change with detail "old->new").
   A no-op change (same value) succeeds without audit or token_gen
   change. user_out: the user after the change.                         */
cm_status_t authd_admin_update (cm_db_t *db, const authd_origin_t *o, const char *id,
                                int disabled, const char *role, authd_user_t *user_out,
                                const char **err_code);

/* The user with that (normalised) e-mail: the CLI names users by e-mail.
   CM_INVALID "invalid_email", CM_NOT_FOUND "user_not_found".          */
cm_status_t authd_user_by_email (cm_db_t *db, const char *email, authd_user_t *user_out,
                                 const char **err_code);

#endif
