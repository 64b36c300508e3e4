/*  cli_fsck -- `safeshare fsck [--repair] [--grace SECONDS]`: an offline
    check of storage's data (storage DB, blob dir, KEK ring; no service
    needed). Every committed file: its blob exists with the size the
    layout implies, its DEK unwraps, every chunk authenticates, the
    plaintext size and SHA-256 match the row (cli_decrypt_check; the
    plaintext is never kept). Then orphans: committed-path blobs with no
    row, partial blobs with no row not written to within the grace
    period, and pending uploads older than it whose blob is gone or
    idle. --repair removes the orphans and stale pending uploads (as the
    storage sweep would); a committed file's row and blob are only ever
    reported.                                                           */
#ifndef CLI_FSCK_H
#define CLI_FSCK_H

#include "cm_config.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* One line per problem on `out` (`file ID: ...`, `orphan blob PATH`,
   `stale pending upload ID`), a `removed ...` line per repair, then a
   summary line. Returns the exit status: 0 clean, 1 problems found (or
   a check could not run), 2 configuration error (one line on stderr). */
int cli_fsck (cm_config_t *config, bool repair, uint64_t grace_s, FILE *out);

#endif
