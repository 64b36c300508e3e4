/*  safeshare-gateway -- the REST API in front of the services.
    Thin main: config -> civetweb -> wait for SIGTERM -> drain -> stop.
    The JWT keys come from auth on first need, so auth may start later.
    The drain: new requests get 503 shutting_down, the ones in flight
    run to their end for up to SAFESHARE_SHUTDOWN_GRACE_MS; a second
    SIGTERM/SIGINT ends the process at once (cm_service's handler).    */
#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include "cm_log.h"
#include "cm_service.h"
#include "cm_util.h"
#include "gw_server.h"
#include "gw_settings.h"

int
main (int argc, char **argv)
{
    static const cm_service_info_t info = {"gateway", "safeshare-gateway",
                                           "the safeshare REST API (HTTP, JSON)", NULL,
                                           .calls = "auth crypto storage mailer"};
    int exit_code = 0;
    cm_config_t *config = cm_service_init (&info, &argc, argv, &exit_code);
    if (config == NULL) {
        return exit_code;
    }
    if (argc > 1) {
        fprintf (stderr, "safeshare-gateway: unexpected argument '%s' (see --help)\n",
                 argv[1]);
        cm_config_destroy (&config);
        return 2;
    }
    char err[1024] = "";
    gw_settings_t settings;
    if (gw_settings_load (&settings, config, err, sizeof err) != 0) {
        fprintf (stderr, "safeshare-gateway: bad configuration: %s\n", err);
        cm_config_destroy (&config);
        return 2;
    }
    cm_config_destroy (&config);

    /* Block the stop signals before civetweb's threads exist, so they
       inherit the mask and only sigsuspend below ever takes them.      */
    sigset_t stop, old;
    sigemptyset (&stop);
    sigaddset (&stop, SIGTERM);
    sigaddset (&stop, SIGINT);
    pthread_sigmask (SIG_BLOCK, &stop, &old);

    gw_server_t *server = gw_server_new (&settings, err, sizeof err);
    if (server == NULL) {
        fprintf (stderr, "safeshare-gateway: %s\n", err);
        return 2;
    }
    cm_info (NULL, "listening on http://%s (port %d, %d threads)", settings.http_addr,
             gw_server_port (server), settings.http_threads);
    while (!cm_service_stopping ()) {
        sigsuspend (&old);
    }
    uint64_t deadline = cm_mono_ms () + settings.shutdown_grace_ms;
    int in_flight = gw_server_drain_begin (server);
    cm_info (NULL, "stopping: draining in_flight=%d grace_ms=%u", in_flight,
             settings.shutdown_grace_ms);
    /* Only this thread takes the stop signals: a second one now runs
       cm_service's handler here, which exits at once.                 */
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    int cut = gw_server_drain_wait (server, deadline);
    if (cut == 0) {
        cm_info (NULL, "drained: no request in flight");
    } else {
        cm_warn (NULL, "grace expired: cutting in_flight=%d", cut);
    }
    gw_server_destroy (&server);
    cm_info (NULL, "stopped");
    return 0;
}
