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

/* `keys rotate-jwt`: replaces the JWT pair (jwt-es256.pem / .pub, each
   written atomically by cm_jwt_keygen) with a new one and prints the
   old and the new kid. Auth notices the new private key within 5 s (or
   at its next start) and keeps publishing the old public key for the
   grace period, so tokens already issued stay valid until they expire.
   Refused (nothing written) without an existing, readable pair or with
   a key dir others can read: `keys generate` makes the first pair.
   0 / -1 (one line on stderr).                                         */
int cli_keys_rotate_jwt (cm_config_t *config, FILE *out);

#endif
