/*  cryptod_keyring -- the key-encryption keys (KEKs) and DEK wrapping.

    The ring is a text file, $SAFESHARE_KEY_DIR/kek.ring, mode 0600
    (docs/format.md): one KEK per line, "<kek_id 16 hex> <key 64 hex>",
    oldest first; the last line is the current KEK (new DEKs are wrapped
    with it); older ones stay to unwrap existing DEKs until retired.
    Lines starting with '#' and empty lines are ignored.

    Wrapped DEK (60 bytes) = nonce (12, random) || AES-256-GCM(KEK,
    nonce, AAD = "safeshare-dek-v1:" || file_id_hex, DEK) (32) || tag (16).

    A loaded ring is read-only: the crypto workers share one across
    threads without locks.                                              */
#ifndef CRYPTOD_KEYRING_H
#define CRYPTOD_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTOD_KEK_LEN         32
#define CRYPTOD_KEK_ID_LEN      16 /* hex chars */
#define CRYPTOD_WRAPPED_DEK_LEN 60
#define CRYPTOD_KEYRING_FILE    "kek.ring"
/* A ring larger than this is refused (about 12000 KEKs). */
#define CRYPTOD_KEYRING_MAX (1024 * 1024)

typedef struct cryptod_keyring_t cryptod_keyring_t;

/* Creates the ring at `path` with one KEK, or appends a new KEK to an
   existing ring, which makes it current. Atomic (tmp file + rename),
   mode 0600. The directory must exist. id_out gets the new KEK id.
   Refuses (-1, logged) an existing ring that is unreadable, malformed
   or readable by group/other.                                         */
int cryptod_keyring_generate (const char *path, char id_out[17]);

/* Loads the ring. NULL (logged) if missing, not a regular file, group-
   or other-accessible, malformed, or empty.                           */
cryptod_keyring_t *cryptod_keyring_load (const char *path);
/* Wipes every key, frees, nulls *self_p. NULL-safe. */
void cryptod_keyring_destroy (cryptod_keyring_t **self_p);

/* Id of the current KEK (borrowed). */
const char *cryptod_keyring_current (const cryptod_keyring_t *self);
/* Number of KEKs, and the id of the i-th (oldest first; NULL if out of range). */
size_t cryptod_keyring_size (const cryptod_keyring_t *self);
const char *cryptod_keyring_id (const cryptod_keyring_t *self, size_t i);
/* True if the ring holds a KEK with this id. */
bool cryptod_keyring_has (const cryptod_keyring_t *self, const char *kek_id);

/* Wraps dek for file_id_hex (32 hex) with the current KEK. On input
   *wrapped_len is the capacity of `wrapped` (>= 60); on success it is
   set to 60 and kek_id_out to the KEK id. 0 / -1.                     */
int cryptod_dek_wrap (const cryptod_keyring_t *self, const char *file_id_hex,
                      const uint8_t dek[32], char kek_id_out[17], uint8_t *wrapped,
                      size_t *wrapped_len);

/* Unwraps a DEK wrapped for file_id_hex by KEK kek_id. -1 if the KEK is
   unknown, the length is not 60, or authentication fails (tampered
   bytes, other file id); then dek holds nothing.                      */
int cryptod_dek_unwrap (const cryptod_keyring_t *self, const char *kek_id,
                        const char *file_id_hex, const uint8_t *wrapped,
                        size_t wrapped_len, uint8_t dek[32]);

#endif
