/*  safeshare-gateway -- the REST API in front of the services.
    Thin main: config -> civetweb -> wait for SIGTERM -> stop. The JWT
    keys come from auth on first need, so auth may start later.        */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include "cm_log.h"
#include "cm_service.h"
#include "gw_server.h"
#include "gw_settings.h"

int
main (int argc, char **argv)
{
    static const cm_service_info_t info = {"gateway", "safeshare-gateway",
                                           "the safeshare REST API (HTTP, JSON)", NULL};
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
    cm_info (NULL, "stopping: finishing in-flight requests");
    gw_server_destroy (&server);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    cm_info (NULL, "stopped");
    return 0;
}
