/*  cli_user -- `safeshare user add`: a verified user straight into the
    auth database (authd_users), the password read from stdin.          */
#ifndef CLI_USER_H
#define CLI_USER_H

#include "cm_config.h"
#include <stddef.h>

/* Longest password accepted from stdin (authd applies its own policy). */
#define CLI_PASSWORD_MAX 1024

/* Reads one line from fd with read(2), byte by byte so that nothing past
   the newline is consumed and no stdio buffer keeps a copy. Strips the
   "\n" / "\r\n". Returns the length, -1 on EOF before any byte or on a
   read error, -2 if the line does not fit in buf (len - 1 bytes).
   On failure buf is wiped.                                             */
long cli_password_read_line (int fd, char *buf, size_t len);

/* Reads the password (prompting twice without echo when in_fd is a
   terminal), opens SAFESHARE_AUTH_DB, migrates it and creates the user.
   Prints "created <role> user <email> (id <id>)". Returns the exit code:
   0, 1 (the error code on stderr, e.g. email_taken), 2 (usage).       */
int cli_user_add (cm_config_t *config, const char *email, const char *role, int in_fd);

#endif
