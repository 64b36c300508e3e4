/*  cli_store -- the CLI's offline way into storage's data: the metadata
    DB (SAFESHARE_STORAGE_DB, through stord_meta) and the blobs
    (SAFESHARE_STORAGE_BACKEND: the blob dir or the S3 bucket). Used by
    `keys list|rotate|retire` and `decrypt`, which run with or without
    the services up.                                                    */
#ifndef CLI_STORE_H
#define CLI_STORE_H

#include "cm_config.h"
#include "stord_backend.h"
#include "stord_meta.h"

/* Opens the storage DB (migrations included). A SQLite file that does
   not exist is refused rather than created: a wrong SAFESHARE_STORAGE_DB
   must not look like "no files". NULL with one line on stderr naming
   `cmd`.                                                               */
stord_meta_t *cli_store_meta (cm_config_t *config, const char *cmd);

/* The blob backend of SAFESHARE_STORAGE_BACKEND (stord_backend_open):
   disk on an existing SAFESHARE_BLOB_DIR (never created here), or the
   S3 bucket of SAFESHARE_S3_*. NULL with one line on stderr.           */
stord_backend_t *cli_store_blobs (cm_config_t *config, const char *cmd);

#endif
