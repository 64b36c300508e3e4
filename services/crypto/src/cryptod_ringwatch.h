/*  cryptod_ringwatch -- the broker's KEK ring, reloaded when its file
    changes (proto/crypto.md, "KEK ring reload").

    From a file ($SAFESHARE_KEY_DIR/kek.ring): the file is stat'ed at
    most every `min_interval_ms` a caller asks for (the broker: every
    2 s, and at most once a second on a kek_not_found); a changed file
    (inode, size, mtime or ctime) is loaded and swapped in; a file that
    does not load is logged and the ring in use kept (it is tried again
    when it changes again). From SAFESHARE_KEK_RING: never reloaded.

    Not thread-safe: one thread (the broker's) owns it. A ring returned
    by cryptod_ringwatch_ring is valid until the next check.            */
#ifndef CRYPTOD_RINGWATCH_H
#define CRYPTOD_RINGWATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "cryptod_keyring.h"

typedef struct cryptod_ringwatch_t cryptod_ringwatch_t;

/* As cryptod_keyring_open (key_dir, env_ring): env_ring set and not
   empty -> that ring, fixed; else key_dir/kek.ring, watched. NULL
   (logged, never the env value) if the ring does not load.            */
cryptod_ringwatch_t *cryptod_ringwatch_new (const char *key_dir, const char *env_ring);
void cryptod_ringwatch_destroy (cryptod_ringwatch_t **self_p);

/* The ring in use (borrowed).                                         */
const cryptod_keyring_t *cryptod_ringwatch_ring (cryptod_ringwatch_t *self);
/* The watched file, or NULL for an env ring.                          */
const char *cryptod_ringwatch_path (cryptod_ringwatch_t *self);

/* Stats the file unless that was done less than min_interval_ms ago;
   reloads it when it changed. 1 = a new ring is in use, 0 = nothing
   changed (or not time yet, or an env ring), -1 = the changed file did
   not load (logged; the old ring stays).                              */
int cryptod_ringwatch_check (cryptod_ringwatch_t *self, uint64_t min_interval_ms);

#endif
