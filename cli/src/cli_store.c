/*  cli_store -- offline access to storage's DB and blobs.               */
#include "cli_store.h"
#include "stord_disk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

stord_meta_t *
cli_store_meta (cm_config_t *config, const char *cmd)
{
    const char *url = cm_config_get (config, "SAFESHARE_STORAGE_DB");
    if (!url) {
        fprintf (stderr, "safeshare: %s: SAFESHARE_STORAGE_DB is not set\n", cmd);
        return NULL;
    }
    if (strncmp (url, "sqlite:", 7) == 0) {
        struct stat st;
        if (stat (url + 7, &st) != 0 || !S_ISREG (st.st_mode)) {
            fprintf (stderr,
                     "safeshare: %s: no storage database at %s (SAFESHARE_STORAGE_DB); "
                     "check the setting, or start the stack once\n",
                     cmd, url + 7);
            return NULL;
        }
    }
    stord_meta_t *meta = stord_meta_new (url);
    if (!meta) {
        /* The log line above names host/port/db, never a password.     */
        fprintf (stderr, "safeshare: %s: cannot open the storage database\n", cmd);
    }
    return meta;
}

stord_backend_t *
cli_store_blobs (cm_config_t *config, const char *cmd)
{
    const char *backend = cm_config_get (config, "SAFESHARE_STORAGE_BACKEND");
    const char *dir = cm_config_get (config, "SAFESHARE_BLOB_DIR");
    if (!backend || strcmp (backend, "disk") != 0) {
        fprintf (stderr, "safeshare: %s: storage backend %s is not supported offline\n",
                 cmd, backend ? backend : "(unset)");
        return NULL;
    }
    struct stat st;
    int rc = dir ? stat (dir, &st) : -1;
    if (rc != 0 || !S_ISDIR (st.st_mode)) {
        fprintf (stderr,
                 "safeshare: %s: no blob directory at %s (SAFESHARE_BLOB_DIR): %s\n", cmd,
                 dir ? dir : "(unset)",
                 !dir      ? "not set"
                 : rc != 0 ? strerror (errno)
                           : "not a directory");
        return NULL;
    }
    stord_backend_t *blobs = stord_disk_new (dir);
    if (!blobs) {
        fprintf (stderr, "safeshare: %s: cannot open the blob directory %s\n", cmd, dir);
    }
    return blobs;
}
