/*  maild_test_proc -- mailer + SMTP server processes for service tests. */
#include "maild_test_proc.h"
#include "cm_db.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static Safeshare__MailReply *
s_call (maild_test_t *t, Safeshare__MailRequest *req, int timeout_ms)
{
    char reqbuf[65];
    Safeshare__Meta meta;
    cm_meta_init (&meta, reqbuf, NULL, timeout_ms);
    req->meta = &meta;
    ProtobufCMessage *reply = NULL;
    cm_status_t rc =
        cm_rpc_call (t->client, &req->base, NULL, &safeshare__mail_reply__descriptor,
                     timeout_ms, &reply, NULL);
    req->meta = NULL;
    return rc == CM_OK ? (Safeshare__MailReply *)reply : NULL;
}

static Safeshare__MailReply *
s_health (maild_test_t *t, int timeout_ms)
{
    Safeshare__HealthRequest health = SAFESHARE__HEALTH_REQUEST__INIT;
    Safeshare__MailRequest req = SAFESHARE__MAIL_REQUEST__INIT;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_HEALTH;
    req.health = &health;
    return s_call (t, &req, timeout_ms);
}

int
maild_test_start (maild_test_t *t, const char *binary, const char *dir,
                  char *const env_extra[])
{
    memset (t, 0, sizeof *t);
    t->pid = -1;
    snprintf (t->dir, sizeof t->dir, "%s", dir);
    snprintf (t->endpoint, sizeof t->endpoint, "ipc://%s/run/mailer.sock", dir);
    snprintf (t->db_path, sizeof t->db_path, "%s/mailer.db", dir);
    char data_env[600];
    snprintf (data_env, sizeof data_env, "SAFESHARE_DATA_DIR=%s", dir);
    char *env[32];
    size_t n = 0;
    env[n++] = data_env;
    env[n++] = "SAFESHARE_LOG_LEVEL=debug";
    for (size_t i = 0; env_extra && env_extra[i] && n < 31; i++) {
        env[n++] = env_extra[i];
    }
    env[n] = NULL;
    char *argv[] = {(char *)binary, NULL};
    t->pid = cm_test_spawn (binary, argv, env);
    if (t->pid < 0) {
        return -1;
    }
    t->client = cm_sock_client (t->endpoint, "mailer");
    uint64_t deadline = cm_mono_ms () + 15000;
    while (t->client && cm_mono_ms () < deadline) {
        if (cm_test_exited (t->pid)) {
            fprintf (stderr, "safeshare-mailer exited during start-up\n");
            t->pid = -1;
            return -1;
        }
        Safeshare__MailReply *r = s_health (t, 200);
        if (r) {
            int ok = r->status == CM_OK;
            safeshare__mail_reply__free_unpacked (r, NULL);
            if (ok) {
                return 0;
            }
        }
    }
    fprintf (stderr, "safeshare-mailer not ready within 15 s\n");
    return -1;
}

int
maild_test_stop (maild_test_t *t)
{
    zsock_destroy (&t->client);
    int rc = -1;
    if (t->pid > 0) {
        rc = cm_test_stop (t->pid, 10000);
    }
    t->pid = -1;
    return rc;
}

void
maild_test_kill9 (maild_test_t *t)
{
    zsock_destroy (&t->client);
    if (t->pid > 0) {
        kill (t->pid, SIGKILL);
        waitpid (t->pid, NULL, 0);
    }
    t->pid = -1;
}

Safeshare__MailReply *
maild_test_send (maild_test_t *t, const char *job, const char *tpl, const char *to,
                 const char *n1, const char *v1, const char *n2, const char *v2)
{
    Safeshare__MailVar var1 = SAFESHARE__MAIL_VAR__INIT, var2 = SAFESHARE__MAIL_VAR__INIT;
    Safeshare__MailVar *vars[2];
    size_t nvars = 0;
    if (n1) {
        var1.name = (char *)n1, var1.value = (char *)v1;
        vars[nvars++] = &var1;
    }
    if (n2) {
        var2.name = (char *)n2, var2.value = (char *)v2;
        vars[nvars++] = &var2;
    }
    Safeshare__MailSendRequest send = SAFESHARE__MAIL_SEND_REQUEST__INIT;
    send.job_id = (char *)job;
    send.template_ = (char *)(tpl ? tpl : "verify_email");
    send.to = (char *)to;
    send.n_vars = nvars;
    send.vars = vars;
    Safeshare__MailRequest req = SAFESHARE__MAIL_REQUEST__INIT;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_SEND;
    req.send = &send;
    return s_call (t, &req, 5000);
}

Safeshare__MailReply *
maild_test_stats (maild_test_t *t)
{
    Safeshare__MailStatsRequest stats = SAFESHARE__MAIL_STATS_REQUEST__INIT;
    Safeshare__MailRequest req = SAFESHARE__MAIL_REQUEST__INIT;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_STATS;
    req.stats = &stats;
    return s_call (t, &req, 5000);
}

int
maild_test_count_files (const char *dir)
{
    DIR *d = opendir (dir);
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        n += e->d_name[0] != '.';
    }
    closedir (d);
    return n;
}

int
maild_test_wait_files (const char *dir, int n, int timeout_ms)
{
    uint64_t deadline = cm_mono_ms () + (uint64_t)timeout_ms;
    int have = maild_test_count_files (dir);
    while (have < n && cm_mono_ms () < deadline) {
        usleep (20000);
        have = maild_test_count_files (dir);
    }
    return have;
}

char *
maild_test_read_first (const char *dir, size_t *len)
{
    DIR *d = opendir (dir);
    if (!d) {
        return NULL;
    }
    char *out = NULL;
    struct dirent *e;
    while (!out && (e = readdir (d))) {
        if (e->d_name[0] != '.') {
            char path[1200];
            snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
            out = cm_file_read (path, 1 << 20, len);
        }
    }
    closedir (d);
    return out;
}

int
maild_test_free_port (void)
{
    return cm_test_free_port ();
}

/* True once a connection to port gets "220 " first. */
static bool
s_banner (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    bool ok = false;
    if (fd >= 0 && connect (fd, (struct sockaddr *)&a, sizeof a) == 0) {
        struct timeval tv = {.tv_sec = 2};
        setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[64] = "";
        ssize_t n = recv (fd, buf, sizeof buf - 1, 0);
        ok = n >= 4 && strncmp (buf, "220 ", 4) == 0;
        send (fd, "QUIT\r\n", 6, MSG_NOSIGNAL);
    }
    if (fd >= 0) {
        close (fd);
    }
    return ok;
}

pid_t
maild_test_smtp_start (const char *script, int port, const char *maildir,
                       const char *const args[])
{
    char portbuf[16];
    snprintf (portbuf, sizeof portbuf, "%d", port);
    char *argv[24];
    size_t n = 0;
    argv[n++] = (char *)script;
    argv[n++] = portbuf;
    argv[n++] = (char *)maildir;
    for (size_t i = 0; args && args[i] && n < 23; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    pid_t pid = cm_test_spawn (script, argv, NULL);
    if (pid < 0) {
        return -1;
    }
    uint64_t deadline = cm_mono_ms () + 15000;
    while (cm_mono_ms () < deadline) {
        if (cm_test_exited (pid)) {
            fprintf (stderr, "the SMTP test server exited during start-up\n");
            return -1;
        }
        if (s_banner (port)) {
            return pid;
        }
        usleep (50000);
    }
    fprintf (stderr, "the SMTP test server gave no 220 banner within 15 s\n");
    cm_test_stop (pid, 2000);
    return -1;
}

int
maild_test_make_cert_for (const char *cert, const char *key, const char *san)
{
    char cmd[2048];
    snprintf (
        cmd, sizeof cmd,
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=safeshare-test "
        "-addext subjectAltName=%s -keyout '%s' -out '%s' >/dev/null 2>&1",
        san, key, cert);
    return system (cmd) == 0 ? 0 : -1;
}

int
maild_test_make_cert (const char *cert, const char *key)
{
    return maild_test_make_cert_for (cert, key, "IP:127.0.0.1,DNS:localhost");
}

char *
maild_test_job_field (maild_test_t *t, const char *job, const char *column)
{
    char url[700], sql[200];
    snprintf (url, sizeof url, "sqlite:%s", t->db_path);
    snprintf (sql, sizeof sql, "SELECT %s FROM mail_jobs WHERE id = $1", column);
    cm_db_t *db = cm_db_open (url);
    if (!db) {
        return NULL;
    }
    const char *p[] = {job};
    cm_db_res_t *res = cm_db_query (db, sql, 1, p);
    const char *v = cm_db_res_rows (res) == 1 ? cm_db_res_get (res, 0, 0) : NULL;
    char *out = v ? strdup (v) : NULL;
    cm_db_res_free (&res);
    cm_db_destroy (&db);
    return out;
}
