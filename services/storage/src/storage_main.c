/*  safeshare-storage -- file metadata, share links and ciphertext blobs.
    Thin main: config, backend + DB, start-up sweep, then one ROUTER loop. */
#include "cm_config.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_service.h"
#include "cm_util.h"
#include "storage.pb-c.h"
#include "stord_backend.h"
#include "stord_service.h"
#include "stord_sweep.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The sweep runs at start and then this often.                         */
#define S_SWEEP_EVERY_MS (STORD_SWEEP_AGE_S * 1000ULL)
/* Longest poll: how late a SIGTERM that raced the poll is noticed. */
#define S_POLL_MAX_MS 500

static const cm_service_info_t s_info = {
    .name = "storage",
    .binary = "safeshare-storage",
    .summary = "file metadata, share links and encrypted blobs (ZeroMQ service)",
    .usage = "Keys: SAFESHARE_STORAGE_ENDPOINT, SAFESHARE_STORAGE_DB,\n"
             "SAFESHARE_STORAGE_BACKEND (disk | s3), SAFESHARE_BLOB_DIR, SAFESHARE_S3_*\n"
             "(docs/storage.md), SAFESHARE_STORAGE_INSTANCE, SAFESHARE_LINK_MAX_TTL.",
    .serves = true,
};

int
main (int argc, char **argv)
{
    int exit_code = 0;
    cm_config_t *config = cm_service_init (&s_info, &argc, argv, &exit_code);
    if (!config) {
        return exit_code;
    }
    stord_service_t *service = NULL;
    zsock_t *router = NULL;
    zpoller_t *poller = NULL;
    exit_code = 2;

    const char *backend_name = cm_config_get (config, "SAFESHARE_STORAGE_BACKEND");
    char err[512];
    stord_backend_t *backend = stord_backend_open (config, true, err, sizeof err);
    if (!backend) {
        fprintf (stderr, "safeshare-storage: %s\n", err);
        goto cleanup;
    }
    stord_meta_t *meta = stord_meta_new (cm_config_get (config, "SAFESHARE_STORAGE_DB"));
    if (!meta) {
        stord_backend_destroy (&backend);
        fprintf (stderr, "safeshare-storage: cannot open SAFESHARE_STORAGE_DB\n");
        goto cleanup;
    }
    /* Borrowed after the service takes it, to pass each deadline on. */
    stord_backend_t *blobs = backend;
    long ttl = cm_config_int (config, "SAFESHARE_LINK_MAX_TTL");
    service = stord_service_new (&meta, &backend, ttl > 0 ? (uint64_t)ttl : 1);
    if (!service) {
        stord_meta_destroy (&meta);
        stord_backend_destroy (&backend);
        goto cleanup;
    }
    /* The instance name ties pending uploads to this process: what it
       had pending before this start died with it (stord_sweep.h).     */
    char host[STORD_INSTANCE_MAX + 1] = "";
    const char *instance = cm_config_get (config, "SAFESHARE_STORAGE_INSTANCE");
    if (!instance || !*instance) {
        if (gethostname (host, sizeof host - 1) != 0 || !cm_is_request_id (host)) {
            strcpy (host, "storage");
        }
        instance = host;
    }
    if (stord_service_set_instance (service, instance) != 0) {
        fprintf (stderr, "safeshare-storage: SAFESHARE_STORAGE_INSTANCE must be 1..64 of "
                         "[A-Za-z0-9._-]\n");
        goto cleanup;
    }
    if (stord_service_sweep (service, cm_now_s (), STORD_SWEEP_AGE_S, true) != 0) {
        cm_warn (NULL, "start-up sweep incomplete; will retry later");
    }
    const char *endpoint = cm_config_get (config, "SAFESHARE_STORAGE_ENDPOINT");
    /* A failed bind or CURVE self-check is a start failure (1), like in
       the other services, not a configuration error.                   */
    exit_code = 1;
    router = endpoint ? cm_sock_server (endpoint) : NULL;
    if (!router) {
        fprintf (stderr, "safeshare-storage: cannot bind %s\n", endpoint ? endpoint : "");
        goto cleanup;
    }
    poller = zpoller_new (router, NULL);
    if (!poller) {
        goto cleanup;
    }
    cm_info (NULL, "storage %s listening on %s (backend %s, instance %s)",
             SAFESHARE_VERSION, endpoint, backend_name, instance);

    uint64_t next_sweep = cm_mono_ms () + S_SWEEP_EVERY_MS;
    while (!cm_service_stopping ()) {
        uint64_t now = cm_mono_ms ();
        if (now >= next_sweep) {
            stord_service_sweep (service, cm_now_s (), STORD_SWEEP_AGE_S, false);
            next_sweep = now + S_SWEEP_EVERY_MS;
            continue;
        }
        uint64_t wait = next_sweep - now;
        /* At most S_POLL_MAX_MS: a SIGTERM that lands between the
           stopping check and the poll (while a request is answered)
           interrupts nothing, so the loop must come round to see it.  */
        void *which =
            zpoller_wait (poller, wait > S_POLL_MAX_MS ? S_POLL_MAX_MS : (int)wait);
        if (!which) {
            if (zpoller_terminated (poller) && cm_service_stopping ()) {
                break;
            }
            continue;
        }
        cm_call_t call;
        if (cm_call_recv (router, &safeshare__storage_request__descriptor,
                          &safeshare__storage_reply__descriptor, &call) != 0) {
            continue; /* malformed: already answered and logged */
        }
        if (cm_call_expired (&call)) {
            cm_debug (call.req_id, "deadline passed; request dropped");
        } else {
            stord_backend_set_deadline (blobs, call.deadline_ms);
            stord_service_handle (service, router, &call);
            stord_backend_set_deadline (blobs, 0);
        }
        cm_call_release (&call);
    }
    cm_info (NULL, "storage stopping");
    exit_code = 0;
cleanup:
    zpoller_destroy (&poller);
    zsock_destroy (&router);
    stord_service_destroy (&service);
    cm_config_destroy (&config);
    return exit_code;
}
