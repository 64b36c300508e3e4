/*  svc_cli_up_restart -- `safeshare up` with the real services: after the
    stack was ready, a kill -9 of storage and then of the gateway brings a
    new process of that service (after the 200 ms backoff) and /readyz
    answers 200 again while the other services keep their pids; a storage
    that cannot start any more (its --config file now has a bad value,
    which the running services never re-read) ends `up` with exit 1 after
    the sixth death within 60 s. Nothing is ever left running: the test
    is a child subreaper, so a service orphaned by `up` would come to it.

    usage: svc_cli_up_restart BIN_DIR (safeshare and safeshare-* in it)  */
#include "cli_probe.h"
#include "cli_test_proc.h"
#include "cm_testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char s_safeshare[PATH_MAX];
static const char *const s_names[] = {"safeshare-crypto", "safeshare-storage",
                                      "safeshare-auth", "safeshare-mailer",
                                      "safeshare-gateway"};
#define S_NSVC    5
#define S_STORAGE 1
#define S_GATEWAY 4
/* Generous: the sanitizer build starts services slowly. */
#define S_READY_MS 60000

typedef struct {
    char *root;
    char log[600];    /* stdout + stderr of `up` and its services */
    char config[600]; /* --config FILE */
    char addr[64];
    pid_t up;
} s_env_t;

static int
s_setup (void **state)
{
    s_env_t *e = calloc (1, sizeof *e);
    e->root = cm_test_tmpdir ();
    assert_non_null (e->root);
    char data[600];
    snprintf (data, sizeof data, "%s/data", e->root);
    snprintf (e->log, sizeof e->log, "%s/up.log", e->root);
    snprintf (e->config, sizeof e->config, "%s/safeshare.conf", e->root);
    snprintf (e->addr, sizeof e->addr, "127.0.0.1:%d", cli_test_free_port ());
    char url[80];
    snprintf (url, sizeof url, "http://%s", e->addr);
    cli_test_clear_safeshare_env ();
    setenv ("SAFESHARE_DATA_DIR", data, 1);
    setenv ("SAFESHARE_HTTP_ADDR", e->addr, 1);
    setenv ("SAFESHARE_PUBLIC_URL", url, 1);
    FILE *f = fopen (e->config, "w");
    assert_non_null (f);
    fputs ("SAFESHARE_LOG_LEVEL=warn\n", f);
    fclose (f);
    *state = e;
    return 0;
}

/* Never leaves a process behind, even after a failed assertion. */
static int
s_teardown (void **state)
{
    s_env_t *e = *state;
    if (e->up > 0) {
        /* killed if still running; its services follow (PR_SET_PDEATHSIG)
           and come to us, the subreaper, to be reaped below */
        cli_test_wait (e->up, 0);
    }
    long deadline = cli_test_ms () + 10000;
    while (waitpid (-1, NULL, WNOHANG) >= 0 && cli_test_ms () < deadline) {
        usleep (10000);
    }
    cm_test_rmrf (e->root);
    free (e->root);
    free (e);
    return 0;
}

static char *
s_log (s_env_t *e)
{
    char *text = cli_test_slurp (e->log, NULL);
    return text ? text : strdup ("");
}

/* The pid of the child of `up` that runs `name` (its argv[0]), or 0.
   From /proc/N/stat (task/N/children needs CONFIG_PROC_CHILDREN).     */
static pid_t
s_child_pid (pid_t up, const char *name)
{
    DIR *dir = opendir ("/proc");
    assert_non_null (dir);
    pid_t found = 0;
    struct dirent *de;
    while (!found && (de = readdir (dir))) {
        pid_t pid = (pid_t)atoi (de->d_name);
        if (pid <= 0) {
            continue;
        }
        char path[300];
        snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
        char *stat = cli_test_slurp (path, NULL);
        const char *end = stat ? strrchr (stat, ')') : NULL;
        int ppid = 0;
        char st;
        if (end && sscanf (end + 1, " %c %d", &st, &ppid) == 2 && ppid == (int)up) {
            snprintf (path, sizeof path, "/proc/%d/cmdline", (int)pid);
            char *cmd = cli_test_slurp (path, NULL);
            if (cmd && strcmp (cmd, name) == 0) {
                found = pid;
            }
            free (cmd);
        }
        free (stat);
    }
    closedir (dir);
    return found;
}

/* Starts `safeshare --config FILE up`, waits for its banner. */
static void
s_up (s_env_t *e)
{
    int fd = open (e->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true (fd >= 0);
    char *argv[] = {"safeshare", "--config", e->config, "up", NULL};
    e->up = cli_test_spawn (s_safeshare, argv, NULL, fd, fd);
    close (fd);
    assert_true (e->up > 0);
    long deadline = cli_test_ms () + S_READY_MS;
    for (;;) {
        char *log = s_log (e);
        int ready = strstr (log, "Ctrl-C stops\n") != NULL;
        if (ready) {
            free (log);
            return;
        }
        int st;
        if (waitpid (e->up, &st, WNOHANG) == e->up) {
            e->up = 0;
            fail_msg ("safeshare up exited before it was ready:\n%s", log);
        }
        free (log);
        if (cli_test_ms () > deadline) {
            fail_msg ("safeshare up was not ready within %d s", S_READY_MS / 1000);
        }
        usleep (20000);
    }
}

static void
s_pids (s_env_t *e, pid_t pids[S_NSVC])
{
    for (int i = 0; i < S_NSVC; i++) {
        pids[i] = s_child_pid (e->up, s_names[i]);
        assert_true (pids[i] > 0);
    }
}

static void
s_wait_readyz (s_env_t *e, int timeout_ms)
{
    long deadline = cli_test_ms () + timeout_ms;
    int status;
    while ((status = cli_probe_http (e->addr, "/readyz", 2000, -1)) != 200) {
        if (cli_test_ms () > deadline) {
            fail_msg ("/readyz answered %d, not 200, for %d s", status,
                      timeout_ms / 1000);
        }
        usleep (50000);
    }
}

/* `up` exited (status as cli_test_wait) and no service outlived it. */
static void
s_assert_up_exits (s_env_t *e, int expect, int timeout_ms)
{
    int rc = cli_test_wait (e->up, timeout_ms);
    e->up = 0;
    if (rc != expect) {
        char *log = s_log (e);
        fail_msg ("safeshare up exited %d, expected %d:\n%s", rc, expect, log);
    }
    /* An orphan is re-parented to us when `up` exits: none may be. */
    assert_int_equal (waitpid (-1, NULL, WNOHANG), -1);
    assert_int_equal (errno, ECHILD);
}

/* kill -9 of storage, then of the gateway: each comes back, the stack
   is ready again, the other services are the same processes; SIGTERM
   then stops it all cleanly (exit 0).                                 */
static void
test_killed_services_come_back (void **state)
{
    s_env_t *e = *state;
    s_up (e);
    s_wait_readyz (e, 10000);
    pid_t pids[S_NSVC];
    s_pids (e, pids);
    const int victims[] = {S_STORAGE, S_GATEWAY};
    for (int v = 0; v < 2; v++) {
        int k = victims[v];
        pid_t old = pids[k];
        assert_int_equal (kill (old, SIGKILL), 0);
        long deadline = cli_test_ms () + 10000;
        pid_t now;
        while ((now = s_child_pid (e->up, s_names[k])) == 0 || now == old) {
            if (cli_test_ms () > deadline) {
                fail_msg ("%s was not restarted within 10 s", s_names[k]);
            }
            usleep (10000);
        }
        s_wait_readyz (e, 20000);
        for (int i = 0; i < S_NSVC; i++) {
            if (i != k) {
                assert_int_equal (s_child_pid (e->up, s_names[i]), pids[i]);
            }
        }
        char *log = s_log (e);
        char want[300];
        snprintf (want, sizeof want,
                  "safeshare: %s (pid %d) was killed by signal 9 (Killed); restarting it "
                  "in 200 ms\n",
                  s_names[k], (int)old);
        assert_non_null (strstr (log, want));
        snprintf (want, sizeof want, "safeshare: %s restarted (pid %d)\n", s_names[k],
                  (int)now);
        assert_non_null (strstr (log, want));
        free (log);
        pids[k] = now;
    }
    assert_int_equal (kill (e->up, SIGTERM), 0);
    s_assert_up_exits (e, 0, 20000);
    char *log = s_log (e);
    assert_null (strstr (log, "not every service stopped cleanly"));
    assert_null (strstr (log, "giving up"));
    free (log);
}

/* Storage can no longer start (SAFESHARE_LOG_LEVEL=loud in the config
   file it reads at start, exit 2): after a kill -9 it is tried again
   with backoff, and its sixth death within 60 s ends `up`, exit 1.    */
static void
test_crash_loop_ends_up (void **state)
{
    s_env_t *e = *state;
    s_up (e);
    s_wait_readyz (e, 10000);
    pid_t pids[S_NSVC];
    s_pids (e, pids);
    FILE *f = fopen (e->config, "w");
    assert_non_null (f);
    fputs ("SAFESHARE_LOG_LEVEL=loud\n", f);
    fclose (f);
    long t0 = cli_test_ms ();
    assert_int_equal (kill (pids[S_STORAGE], SIGKILL), 0);
    s_assert_up_exits (e, 1, 40000);
    long took = cli_test_ms () - t0;
    /* 200 + 400 + 800 + 1600 + 3200 ms of backoff, and not much more */
    assert_true (took >= 6000);
    assert_true (took < 20000);
    char *log = s_log (e);
    assert_non_null (strstr (log, "SAFESHARE_LOG_LEVEL=loud: must be one of"));
    assert_non_null (strstr (log, "safeshare: safeshare-storage (pid "));
    assert_non_null (strstr (log, ") exited with status 2; restarting it in 3200 ms\n"));
    assert_non_null (strstr (log, ") exited with status 2; it died 6 times within 60 "
                                  "s, giving up; stopping the others\n"));
    free (log);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: svc_cli_up_restart BIN_DIR\n");
        return 2;
    }
    if (snprintf (s_safeshare, sizeof s_safeshare, "%s/safeshare", argv[1]) >=
            (int)sizeof s_safeshare ||
        access (s_safeshare, X_OK) != 0) {
        fprintf (stderr, "svc_cli_up_restart: no executable %s\n", s_safeshare);
        return 2;
    }
    if (prctl (PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror ("prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_killed_services_come_back, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_loop_ends_up, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
