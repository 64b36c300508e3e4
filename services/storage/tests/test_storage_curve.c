/*  The real safeshare-storage with CurveZMQ on (SAFESHARE_CURVE_*): a
    client whose key is in the allow dir gets HEALTH answered, one with an
    unknown key and one without CURVE get nothing; a key added to the
    allow dir while it runs is let in; a secret key file others may read
    stops it at start (exit 2, one line naming the file).               */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_curve.h"
#include "cm_log.h"
#include "cm_msg.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "stord_test_client.h"

extern char **environ;

static struct {
    const char *bin;
    char *tmp;
    char keys[512]; /* <name>/<name>.key_secret */
    char pub[512];  /* storage.key */
    char allow[512];
    char ep[128];
    char env_data[600];
    char env_ep[200];
    char env_secret[800];
    char env_allow[600];
} g;

static void
s_keypair (const char *name)
{
    assert_int_equal (cm_test_curve_keypair (g.keys, name), 0);
}

static void
s_copy_public (const char *name, const char *to_dir, const char *as)
{
    assert_int_equal (cm_test_curve_publish (g.keys, name, to_dir, as), 0);
}

static void
s_secret_path (const char *name, char *out, size_t len)
{
    snprintf (out, len, "%s/%s/%s.key_secret", g.keys, name, name);
}

/* This process as a CURVE client with name's key (NULL: CURVE off). */
static zsock_t *
s_client_as (const char *name)
{
    cm_curve_shutdown ();
    char secret[700], err[512] = "";
    if (name) {
        s_secret_path (name, secret, sizeof secret);
    }
    assert_int_equal (cm_curve_setup (name ? secret : NULL, g.pub, NULL, err, sizeof err),
                      0);
    zsock_t *sock = cm_sock_client (g.ep, "storage");
    assert_non_null (sock);
    return sock;
}

static pid_t
s_start (void)
{
    char *argv[] = {(char *)g.bin, NULL};
    char *env[] = {
        g.env_data, g.env_ep, g.env_secret, g.env_allow, "SAFESHARE_LOG_LEVEL=error",
        NULL};
    pid_t pid = cm_test_spawn (g.bin, argv, env);
    assert_true (pid > 0);
    return pid;
}

static int
s_setup (void **state)
{
    (void)state;
    g.tmp = cm_test_tmpdir ();
    snprintf (g.keys, sizeof g.keys, "%s/curve", g.tmp);
    snprintf (g.pub, sizeof g.pub, "%s/public", g.tmp);
    snprintf (g.allow, sizeof g.allow, "%s/allow", g.tmp);
    assert_int_equal (cm_mkdirs (g.pub, 0755), 0);
    assert_int_equal (cm_mkdirs (g.allow, 0755), 0);
    s_keypair ("storage");
    s_keypair ("gateway");
    s_keypair ("stranger");
    s_copy_public ("storage", g.pub, "storage");
    s_copy_public ("storage", g.allow, "storage");
    s_copy_public ("gateway", g.allow, "gateway");
    int port = cm_test_free_port ();
    assert_true (port > 0);
    snprintf (g.ep, sizeof g.ep, "tcp://127.0.0.1:%d", port);
    snprintf (g.env_data, sizeof g.env_data, "SAFESHARE_DATA_DIR=%s", g.tmp);
    snprintf (g.env_ep, sizeof g.env_ep, "SAFESHARE_STORAGE_ENDPOINT=%s", g.ep);
    char secret[700];
    s_secret_path ("storage", secret, sizeof secret);
    snprintf (g.env_secret, sizeof g.env_secret, "SAFESHARE_CURVE_SECRET_KEY=%s", secret);
    snprintf (g.env_allow, sizeof g.env_allow, "SAFESHARE_CURVE_ALLOW_DIR=%s", g.allow);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    cm_curve_shutdown ();
    cm_test_rmrf (g.tmp);
    free (g.tmp);
    return 0;
}

static void
test_allowed_answered_unknown_refused (void **state)
{
    (void)state;
    pid_t pid = s_start ();
    zsock_t *gw = s_client_as ("gateway");
    stord_test_wait_ready (gw, pid, 10000);
    zsock_destroy (&gw);

    /* Unknown key and no CURVE at all: no answer.                      */
    zsock_t *stranger = s_client_as ("stranger");
    Safeshare__StorageReply *r = stord_test_health (stranger, 1000);
    assert_null (r);
    zsock_destroy (&stranger);
    zsock_t *plain = s_client_as (NULL);
    r = stord_test_health (plain, 1000);
    assert_null (r);
    zsock_destroy (&plain);

    /* The operator allows the stranger: no restart needed.            */
    s_copy_public ("stranger", g.allow, "stranger");
    stranger = s_client_as ("stranger");
    r = stord_test_health (stranger, 3000);
    assert_non_null (r);
    stord_test_expect (r, CM_OK, NULL);
    stord_test_free (&r);
    zsock_destroy (&stranger);
    assert_false (cm_test_exited (pid));
    assert_int_equal (cm_test_stop (pid, 10000), 0);
}

/* Runs the binary with stderr into a file; returns the exit status.   */
static int
s_run_stderr (const char *errfile)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 2, errfile, O_WRONLY | O_CREAT | O_TRUNC,
                                      0600);
    char *argv[] = {(char *)g.bin, NULL};
    /* The service's environment: ours plus its keys.                  */
    size_t n = 0;
    while (environ[n]) {
        n++;
    }
    char **env = calloc (n + 6, sizeof *env);
    memcpy (env, environ, n * sizeof *env);
    env[n] = g.env_data;
    env[n + 1] = g.env_ep;
    env[n + 2] = g.env_secret;
    env[n + 3] = g.env_allow;
    pid_t pid = -1;
    assert_int_equal (posix_spawn (&pid, g.bin, &fa, NULL, argv, env), 0);
    posix_spawn_file_actions_destroy (&fa);
    free (env);
    int status = 0;
    uint64_t deadline = cm_mono_ms () + 10000;
    while (waitpid (pid, &status, WNOHANG) == 0) {
        if (cm_mono_ms () > deadline) {
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            fail_msg ("the service did not exit");
        }
        stord_test_sleep_ms (20);
    }
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

static void
test_readable_secret_refused (void **state)
{
    (void)state;
    char secret[700], errfile[600];
    s_secret_path ("storage", secret, sizeof secret);
    snprintf (errfile, sizeof errfile, "%s/stderr", g.tmp);
    assert_int_equal (chmod (secret, 0640), 0);
    assert_int_equal (s_run_stderr (errfile), 2);
    size_t len = 0;
    char *text = cm_file_read (errfile, 65536, &len);
    assert_non_null (text);
    /* One line, naming the file and what is wrong.                     */
    assert_non_null (strstr (text, secret));
    assert_non_null (strstr (text, "too open"));
    int lines = 0;
    for (size_t i = 0; i < len; i++) {
        lines += text[i] == '\n';
    }
    assert_int_equal (lines, 1);
    free (text);
    /* No allow dir while serving with CURVE: also a config error.      */
    assert_int_equal (chmod (secret, 0600), 0);
    char saved[600];
    snprintf (saved, sizeof saved, "%s", g.env_allow);
    snprintf (g.env_allow, sizeof g.env_allow, "SAFESHARE_LOG_LEVEL=error");
    assert_int_equal (s_run_stderr (errfile), 2);
    text = cm_file_read (errfile, 65536, &len);
    assert_non_null (strstr (text, "SAFESHARE_CURVE_ALLOW_DIR"));
    free (text);
    snprintf (g.env_allow, sizeof g.env_allow, "%s", saved);
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        fprintf (stderr, "usage: %s SAFESHARE_STORAGE_BINARY\n", argv[0]);
        return 2;
    }
    g.bin = argv[1];
    cm_log_init ("test", CM_LOG_WARN);
    zsys_init ();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_allowed_answered_unknown_refused, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_readable_secret_refused, s_setup,
                                         s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
