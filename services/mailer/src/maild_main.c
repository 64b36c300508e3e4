/*  safeshare-mailer -- thin main: config, checks, outbox, sender thread,
    socket, serve.                                                       */
#include "maild_drop.h"
#include "maild_message.h"
#include "maild_outbox.h"
#include "maild_sender.h"
#include "maild_server.h"
#include "maild_smtp.h"
#include "maild_template.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_service.h"
#include "cm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const cm_service_info_t s_info = {
    .name = "mailer",
    .binary = "safeshare-mailer",
    .summary = "the safeshare mailer: queues mail jobs durably and delivers them",
    .usage = "Jobs are stored in SAFESHARE_MAILER_DB before they are acked, then\n"
             "delivered by a sender thread with retries: over SMTP when\n"
             "SAFESHARE_SMTP_URL is set (smtp://user:pass@host:587, STARTTLS\n"
             "required unless ?tls=none), else to the mail drop, one <job_id>.eml\n"
             "per message in SAFESHARE_MAIL_DIR. Listens on\n"
             "SAFESHARE_MAILER_ENDPOINT. See docs/mail.md.",
    .serves = true,
};

static int
s_bad (const char *what)
{
    fprintf (stderr, "%s: bad configuration: %s\n", s_info.binary, what);
    return 2;
}

int
main (int argc, char **argv)
{
    int exit_code = 0;
    maild_transport_t *transport = NULL;
    maild_templates_t *templates = NULL;
    maild_outbox_t *server_outbox = NULL, *sender_outbox = NULL;
    maild_sender_t *sender = NULL;
    maild_server_t *server = NULL;
    zsock_t *router = NULL;
    maild_counters_t counters = {0};
    cm_config_t *config = cm_service_init (&s_info, &argc, argv, &exit_code);
    if (!config) {
        return exit_code;
    }
    exit_code = 2;
    if (argc > 1) {
        fprintf (stderr, "%s: unexpected argument %s (see --help)\n", s_info.binary,
                 argv[1]);
        goto cleanup;
    }
    /* Everything is checked before any socket is bound. */
    const char *from = cm_config_get (config, "SAFESHARE_MAIL_FROM");
    const char *reply_to = cm_config_get (config, "SAFESHARE_MAIL_REPLY_TO");
    char sender_addr[MAILD_MAX_ADDRESS + 1];
    if (maild_message_sender_addr (from, sender_addr, sizeof sender_addr) != 0) {
        exit_code = s_bad ("SAFESHARE_MAIL_FROM must be addr or \"Name <addr>\" in "
                           "printable ASCII without specials");
        goto cleanup;
    }
    if (reply_to && !maild_message_sender_valid (reply_to)) {
        exit_code = s_bad ("SAFESHARE_MAIL_REPLY_TO must be addr or \"Name <addr>\" in "
                           "printable ASCII without specials");
        goto cleanup;
    }
    long retry_min = cm_config_int (config, "SAFESHARE_MAIL_RETRY_MIN_MS");
    long retry_max = cm_config_int (config, "SAFESHARE_MAIL_RETRY_MAX_MS");
    if (retry_max < retry_min) {
        exit_code =
            s_bad ("SAFESHARE_MAIL_RETRY_MAX_MS is below SAFESHARE_MAIL_RETRY_MIN_MS");
        goto cleanup;
    }
    long timeout_ms = cm_config_int (config, "SAFESHARE_SMTP_TIMEOUT_MS");
    long lease_s = cm_config_int (config, "SAFESHARE_MAIL_LEASE_S");
    char err[512] = "";
    const char *smtp_url = cm_config_get (config, "SAFESHARE_SMTP_URL");
    if (smtp_url) {
        /* A lease shorter than a delivery could take would let a second
           mailer claim a job that is still being sent.                  */
        if (lease_s * 1000 < (long)MAILD_SMTP_STEPS * timeout_ms) {
            fprintf (stderr,
                     "%s: bad configuration: SAFESHARE_MAIL_LEASE_S (%ld s) must cover "
                     "%d x SAFESHARE_SMTP_TIMEOUT_MS (%ld ms)\n",
                     s_info.binary, lease_s, MAILD_SMTP_STEPS, timeout_ms);
            goto cleanup;
        }
        transport = maild_smtp_new (smtp_url, sender_addr, timeout_ms,
                                    cm_config_get (config, "SAFESHARE_SMTP_CA_FILE"), err,
                                    sizeof err);
    } else {
        transport = maild_drop_new (cm_config_get (config, "SAFESHARE_MAIL_DIR"), err,
                                    sizeof err);
    }
    if (!transport) {
        fprintf (stderr, "%s: %s\n", s_info.binary, err);
        goto cleanup;
    }
    templates = maild_templates_new (
        cm_config_get (config, "SAFESHARE_MAIL_TEMPLATE_DIR"), err, sizeof err);
    if (!templates) {
        fprintf (stderr, "%s: %s\n", s_info.binary, err);
        goto cleanup;
    }
    /* Two connections: the ROUTER's thread stores, the sender's claims. */
    const char *db_url = cm_config_get (config, "SAFESHARE_MAILER_DB");
    server_outbox = maild_outbox_new (db_url, err, sizeof err);
    sender_outbox = server_outbox ? maild_outbox_new (db_url, err, sizeof err) : NULL;
    if (!sender_outbox) {
        fprintf (stderr, "%s: %s\n", s_info.binary, err);
        exit_code = 1;
        goto cleanup;
    }
    char host[128] = "";
    char nonce[17];
    gethostname (host, sizeof host - 1);
    if (cm_random_hex (nonce, 8) != 0) {
        exit_code = 1;
        goto cleanup;
    }
    char owner[200];
    snprintf (owner, sizeof owner, "%.100s/%d/%s", host, (int)getpid (), nonce);
    const char *via = maild_transport_name (transport);
    maild_sender_config_t sc = {
        .owner = owner,
        .lease_ms = (uint64_t)lease_s * 1000,
        .retry_min_ms = (uint64_t)retry_min,
        .retry_max_ms = (uint64_t)retry_max,
        .counters = &counters,
    };
    const char *endpoint = cm_config_get (config, "SAFESHARE_MAILER_ENDPOINT");
    router = cm_sock_server (endpoint);
    if (!router) {
        exit_code = 1; /* logged by cm_sock_server */
        goto cleanup;
    }
    sender = maild_sender_new (&sc, &sender_outbox, &transport);
    maild_server_config_t cfg = {
        .from = from,
        .reply_to = reply_to,
        .max_age_ms = (uint64_t)cm_config_int (config, "SAFESHARE_MAIL_MAX_AGE") * 1000,
        .sender = sender,
        .counters = &counters,
    };
    server = sender ? maild_server_new (&cfg, &templates, &server_outbox) : NULL;
    if (!server) {
        fprintf (stderr, "%s: cannot start (see the log)\n", s_info.binary);
        exit_code = 1;
        goto cleanup;
    }
    /* The URL holds the password: only its transport name is logged. */
    cm_info (NULL, "mailer listening endpoint=%s transport=%s owner=%s version=%s",
             endpoint, via, owner, SAFESHARE_VERSION);
    exit_code = maild_server_run (server, router) == 0 ? 0 : 1;

cleanup:
    zsock_destroy (&router);
    maild_server_destroy (&server);
    maild_sender_destroy (&sender);
    maild_outbox_destroy (&server_outbox);
    maild_outbox_destroy (&sender_outbox);
    maild_templates_destroy (&templates);
    maild_transport_destroy (&transport);
    cm_config_destroy (&config);
    return exit_code;
}
