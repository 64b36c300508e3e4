/*  cli_user -- `safeshare user add|list|disable|enable`, straight on the
    auth database with the service's own code (authd_users, authd_admin):
    the operator with the database in hand acts as actor "cli", and each
    change is audited like an admin's.                                  */
#ifndef CLI_USER_H
#define CLI_USER_H

#include "cm_config.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Longest password accepted from stdin (authd applies its own policy). */
#define CLI_PASSWORD_MAX 1024

/* Reads one line from fd with read(2), byte by byte so that nothing past
   the newline is consumed and no stdio buffer keeps a copy. Strips the
   "\n" / "\r\n". Returns the length, -1 on EOF before any byte or on a
   read error, -2 if the line does not fit in buf (len - 1 bytes).
   On failure buf is wiped.                                             */
long cli_password_read_line (int fd, char *buf, size_t len);

/* Reads the password (prompting twice without echo when in_fd is a
   terminal), opens SAFESHARE_AUTH_DB, migrates it and creates the user
   (audited user_create, actor "cli"). Prints "created <role> user
   <email> (id <id>)". Returns the exit code: 0, 1 (the error code on
   stderr, e.g. email_taken), 2 (usage).                               */
int cli_user_add (cm_config_t *config, const char *email, const char *role, int in_fd);

/* Every user (all pages), newest first, as a table on out: ID, EMAIL,
   ROLE, VERIFIED, DISABLED, CREATED (UTC, ISO 8601). role NULL = any;
   email_part NULL = any, else a substring of the address (ASCII case
   ignored). Exit code: 0, 1 (database), 2 (a filter authd refuses).    */
int cli_user_list (cm_config_t *config, const char *role, const char *email_part,
                   FILE *out);

/* `user disable|enable EMAIL` through authd_admin_update (actor "cli"):
   disabling ends the user's sessions and access tokens. Prints
   "disabled user <email> (id <id>)" (or "enabled ..."; "... was already
   disabled" when nothing changed). Exit code 0, or 1 with the error
   code on stderr: user_not_found, last_admin, invalid_email, ...      */
int cli_user_set_disabled (cm_config_t *config, const char *email, bool disabled,
                           FILE *out);

#endif
