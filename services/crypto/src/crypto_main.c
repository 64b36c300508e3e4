/*  safeshare-crypto -- the crypto service: broker + local worker threads.
    Holds the KEK ring; no database. See proto/crypto.md.               */
#include <stdio.h>
#include <sys/stat.h>

#include "cm_config.h"
#include "cm_log.h"
#include "cm_service.h"
#include "cryptod_broker.h"
#include "cryptod_keyring.h"

int
main (int argc, char **argv)
{
    const cm_service_info_t info = {
        .name = "crypto",
        .binary = "safeshare-crypto",
        .summary = "encrypts and decrypts file chunks; holds the key-encryption keys",
        .usage = "Reads the KEK ring $SAFESHARE_KEY_DIR/kek.ring (create it with\n"
                 "`safeshare keys generate`); listens on SAFESHARE_CRYPTO_ENDPOINT with\n"
                 "SAFESHARE_CRYPTO_WORKERS worker threads.",
    };
    int exit_code = 0;
    cm_config_t *config = cm_service_init (&info, &argc, argv, &exit_code);
    if (!config) {
        return exit_code;
    }
    int rc = 1;
    cryptod_keyring_t *keyring = NULL;
    cryptod_broker_t *broker = NULL;
    char ring_path[4096];
    const char *key_dir = cm_config_get (config, "SAFESHARE_KEY_DIR");
    snprintf (ring_path, sizeof ring_path, "%s/%s", key_dir ? key_dir : ".",
              CRYPTOD_KEYRING_FILE);
    struct stat st;
    if (stat (ring_path, &st) != 0) {
        fprintf (stderr,
                 "safeshare-crypto: no KEK ring at %s: run `safeshare keys generate`\n",
                 ring_path);
        rc = 2;
        goto cleanup;
    }
    keyring = cryptod_keyring_load (ring_path);
    if (!keyring) {
        fprintf (stderr,
                 "safeshare-crypto: cannot load the KEK ring %s (see the log above)\n",
                 ring_path);
        rc = 2;
        goto cleanup;
    }
    cm_info (NULL, "KEK ring %s: %zu keys, current %s", ring_path,
             cryptod_keyring_size (keyring), cryptod_keyring_current (keyring));

    const cryptod_broker_opts_t opts = {
        .endpoint = cm_config_get (config, "SAFESHARE_CRYPTO_ENDPOINT"),
        .keyring = keyring,
        .workers = (int)cm_config_int (config, "SAFESHARE_CRYPTO_WORKERS"),
        .chunk_size = (uint32_t)cm_config_int (config, "SAFESHARE_CHUNK_SIZE"),
        .max_pending = CRYPTOD_MAX_PENDING,
    };
    broker = cryptod_broker_new (&opts);
    if (!broker) {
        fprintf (stderr, "safeshare-crypto: cannot start on %s (see the log above)\n",
                 opts.endpoint ? opts.endpoint : "(no endpoint)");
        goto cleanup;
    }
    cm_info (NULL, "safeshare-crypto %s ready", SAFESHARE_VERSION);
    /* A drain that timed out still ends in an orderly exit.           */
    cryptod_broker_run (broker);
    cm_info (NULL, "safeshare-crypto stopped");
    rc = 0;
cleanup:
    cryptod_broker_destroy (&broker);
    cryptod_keyring_destroy (&keyring);
    cm_config_destroy (&config);
    return rc;
}
