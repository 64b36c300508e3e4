/*  cli_decrypt -- `safeshare decrypt --file ID --out PATH`: a stored file
    decrypted offline, for disaster recovery, from the storage DB row
    (kek_id, wrapped DEK, chunk size and count, size, SHA-256), the blob
    (SAFESHARE_BLOB_DIR, stord_disk's layout) and the KEK ring; no
    service needs to run.                                               */
#ifndef CLI_DECRYPT_H
#define CLI_DECRYPT_H

#include "cm_config.h"
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

#endif
