/*  cm_testing -- start and stop real binaries from tests.               */
#include "cm_testing.h"
#include "cm_config.h"
#include "cm_db.h"
#include "cm_util.h"

#include <czmq.h>

#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

char *
cm_test_tmpdir (void)
{
    char tmpl[] = "/tmp/safeshare-test-XXXXXX";
    return mkdtemp (tmpl) ? strdup (tmpl) : NULL;
}

static int
s_rm (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove (path);
}

int
cm_test_rmrf (const char *dir)
{
    return nftw (dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

pid_t
cm_test_spawn (const char *binary, char *const argv[], char *const env_extra[])
{
    size_t n = 0, extra = 0;
    while (environ[n]) {
        n++;
    }
    while (env_extra && env_extra[extra]) {
        extra++;
    }
    char **env = calloc (n + extra + 1, sizeof *env);
    if (!env) {
        return -1;
    }
    size_t k = 0;
    /* Extra entries override inherited ones with the same name. */
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr (environ[i], '=');
        size_t len = eq ? (size_t)(eq - environ[i]) : strlen (environ[i]);
        int overridden = 0;
        for (size_t j = 0; j < extra; j++) {
            if (strncmp (env_extra[j], environ[i], len) == 0 &&
                env_extra[j][len] == '=') {
                overridden = 1;
            }
        }
        if (!overridden) {
            env[k++] = environ[i];
        }
    }
    for (size_t j = 0; j < extra; j++) {
        env[k++] = env_extra[j];
    }
    /* fork + exec rather than posix_spawn: the child must die with the
       test (PR_SET_PDEATHSIG), or a crashed test leaves a service running
       that holds ctest's output pipe open and hangs the run. Only
       async-signal-safe calls between fork and exec.                   */
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent) {
            _exit (127);
        }
        execve (binary, argv, env);
        _exit (127);
    }
    free (env);
    return pid;
}

static void
s_sleep_ms (long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep (&ts, NULL);
}

static int
s_decode (int status)
{
    if (WIFEXITED (status)) {
        return WEXITSTATUS (status);
    }
    if (WIFSIGNALED (status)) {
        return 128 + WTERMSIG (status);
    }
    return -1;
}

int
cm_test_stop (pid_t pid, int timeout_ms)
{
    int status;
    if (kill (pid, SIGTERM) != 0 && errno != ESRCH) {
        return -1;
    }
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        pid_t r = waitpid (pid, &status, WNOHANG);
        if (r == pid) {
            return s_decode (status);
        }
        if (r < 0) {
            return -1;
        }
        s_sleep_ms (10);
    }
    kill (pid, SIGKILL);
    if (waitpid (pid, &status, 0) != pid) {
        return -1;
    }
    return s_decode (status);
}

int
cm_test_exited (pid_t pid)
{
    int status;
    return waitpid (pid, &status, WNOHANG) == pid;
}

int
cm_test_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind (fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname (fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs (a.sin_port);
    }
    if (fd >= 0) {
        close (fd);
    }
    return port;
}

int
cm_test_pg_schema_url (char schema[40], char *url, size_t url_len)
{
    const char *mode = getenv ("SAFESHARE_TEST_DB");
    if (!mode || strcmp (mode, "pg") != 0) {
        return 1;
    }
    const char *base = getenv ("SAFESHARE_TEST_PG_URL");
    if (!base || !*base) {
        fprintf (stderr, "FAIL: SAFESHARE_TEST_DB=pg needs SAFESHARE_TEST_PG_URL"
                         " (scripts/test.sh starts a cluster and sets it)\n");
        return -1;
    }
    char hex[17], sql[80];
    if (cm_random_hex (hex, 8) != 0) {
        return -1;
    }
    snprintf (schema, 40, "t_%s", hex);
    snprintf (url, url_len, "%s%soptions=-csearch_path%%3D%s", base,
              strchr (base, '?') ? "&" : "?", schema);
    snprintf (sql, sizeof sql, "CREATE SCHEMA %s", schema);
    cm_db_t *admin = cm_db_open (base);
    int rc = admin && cm_db_exec (admin, sql, 0, NULL) == CM_DB_OK ? 0 : -1;
    cm_db_destroy (&admin);
    return rc;
}

int
cm_test_pg_schema_drop (const char *schema)
{
    if (!schema[0]) {
        return 0;
    }
    char sql[80];
    snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    cm_db_t *admin = cm_db_open (getenv ("SAFESHARE_TEST_PG_URL"));
    int rc = admin && cm_db_exec (admin, sql, 0, NULL) == CM_DB_OK ? 0 : -1;
    cm_db_destroy (&admin);
    return rc;
}

char *
cm_test_b64url (const void *data, size_t len)
{
    char *out = malloc (CM_B64URL_LEN (len) + 1);
    if (out) {
        cm_b64url_encode (out, data, len);
    }
    return out;
}

char *
cm_test_jws_input (const char *header, const char *payload)
{
    char *h = cm_test_b64url (header, strlen (header));
    char *p = cm_test_b64url (payload, strlen (payload));
    char *out = NULL;
    if (h && p && asprintf (&out, "%s.%s", h, p) < 0) {
        out = NULL;
    }
    free (h);
    free (p);
    return out;
}

int
cm_test_curve_keypair (const char *keys_dir, const char *name)
{
    char dir[1024], path[1200];
    snprintf (dir, sizeof dir, "%s/%s", keys_dir, name);
    if (cm_mkdirs (dir, 0700) != 0) {
        return -1;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        return -1;
    }
    snprintf (path, sizeof path, "%s/%s.key", dir, name);
    int rc = zcert_save_public (cert, path);
    snprintf (path, sizeof path, "%s/%s.key_secret", dir, name);
    if (rc == 0) {
        rc = zcert_save_secret (cert, path);
    }
    /* zcert_save_secret leaves an existing file's mode as it was. */
    if (rc == 0) {
        rc = chmod (path, 0600);
    }
    zcert_destroy (&cert);
    return rc == 0 ? 0 : -1;
}

int
cm_test_curve_publish (const char *keys_dir, const char *name, const char *to_dir,
                       const char *as)
{
    char from[1200], to[1200];
    snprintf (from, sizeof from, "%s/%s/%s.key", keys_dir, name, name);
    snprintf (to, sizeof to, "%s/%s.key", to_dir, as);
    size_t len = 0;
    char *text = cm_file_read (from, 65536, &len);
    if (!text) {
        return -1;
    }
    int rc = cm_file_write_atomic (to, text, len, 0644);
    free (text);
    return rc;
}
