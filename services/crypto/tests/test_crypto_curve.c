/*  svc_crypto_curve: the real broker with CurveZMQ on (no local workers,
    remote workers on a loopback tcp endpoint) and real `safeshare-crypto
    worker` processes with their own keys:

    - a worker whose key is in the broker's allow dir joins (its CURVE
      keys from `safeshare-crypto --config FILE worker ...`);
    - a worker with an unknown key is refused: it logs "crypto worker: the
      broker refused our CURVE key (ZAP) endpoint=..." and never joins;
    - once its key is copied into the allow dir it joins, without a
      restart of either process;
    - everything stops with exit 0.                                   */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <czmq.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "cm_config.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"

extern char **environ;

static const char *s_binary;

static struct {
    char *dir;
    char keys[600];
    char pub[600];
    char allow[600];
    char worker_ep[64];
} g;

static void
s_keypair (const char *name)
{
    assert_int_equal (cm_test_curve_keypair (g.keys, name), 0);
}

static void
s_copy_public (const char *name, const char *to_dir)
{
    assert_int_equal (cm_test_curve_publish (g.keys, name, to_dir, name), 0);
}

/* Spawns argv with our environment plus `extra` (NULL-terminated),
   stdout and stderr into logfile.                                     */
static pid_t
s_spawn (char *const argv[], char *const extra[], const char *logfile)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 1, logfile, O_WRONLY | O_CREAT | O_APPEND,
                                      0600);
    posix_spawn_file_actions_adddup2 (&fa, 1, 2);
    size_t n = 0, m = 0;
    while (environ[n]) {
        n++;
    }
    while (extra[m]) {
        m++;
    }
    char **env = calloc (n + m + 1, sizeof *env);
    memcpy (env, environ, n * sizeof *env);
    memcpy (env + n, extra, m * sizeof *env);
    pid_t pid = -1;
    assert_int_equal (posix_spawn (&pid, argv[0], &fa, NULL, argv, env), 0);
    posix_spawn_file_actions_destroy (&fa);
    free (env);
    return pid;
}

static int
s_count (const char *logfile, const char *needle)
{
    size_t len = 0;
    char *text = cm_file_read (logfile, 16 * 1024 * 1024, &len);
    int n = 0;
    for (const char *p = text; p && (p = strstr (p, needle)); p++) {
        n++;
    }
    free (text);
    return n;
}

/* Waits until logfile holds `count` lines with needle; false at the
   deadline or if pid died.                                           */
static bool
s_wait_count (const char *logfile, const char *needle, int count, pid_t pid, int wait_ms)
{
    uint64_t deadline = cm_mono_ms () + (uint64_t)wait_ms;
    while (cm_mono_ms () < deadline) {
        if (s_count (logfile, needle) >= count) {
            return true;
        }
        if (cm_test_exited (pid)) {
            return false;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep (&ts, NULL);
    }
    return false;
}

/* A worker with the key of `name`: from the environment, or (config)
   from a --config file given before `worker`, as a deployment may.   */
static pid_t
s_worker (const char *name, const char *logfile, bool config)
{
    char secret[800], env_secret[900], env_pub[700], conf[700];
    snprintf (secret, sizeof secret, "%s/%s/%s.key_secret", g.keys, name, name);
    snprintf (env_secret, sizeof env_secret, "SAFESHARE_CURVE_SECRET_KEY=%s", secret);
    snprintf (env_pub, sizeof env_pub, "SAFESHARE_CURVE_PUBLIC_DIR=%s", g.pub);
    snprintf (conf, sizeof conf, "%s/%s.conf", g.dir, name);
    char text[2000];
    int n = snprintf (text, sizeof text, "%s\n%s\n", env_secret, env_pub);
    assert_int_equal (cm_file_write_atomic (conf, text, (size_t)n, 0600), 0);
    char *argv_env[] = {(char *)s_binary, "worker", "--connect", g.worker_ep,
                        "--threads",      "1",      NULL};
    char *argv_conf[] = {(char *)s_binary, "--config",  conf, "worker", "--connect",
                         g.worker_ep,      "--threads", "1",  NULL};
    char *extra[] = {env_secret, env_pub, NULL};
    char *none[] = {NULL};
    return config ? s_spawn (argv_conf, none, logfile)
                  : s_spawn (argv_env, extra, logfile);
}

static void
test_refused_worker_then_allowed (void **state)
{
    (void)state;
    g.dir = cm_test_tmpdir ();
    snprintf (g.keys, sizeof g.keys, "%s/curve", g.dir);
    snprintf (g.pub, sizeof g.pub, "%s/public", g.dir);
    snprintf (g.allow, sizeof g.allow, "%s/allow", g.dir);
    assert_int_equal (cm_mkdirs (g.pub, 0755), 0);
    assert_int_equal (cm_mkdirs (g.allow, 0755), 0);
    s_keypair ("crypto");
    s_keypair ("crypto-worker");
    s_keypair ("stranger");
    s_copy_public ("crypto", g.pub);
    s_copy_public ("crypto", g.allow);
    s_copy_public ("crypto-worker", g.allow);
    int port = cm_test_free_port ();
    assert_true (port > 0);
    snprintf (g.worker_ep, sizeof g.worker_ep, "tcp://127.0.0.1:%d", port);

    /* A KEK ring in the environment: the broker needs one to start.   */
    uint8_t kek[32];
    char kek_hex[65], id[17], ring[120];
    assert_int_equal (cm_random (kek, sizeof kek), 0);
    cm_hex_encode (kek_hex, kek, sizeof kek);
    assert_int_equal (cm_random_hex (id, 8), 0);
    snprintf (ring, sizeof ring, "SAFESHARE_KEK_RING=%s %s", id, kek_hex);
    char env_data[700], env_ep[800], env_wep[100], env_secret[900], env_pub[700],
        env_allow[700];
    snprintf (env_data, sizeof env_data, "SAFESHARE_DATA_DIR=%s", g.dir);
    snprintf (env_ep, sizeof env_ep, "SAFESHARE_CRYPTO_ENDPOINT=ipc://%s/run/crypto.sock",
              g.dir);
    snprintf (env_wep, sizeof env_wep, "SAFESHARE_CRYPTO_WORKER_ENDPOINT=%s",
              g.worker_ep);
    snprintf (env_secret, sizeof env_secret,
              "SAFESHARE_CURVE_SECRET_KEY=%s/crypto/crypto.key_secret", g.keys);
    snprintf (env_pub, sizeof env_pub, "SAFESHARE_CURVE_PUBLIC_DIR=%s", g.pub);
    snprintf (env_allow, sizeof env_allow, "SAFESHARE_CURVE_ALLOW_DIR=%s", g.allow);
    char *extra[] = {env_data, env_ep,    env_wep, env_secret,
                     env_pub,  env_allow, ring,    "SAFESHARE_CRYPTO_WORKERS=0",
                     NULL};
    char broker_log[700], good_log[700], bad_log[700];
    snprintf (broker_log, sizeof broker_log, "%s/broker.log", g.dir);
    snprintf (good_log, sizeof good_log, "%s/worker.log", g.dir);
    snprintf (bad_log, sizeof bad_log, "%s/stranger.log", g.dir);
    char *argv[] = {(char *)s_binary, NULL};
    pid_t broker = s_spawn (argv, extra, broker_log);
    OPENSSL_cleanse (ring, sizeof ring);
    OPENSSL_cleanse (kek_hex, sizeof kek_hex);
    assert_true (s_wait_count (broker_log, "safeshare-crypto 0", 1, broker, 10000));
    /* Unauthenticated and unencrypted: not what a CURVE broker says.   */
    assert_int_equal (s_count (broker_log, "without authentication or encryption"), 0);

    pid_t good = s_worker ("crypto-worker", good_log, true);
    assert_true (s_wait_count (broker_log, "joined (remote)", 1, broker, 10000));

    pid_t bad = s_worker ("stranger", bad_log, false);
    char line[200];
    snprintf (line, sizeof line,
              "crypto worker: the broker refused our CURVE key (ZAP) endpoint=%s",
              g.worker_ep);
    assert_true (s_wait_count (bad_log, line, 1, bad, 10000));
    /* It keeps trying (backoff 1 s, 2 s, ...), and is refused each time. */
    assert_true (s_wait_count (bad_log, line, 2, bad, 5000));
    assert_int_equal (s_count (broker_log, "joined (remote)"), 1);

    /* The operator allows it: it gets in at its next try.             */
    s_copy_public ("stranger", g.allow);
    assert_true (s_wait_count (broker_log, "joined (remote)", 2, broker, 15000));

    assert_int_equal (cm_test_stop (bad, 10000), 0);
    assert_int_equal (cm_test_stop (good, 10000), 0);
    assert_int_equal (cm_test_stop (broker, 10000), 0);
    cm_test_rmrf (g.dir);
    free (g.dir);
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        fprintf (stderr, "usage: %s PATH/TO/safeshare-crypto\n", argv[0]);
        return 2;
    }
    s_binary = argv[1];
    cm_log_init ("test", CM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_refused_worker_then_allowed),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
