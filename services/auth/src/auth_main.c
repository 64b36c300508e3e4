/*  safeshare-auth -- users, e-mail verification and access tokens.
    Thin main: config, key, database, sockets, then one loop that serves
    the ROUTER and relays the mail outbox.                               */
#include "authd_handler.h"
#include "authd_outbox.h"
#include "authd_policy.h"
#include "authd_users.h"
#include "cm_config.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_service.h"
#include "cm_util.h"

#include <libgen.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Upper bound on one poll, so a missed wake-up costs at most this. */
#define S_MAX_WAIT_MS 1000

/* Passwords and tokens must not linger in freed memory. */
static void
s_wipe_secrets (Safeshare__AuthRequest *rq)
{
    char *secret = NULL;
    if (rq->body_case == SAFESHARE__AUTH_REQUEST__BODY_SIGNUP && rq->signup) {
        secret = rq->signup->password;
    } else if (rq->body_case == SAFESHARE__AUTH_REQUEST__BODY_LOGIN && rq->login) {
        secret = rq->login->password;
    } else if (rq->body_case == SAFESHARE__AUTH_REQUEST__BODY_VERIFY && rq->verify) {
        secret = rq->verify->token;
    }
    if (secret) {
        OPENSSL_cleanse (secret, strlen (secret));
    }
}

static void
s_serve_one (zsock_t *router, authd_handler_t *handler, authd_outbox_t *outbox)
{
    cm_call_t call;
    if (cm_call_recv (router, &safeshare__auth_request__descriptor,
                      &safeshare__auth_reply__descriptor, &call) != 0) {
        return; /* malformed: already answered and logged */
    }
    if (cm_call_expired (&call)) {
        cm_debug (call.req_id, "deadline passed before we started: dropped");
        cm_call_release (&call);
        return;
    }
    if (call.blobs && zmsg_size (call.blobs) > 0) {
        /* No auth message carries bulk data. */
        cm_warn (call.req_id, "request with %zu blob frames refused",
                 zmsg_size (call.blobs));
        cm_call_reply_error (router, &call, &safeshare__auth_reply__descriptor,
                             CM_INVALID, "unexpected_blobs",
                             "auth requests carry no blob frames");
        cm_call_release (&call);
        return;
    }
    authd_reply_t out;
    authd_handler_handle (handler, (const Safeshare__AuthRequest *)call.request,
                          call.req_id, &out);
    if (out.mail_queued) {
        authd_outbox_kick (outbox);
    }
    s_wipe_secrets ((Safeshare__AuthRequest *)call.request);
    cm_call_reply (router, &call, &out.reply.base, NULL);
    authd_reply_release (&out);
    cm_call_release (&call);
}

/* sqlite:PATH needs PATH's directory. */
static int
s_db_dir (const char *url)
{
    if (strncmp (url, "sqlite:", 7) != 0) {
        return 0;
    }
    char dir[4096];
    snprintf (dir, sizeof dir, "%s", url + 7);
    return cm_mkdirs (dirname (dir), 0700);
}

int
main (int argc, char **argv)
{
    static const cm_service_info_t info = {
        "auth", "safeshare-auth", "users, e-mail verification and access tokens", NULL};
    int exit_code = 0;
    cm_config_t *config = cm_service_init (&info, &argc, argv, &exit_code);
    if (!config) {
        return exit_code;
    }
    cm_jwt_signer_t *signer = NULL;
    cm_db_t *db = NULL;
    zsock_t *router = NULL;
    authd_outbox_t *outbox = NULL;
    authd_handler_t *handler = NULL;
    zpoller_t *poller = NULL;
    exit_code = 2;

    if (argc > 1) {
        fprintf (stderr, "safeshare-auth: unexpected argument '%s' (try --help)\n",
                 argv[1]);
        goto cleanup;
    }
    char key_path[4096];
    snprintf (key_path, sizeof key_path, "%s/jwt-es256.pem",
              cm_config_get (config, "SAFESHARE_KEY_DIR"));
    if (access (key_path, R_OK) != 0) {
        fprintf (
            stderr,
            "safeshare-auth: no JWT signing key at %s: run `safeshare keys generate`\n",
            key_path);
        goto cleanup;
    }
    signer = cm_jwt_signer_new (key_path, cm_config_get (config, "SAFESHARE_JWT_ISSUER"),
                                cm_config_get (config, "SAFESHARE_JWT_AUDIENCE"));
    if (!signer) {
        fprintf (stderr, "safeshare-auth: cannot use the JWT signing key at %s\n",
                 key_path);
        goto cleanup;
    }
    /* Once, before any request: SAFESHARE_PASSWORD_DENYLIST or the list
       built into the binary. */
    const char *denylist = cm_config_get (config, "SAFESHARE_PASSWORD_DENYLIST");
    if (authd_denylist_load (denylist) != 0) {
        fprintf (stderr,
                 "safeshare-auth: cannot load the password denylist %s "
                 "(SAFESHARE_PASSWORD_DENYLIST; see log)\n",
                 denylist ? denylist : "(built-in)");
        goto cleanup;
    }
    const char *db_url = cm_config_get (config, "SAFESHARE_AUTH_DB");
    if (s_db_dir (db_url) != 0 || !(db = cm_db_open (db_url)) ||
        authd_store_migrate (db) != 0) {
        fprintf (stderr, "safeshare-auth: cannot open the auth database (see log)\n");
        exit_code = 1;
        goto cleanup;
    }

    exit_code = 1;
    router = cm_sock_server (cm_config_get (config, "SAFESHARE_AUTH_ENDPOINT"));
    outbox = authd_outbox_new (db, cm_config_get (config, "SAFESHARE_MAILER_ENDPOINT"),
                               (int)cm_config_int (config, "SAFESHARE_RPC_TIMEOUT_MS"));
    authd_handler_config_t hc = {
        .public_url = cm_config_get (config, "SAFESHARE_PUBLIC_URL"),
        .access_ttl_s = (unsigned)cm_config_int (config, "SAFESHARE_ACCESS_TTL"),
        .verify_ttl_s = (unsigned)cm_config_int (config, "SAFESHARE_VERIFY_TTL"),
    };
    handler = authd_handler_new (db, signer, &hc);
    if (!router || !outbox || !handler) {
        goto cleanup;
    }
    poller = zpoller_new (router, authd_outbox_sock (outbox), NULL);
    if (!poller) {
        goto cleanup;
    }
    cm_info (NULL, "safeshare-auth %s listening on %s", SAFESHARE_VERSION,
             cm_config_get (config, "SAFESHARE_AUTH_ENDPOINT"));

    while (!cm_service_stopping ()) {
        uint64_t now = cm_mono_ms ();
        authd_outbox_tick (outbox, now);
        int wait = authd_outbox_timeout (outbox, cm_mono_ms ());
        void *which = zpoller_wait (poller, wait < S_MAX_WAIT_MS ? wait : S_MAX_WAIT_MS);
        if (which == router) {
            s_serve_one (router, handler, outbox);
        } else if (which == authd_outbox_sock (outbox)) {
            authd_outbox_recv (outbox, cm_mono_ms ());
        }
    }
    /* One request at a time: when the loop ends nothing is in flight.
       Pending mail stays in the outbox for the next start. */
    cm_info (NULL, "stopping");
    exit_code = 0;
cleanup:
    zpoller_destroy (&poller);
    authd_handler_destroy (&handler);
    authd_outbox_destroy (&outbox);
    zsock_destroy (&router);
    cm_db_destroy (&db);
    cm_jwt_signer_destroy (&signer);
    cm_config_destroy (&config);
    return exit_code;
}
