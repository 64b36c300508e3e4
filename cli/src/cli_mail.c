/*  cli_mail -- `safeshare mail list|retry` on the mailer's outbox.      */
#include "cli_mail.h"
#include "maild_outbox.h"
#include "cm_util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
s_time (char out[24], uint64_t ms)
{
    if (ms == 0) {
        snprintf (out, 24, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r (&t, &tm) || strftime (out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf (out, 24, "?");
    }
}

static void
s_print_row (const maild_row_t *row, void *arg)
{
    FILE *out = arg;
    char created[24], next[24];
    s_time (created, row->created_ms);
    if (strcmp (row->status, MAILD_JOB_SENT) == 0) {
        s_time (next, row->sent_ms);
    } else if (strcmp (row->status, MAILD_JOB_FAILED) == 0) {
        s_time (next, 0);
    } else {
        s_time (next, row->next_attempt_ms);
    }
    fprintf (out, "%-32s  %-7s  %8ld  %-32s  %-20s  %-20s  %s\n", row->id, row->status,
             row->attempts, row->to, created, next,
             row->last_error ? row->last_error : "");
}

static int
s_usage (FILE *err, const char *why)
{
    fprintf (err,
             "safeshare mail: %s\n"
             "usage: safeshare mail list [--status pending|sending|sent|failed] "
             "[--limit N]\n"
             "       safeshare mail retry ID\n",
             why);
    return 2;
}

int
cli_mail (cm_config_t *config, int argc, char *const *argv, FILE *out, FILE *err)
{
    if (argc < 1) {
        return s_usage (err, "needs a subcommand (list, retry)");
    }
    const char *status = NULL, *job = NULL;
    long limit = CLI_MAIL_LIMIT_DEFAULT;
    bool list = strcmp (argv[0], "list") == 0;
    if (!list && strcmp (argv[0], "retry") != 0) {
        return s_usage (err, "unknown subcommand");
    }
    for (int i = 1; i < argc; i++) {
        if (list && strcmp (argv[i], "--status") == 0 && i + 1 < argc) {
            status = argv[++i];
            if (!maild_outbox_status_valid (status)) {
                return s_usage (err, "--status is pending, sending, sent or failed");
            }
        } else if (list && strcmp (argv[i], "--limit") == 0 && i + 1 < argc) {
            char *end = NULL;
            limit = strtol (argv[++i], &end, 10);
            if (!end || *end || limit < 1 || limit > CLI_MAIL_LIMIT_MAX) {
                return s_usage (err, "--limit is 1..10000");
            }
        } else if (!list && !job && argv[i][0] != '-') {
            job = argv[i];
        } else {
            return s_usage (err, "unexpected argument");
        }
    }
    if (!list && !cm_is_hex_id (job, 32)) {
        return s_usage (err, "retry needs a job ID (32 lowercase hex)");
    }
    char why[512];
    maild_outbox_t *box =
        maild_outbox_new (cm_config_get (config, "SAFESHARE_MAILER_DB"), why, sizeof why);
    if (!box) {
        fprintf (err, "safeshare mail: %s\n", why);
        return 1;
    }
    int rc = 1;
    if (list) {
        fprintf (out, "%-32s  %-7s  %8s  %-32s  %-20s  %-20s  %s\n", "ID", "STATUS",
                 "ATTEMPTS", "TO", "CREATED", "NEXT", "LAST_ERROR");
        rc = maild_outbox_list (box, status, limit, s_print_row, out) == 0 ? 0 : 1;
    } else {
        uint64_t max_age_ms =
            (uint64_t)cm_config_int (config, "SAFESHARE_MAIL_MAX_AGE") * 1000;
        int r = maild_outbox_requeue (box, job, cm_now_ms (), max_age_ms);
        if (r == 0) {
            fprintf (out, "job %s queued again\n", job);
            rc = 0;
        } else if (r == 1) {
            fprintf (err,
                     "job_not_failed: no failed job %s (only failed jobs whose "
                     "message is kept can be retried)\n",
                     job);
        }
    }
    maild_outbox_destroy (&box);
    return rc;
}
