/*  cryptod_keyring -- the key-encryption keys (KEKs) and DEK wrapping.

    The ring is a text file, $SAFESHARE_KEY_DIR/kek.ring, mode 0600
    (docs/format.md): one KEK per line, "<kek_id 16 hex> <key 64 hex>",
    oldest first; the last line is the current KEK (new DEKs are wrapped
    with it); older ones stay to unwrap existing DEKs until retired.
    Lines starting with '#' and empty lines are ignored.
    Or, for containers, the SAFESHARE_KEK_RING setting (a secret): the
    same entries separated by ';' ("<id> <key>;<id> <key>", blanks around
    an entry ignored), the last one current. When it is set the file is
    not read (cryptod_keyring_open). Nothing here ever logs key bytes or
    ring text; log lines name the file path or "SAFESHARE_KEK_RING".

    Wrapped DEK (60 bytes) = nonce (12, random) || AES-256-GCM(KEK,
    nonce, AAD = "safeshare-dek-v1:" || file_id_hex, DEK) (32) || tag (16).

    A loaded ring is read-only: the crypto workers share one across
    threads without locks (add / remove are for a ring only one thread
    holds: the CLI's).                                              */
#ifndef CRYPTOD_KEYRING_H
#define CRYPTOD_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTOD_KEK_LEN         32
#define CRYPTOD_KEK_ID_LEN      16 /* hex chars */
#define CRYPTOD_WRAPPED_DEK_LEN 60
#define CRYPTOD_KEYRING_FILE    "kek.ring"
#define CRYPTOD_KEYRING_ENV     "SAFESHARE_KEK_RING"
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
/* Parses ring text: the file format (env false: lines, '#' comments)
   or the SAFESHARE_KEK_RING format (env true: ';'-separated entries).
   `what` names the source in log lines (a path, "SAFESHARE_KEK_RING").
   NULL (logged) if malformed (upper-case hex too), a duplicate id, or
   no KEK. The caller wipes `text`.                                     */
cryptod_keyring_t *cryptod_keyring_parse (const char *text, size_t len, bool env,
                                          const char *what);

/* THE way in for the broker and the CLI:
     env_ring non-NULL and non-empty (the SAFESHARE_KEK_RING value):
       parsed as the env format; key_dir/kek.ring is not read;
     otherwise: cryptod_keyring_load (key_dir "/" CRYPTOD_KEYRING_FILE).
   NULL (logged, never the env value) on any failure.
   Typical call:
     cryptod_keyring_open (cm_config_get (c, "SAFESHARE_KEY_DIR"),
                           cm_config_get (c, "SAFESHARE_KEK_RING"));      */
cryptod_keyring_t *cryptod_keyring_open (const char *key_dir, const char *env_ring);

/* key_dir "/" CRYPTOD_KEYRING_FILE into out. 0 / -1 (too long, no dir). */
int cryptod_keyring_path (const char *key_dir, char *out, size_t outlen);

/* Rewrites the ring file at `path` without KEK kek_id (atomic: tmp file
   + rename, 0600; comments and the order of the other lines kept).
   Refuses (-1, logged): the current KEK, an id the ring does not hold,
   a ring that does not load. It does not know about DEKs: `safeshare
   keys retire` first checks that no stored DEK uses the KEK.          */
int cryptod_keyring_retire (const char *path, const char *kek_id);

/* In memory (rotate / retire with an env ring, whose new value is
   printed rather than written): add appends a fresh random KEK that
   becomes current (id_out gets its id); remove drops a KEK that is not
   the current one (-1 for the current or an unknown id).               */
int cryptod_keyring_add (cryptod_keyring_t *self, char id_out[17]);
int cryptod_keyring_remove (cryptod_keyring_t *self, const char *kek_id);
/* The ring as a SAFESHARE_KEK_RING value ("<id> <key>;...", NUL-ended).
   A secret: the caller wipes it (cm_secret_free (s, strlen (s) + 1)).
   NULL for an empty ring or out of memory.                             */
char *cryptod_keyring_format_env (const cryptod_keyring_t *self);

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

/* Unwraps with kek_id, wraps again with the current KEK (the DEK exists
   only inside, wiped). Same arguments and refusals as unwrap + wrap:
   *new_len is the capacity of new_wrapped on input. 0 / -1.            */
int cryptod_dek_rewrap (const cryptod_keyring_t *self, const char *kek_id,
                        const char *file_id_hex, const uint8_t *wrapped,
                        size_t wrapped_len, char new_kek_id[17], uint8_t *new_wrapped,
                        size_t *new_len);

#endif
