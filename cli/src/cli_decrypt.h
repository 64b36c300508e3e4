/*  cli_decrypt -- `safeshare decrypt --file ID --out PATH`: a stored file
    decrypted offline, for disaster recovery, from the storage DB row
    (kek_id, wrapped DEK, chunk size and count, size, SHA-256), the blob
    (SAFESHARE_BLOB_DIR, stord_disk's layout) and the KEK ring; no
    service needs to run.                                               */
#ifndef CLI_DECRYPT_H
#define CLI_DECRYPT_H

#include "cm_config.h"
#include "cryptod_keyring.h"
#include "stord_backend.h"
#include "stord_meta.h"
#include <stdint.h>
#include <stdio.h>

/* Verifies every chunk (AES-256-GCM, docs/format.md), then the size and
   the SHA-256 against the row, while writing to an unnamed file (or,
   where the file system has none, a hidden temp file) in PATH's
   directory, mode 0600; only a file that checked out is linked in as
   PATH. Refuses an existing PATH (also when one appears meanwhile). On
   any failure, SIGINT/SIGTERM/SIGHUP included, no plaintext is left
   behind. One line on `out` when done. Returns the exit status: 0, or
   1 (one line on stderr).                                              */
int cli_decrypt (cm_config_t *config, const char *file_id, const char *out_path,
                 FILE *out);

/* What cli_decrypt_check found; decrypt and fsck word it themselves. */
typedef enum {
    CLI_CHECK_OK = 0,
    CLI_CHECK_ROW,        /* the row is inconsistent (sizes, counts, sha256) */
    CLI_CHECK_MISSING,    /* no committed blob */
    CLI_CHECK_UNREADABLE, /* the blob cannot be stat'ed or read */
    CLI_CHECK_SIZE,       /* the blob is not the size the layout implies */
    CLI_CHECK_NO_KEK,     /* the row's KEK is not in the ring */
    CLI_CHECK_DEK,        /* the wrapped DEK does not authenticate */
    CLI_CHECK_HEADER,     /* the blob header is damaged or names another file */
    CLI_CHECK_CHUNK,      /* chunk *chunk does not authenticate */
    CLI_CHECK_CONTENT,    /* plaintext size or SHA-256 differs from the row */
    CLI_CHECK_FAILED      /* out of memory, a write failed, interrupted:
                             already said on stderr */
} cli_check_t;

typedef struct {
    uint64_t chunk;  /* CLI_CHECK_CHUNK, CLI_CHECK_UNREADABLE: the chunk */
    uint64_t size;   /* CLI_CHECK_CONTENT: the plaintext's size */
    char sha256[65]; /* CLI_CHECK_CONTENT: and its SHA-256 (hex) */
} cli_check_info_t;

/* Checks committed file *file against its blob: the row's layout, the
   blob's size, the DEK (unwrapped with ring), the header, every chunk
   (authenticated), the plaintext size and SHA-256. When out_fd >= 0
   each chunk's plaintext is written there as it checks out (the caller
   discards it unless CLI_CHECK_OK); else nothing is kept. Plaintext
   buffers are wiped; nothing is printed but CLI_CHECK_FAILED's line.  */
cli_check_t cli_decrypt_check (cryptod_keyring_t *ring, stord_backend_t *blobs,
                               const stord_file_t *file, int out_fd,
                               cli_check_info_t *info);

#endif
