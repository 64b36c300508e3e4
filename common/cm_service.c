/*  cm_service -- the shared part of every binary's main.                */
#include "cm_service.h"
#include "cm_curve.h"
#include "cm_log.h"

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_signals = 0;

/* czmq's own handler sets zsys_interrupted; ours wraps it so that a second
   signal exits at once instead of waiting for the deadline.            */
static void
s_on_signal (int sig)
{
    if (++s_signals > 1) {
        _exit (128 + sig);
    }
    zsys_interrupted = 1;
}

bool
cm_service_stopping (void)
{
    return zsys_interrupted != 0;
}

static void
s_usage (const cm_service_info_t *info, FILE *out)
{
    fprintf (out,
             "%s -- %s\n\n"
             "usage: %s [--config FILE] [--help] [--version]\n\n"
             "Configuration: compiled defaults, then FILE (lines SAFESHARE_KEY=value),\n"
             "then SAFESHARE_* environment variables, which win. See "
             "docs/configuration.md.\n",
             info->binary, info->summary, info->binary);
    if (info->usage) {
        fprintf (out, "\n%s\n", info->usage);
    }
}

cm_config_t *
cm_service_init (const cm_service_info_t *info, int *argc, char **argv, int *exit_code)
{
    const char *file = NULL;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
            s_usage (info, stdout);
            *exit_code = 0;
            return NULL;
        }
        if (strcmp (argv[i], "--version") == 0) {
            printf ("%s %s\n", info->binary, SAFESHARE_VERSION);
            *exit_code = 0;
            return NULL;
        }
        if (strcmp (argv[i], "--config") == 0) {
            if (i + 1 >= *argc) {
                fprintf (stderr, "%s: --config needs a FILE\n", info->binary);
                *exit_code = 2;
                return NULL;
            }
            file = argv[++i];
            continue;
        }
        if (strncmp (argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;

    char err[512] = "";
    cm_config_t *config = cm_config_load (file, err, sizeof err);
    if (!config) {
        fprintf (stderr, "%s: bad configuration: %s\n", info->binary, err);
        *exit_code = 2;
        return NULL;
    }
    cm_log_init (info->name, (cm_log_level_t)cm_log_level_parse (
                                 cm_config_get (config, "SAFESHARE_LOG_LEVEL")));

    /* czmq must not install its handler over ours: it would reset on the
       first zsock_new and a second Ctrl-C would not exit at once.       */
    zsys_handler_set (NULL);
    /* czmq sets itself up on the first zsock_new otherwise. zsys_init
       (czmq 4.2) marks itself done, then sets the thread name prefix,
       which asserts that no socket exists yet: a second thread making
       its first socket meanwhile (civetweb workers, crypto workers)
       sees "done", and the first aborts the process. Set up here,
       before any thread.                                               */
    if (zsys_init () == NULL) {
        fprintf (stderr, "%s: zsys_init() failed\n", info->binary);
        cm_config_destroy (&config);
        *exit_code = 2;
        return NULL;
    }
    /* CURVE: a bad key file is a configuration error like any other.
       zauth is stopped at exit (after main returns, before czmq's own
       atexit handler, registered earlier by zsys_init, runs).          */
    if (cm_curve_load (config, err, sizeof err) != 0 ||
        cm_curve_require (info->serves, info->calls, err, sizeof err) != 0 ||
        (info->serves && cm_curve_serve (err, sizeof err) != 0)) {
        fprintf (stderr, "%s: bad configuration: %s\n", info->binary, err);
        cm_curve_shutdown ();
        cm_config_destroy (&config);
        *exit_code = 2;
        return NULL;
    }
    atexit (cm_curve_shutdown);
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
    *exit_code = 0;
    return config;
}
