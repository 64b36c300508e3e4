/*  cli_keys -- the local key material under SAFESHARE_KEY_DIR: the KEK
    ring (kek.ring, through cryptod_keyring) and the JWT signing pair
    (jwt-es256.pem / jwt-es256.pub, through cm_jwt).                     */
#ifndef CLI_KEYS_H
#define CLI_KEYS_H

#include "cm_config.h"
#include <stdbool.h>
#include <stdio.h>

/* Creates the key dir (0700) if missing; adds a new current KEK when
   new_kek is true or when there is no ring yet; makes the JWT pair when
   neither half exists (a lone half is an error: replacing it would
   silently invalidate every session). Reports each step on `out`, never
   key bytes. 0 / -1 (one line on stderr).                              */
int cli_keys_prepare (cm_config_t *config, bool new_kek, FILE *out);

#endif
