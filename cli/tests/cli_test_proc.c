/*  cli_test_proc -- running the `safeshare` binary from tests.          */
#include "cli_test_proc.h"
#include "cm_testing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

pid_t
cli_test_spawn (const char *binary, char *const argv[], const char *stdin_data,
                int stdout_fd, int stderr_fd)
{
    int in[2];
    if (pipe (in) != 0) {
        return -1;
    }
    pid_t pid = fork ();
    if (pid == 0) {
        dup2 (in[0], STDIN_FILENO);
        close (in[0]);
        close (in[1]);
        if (stdout_fd >= 0) {
            dup2 (stdout_fd, STDOUT_FILENO);
        }
        if (stderr_fd >= 0) {
            dup2 (stderr_fd, STDERR_FILENO);
        }
        execv (binary, argv);
        _exit (127);
    }
    close (in[0]);
    if (pid > 0 && stdin_data) {
        /* Small inputs only: they fit in the pipe buffer. */
        ssize_t n = write (in[1], stdin_data, strlen (stdin_data));
        (void)n;
    }
    close (in[1]);
    return pid;
}

long
cli_test_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void
cli_test_clear_safeshare_env (void)
{
    extern char **environ;
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp (*e, "SAFESHARE_", 10) == 0) {
                size_t n = strcspn (*e, "=");
                snprintf (name, sizeof name, "%.*s", (int)n, *e);
                break;
            }
        }
        if (!*name) {
            return;
        }
        unsetenv (name);
    }
}

int
cli_test_wait (pid_t pid, int timeout_ms)
{
    long deadline = cli_test_ms () + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid (pid, &status, WNOHANG);
        if (r == pid) {
            return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
        }
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (cli_test_ms () >= deadline) {
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            return -1;
        }
        usleep (5000); /* polling a child's exit; the deadline bounds it */
    }
}

void
cli_test_free2 (char **out, char **err)
{
    free (*out);
    free (*err);
    *out = *err = NULL;
}

char *
cli_test_slurp (const char *path, size_t *len_out)
{
    FILE *f = fopen (path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc (cap + 1);
    size_t n;
    while ((n = fread (buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc (buf, cap + 1);
        }
    }
    fclose (f);
    buf[len] = '\0';
    if (len_out) {
        *len_out = len;
    }
    return buf;
}

static char *
s_read_all (FILE *f)
{
    fflush (f);
    rewind (f);
    size_t cap = 4096, len = 0;
    char *buf = malloc (cap + 1);
    size_t n;
    while ((n = fread (buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc (buf, cap + 1);
        }
    }
    buf[len] = '\0';
    return buf;
}

int
cli_test_run (const char *binary, char *const argv[], const char *stdin_data, char **out,
              char **err)
{
    FILE *fo = tmpfile (), *fe = tmpfile ();
    if (!fo || !fe) {
        return -1;
    }
    pid_t pid = cli_test_spawn (binary, argv, stdin_data, fileno (fo), fileno (fe));
    int rc = pid > 0 ? cli_test_wait (pid, 30000) : -1;
    char *o = s_read_all (fo), *e = s_read_all (fe);
    fclose (fo);
    fclose (fe);
    if (out) {
        *out = o;
    } else {
        free (o);
    }
    if (err) {
        *err = e;
    } else {
        free (e);
    }
    return rc;
}

int
cli_test_vrun (const char *binary, const char *stdin_data, char **out, char **err,
               va_list args)
{
    char *argv[16] = {"safeshare"};
    int n = 1;
    for (const char *a; n < 15 && (a = va_arg (args, const char *));) {
        argv[n++] = (char *)a;
    }
    argv[n] = NULL;
    return cli_test_run (binary, argv, stdin_data, out, err);
}

int
cli_test_runl (const char *binary, char **out, char **err, ...)
{
    va_list ap;
    va_start (ap, err);
    int rc = cli_test_vrun (binary, NULL, out, err, ap);
    va_end (ap);
    return rc;
}

unsigned
cli_test_mode (const char *dir, const char *rel)
{
    char path[4096];
    struct stat st;
    if ((size_t)snprintf (path, sizeof path, "%s/%s", dir, rel) >= sizeof path ||
        stat (path, &st) != 0) {
        return 0xffffffffu;
    }
    return (unsigned)(st.st_mode & 07777);
}

int
cli_test_free_port (void)
{
    int port = cm_test_free_port ();
    assert_true (port > 0);
    return port;
}
