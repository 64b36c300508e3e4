/*  svc_cli_health -- `safeshare health SERVICE` against real processes,
    each started on its own in a temp data dir with ipc endpoints:
    - auth, crypto, storage, mailer: refused before the service runs,
      0 (and nothing printed) once it answers, timeout while it is
      stopped (SIGSTOP), refused again after it exited; the endpoint from
      a --config file; another service at the endpoint is not healthy;
    - crypto-worker: refused without a broker, 1 while only the broker's
      own threads are in its pool, 0 once a real `safeshare-crypto
      worker` process of this host connected, 1 after it stopped;
    - gateway: refused with nothing listening, timeout with a listener
      that never answers, 0 with a real gateway;
    - CURVE (auth with zauth): 0 with a key in its allow dir, refused
      with a key that is not, with CURVE off on the client side and with
      the wrong server key;
    - usage errors exit 2.
    Every unhealthy answer is exactly one line naming service, endpoint
    and the reason, and comes within the timeout.

    usage: svc_cli_health BIN_DIR (safeshare and safeshare-* in it)     */
#include "cli_test_proc.h"
#include "cm_testing.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* Generous: the sanitizer build starts services slowly. */
#define S_READY_MS 60000
/* How late past its timeout an unhealthy answer may come (process
   start-up included, sanitizers too).                                 */
#define S_SLACK_MS 5000

static const char *s_bin_dir;
static char s_safeshare[PATH_MAX];

typedef struct {
    char *root;
    char data[400];
    char run[500];    /* where the endpoints live */
    char config[600]; /* a --config file */
    char addr[64];    /* SAFESHARE_HTTP_ADDR, nothing there at first */
    pid_t pids[4];    /* what a test started; stopped in teardown */
    int npids;
} s_env_t;

static int
s_setup (void **state)
{
    s_env_t *e = calloc (1, sizeof *e);
    assert_non_null (e);
    e->root = cm_test_tmpdir ();
    assert_non_null (e->root);
    snprintf (e->data, sizeof e->data, "%s/data", e->root);
    snprintf (e->run, sizeof e->run, "%s/run", e->data);
    snprintf (e->config, sizeof e->config, "%s/safeshare.conf", e->root);
    snprintf (e->addr, sizeof e->addr, "127.0.0.1:%d", cli_test_free_port ());
    cli_test_clear_safeshare_env ();
    char url[80], worker_ep[700];
    snprintf (url, sizeof url, "http://%s", e->addr);
    snprintf (worker_ep, sizeof worker_ep, "ipc://%s/worker.sock", e->run);
    setenv ("SAFESHARE_DATA_DIR", e->data, 1);
    setenv ("SAFESHARE_LOG_LEVEL", "warn", 1);
    setenv ("SAFESHARE_HTTP_ADDR", e->addr, 1);
    setenv ("SAFESHARE_PUBLIC_URL", url, 1);
    setenv ("SAFESHARE_CRYPTO_WORKER_ENDPOINT", worker_ep, 1);
    /* The KEK ring (crypto) and the JWT key pair (auth, gateway). */
    char *argv[] = {"safeshare", "keys", "generate", NULL};
    char *out = NULL, *err = NULL;
    int rc = cli_test_run (s_safeshare, argv, NULL, &out, &err);
    if (rc != 0) {
        fail_msg ("keys generate exited %d: %s", rc, err ? err : "");
    }
    cli_test_free2 (&out, &err);
    *state = e;
    return 0;
}

static int
s_teardown (void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < e->npids; i++) {
        if (e->pids[i] > 0) {
            kill (e->pids[i], SIGCONT);
            cm_test_stop (e->pids[i], 10000);
        }
    }
    cm_test_rmrf (e->root);
    free (e->root);
    free (e);
    return 0;
}

/* Starts BIN_DIR/name with args after it up to a NULL; remembered for
   teardown.                                                           */
static pid_t
s_start (s_env_t *e, const char *name, ...)
{
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", s_bin_dir, name);
    char *argv[8] = {(char *)name};
    int n = 1;
    va_list ap;
    va_start (ap, name);
    for (const char *a; n < 7 && (a = va_arg (ap, const char *));) {
        argv[n++] = (char *)a;
    }
    va_end (ap);
    argv[n] = NULL;
    pid_t pid = cm_test_spawn (path, argv, NULL);
    assert_true (pid > 0);
    assert_true (e->npids < 4);
    e->pids[e->npids++] = pid;
    return pid;
}

/* Stops pid (started by s_start) and expects a clean exit.            */
static void
s_stop (s_env_t *e, pid_t pid)
{
    kill (pid, SIGCONT);
    assert_int_equal (cm_test_stop (pid, 20000), 0);
    for (int i = 0; i < e->npids; i++) {
        if (e->pids[i] == pid) {
            e->pids[i] = 0;
        }
    }
}

/* `safeshare [--config FILE] health svc --timeout-ms ms`: the exit
   status; *err (caller frees) what it printed on stderr, *took_ms how
   long it ran. Prints nothing on stdout, ever.                       */
static int
s_health (const char *config, const char *svc, int ms, char **err, long *took_ms)
{
    char tmo[16];
    snprintf (tmo, sizeof tmo, "%d", ms);
    char *argv[8];
    int n = 0;
    argv[n++] = "safeshare";
    if (config) {
        argv[n++] = "--config";
        argv[n++] = (char *)config;
    }
    argv[n++] = "health";
    argv[n++] = (char *)svc;
    argv[n++] = "--timeout-ms";
    argv[n++] = tmo;
    argv[n] = NULL;
    char *out = NULL;
    long start = cli_test_ms ();
    int rc = cli_test_run (s_safeshare, argv, NULL, &out, err);
    if (took_ms) {
        *took_ms = cli_test_ms () - start;
    }
    assert_string_equal (out, "");
    free (out);
    return rc;
}

/* rc 1 and exactly the one line "safeshare: health: SVC at WHERE: WHY..."
   within ms + slack.                                                  */
static void
s_expect_unhealthy (const char *config, const char *svc, int ms, const char *where,
                    const char *why)
{
    char *err = NULL;
    long took = 0;
    int rc = s_health (config, svc, ms, &err, &took);
    char want[1024];
    snprintf (want, sizeof want, "safeshare: health: %s at %s: %s", svc, where, why);
    if (rc != 1 || strncmp (err, want, strlen (want)) != 0 ||
        strchr (err, '\n') != err + strlen (err) - 1) {
        fail_msg ("health %s: exit %d, stderr:\n%s\nwanted exit 1 and one line "
                  "starting:\n%s",
                  svc, rc, err, want);
    }
    if (took > ms + S_SLACK_MS) {
        fail_msg ("health %s took %ld ms with --timeout-ms %d", svc, took, ms);
    }
    if (strstr (why, "timeout") == why && took < ms) {
        fail_msg ("health %s said timeout after only %ld ms of %d", svc, took, ms);
    }
    free (err);
}

/* Polls `health svc` until it exits 0 with nothing on stderr, failing as
   soon as pid (if > 0) has died.                                      */
static void
s_wait_healthy (const char *config, const char *svc, pid_t pid)
{
    long deadline = cli_test_ms () + S_READY_MS;
    for (;;) {
        char *err = NULL;
        int rc = s_health (config, svc, 1000, &err, NULL);
        if (rc == 0) {
            assert_string_equal (err, "");
            free (err);
            return;
        }
        assert_int_equal (rc, 1);
        if (pid > 0 && cm_test_exited (pid)) {
            fail_msg ("%s's process died; last health: %s", svc, err);
        }
        if (cli_test_ms () > deadline) {
            fail_msg ("%s not healthy within %d s: %s", svc, S_READY_MS / 1000, err);
        }
        free (err);
        usleep (50000);
    }
}

/* Polls `health svc` until it exits 1 with a line containing why.    */
static void
s_wait_unhealthy (const char *svc, const char *why, long within_ms)
{
    long deadline = cli_test_ms () + within_ms;
    for (;;) {
        char *err = NULL;
        int rc = s_health (NULL, svc, 1000, &err, NULL);
        if (rc == 1 && strstr (err, why)) {
            free (err);
            return;
        }
        if (cli_test_ms () > deadline) {
            fail_msg ("health %s still exit %d after %ld ms: %s", svc, rc, within_ms,
                      err);
        }
        free (err);
        usleep (100000);
    }
}

/* The whole life of one ZeroMQ service, seen by `health`.             */
static void
s_service_life (s_env_t *e, const char *svc)
{
    char where[700], binary[64];
    snprintf (where, sizeof where, "ipc://%s/%s.sock", e->run, svc);
    snprintf (binary, sizeof binary, "safeshare-%s", svc);

    s_expect_unhealthy (NULL, svc, 1000, where, "refused");

    pid_t pid = s_start (e, binary, NULL);
    s_wait_healthy (NULL, svc, pid);

    /* Running but not answering: a stopped process keeps its socket. */
    assert_int_equal (kill (pid, SIGSTOP), 0);
    s_expect_unhealthy (NULL, svc, 700, where, "timeout: no reply within 700 ms");
    assert_int_equal (kill (pid, SIGCONT), 0);
    s_wait_healthy (NULL, svc, pid);

    s_stop (e, pid);
    s_expect_unhealthy (NULL, svc, 1000, where, "refused");
}

static void
test_auth (void **state)
{
    s_service_life (*state, "auth");
}

static void
test_crypto (void **state)
{
    s_service_life (*state, "crypto");
}

/* Storage's life, and a storage where auth is expected: every HEALTH
   is field 10, so only the service name in the answer tells.         */
static void
test_storage (void **state)
{
    s_env_t *e = *state;
    s_service_life (e, "storage");

    char storage[700];
    snprintf (storage, sizeof storage, "ipc://%s/storage.sock", e->run);
    pid_t pid = s_start (e, "safeshare-storage", NULL);
    s_wait_healthy (NULL, "storage", pid);
    setenv ("SAFESHARE_AUTH_ENDPOINT", storage, 1);
    s_expect_unhealthy (NULL, "auth", 1000, storage,
                        "status: storage answered, not auth");
    unsetenv ("SAFESHARE_AUTH_ENDPOINT");
    s_stop (e, pid);
}

/* Mailer's life, then its endpoint moved by a --config file (read by
   the service and by `health` alike).                                */
static void
test_mailer (void **state)
{
    s_env_t *e = *state;
    s_service_life (e, "mailer");

    char moved[700], fallback[700];
    snprintf (moved, sizeof moved, "ipc://%s/elsewhere/mail.sock", e->root);
    snprintf (fallback, sizeof fallback, "ipc://%s/mailer.sock", e->run);
    FILE *f = fopen (e->config, "w");
    assert_non_null (f);
    fprintf (f, "SAFESHARE_MAILER_ENDPOINT=%s\n", moved);
    fclose (f);
    s_expect_unhealthy (e->config, "mailer", 500, moved, "refused");
    pid_t pid = s_start (e, "safeshare-mailer", "--config", e->config, NULL);
    s_wait_healthy (e->config, "mailer", pid);
    /* Without the file, health looks where the mailer is not. */
    s_expect_unhealthy (NULL, "mailer", 500, fallback, "refused");
    s_stop (e, pid);
}

static void
test_crypto_worker (void **state)
{
    s_env_t *e = *state;
    char front[700], back[700], host[64] = "";
    snprintf (front, sizeof front, "ipc://%s/crypto.sock", e->run);
    snprintf (back, sizeof back, "ipc://%s/worker.sock", e->run);
    assert_int_equal (gethostname (host, sizeof host), 0);
    host[sizeof host - 1] = '\0';

    s_expect_unhealthy (NULL, "crypto-worker", 1000, front, "refused");

    /* The broker's own thread is named after this host too: it is not
       a worker process of this host and must not count.              */
    setenv ("SAFESHARE_CRYPTO_WORKERS", "1", 1);
    pid_t broker = s_start (e, "safeshare-crypto", NULL);
    unsetenv ("SAFESHARE_CRYPTO_WORKERS");
    s_wait_healthy (NULL, "crypto", broker);
    char why[256];
    snprintf (why, sizeof why,
              "no worker of host %s is connected to the broker (0 remote worker(s)",
              host);
    s_expect_unhealthy (NULL, "crypto-worker", 1000, front, why);

    pid_t worker = s_start (e, "safeshare-crypto", "worker", "--connect", back,
                            "--threads", "1", NULL);
    s_wait_healthy (NULL, "crypto-worker", worker);

    s_stop (e, worker);
    /* The broker lets go of it (DISCONNECT, or 3 missed heartbeats).  */
    s_wait_unhealthy ("crypto-worker", "no worker of host", 15000);
    s_stop (e, broker);
}

/* A TCP listener on loopback that never accepts: connects complete in
   the kernel's backlog, no answer ever comes. Returns the fd.        */
static int
s_silent_listener (char *addr, size_t addrlen)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true (fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal (listen (fd, 8), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal (getsockname (fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf (addr, addrlen, "127.0.0.1:%d", ntohs (sa.sin_port));
    return fd;
}

static void
test_gateway (void **state)
{
    s_env_t *e = *state;
    s_expect_unhealthy (NULL, "gateway", 1000, e->addr, "refused");

    char silent[64];
    int fd = s_silent_listener (silent, sizeof silent);
    setenv ("SAFESHARE_HTTP_ADDR", silent, 1);
    s_expect_unhealthy (NULL, "gateway", 700, silent, "timeout: no answer within 700 ms");
    setenv ("SAFESHARE_HTTP_ADDR", e->addr, 1);
    close (fd);

    /* /healthz is liveness: the gateway answers it with no service up. */
    pid_t pid = s_start (e, "safeshare-gateway", NULL);
    s_wait_healthy (NULL, "gateway", pid);
    s_stop (e, pid);
    s_expect_unhealthy (NULL, "gateway", 1000, e->addr, "refused");
}

/* A zcert pair DIR/NAME.key (public) + DIR/NAME.key_secret (0600), the
   format `safeshare keys service-gen` writes; its public cert is also
   saved as each of the further paths, up to a NULL.                   */
static void
s_cert (const char *dir, const char *name, ...)
{
    char path[700], secret[720];
    assert_int_equal (zsys_dir_create ("%s", dir), 0);
    snprintf (path, sizeof path, "%s/%s.key", dir, name);
    snprintf (secret, sizeof secret, "%s_secret", path);
    zcert_t *cert = zcert_new ();
    assert_non_null (cert);
    assert_int_equal (zcert_save (cert, path), 0);
    assert_int_equal (chmod (secret, 0600), 0);
    va_list ap;
    va_start (ap, name);
    for (const char *copy; (copy = va_arg (ap, const char *));) {
        assert_int_equal (zcert_save_public (cert, copy), 0);
    }
    va_end (ap);
    zcert_destroy (&cert);
}

static void
test_curve (void **state)
{
    s_env_t *e = *state;
    char keys[500], pub[520], allow[520], server[540], friend[540], stranger[540];
    char where[700];
    snprintf (keys, sizeof keys, "%s/curve", e->root);
    snprintf (pub, sizeof pub, "%s/public", keys);
    snprintf (allow, sizeof allow, "%s/allow", keys);
    snprintf (server, sizeof server, "%s/auth/auth.key_secret", keys);
    snprintf (friend, sizeof friend, "%s/friend/friend.key_secret", keys);
    snprintf (stranger, sizeof stranger, "%s/stranger/stranger.key_secret", keys);
    snprintf (where, sizeof where, "ipc://%s/auth.sock", e->run);
    /* auth's public key where clients look for it, the friend's in
       auth's allow dir; the mailer's because auth calls the mailer.   */
    char dir[560], copy[600];
    assert_int_equal (zsys_dir_create ("%s", pub), 0);
    assert_int_equal (zsys_dir_create ("%s", allow), 0);
    snprintf (dir, sizeof dir, "%s/auth", keys);
    snprintf (copy, sizeof copy, "%s/auth.key", pub);
    s_cert (dir, "auth", copy, NULL);
    snprintf (dir, sizeof dir, "%s/friend", keys);
    snprintf (copy, sizeof copy, "%s/friend.key", allow);
    s_cert (dir, "friend", copy, NULL);
    snprintf (dir, sizeof dir, "%s/stranger", keys);
    s_cert (dir, "stranger", NULL);
    s_cert (pub, "mailer", NULL);
    snprintf (copy, sizeof copy, "%s/mailer.key_secret", pub);
    assert_int_equal (unlink (copy), 0);

    setenv ("SAFESHARE_CURVE_PUBLIC_DIR", pub, 1);
    setenv ("SAFESHARE_CURVE_ALLOW_DIR", allow, 1);
    setenv ("SAFESHARE_CURVE_SECRET_KEY", server, 1);
    pid_t pid = s_start (e, "safeshare-auth", NULL);
    setenv ("SAFESHARE_CURVE_SECRET_KEY", friend, 1);
    s_wait_healthy (NULL, "auth", pid);

    setenv ("SAFESHARE_CURVE_SECRET_KEY", stranger, 1);
    s_expect_unhealthy (NULL, "auth", 1000, where,
                        "refused: the CURVE handshake was refused");
    unsetenv ("SAFESHARE_CURVE_SECRET_KEY");
    s_expect_unhealthy (NULL, "auth", 1000, where, "refused: the handshake failed");
    /* A client with the wrong server key for auth. */
    setenv ("SAFESHARE_CURVE_SECRET_KEY", friend, 1);
    snprintf (dir, sizeof dir, "%s/other", keys);
    snprintf (copy, sizeof copy, "%s/auth.key", pub);
    s_cert (dir, "other", copy, NULL);
    s_expect_unhealthy (NULL, "auth", 1000, where, "refused: the handshake failed");
    unsetenv ("SAFESHARE_CURVE_SECRET_KEY");
    unsetenv ("SAFESHARE_CURVE_PUBLIC_DIR");
    unsetenv ("SAFESHARE_CURVE_ALLOW_DIR");
    s_stop (e, pid);
}

/* Usage errors: exit 2, the reason and the usage on stderr.          */
static void
test_usage (void **state)
{
    (void)state;
    static const char *const cases[][4] = {
        {"health", NULL, NULL, "health needs a SERVICE"},
        {"health", "gatewayy", NULL, "health: unknown service gatewayy"},
        {"health", "crypto_worker", NULL, "health: unknown service crypto_worker"},
        {"health", "auth", "storage", "health: unexpected argument storage"},
        {"health", "auth", "--timeout-ms=0", "--timeout-ms must be 1..600000"},
        {"health", "auth", "--timeout-ms=1x", "--timeout-ms must be 1..600000"},
        {"health", "auth", "--timeout-ms", "--timeout-ms needs a value"},
        {"health", "auth", "--verbose", "health: unknown option --verbose"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {"safeshare", (char *)cases[i][0], (char *)cases[i][1],
                        (char *)cases[i][2], NULL};
        char *out = NULL, *err = NULL;
        int rc = cli_test_run (s_safeshare, argv, NULL, &out, &err);
        if (rc != 2 || !strstr (err, cases[i][3]) || !strstr (err, "usage: safeshare")) {
            fail_msg ("case %zu: exit %d, stderr:\n%s\nwanted exit 2 and: %s", i, rc, err,
                      cases[i][3]);
        }
        cli_test_free2 (&out, &err);
    }
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: svc_cli_health BIN_DIR\n");
        return 2;
    }
    s_bin_dir = argv[1];
    snprintf (s_safeshare, sizeof s_safeshare, "%s/safeshare", s_bin_dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_usage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_auth, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crypto, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_storage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_mailer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crypto_worker, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_gateway, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_curve, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
