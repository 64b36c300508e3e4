/*  cli_mail -- `safeshare mail list|retry`: the operator's view of the
    mailer's outbox, straight on SAFESHARE_MAILER_DB (SQLite or
    PostgreSQL) with the mailer's own code (maild_outbox), so it works
    where the database is reachable, whether the mailer runs or not.
    A running mailer picks a retried job up within a second.           */
#ifndef CLI_MAIL_H
#define CLI_MAIL_H

#include "cm_config.h"
#include <stdio.h>

/* Default and largest `mail list --limit`. */
#define CLI_MAIL_LIMIT_DEFAULT 100
#define CLI_MAIL_LIMIT_MAX     10000

/* argv: what follows `mail`:
     list [--status pending|sending|sent|failed] [--limit N]
         a table, newest first: ID, STATUS, ATTEMPTS, TO, CREATED, NEXT
         (the next attempt of a pending job, the send time of a sent one),
         LAST_ERROR
     retry ID
         a failed job is pending again, due now, with a new give-up time
         (SAFESHARE_MAIL_MAX_AGE from now); prints "job ID queued again"
   Exit code: 0, 1 (database; or retry: job_not_failed on stderr when no
   failed job has that id), 2 (usage, on err).                         */
int cli_mail (cm_config_t *config, int argc, char *const *argv, FILE *out, FILE *err);

#endif
