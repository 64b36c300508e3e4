/*  cli_health -- `safeshare health SERVICE`: is one service of this host
    up and answering? Made for container healthchecks: quiet when healthy,
    one line on stderr naming the service, the endpoint and why when not.

      gateway        GET /healthz on SAFESHARE_HTTP_ADDR answers 200
      auth, crypto,  the service's HEALTH request on its
      storage,       SAFESHARE_<SVC>_ENDPOINT answers OK (a CURVE client
      mailer         when SAFESHARE_CURVE_SECRET_KEY is set, by cm_msg)
      crypto-worker  the broker (SAFESHARE_CRYPTO_ENDPOINT) lists a remote
                     worker named "<this host name>:..." in its pool   */
#ifndef CLI_HEALTH_H
#define CLI_HEALTH_H

#include "cm_config.h"

#include <stdio.h>

/* `health --timeout-ms N`: the wait for the answer. */
#define CLI_HEALTH_TIMEOUT_DEFAULT 3000
#define CLI_HEALTH_TIMEOUT_MAX     600000

/* True for gateway, auth, crypto, storage, mailer and crypto-worker.  */
int cli_health_service_valid (const char *service);

/* Checks `service` (cli_health_service_valid) with the endpoints of
   config, waiting at most about timeout_ms. 0 healthy (nothing printed),
   1 not (one line on err).                                            */
int cli_health (cm_config_t *config, const char *service, int timeout_ms, FILE *err);

#endif
