/*  safeshare-auth -- users, e-mail verification and access tokens.
    Thin main: config, key, database, sockets, then one loop that serves
    the ROUTER and relays the mail outbox.                               */
#include "authd_handler.h"
#include "authd_outbox.h"
#include "authd_policy.h"
#include "authd_sessions.h"
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
#include <sys/stat.h>
#include <unistd.h>

/* Upper bound on one poll, so a missed wake-up costs at most this. */
#define S_MAX_WAIT_MS 1000
/* How often the signing key file is checked for a replacement. */
#define S_KEY_CHECK_MS 5000

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
    } else if (rq->body_case == SAFESHARE__AUTH_REQUEST__BODY_REFRESH && rq->refresh) {
        secret = rq->refresh->refresh;
    } else if (rq->body_case == SAFESHARE__AUTH_REQUEST__BODY_LOGOUT && rq->logout) {
        secret = rq->logout->refresh;
    } else if (rq->body_case == SAFESHARE__AUTH_REQUEST__BODY_USER_CREATE &&
               rq->user_create) {
        secret = rq->user_create->password;
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

/* ---- the signing key: loaded at start, reloaded when the file changes */

typedef struct {
    char path[4096];
    const char *issuer;
    const char *audience;
    cm_jwt_signer_t *signer; /* the one the handler signs with */
    struct stat seen;        /* the file as last loaded (or refused) */
    uint64_t next_check_ms;
} s_key_t;

static bool
s_same_file (const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Start: the key must load and be recorded in jwt_keys. 0 / -1. */
static int
s_key_load (s_key_t *key, cm_db_t *db)
{
    if (stat (key->path, &key->seen) != 0) {
        return -1;
    }
    key->signer = cm_jwt_signer_new (key->path, key->issuer, key->audience);
    if (!key->signer) {
        return -1;
    }
    authd_origin_t o = {"", "", ""};
    if (authd_keys_sync (db, &o, cm_jwt_signer_kid (key->signer),
                         cm_jwt_signer_public_pem (key->signer), cm_now_s ()) != 0) {
        return -1;
    }
    cm_info (NULL, "JWT signing key kid=%s", cm_jwt_signer_kid (key->signer));
    return 0;
}

/* Every S_KEY_CHECK_MS: a replaced key file (inode, size or mtime) is
   loaded and recorded, then signed with. A file that does not load, or
   a key the DB could not record, leaves the old signer in place (the
   latter is tried again at the next check). Never exits.             */
static void
s_key_tick (s_key_t *key, cm_db_t *db, authd_handler_t *handler)
{
    uint64_t now = cm_mono_ms ();
    if (now < key->next_check_ms) {
        return;
    }
    key->next_check_ms = now + S_KEY_CHECK_MS;
    struct stat st;
    if (stat (key->path, &st) != 0) {
        if (key->seen.st_ino != 0) {
            cm_error (NULL, "stat(%s) failed: still signing with kid=%s", key->path,
                      cm_jwt_signer_kid (key->signer));
            memset (&key->seen, 0, sizeof key->seen);
        }
        return;
    }
    if (s_same_file (&st, &key->seen)) {
        return;
    }
    cm_jwt_signer_t *fresh = cm_jwt_signer_new (key->path, key->issuer, key->audience);
    if (!fresh) {
        cm_error (NULL, "cm_jwt_signer_new(%s) failed: still signing with kid=%s",
                  key->path, cm_jwt_signer_kid (key->signer));
        key->seen = st; /* tried again once the file changes again */
        return;
    }
    if (strcmp (cm_jwt_signer_kid (fresh), cm_jwt_signer_kid (key->signer)) == 0) {
        cm_jwt_signer_destroy (&fresh); /* same key, rewritten */
        key->seen = st;
        return;
    }
    authd_origin_t o = {"", "", ""};
    if (authd_keys_sync (db, &o, cm_jwt_signer_kid (fresh),
                         cm_jwt_signer_public_pem (fresh), cm_now_s ()) != 0) {
        cm_error (NULL, "authd_keys_sync() failed for kid=%s: still signing with kid=%s",
                  cm_jwt_signer_kid (fresh), cm_jwt_signer_kid (key->signer));
        cm_jwt_signer_destroy (&fresh);
        return;
    }
    cm_info (NULL, "JWT signing key replaced: kid=%s -> kid=%s",
             cm_jwt_signer_kid (key->signer), cm_jwt_signer_kid (fresh));
    authd_handler_set_signer (handler, fresh);
    cm_jwt_signer_destroy (&key->signer);
    key->signer = fresh;
    key->seen = st;
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
        .name = "auth",
        .binary = "safeshare-auth",
        .summary = "users, e-mail verification and access tokens",
        .serves = true,
        .calls = "mailer",
    };
    int exit_code = 0;
    cm_config_t *config = cm_service_init (&info, &argc, argv, &exit_code);
    if (!config) {
        return exit_code;
    }
    s_key_t key = {.signer = NULL};
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
    snprintf (key.path, sizeof key.path, "%s/jwt-es256.pem",
              cm_config_get (config, "SAFESHARE_KEY_DIR"));
    key.issuer = cm_config_get (config, "SAFESHARE_JWT_ISSUER");
    key.audience = cm_config_get (config, "SAFESHARE_JWT_AUDIENCE");
    if (access (key.path, R_OK) != 0) {
        fprintf (
            stderr,
            "safeshare-auth: no JWT signing key at %s: run `safeshare keys generate`\n",
            key.path);
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
    if (s_key_load (&key, db) != 0) {
        fprintf (stderr,
                 "safeshare-auth: cannot use the JWT signing key at %s (see log)\n",
                 key.path);
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
        .refresh_ttl_s = (unsigned)cm_config_int (config, "SAFESHARE_REFRESH_TTL"),
        .session_ttl_s = (unsigned)cm_config_int (config, "SAFESHARE_SESSION_TTL"),
    };
    handler = authd_handler_new (db, key.signer, &hc);
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
        s_key_tick (&key, db, handler);
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
    cm_jwt_signer_destroy (&key.signer);
    cm_config_destroy (&config);
    return exit_code;
}
