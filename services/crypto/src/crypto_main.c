/*  safeshare-crypto -- the crypto service (broker + local worker threads,
    holds the KEK ring), or with `worker` a remote worker process that
    holds no key at all. See proto/crypto.md.                           */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_config.h"
#include "cm_log.h"
#include "cm_service.h"
#include "cryptod_backend.h"
#include "cryptod_broker.h"
#include "cryptod_ringwatch.h"
#include "cryptod_worker.h"

#define USAGE                                                                            \
    "Modes:\n"                                                                           \
    "  safeshare-crypto [--config FILE]\n"                                               \
    "      The broker. Holds the KEK ring ($SAFESHARE_KEY_DIR/kek.ring, made by\n"       \
    "      `safeshare keys generate`, reloaded when the file changes; or\n"              \
    "      SAFESHARE_KEK_RING) and answers callers on SAFESHARE_CRYPTO_ENDPOINT.\n"      \
    "      Chunks are done by SAFESHARE_CRYPTO_WORKERS local threads (0..64) and by\n"   \
    "      remote workers that connect to SAFESHARE_CRYPTO_WORKER_ENDPOINT (unset:\n"    \
    "      none). Workers get a chunk's data key, never a KEK. With\n"                   \
    "      SAFESHARE_CURVE_SECRET_KEY set (CurveZMQ, docs/security.md) both endpoints\n" \
    "      accept only keys in SAFESHARE_CURVE_ALLOW_DIR, checked at start; without\n"   \
    "      it the worker channel is not authenticated or encrypted: a tcp://\n"          \
    "      endpoint must then stay on a private network.\n"                              \
    "  safeshare-crypto worker --connect ENDPOINT [--threads N]\n"                       \
    "      A remote worker: N threads (default: the online CPUs, 1..64), each one\n"     \
    "      a worker of the broker at ENDPOINT (its SAFESHARE_CRYPTO_WORKER_ENDPOINT).\n" \
    "      Needs no KEK and no data directory; reconnects by itself (backoff 1 s\n"      \
    "      doubling to 32 s). With CURVE: SAFESHARE_CURVE_SECRET_KEY (its own key,\n"    \
    "      from the environment or --config) and SAFESHARE_CURVE_PUBLIC_DIR with\n"      \
    "      crypto.key (the broker's); a key the broker refuses is logged and\n"          \
    "      retried. SIGTERM: finishes the chunk in hand, then exits 0."

/* --connect: tcp://HOST:PORT or ipc://PATH, printable, bounded.       */
static bool
s_endpoint_valid (const char *ep)
{
    size_t n = strlen (ep);
    if (n < 7 || n > 255 ||
        (strncmp (ep, "tcp://", 6) != 0 && strncmp (ep, "ipc://", 6) != 0)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)ep[i] <= 0x20 || (unsigned char)ep[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

static int
s_worker_main (int argc, char **argv)
{
    const char *endpoint = NULL;
    long threads = sysconf (_SC_NPROCESSORS_ONLN);
    if (threads < 1) {
        threads = 1;
    }
    if (threads > CRYPTOD_MAX_WORKERS) {
        threads = CRYPTOD_MAX_WORKERS;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp (argv[i], "--connect") == 0 && i + 1 < argc) {
            endpoint = argv[++i];
        } else if (strcmp (argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end = NULL;
            errno = 0;
            threads = strtol (argv[++i], &end, 10);
            if (errno || !end || *end || threads < 1 || threads > CRYPTOD_MAX_WORKERS) {
                fprintf (stderr, "safeshare-crypto worker: --threads must be 1..%d\n",
                         CRYPTOD_MAX_WORKERS);
                return 2;
            }
        } else {
            fprintf (stderr,
                     "safeshare-crypto worker: unknown argument %s (see --help)\n",
                     argv[i]);
            return 2;
        }
    }
    if (!endpoint || !s_endpoint_valid (endpoint)) {
        fprintf (stderr,
                 "safeshare-crypto worker: --connect tcp://HOST:PORT or ipc://PATH "
                 "is required (see --help)\n");
        return 2;
    }
    if (cryptod_worker_prepare () != 0) {
        return 1;
    }
    static char names[CRYPTOD_MAX_WORKERS][CRYPTOD_WORKER_NAME_MAX + 1];
    static cryptod_worker_args_t args[CRYPTOD_MAX_WORKERS];
    zactor_t *actors[CRYPTOD_MAX_WORKERS] = {NULL};
    int started = 0, rc = 0;
    /* SIGINT/SIGTERM blocked here, so in every thread started from now
       on: this thread takes them with sigwait, the workers never see an
       interrupted poll.                                                 */
    sigset_t stop_signals;
    sigemptyset (&stop_signals);
    sigaddset (&stop_signals, SIGINT);
    sigaddset (&stop_signals, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &stop_signals, NULL);
    for (int i = 0; i < (int)threads; i++) {
        cryptod_worker_name (names[i], i);
        args[i].endpoint = endpoint;
        args[i].name = names[i];
        args[i].identity = NULL;
        actors[i] = zactor_new (cryptod_worker_actor, &args[i]);
        if (!actors[i]) {
            cm_error (NULL, "zactor_new(crypto worker %d) failed", i);
            rc = 1;
            break;
        }
        started++;
    }
    if (rc == 0) {
        cm_info (NULL, "safeshare-crypto worker %s: %d threads for %s", SAFESHARE_VERSION,
                 started, endpoint);
        int sig = 0;
        sigwait (&stop_signals, &sig);
        /* Through cm_service's handler again, so a second signal exits
           at once while the workers finish.                            */
        pthread_sigmask (SIG_UNBLOCK, &stop_signals, NULL);
        raise (sig);
    }
    /* $TERM: each finishes the chunk in hand and says DISCONNECT.      */
    for (int i = 0; i < started; i++) {
        zactor_destroy (&actors[i]);
    }
    cm_info (NULL, "safeshare-crypto worker stopped");
    return rc;
}

static int
s_broker_main (cm_config_t *config)
{
    int rc = 1;
    cryptod_ringwatch_t *keys = NULL;
    cryptod_broker_t *broker = NULL;
    const char *key_dir = cm_config_get (config, "SAFESHARE_KEY_DIR");
    const char *env_ring = cm_config_get (config, "SAFESHARE_KEK_RING");
    const char *worker_endpoint =
        cm_config_get (config, "SAFESHARE_CRYPTO_WORKER_ENDPOINT");
    int workers = (int)cm_config_int (config, "SAFESHARE_CRYPTO_WORKERS");
    if (workers == 0 && !worker_endpoint) {
        fprintf (stderr,
                 "safeshare-crypto: SAFESHARE_CRYPTO_WORKERS=0 needs "
                 "SAFESHARE_CRYPTO_WORKER_ENDPOINT (no worker could ever join)\n");
        return 2;
    }
    if (!env_ring || !*env_ring) {
        char ring_path[4096];
        struct stat st;
        if (cryptod_keyring_path (key_dir, ring_path, sizeof ring_path) != 0 ||
            stat (ring_path, &st) != 0) {
            fprintf (
                stderr,
                "safeshare-crypto: no KEK ring at %s/%s: run `safeshare keys generate`\n",
                key_dir ? key_dir : "(no key dir)", CRYPTOD_KEYRING_FILE);
            return 2;
        }
    }
    keys = cryptod_ringwatch_new (key_dir, env_ring);
    if (!keys) {
        /* Never the ring's value: only where it came from.             */
        fprintf (stderr,
                 "safeshare-crypto: cannot load the KEK ring from %s (see the log "
                 "above)\n",
                 env_ring && *env_ring ? CRYPTOD_KEYRING_ENV : "the key dir");
        return 2;
    }
    const cryptod_keyring_t *ring = cryptod_ringwatch_ring (keys);
    const char *path = cryptod_ringwatch_path (keys);
    cm_info (NULL, "KEK ring %s: %zu keys, current %s", path ? path : CRYPTOD_KEYRING_ENV,
             cryptod_keyring_size (ring), cryptod_keyring_current (ring));

    const cryptod_broker_opts_t opts = {
        .endpoint = cm_config_get (config, "SAFESHARE_CRYPTO_ENDPOINT"),
        .worker_endpoint = worker_endpoint,
        .keys = keys,
        .workers = workers,
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
    cryptod_ringwatch_destroy (&keys);
    return rc;
}

/* `worker` is the first argument that is not --config FILE: the mode
   decides what CURVE needs before cm_service_init removes --config.   */
static bool
s_worker_mode (int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--config") == 0) {
            i++;
        } else if (strncmp (argv[i], "--config=", 9) != 0) {
            return strcmp (argv[i], "worker") == 0;
        }
    }
    return false;
}

int
main (int argc, char **argv)
{
    bool worker = s_worker_mode (argc, argv);
    const cm_service_info_t info = {
        .name = worker ? "crypto-worker" : "crypto",
        .binary = "safeshare-crypto",
        .summary =
            "encrypts and decrypts file chunks; the broker holds the key-encryption "
            "keys",
        .usage = USAGE,
        /* The broker serves (front and worker endpoint); a worker calls
           the broker's worker endpoint with the key of "crypto".       */
        .serves = !worker,
        .calls = worker ? "crypto" : NULL,
    };
    int exit_code = 0;
    cm_config_t *config = cm_service_init (&info, &argc, argv, &exit_code);
    if (!config) {
        return exit_code;
    }
    int rc;
    if (worker) {
        rc = s_worker_main (argc, argv);
    } else if (argc > 1) {
        fprintf (stderr, "safeshare-crypto: unknown argument %s (see --help)\n", argv[1]);
        rc = 2;
    } else {
        rc = s_broker_main (config);
    }
    cm_config_destroy (&config);
    return rc;
}
