/*  svc_cli_up -- `safeshare up` as a supervisor, against fake service
    binaries (cli_fake_service, symlinked under each service's name, or
    shell scripts that exit at once): start order, readiness, fail-fast
    during start-up, restarts after it (backoff, giving up on a crash
    loop or an exec failure, Ctrl-C during a backoff), ordered shutdown,
    nothing left running -- kill -9 included. svc_cli_up_restart does
    the restarts with the real services.

    The test makes itself a child subreaper, so that a service orphaned
    by a dead `safeshare up` would be re-parented here and seen.

    usage: svc_cli_up PATH/TO/safeshare PATH/TO/cli_fake_service        */
#include "cli_test_proc.h"
#include "cm_testing.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static const char *s_safeshare;
static const char *s_fake;
static const char *const s_names[] = {"safeshare-crypto", "safeshare-storage",
                                      "safeshare-auth", "safeshare-mailer",
                                      "safeshare-gateway"};
#define S_NSVC 5

typedef struct {
    char *root; /* tmp dir: bin/, fake/, data/ */
    char bin[512], fake[512], data[512];
} s_env_t;

static int
s_setup (void **state)
{
    s_env_t *e = calloc (1, sizeof *e);
    e->root = cm_test_tmpdir ();
    assert_non_null (e->root);
    snprintf (e->bin, sizeof e->bin, "%s/bin", e->root);
    snprintf (e->fake, sizeof e->fake, "%s/fake", e->root);
    snprintf (e->data, sizeof e->data, "%s/data", e->root);
    assert_int_equal (mkdir (e->bin, 0755), 0);
    assert_int_equal (mkdir (e->fake, 0755), 0);
    char addr[64];
    snprintf (addr, sizeof addr, "127.0.0.1:%d", cli_test_free_port ());
    setenv ("SAFESHARE_HTTP_ADDR", addr, 1);
    setenv ("SAFESHARE_DATA_DIR", e->data, 1);
    setenv ("SAFESHARE_BIN_DIR", e->bin, 1);
    setenv ("FAKE_DIR", e->fake, 1);
    *state = e;
    return 0;
}

static int
s_teardown (void **state)
{
    s_env_t *e = *state;
    cm_test_rmrf (e->root);
    free (e->root);
    free (e);
    return 0;
}

/* bin/<name> -> the fake service. */
static void
s_link_fake (s_env_t *e, const char *name)
{
    char path[600];
    snprintf (path, sizeof path, "%s/%s", e->bin, name);
    unlink (path);
    assert_int_equal (symlink (s_fake, path), 0);
}

/* bin/<name>: a script that records its pid and exits 3 at once. */
static void
s_script_exit (s_env_t *e, const char *name)
{
    char path[600];
    snprintf (path, sizeof path, "%s/%s", e->bin, name);
    unlink (path);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fprintf (f, "#!/bin/sh\necho $$ > \"$FAKE_DIR/%s.pid\"\nexit 3\n", name);
    fclose (f);
    assert_int_equal (chmod (path, 0755), 0);
}

static pid_t
s_pid_of (s_env_t *e, const char *name)
{
    char path[600];
    snprintf (path, sizeof path, "%s/%s.pid", e->fake, name);
    char *text = cli_test_slurp (path, NULL);
    pid_t pid = text ? (pid_t)atoi (text) : 0;
    free (text);
    return pid;
}

/* Waits until every fake in names[0..n) has written its pid file (its
   SIGTERM handler is then in place). */
static void
s_wait_started (s_env_t *e, int n, int timeout_ms)
{
    long deadline = cli_test_ms () + timeout_ms;
    for (int i = 0; i < n; i++) {
        while (s_pid_of (e, s_names[i]) <= 0) {
            if (cli_test_ms () > deadline) {
                fail_msg ("%s did not start", s_names[i]);
            }
            usleep (5000);
        }
    }
}

/* Gone: reaped here (an orphan re-parented to us), or no such process,
   or a zombie that is not ours to reap.                               */
static int
s_gone (pid_t pid)
{
    int st;
    if (waitpid (pid, &st, WNOHANG) == pid) {
        return 1;
    }
    if (kill (pid, 0) != 0 && errno == ESRCH) {
        return 1;
    }
    char path[64];
    snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
    char *stat = cli_test_slurp (path, NULL);
    int zombie = stat && strstr (stat, ") Z ") != NULL;
    free (stat);
    return zombie;
}

/* Every recorded service pid is gone within timeout_ms. */
static void
s_assert_all_gone (s_env_t *e, int timeout_ms)
{
    long deadline = cli_test_ms () + timeout_ms;
    for (int i = 0; i < S_NSVC; i++) {
        pid_t pid = s_pid_of (e, s_names[i]);
        if (pid <= 0) {
            continue;
        }
        while (!s_gone (pid)) {
            if (cli_test_ms () > deadline) {
                /* never leave it behind, even when failing */
                for (int j = 0; j < S_NSVC; j++) {
                    pid_t other = s_pid_of (e, s_names[j]);
                    if (other > 0 && !s_gone (other)) {
                        kill (other, SIGKILL);
                    }
                }
                while (waitpid (-1, NULL, 0) > 0) {
                }
                fail_msg ("%s (pid %d) is still running", s_names[i], (int)pid);
            }
            usleep (10000);
        }
    }
    /* and nothing else was left to us */
    assert_int_equal (waitpid (-1, NULL, WNOHANG), -1);
    assert_int_equal (errno, ECHILD);
}

/* Reads the child's stdout until `needle` shows up (or EOF / timeout). */
static int
s_wait_output (int fd, const char *needle, char *buf, size_t len, int timeout_ms)
{
    long deadline = cli_test_ms () + timeout_ms;
    size_t got = strlen (buf);
    while (!strstr (buf, needle)) {
        long left = deadline - cli_test_ms ();
        if (left <= 0 || got >= len - 1) {
            return -1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll (&p, 1, (int)left) <= 0) {
            continue;
        }
        ssize_t n = read (fd, buf + got, len - 1 - got);
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
        buf[got] = '\0';
    }
    return 0;
}

/* Starts `safeshare [--config FILE] up`; stdout on *out_fd (a pipe). */
static pid_t
s_start_up (const char *config, int *out_fd)
{
    int p[2];
    assert_int_equal (pipe (p), 0);
    char *argv[] = {"safeshare", config ? "--config" : "up", (char *)config,
                    config ? "up" : NULL, NULL};
    pid_t pid = cli_test_spawn (s_safeshare, argv, NULL, p[1], -1);
    close (p[1]);
    assert_true (pid > 0);
    *out_fd = p[0];
    return pid;
}

static char *
s_stopped_log (s_env_t *e)
{
    char path[600];
    snprintf (path, sizeof path, "%s/stopped.log", e->fake);
    char *log = cli_test_slurp (path, NULL);
    return log ? log : strdup ("");
}

/* Every service exits at once: up fails fast, exit 1. */
static void
test_all_exit_at_once (void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < S_NSVC; i++) {
        s_script_exit (e, s_names[i]);
    }
    char *argv[] = {"safeshare", "up", NULL};
    char *out, *err;
    long t0 = cli_test_ms ();
    assert_int_equal (cli_test_run (s_safeshare, argv, NULL, &out, &err), 1);
    assert_true (cli_test_ms () - t0 < 5000);
    assert_non_null (strstr (err, "exited with status 3; stopping the others"));
    assert_null (strstr (out, "safeshare is up"));
    free (out);
    free (err);
    s_assert_all_gone (e, 1000);
}

/* The gateway dies at start: the four running services are stopped in
   reverse order and up exits 1 well before the readiness timeout.     */
static void
test_one_dies_others_stopped (void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < S_NSVC - 1; i++) {
        s_link_fake (e, s_names[i]);
    }
    /* The gateway dies once the others run (their handlers in place). */
    char path[600];
    snprintf (path, sizeof path, "%s/safeshare-gateway", e->bin);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fprintf (f, "#!/bin/sh\n"
                "for i in $(seq 1 1000); do\n"
                "  n=0\n"
                "  for s in crypto storage auth mailer; do\n"
                "    [ -e \"$FAKE_DIR/safeshare-$s.pid\" ] && n=$((n+1))\n"
                "  done\n"
                "  [ $n -eq 4 ] && break\n"
                "  sleep 0.01\n"
                "done\n"
                "echo $$ > \"$FAKE_DIR/safeshare-gateway.pid\"\n"
                "exit 3\n");
    fclose (f);
    assert_int_equal (chmod (path, 0755), 0);
    char *argv[] = {"safeshare", "up", NULL};
    char *out, *err;
    long t0 = cli_test_ms ();
    assert_int_equal (cli_test_run (s_safeshare, argv, NULL, &out, &err), 1);
    assert_true (cli_test_ms () - t0 < 10000);
    assert_non_null (strstr (err, "safeshare-gateway exited with status 3"));
    free (out);
    free (err);
    char *log = s_stopped_log (e);
    assert_string_equal (log, "safeshare-mailer\nsafeshare-auth\nsafeshare-storage\n"
                              "safeshare-crypto\n");
    free (log);
    s_assert_all_gone (e, 1000);
}

/* The whole run: first-run layout, readiness, banner, --config handed
   on, SIGTERM stops the services in reverse order, exit 0.           */
static void
test_up_ready_then_sigterm (void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < S_NSVC; i++) {
        s_link_fake (e, s_names[i]);
    }
    char config[600];
    snprintf (config, sizeof config, "%s/safeshare.conf", e->root);
    FILE *f = fopen (config, "w");
    fprintf (f, "# test\nSAFESHARE_LOG_LEVEL=warn\n");
    fclose (f);

    int out_fd;
    pid_t up = s_start_up (config, &out_fd);
    char buf[8192] = "";
    assert_int_equal (s_wait_output (out_fd, "Ctrl-C stops\n", buf, sizeof buf, 20000),
                      0);
    s_wait_started (e, S_NSVC, 10000);
    char expect[700];
    snprintf (expect, sizeof expect, "safeshare is up at http://%s\n",
              getenv ("SAFESHARE_HTTP_ADDR"));
    assert_non_null (strstr (buf, expect));
    snprintf (expect, sizeof expect, "mail is written to %s/mail\n", e->data);
    assert_non_null (strstr (buf, expect));
    snprintf (expect, sizeof expect, "data in %s\n", e->data);
    assert_non_null (strstr (buf, expect));
    assert_non_null (strstr (buf, "KEK "));

    /* first-run layout */
    const char *dirs[] = {"", "/run", "/blobs", "/mail", "/keys"};
    for (size_t i = 0; i < 5; i++) {
        char p[700];
        struct stat st;
        snprintf (p, sizeof p, "%s%s", e->data, dirs[i]);
        assert_int_equal (stat (p, &st), 0);
        assert_int_equal (st.st_mode & 0777, 0700);
    }
    char ring[700];
    snprintf (ring, sizeof ring, "%s/keys/kek.ring", e->data);
    assert_int_equal (access (ring, R_OK), 0);

    /* every service was started, with --config FILE */
    for (int i = 0; i < S_NSVC; i++) {
        char p[700];
        snprintf (p, sizeof p, "%s/%s.args", e->fake, s_names[i]);
        char *args = cli_test_slurp (p, NULL);
        assert_non_null (args);
        char want[1400];
        snprintf (want, sizeof want, "%s\n--config\n%s\n", s_names[i], config);
        assert_string_equal (args, want);
        free (args);
    }

    assert_int_equal (kill (up, SIGTERM), 0);
    assert_int_equal (cli_test_wait (up, 15000), 0);
    close (out_fd);
    char *log = s_stopped_log (e);
    assert_string_equal (log, "safeshare-gateway\nsafeshare-mailer\nsafeshare-auth\n"
                              "safeshare-storage\nsafeshare-crypto\n");
    free (log);
    s_assert_all_gone (e, 1000);
}

/* Never ready (/readyz answers 503), then Ctrl-C: everything is stopped
   in reverse order, exit 0, and no "is up" banner was ever printed.   */
static void
test_sigint_before_ready (void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < S_NSVC; i++) {
        s_link_fake (e, s_names[i]);
    }
    setenv ("FAKE_READYZ_STATUS", "503", 1);
    int out_fd;
    pid_t up = s_start_up (NULL, &out_fd);
    unsetenv ("FAKE_READYZ_STATUS");
    s_wait_started (e, S_NSVC, 10000);
    assert_int_equal (kill (up, SIGINT), 0);
    assert_int_equal (cli_test_wait (up, 15000), 0);
    char buf[8192] = "";
    assert_int_equal (s_wait_output (out_fd, "never printed", buf, sizeof buf, 1000), -1);
    assert_null (strstr (buf, "safeshare is up"));
    close (out_fd);
    char *log = s_stopped_log (e);
    assert_string_equal (log, "safeshare-gateway\nsafeshare-mailer\nsafeshare-auth\n"
                              "safeshare-storage\nsafeshare-crypto\n");
    free (log);
    s_assert_all_gone (e, 1000);
}

/* kill -9 of `safeshare up`: PR_SET_PDEATHSIG stops every service. */
static void
test_up_killed_leaves_nothing (void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < S_NSVC; i++) {
        s_link_fake (e, s_names[i]);
    }
    char *keys_argv[] = {"safeshare", "keys", "generate", NULL};
    assert_int_equal (cli_test_run (s_safeshare, keys_argv, NULL, NULL, NULL), 0);
    int out_fd;
    pid_t up = s_start_up (NULL, &out_fd);
    char buf[8192] = "";
    assert_int_equal (s_wait_output (out_fd, "Ctrl-C stops\n", buf, sizeof buf, 20000),
                      0);
    /* a second run keeps the existing KEK */
    assert_null (strstr (buf, "is now current"));
    s_wait_started (e, S_NSVC, 10000);
    assert_int_equal (kill (up, SIGKILL), 0);
    assert_int_equal (cli_test_wait (up, 5000), 128 + SIGKILL);
    close (out_fd);
    s_assert_all_gone (e, 10000);
    char *log = s_stopped_log (e);
    for (int i = 0; i < S_NSVC; i++) {
        assert_non_null (strstr (log, s_names[i]));
    }
    free (log);
}

/* A missing binary: clear error before anything starts. */
static void
test_missing_binary (void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < S_NSVC - 1; i++) {
        s_link_fake (e, s_names[i]);
    }
    char *argv[] = {"safeshare", "up", NULL};
    char *out, *err;
    assert_int_equal (cli_test_run (s_safeshare, argv, NULL, &out, &err), 1);
    assert_non_null (strstr (err, "safeshare-gateway is missing or not executable"));
    free (out);
    free (err);
    for (int i = 0; i < S_NSVC; i++) {
        assert_int_equal (s_pid_of (e, s_names[i]), 0); /* none started */
    }
}

/* Starts `safeshare [--config FILE] up` with stdout on *out_fd (a pipe)
   and stderr appended to err_path (services may write a lot there).  */
static pid_t
s_start_up_err (const char *config, int *out_fd, const char *err_path)
{
    int p[2];
    assert_int_equal (pipe (p), 0);
    int err_fd = open (err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true (err_fd >= 0);
    char *argv[] = {"safeshare", config ? "--config" : "up", (char *)config,
                    config ? "up" : NULL, NULL};
    pid_t pid = cli_test_spawn (s_safeshare, argv, NULL, p[1], err_fd);
    close (p[1]);
    close (err_fd);
    assert_true (pid > 0);
    *out_fd = p[0];
    return pid;
}

/* Waits until the file holds `needle`; 0, or -1 after timeout_ms. */
static int
s_wait_in_file (const char *path, const char *needle, int timeout_ms)
{
    long deadline = cli_test_ms () + timeout_ms;
    for (;;) {
        char *text = cli_test_slurp (path, NULL);
        int found = text && strstr (text, needle);
        free (text);
        if (found) {
            return 0;
        }
        if (cli_test_ms () > deadline) {
            return -1;
        }
        usleep (10000);
    }
}

/* Waits until names[i] runs with a pid other than `old`; the new pid. */
static pid_t
s_wait_new_pid (s_env_t *e, const char *name, pid_t old, int timeout_ms)
{
    long deadline = cli_test_ms () + timeout_ms;
    pid_t pid;
    while ((pid = s_pid_of (e, name)) == old || pid <= 0) {
        if (cli_test_ms () > deadline) {
            fail_msg ("%s was not restarted within %d ms", name, timeout_ms);
        }
        usleep (5000);
    }
    return pid;
}

static int
s_count_lines (const char *path)
{
    char *text = cli_test_slurp (path, NULL);
    int n = 0;
    for (const char *p = text; p && *p; p++) {
        n += *p == '\n';
    }
    free (text);
    return n;
}

/* bin/safeshare-storage: the fake the first time it starts; every later
   start records its pid in fake/storage.crashes and exits 3 at once.  */
static void
s_flaky_storage (s_env_t *e)
{
    char dir[600], real[700], path[600];
    snprintf (dir, sizeof dir, "%s/real", e->fake);
    assert_int_equal (mkdir (dir, 0755), 0);
    snprintf (real, sizeof real, "%s/safeshare-storage", dir);
    assert_int_equal (symlink (s_fake, real), 0);
    snprintf (path, sizeof path, "%s/safeshare-storage", e->bin);
    unlink (path);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fprintf (f, "#!/bin/sh\n"
                "if [ -e \"$FAKE_DIR/storage.once\" ]; then\n"
                "  echo $$ >> \"$FAKE_DIR/storage.crashes\"\n"
                "  exit 3\n"
                "fi\n"
                ": > \"$FAKE_DIR/storage.once\"\n"
                "exec \"$FAKE_DIR/real/safeshare-storage\" \"$@\"\n");
    fclose (f);
    assert_int_equal (chmod (path, 0755), 0);
}

/* Every service fake (storage flaky); `up` started and ready; the
   storage pid. */
static pid_t
s_up_with_flaky_storage (s_env_t *e, pid_t *up, int *out_fd, char *err_path,
                         size_t err_len)
{
    for (int i = 0; i < S_NSVC; i++) {
        if (i != 1) {
            s_link_fake (e, s_names[i]);
        }
    }
    s_flaky_storage (e);
    snprintf (err_path, err_len, "%s/up.err", e->root);
    *up = s_start_up_err (NULL, out_fd, err_path);
    char buf[8192] = "";
    assert_int_equal (s_wait_output (*out_fd, "Ctrl-C stops\n", buf, sizeof buf, 20000),
                      0);
    s_wait_started (e, S_NSVC, 10000);
    return s_pid_of (e, "safeshare-storage");
}

/* A service that exits 0 without being asked to is restarted after
   200 ms with the same arguments, in its own process group; the others
   keep running; a kill -9 of `up` then takes the new one down too
   (PR_SET_PDEATHSIG holds for a restarted child).                     */
static void
test_restart_after_clean_exit (void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < S_NSVC; i++) {
        s_link_fake (e, s_names[i]);
    }
    char config[600], err_path[600];
    snprintf (config, sizeof config, "%s/safeshare.conf", e->root);
    snprintf (err_path, sizeof err_path, "%s/up.err", e->root);
    FILE *f = fopen (config, "w");
    fprintf (f, "SAFESHARE_LOG_LEVEL=warn\n");
    fclose (f);
    int out_fd;
    pid_t up = s_start_up_err (config, &out_fd, err_path);
    char buf[8192] = "";
    assert_int_equal (s_wait_output (out_fd, "Ctrl-C stops\n", buf, sizeof buf, 20000),
                      0);
    s_wait_started (e, S_NSVC, 10000);
    pid_t before[S_NSVC];
    for (int i = 0; i < S_NSVC; i++) {
        before[i] = s_pid_of (e, s_names[i]);
    }
    char args_path[700];
    snprintf (args_path, sizeof args_path, "%s/safeshare-storage.args", e->fake);
    unlink (args_path);

    /* the fake exits 0 on SIGTERM: nobody asked `up` to stop */
    long t0 = cli_test_ms ();
    assert_int_equal (kill (before[1], SIGTERM), 0);
    pid_t now = s_wait_new_pid (e, "safeshare-storage", before[1], 5000);
    assert_true (cli_test_ms () - t0 >= 190);
    char want[1400];
    snprintf (want, sizeof want,
              "safeshare: safeshare-storage (pid %d) exited with status 0; restarting "
              "it in 200 ms\n",
              (int)before[1]);
    assert_int_equal (s_wait_in_file (err_path, want, 2000), 0);
    snprintf (want, sizeof want, "safeshare: safeshare-storage restarted (pid %d)\n",
              (int)now);
    assert_int_equal (s_wait_in_file (err_path, want, 2000), 0);
    char *args = cli_test_slurp (args_path, NULL);
    snprintf (want, sizeof want, "safeshare-storage\n--config\n%s\n", config);
    assert_non_null (args);
    assert_string_equal (args, want);
    free (args);
    assert_int_equal (getpgid (now), now);
    for (int i = 0; i < S_NSVC; i++) {
        if (i != 1) {
            assert_int_equal (s_pid_of (e, s_names[i]), before[i]);
            assert_int_equal (kill (before[i], 0), 0);
        }
    }

    assert_int_equal (kill (up, SIGKILL), 0);
    assert_int_equal (cli_test_wait (up, 5000), 128 + SIGKILL);
    close (out_fd);
    s_assert_all_gone (e, 10000);
}

/* kill -9 of storage, which then crashes at every start: restarts after
   200, 400, 800, 1600, 3200 ms, then the sixth death within 60 s ends
   `up`: the others stopped in reverse order, exit 1, one clear line.  */
static void
test_crash_loop_gives_up (void **state)
{
    s_env_t *e = *state;
    pid_t up;
    int out_fd;
    char err_path[600];
    pid_t storage = s_up_with_flaky_storage (e, &up, &out_fd, err_path, sizeof err_path);
    long t0 = cli_test_ms ();
    assert_int_equal (kill (storage, SIGKILL), 0);
    int rc = cli_test_wait (up, 30000);
    long took = cli_test_ms () - t0;
    close (out_fd);
    assert_int_equal (rc, 1);
    /* the backoffs were waited, and nothing more */
    assert_true (took >= 6000);
    assert_true (took < 15000);
    char *err = cli_test_slurp (err_path, NULL);
    assert_non_null (err);
    char want[300];
    snprintf (want, sizeof want,
              "safeshare: safeshare-storage (pid %d) was killed by signal 9 (Killed); "
              "restarting it in 200 ms\n",
              (int)storage);
    assert_non_null (strstr (err, want));
    const int delays[] = {400, 800, 1600, 3200};
    for (int i = 0; i < 4; i++) {
        snprintf (want, sizeof want, "exited with status 3; restarting it in %d ms\n",
                  delays[i]);
        assert_non_null (strstr (err, want));
    }
    assert_null (strstr (err, "restarting it in 6400 ms"));
    assert_non_null (strstr (err, "exited with status 3; it died 6 times within 60 s, "
                                  "giving up; stopping the others\n"));
    free (err);
    char crashes[600];
    snprintf (crashes, sizeof crashes, "%s/storage.crashes", e->fake);
    assert_int_equal (s_count_lines (crashes), 5);
    char *log = s_stopped_log (e);
    assert_string_equal (log, "safeshare-gateway\nsafeshare-mailer\nsafeshare-auth\n"
                              "safeshare-crypto\n");
    free (log);
    s_assert_all_gone (e, 1000);
}

/* Ctrl-C while storage waits 3.2 s for its restart: `up` stops the
   others at once and exits 0; storage is not started again.          */
static void
test_sigint_during_backoff (void **state)
{
    s_env_t *e = *state;
    pid_t up;
    int out_fd;
    char err_path[600];
    pid_t storage = s_up_with_flaky_storage (e, &up, &out_fd, err_path, sizeof err_path);
    assert_int_equal (kill (storage, SIGKILL), 0);
    assert_int_equal (s_wait_in_file (err_path, "restarting it in 3200 ms\n", 10000), 0);
    long t0 = cli_test_ms ();
    assert_int_equal (kill (up, SIGINT), 0);
    assert_int_equal (cli_test_wait (up, 5000), 0);
    assert_true (cli_test_ms () - t0 < 1500);
    close (out_fd);
    char crashes[600];
    snprintf (crashes, sizeof crashes, "%s/storage.crashes", e->fake);
    assert_int_equal (s_count_lines (crashes), 4);
    char *err = cli_test_slurp (err_path, NULL);
    assert_non_null (err);
    assert_non_null (strstr (err, "safeshare: stopping\n"));
    assert_null (strstr (err, "giving up"));
    assert_null (strstr (err, "not every service stopped cleanly"));
    free (err);
    char *log = s_stopped_log (e);
    assert_string_equal (log, "safeshare-gateway\nsafeshare-mailer\nsafeshare-auth\n"
                              "safeshare-crypto\n");
    free (log);
    s_assert_all_gone (e, 1000);
}

/* A restart that cannot exec (the binary lost its x bit) ends `up` at
   once with the reason, exit 1: no loop.                              */
static void
test_exec_failure_gives_up (void **state)
{
    s_env_t *e = *state;
    for (int i = 0; i < S_NSVC; i++) {
        s_link_fake (e, s_names[i]);
    }
    char err_path[600];
    snprintf (err_path, sizeof err_path, "%s/up.err", e->root);
    int out_fd;
    pid_t up = s_start_up_err (NULL, &out_fd, err_path);
    char buf[8192] = "";
    assert_int_equal (s_wait_output (out_fd, "Ctrl-C stops\n", buf, sizeof buf, 20000),
                      0);
    s_wait_started (e, S_NSVC, 10000);
    char path[600];
    snprintf (path, sizeof path, "%s/safeshare-storage", e->bin);
    assert_int_equal (unlink (path), 0);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs ("#!/bin/sh\nexit 0\n", f);
    fclose (f);
    assert_int_equal (chmod (path, 0644), 0);
    long t0 = cli_test_ms ();
    assert_int_equal (kill (s_pid_of (e, "safeshare-storage"), SIGKILL), 0);
    assert_int_equal (cli_test_wait (up, 10000), 1);
    assert_true (cli_test_ms () - t0 < 3000);
    close (out_fd);
    char *err = cli_test_slurp (err_path, NULL);
    char want[800];
    snprintf (want, sizeof want,
              "safeshare: cannot start safeshare-storage: execv(%s) failed: Permission "
              "denied\n",
              path);
    assert_non_null (err);
    assert_non_null (strstr (err, want));
    free (err);
    char *log = s_stopped_log (e);
    assert_string_equal (log, "safeshare-gateway\nsafeshare-mailer\nsafeshare-auth\n"
                              "safeshare-crypto\n");
    free (log);
    s_assert_all_gone (e, 1000);
}

int
main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr,
                 "usage: svc_cli_up PATH/TO/safeshare PATH/TO/cli_fake_service\n");
        return 2;
    }
    /* absolute: the fake is symlinked from another directory */
    static char fake[4096];
    if (!realpath (argv[2], fake)) {
        perror (argv[2]);
        return 2;
    }
    s_safeshare = argv[1];
    s_fake = fake;
    if (prctl (PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror ("prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_all_exit_at_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_one_dies_others_stopped, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_up_ready_then_sigterm, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_missing_binary, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sigint_before_ready, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_up_killed_leaves_nothing, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_restart_after_clean_exit, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_loop_gives_up, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sigint_during_backoff, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_exec_failure_gives_up, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    return rc;
}
