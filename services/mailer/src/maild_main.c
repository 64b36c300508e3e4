/*  safeshare-mailer -- thin main: config, checks, socket, serve.         */
#include "maild_drop.h"
#include "maild_message.h"
#include "maild_server.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_service.h"

#include <stdio.h>
#include <stdlib.h>

static const cm_service_info_t s_info = {
    .name = "mailer",
    .binary = "safeshare-mailer",
    .summary = "the safeshare mailer: renders mail jobs and delivers them",
    .usage = "Delivery: the mail drop, one <job_id>.eml file per message in\n"
             "SAFESHARE_MAIL_DIR (default $SAFESHARE_DATA_DIR/mail). Listens on\n"
             "SAFESHARE_MAILER_ENDPOINT. SMTP delivery (SAFESHARE_SMTP_URL) is not\n"
             "built yet.",
};

int
main (int argc, char **argv)
{
    int exit_code = 0;
    maild_transport_t *transport = NULL;
    maild_server_t *server = NULL;
    zsock_t *router = NULL;
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
    /* Mail meant for SMTP must not silently land in a directory instead. */
    const char *smtp = getenv ("SAFESHARE_SMTP_URL");
    if (smtp && *smtp) {
        fprintf (stderr,
                 "%s: SAFESHARE_SMTP_URL is set but SMTP delivery is not built yet; "
                 "unset it to use the mail drop\n",
                 s_info.binary);
        goto cleanup;
    }
    const char *from = cm_config_get (config, "SAFESHARE_MAIL_FROM");
    if (!maild_message_sender_valid (from)) {
        fprintf (stderr,
                 "%s: bad configuration: SAFESHARE_MAIL_FROM must be addr or "
                 "\"Name <addr>\" in printable ASCII without specials\n",
                 s_info.binary);
        goto cleanup;
    }
    char err[512] = "";
    transport =
        maild_drop_new (cm_config_get (config, "SAFESHARE_MAIL_DIR"), err, sizeof err);
    if (!transport) {
        fprintf (stderr, "%s: %s\n", s_info.binary, err);
        goto cleanup;
    }
    server = maild_server_new (&transport, from);
    if (!server) {
        fprintf (stderr, "%s: out of memory\n", s_info.binary);
        exit_code = 1;
        goto cleanup;
    }
    const char *endpoint = cm_config_get (config, "SAFESHARE_MAILER_ENDPOINT");
    router = cm_sock_server (endpoint);
    if (!router) {
        exit_code = 1; /* logged by cm_sock_server */
        goto cleanup;
    }
    cm_info (NULL, "mailer listening endpoint=%s transport=drop mail_dir=%s version=%s",
             endpoint, cm_config_get (config, "SAFESHARE_MAIL_DIR"), SAFESHARE_VERSION);
    exit_code = maild_server_run (server, router) == 0 ? 0 : 1;

cleanup:
    zsock_destroy (&router);
    maild_server_destroy (&server);
    maild_transport_destroy (&transport);
    cm_config_destroy (&config);
    return exit_code;
}
