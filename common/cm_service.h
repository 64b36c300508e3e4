/*  cm_service -- what every binary's thin main shares: --help, --version,
    --config FILE, config load + validation, log set-up, signal handling.

    Signals: czmq's handler sets zsys_interrupted on SIGINT/SIGTERM; the
    service finishes in-flight work within its deadline and exits 0. A
    second signal exits at once (cm_service_init installs that).        */
#ifndef CM_SERVICE_H
#define CM_SERVICE_H

#include "cm_config.h"
#include <stdbool.h>

typedef struct {
    const char *name;    /* "auth" */
    const char *binary;  /* "safeshare-auth" */
    const char *summary; /* one line for --help */
    const char *usage;   /* extra --help text (options/commands), may be NULL */
    /* CURVE (cm_curve), when SAFESHARE_CURVE_SECRET_KEY is set: a process
       that serves gets zauth started before any bind; `calls` names the
       services it calls ("auth mailer"), whose keys must be present. */
    bool serves;
    const char *calls;
} cm_service_info_t;

/* Parses --help / --version / --config FILE from argv (removing them;
   other arguments stay in argv/argc for the caller), loads and validates
   the config, initialises logging with SAFESHARE_LOG_LEVEL, loads the
   CURVE settings (cm_curve_load, cm_curve_require; zauth started when
   info->serves; stopped at exit).
   Returns the config, or NULL with *exit_code set (0 after --help or
   --version, 2 on bad usage/config).                                  */
cm_config_t *cm_service_init (const cm_service_info_t *info, int *argc, char **argv,
                              int *exit_code);

/* True once SIGINT/SIGTERM arrived. */
bool cm_service_stopping (void);

#endif
