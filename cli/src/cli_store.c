/*  cli_store -- offline access to storage's DB and blobs.               */
#include "cli_store.h"

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
    char err[512];
    /* Never creates a blob dir: a wrong setting must not look empty.   */
    stord_backend_t *blobs = stord_backend_open (config, false, err, sizeof err);
    if (!blobs) {
        fprintf (stderr, "safeshare: %s: %s\n", cmd, err);
    }
    return blobs;
}
