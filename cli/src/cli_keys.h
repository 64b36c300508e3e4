/*  cli_keys -- the local key material under SAFESHARE_KEY_DIR: the KEK
    ring (kek.ring, through cryptod_keyring) and the JWT signing pair
    (jwt-es256.pem / jwt-es256.pub, through cm_jwt).                     */
#ifndef CLI_KEYS_H
#define CLI_KEYS_H

#include "cm_config.h"
#include "cryptod_keyring.h"
#include <stdbool.h>
#include <stdio.h>

/* Creates the key dir (0700) if missing; adds a new current KEK when
   new_kek is true or when there is no ring yet; makes the JWT pair when
   neither half exists (a lone half is an error: replacing it would
   silently invalidate every session). Reports each step on `out`, never
   key bytes -- except with SAFESHARE_KEK_RING set: then no kek.ring is
   made, and new_kek prints the new SAFESHARE_KEK_RING value (the ring
   plus a new current KEK) for the operator to set. 0 / -1 (one line on
   stderr).                                                             */
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

/* The ring the services use: SAFESHARE_KEK_RING when set (*from_env
   true), else $SAFESHARE_KEY_DIR/kek.ring. NULL with one line on
   stderr naming cmd.                                                   */
cryptod_keyring_t *cli_keys_ring (cm_config_t *config, const char *cmd, bool *from_env);

/* `keys list`: each KEK of the ring (oldest first), whether it is
   current, and how many stored DEKs (committed and pending rows) it
   wraps; DEKs under a KEK missing from the ring are listed too and
   make it exit 1. Returns the exit status (0 / 1).                     */
int cli_keys_list (cm_config_t *config, FILE *out);

/* `keys rotate [--resume]`: without resume, appends a new current KEK
   (to kek.ring; with an env ring, in memory, printing the new
   SAFESHARE_KEK_RING value before anything else); then rewraps every
   stored DEK not under the current KEK, `batch` rows at a time with
   pause_ms between batches, each row one conditional UPDATE, so an
   interruption (SIGINT/SIGTERM: stops between rows; or kill -9) leaves
   every row old or new; `--resume` finishes. Progress on `out`. Exit
   status 0 when every DEK is under the current KEK, else 1.            */
int cli_keys_rotate (cm_config_t *config, bool resume, unsigned batch, unsigned pause_ms,
                     FILE *out);

/* `keys retire ID`: refuses (1) the current KEK, an id not in the ring,
   a KEK that still wraps a stored DEK (the count is printed) and, while
   uploads that began before the ring last changed are still pending,
   any KEK. Then rewrites kek.ring without it (an env ring: prints the
   new SAFESHARE_KEK_RING value). Exit status 0 / 1.                    */
int cli_keys_retire (cm_config_t *config, const char *kek_id, FILE *out);

/* `keys service-gen NAME [--dir DIR] [--force]`: a new CurveZMQ key pair
   for service NAME (cm_curve_name_valid) in czmq's zcert text format:
   DIR/NAME.key (public, 0644) and DIR/NAME.key_secret (both keys, 0600),
   each written atomically; DIR (default $SAFESHARE_KEY_DIR/curve) is
   made 0700 if missing. Refuses when either file exists unless force.
   Prints the public key (Z85, 40 characters) on `out`. Exit status
   0 / 1 (one line on stderr).                                          */
int cli_keys_service_gen (cm_config_t *config, const char *name, const char *dir,
                          bool force, FILE *out);

#endif
