/*  svc_mailer_smtp -- the real safeshare-mailer against a real SMTP
    server (aiosmtpd, scripts/smtp-test-server.sh), each case with its
    own server and mailer: STARTTLS + AUTH delivers a well-formed
    message; a 5xx recipient is failed and never retried; STARTTLS
    required but not offered, a certificate we cannot verify or one for
    another name: nothing sent (retried, never in clear); a wrong
    password is retried, not failed; the server down during 5 jobs ->
    all 5 arrive once when it is back, every attempt counted; tls=none
    (explicit) works; a mailer stopped while its session is stalled
    (before the greeting, or in the TLS handshake after STARTTLS) exits
    0 at once -- under ASan, no leak -- and the job waits for the next
    run. Each case waits for the state it checks (a row's
    status, the counters), never for a number of attempts to fit in a
    time window; its mailer and server are stopped by the fixture's
    teardown even when an assertion fails.

    usage: test_maild_smtp PATH/TO/safeshare-mailer PATH/TO/smtp-test-server.sh */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maild_test_proc.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINK "http://127.0.0.1:8000/api/auth/verify?token=c210dGVzdF90b2tlbl8xMjM0NTY"

static const char *s_mailer;
static const char *s_script;
static char *s_root;
static char s_cert[600], s_key[600];

/* One case: a server (maybe none yet), a mailer, their dirs. What a
   check holds (a row's field, a message) is copied into the case
   first, so that a failed assertion leaks nothing.                  */
typedef struct {
    char dir[600];
    char maildir[700];
    char newdir[720];
    int port;
    pid_t smtp;
    maild_test_t mailer;
    char field[2048]; /* the last s_field/s_wait_field value */
    char *text;       /* a delivered message, freed by the teardown */
} s_case_t;

static int
s_case_init (s_case_t *c, const char *name)
{
    memset (c, 0, sizeof *c);
    c->smtp = -1;
    c->mailer.pid = -1;
    snprintf (c->dir, sizeof c->dir, "%s/%s", s_root, name);
    snprintf (c->maildir, sizeof c->maildir, "%s/maildir", c->dir);
    snprintf (c->newdir, sizeof c->newdir, "%s/new", c->maildir);
    c->port = maild_test_free_port ();
    return mkdir (c->dir, 0700) == 0 && c->port > 0 ? 0 : -1;
}

static void
s_case_smtp (s_case_t *c, const char *const args[])
{
    c->smtp = maild_test_smtp_start (s_script, c->port, c->maildir, args);
    assert_true (c->smtp > 0);
}

/* Starts the mailer with SAFESHARE_SMTP_URL=smtp://CRED127.0.0.1:PORTOPT. */
static void
s_case_mailer (s_case_t *c, const char *cred, const char *opt, bool with_ca)
{
    char url_env[450], ca_env[700];
    snprintf (url_env, sizeof url_env, "SAFESHARE_SMTP_URL=smtp://%s127.0.0.1:%d%s", cred,
              c->port, opt);
    snprintf (ca_env, sizeof ca_env, "SAFESHARE_SMTP_CA_FILE=%s", s_cert);
    char *env[] = {url_env,
                   /* Generous for a loaded machine or ASan; the lease
                      must cover 16 of them.                            */
                   "SAFESHARE_SMTP_TIMEOUT_MS=3000", "SAFESHARE_MAIL_LEASE_S=60",
                   "SAFESHARE_MAIL_RETRY_MIN_MS=200", "SAFESHARE_MAIL_RETRY_MAX_MS=800",
                   "SAFESHARE_MAIL_FROM=safeshare <no-reply@safeshare.test>",
                   "SAFESHARE_MAIL_REPLY_TO=Support <help@safeshare.test>",
                   with_ca ? ca_env : NULL, NULL};
    assert_int_equal (maild_test_start (&c->mailer, s_mailer, c->dir, env), 0);
}

/* Stops the mailer (which must exit cleanly) and the server. */
static void
s_case_end (s_case_t *c)
{
    int rc = maild_test_stop (&c->mailer);
    if (c->smtp > 0) {
        cm_test_stop (c->smtp, 5000);
        c->smtp = -1;
    }
    assert_int_equal (rc, 0);
}

/* The fixture: a case per test, whatever it left running stopped and
   freed in the teardown -- also after a failed assertion, which leaves
   the test by longjmp before its s_case_end.                          */
static int
s_setup (void **state)
{
    s_case_t *c = calloc (1, sizeof *c);
    if (!c) {
        return -1;
    }
    c->smtp = -1;
    c->mailer.pid = -1;
    *state = c;
    return 0;
}

static int
s_teardown (void **state)
{
    s_case_t *c = *state;
    if (c) {
        maild_test_stop (&c->mailer); /* nothing left to do after s_case_end */
        if (c->smtp > 0) {
            cm_test_stop (c->smtp, 5000);
        }
        free (c->text);
        free (c);
    }
    *state = NULL;
    return 0;
}

static void
s_send_ok (s_case_t *c, const char *job, const char *to)
{
    Safeshare__MailReply *r =
        maild_test_send (&c->mailer, job, NULL, to, "link", LINK, NULL, NULL);
    assert_non_null (r);
    int status = r->status;
    bool same = r->body_case == SAFESHARE__MAIL_REPLY__BODY_SEND && r->send &&
                r->send->job_id && strcmp (r->send->job_id, job) == 0;
    safeshare__mail_reply__free_unpacked (r, NULL);
    assert_int_equal (status, CM_OK);
    assert_true (same);
}

/* Copies one column of the job's row into c->field. false: no row or
   a NULL value ("" then).                                           */
static bool
s_field (s_case_t *c, const char *job, const char *column)
{
    char *v = maild_test_job_field (&c->mailer, job, column);
    snprintf (c->field, sizeof c->field, "%s", v ? v : "");
    free (v);
    return v != NULL;
}

/* Polls the job's row until column equals want (or contains it, with
   contains); the last value is in c->field.                          */
static void
s_wait_field (s_case_t *c, const char *job, const char *column, const char *want,
              bool contains, int timeout_ms)
{
    uint64_t deadline = cm_mono_ms () + (uint64_t)timeout_ms;
    do {
        if (s_field (c, job, column) &&
            (contains ? strstr (c->field, want) != NULL : strcmp (c->field, want) == 0)) {
            return;
        }
        usleep (50000);
    } while (cm_mono_ms () < deadline);
}

static long
s_attempts (s_case_t *c, const char *job)
{
    char *v = maild_test_job_field (&c->mailer, job, "attempts");
    long n = v ? strtol (v, NULL, 10) : -1;
    free (v);
    return n;
}

/* Polls STATS until the lifetime counters hold n final outcomes
   (sent_total + failed_total) and copies the last reply's numbers to
   out: the sender thread bumps a counter just after it wrote the row,
   so a STATS right after the row may come first. false: no reply.    */
static bool
s_wait_outcomes (s_case_t *c, uint64_t n, int timeout_ms, Safeshare__MailStatsReply *out)
{
    uint64_t deadline = cm_mono_ms () + (uint64_t)timeout_ms;
    bool have = false;
    for (;;) {
        Safeshare__MailReply *r = maild_test_stats (&c->mailer);
        if (r && r->status == CM_OK &&
            r->body_case == SAFESHARE__MAIL_REPLY__BODY_STATS) {
            *out = *r->stats;
            have = true;
        }
        if (r) {
            safeshare__mail_reply__free_unpacked (r, NULL);
        }
        if ((have && out->sent_total + out->failed_total >= n) ||
            cm_mono_ms () >= deadline) {
            return have;
        }
        usleep (50000);
    }
}

/* ---- cases ------------------------------------------------------------ */

static void
test_starttls_auth_delivers (void **state)
{
    s_case_t *c = *state;
    assert_int_equal (s_case_init (c, "tls_auth"), 0);
    /* A password with specials, percent-encoded in the URL. */
    const char *args[] = {"--tls", s_cert, s_key, "--auth", "mailer:p@ss:w/rd", NULL};
    s_case_smtp (c, args);
    s_case_mailer (c, "mailer:p%40ss%3Aw%2Frd@", "", true);
    const char *job = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
    s_send_ok (c, job, "ann@example.com");
    assert_int_equal (maild_test_wait_files (c->newdir, 1, 15000), 1);
    size_t len = 0;
    c->text = maild_test_read_first (c->newdir, &len);
    const char *m = c->text;
    assert_non_null (m);
    assert_non_null (strstr (m, "From: safeshare <no-reply@safeshare.test>\n"));
    assert_non_null (strstr (m, "Reply-To: Support <help@safeshare.test>\n"));
    assert_non_null (strstr (m, "To: ann@example.com\n"));
    assert_non_null (strstr (m, "Subject: Verify your safeshare account\n"));
    assert_non_null (strstr (m, "Message-ID: <"
                                "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
                                "@safeshare.test>\n"));
    assert_non_null (strstr (m, "Content-Type: multipart/alternative; boundary="));
    assert_non_null (strstr (m, "Content-Type: text/html; charset=utf-8"));
    /* The text part carries the link alone on its line. */
    assert_non_null (strstr (m, "\n" LINK "\n"));
    /* The envelope the server saw. */
    assert_non_null (strstr (m, "X-MailFrom: no-reply@safeshare.test"));
    assert_non_null (strstr (m, "X-RcptTo: ann@example.com"));

    s_wait_field (c, job, "status", "sent", false, 5000);
    assert_string_equal (c->field, "sent");
    /* The link does not stay at rest once sent. */
    assert_false (s_field (c, job, "message"));
    /* The server was up before the job came: one attempt delivered it. */
    assert_int_equal (s_attempts (c, job), 1);
    Safeshare__MailStatsReply st;
    assert_true (s_wait_outcomes (c, 1, 5000, &st));
    assert_int_equal (st.sent, 1);
    assert_int_equal (st.pending, 0);
    assert_int_equal (st.sending, 0);
    assert_int_equal (st.failed, 0);
    assert_int_equal (st.queued_total, 1);
    assert_int_equal (st.sent_total, 1);
    assert_int_equal (st.failed_total, 0);
    assert_int_equal (st.retried_total, 0);
    s_case_end (c);
}

static void
test_rejected_recipient_failed_once (void **state)
{
    s_case_t *c = *state;
    assert_int_equal (s_case_init (c, "reject"), 0);
    const char *args[] = {"--tls", s_cert, s_key, "--reject", "gone@example.com", NULL};
    s_case_smtp (c, args);
    s_case_mailer (c, "", "", true);
    const char *job = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
    s_send_ok (c, job, "gone@example.com");
    s_wait_field (c, job, "status", "failed", false, 15000);
    assert_string_equal (c->field, "failed");
    assert_true (s_field (c, job, "last_error"));
    assert_non_null (strstr (c->field, "RCPT TO: 550"));
    /* Failed at its first attempt; many retry intervals later: unchanged. */
    assert_int_equal (s_attempts (c, job), 1);
    usleep (2500 * 1000);
    assert_int_equal (s_attempts (c, job), 1);
    assert_true (maild_test_count_files (c->newdir) <= 0);
    Safeshare__MailStatsReply st;
    assert_true (s_wait_outcomes (c, 1, 5000, &st));
    assert_int_equal (st.failed, 1);
    assert_int_equal (st.failed_total, 1);
    assert_int_equal (st.sent, 0);
    assert_int_equal (st.sent_total, 0);
    assert_int_equal (st.retried_total, 0);
    s_case_end (c);
}

/* The job is retried and nothing arrives; last_error contains `why`. */
static void
s_assert_retried_not_sent (s_case_t *c, const char *job, const char *why)
{
    s_wait_field (c, job, "last_error", why, true, 15000);
    if (!strstr (c->field, why)) {
        fail_msg ("last_error is \"%s\", wanted \"%s\"", c->field, why);
    }
    uint64_t deadline = cm_mono_ms () + 10000;
    while (s_attempts (c, job) < 3 && cm_mono_ms () < deadline) {
        usleep (50000);
    }
    assert_true (s_attempts (c, job) >= 3);
    assert_true (s_field (c, job, "status"));
    assert_true (strcmp (c->field, "pending") == 0 || strcmp (c->field, "sending") == 0);
    assert_true (maild_test_count_files (c->newdir) <= 0);
}

static void
test_starttls_not_offered_sends_nothing (void **state)
{
    s_case_t *c = *state;
    assert_int_equal (s_case_init (c, "notls"), 0);
    s_case_smtp (c, NULL); /* a server without STARTTLS */
    s_case_mailer (c, "", "", true);
    const char *job = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";
    s_send_ok (c, job, "ann@example.com");
    s_assert_retried_not_sent (c, job, "STARTTLS required");
    s_case_end (c);
}

static void
test_untrusted_certificate_sends_nothing (void **state)
{
    s_case_t *c = *state;
    assert_int_equal (s_case_init (c, "badcert"), 0);
    const char *args[] = {"--tls", s_cert, s_key, NULL};
    s_case_smtp (c, args);
    s_case_mailer (c, "", "", false); /* system CAs only */
    const char *job = "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4";
    s_send_ok (c, job, "ann@example.com");
    s_assert_retried_not_sent (c, job, "STARTTLS");
    s_case_end (c);
}

/* A certificate our CA file trusts, but for another name. */
static void
test_certificate_for_another_name_sends_nothing (void **state)
{
    s_case_t *c = *state;
    assert_int_equal (s_case_init (c, "wrongname"), 0);
    char cert[700], key[700];
    snprintf (cert, sizeof cert, "%s/other.pem", c->dir);
    snprintf (key, sizeof key, "%s/other.key", c->dir);
    assert_int_equal (maild_test_make_cert_for (cert, key, "DNS:smtp.elsewhere.test"), 0);
    const char *args[] = {"--tls", cert, key, NULL};
    s_case_smtp (c, args);
    char url_env[200], ca_env[800];
    snprintf (url_env, sizeof url_env, "SAFESHARE_SMTP_URL=smtp://127.0.0.1:%d", c->port);
    snprintf (ca_env, sizeof ca_env, "SAFESHARE_SMTP_CA_FILE=%s", cert);
    char *env[] = {url_env,
                   ca_env,
                   "SAFESHARE_SMTP_TIMEOUT_MS=3000",
                   "SAFESHARE_MAIL_LEASE_S=60",
                   "SAFESHARE_MAIL_RETRY_MIN_MS=200",
                   "SAFESHARE_MAIL_RETRY_MAX_MS=800",
                   NULL};
    assert_int_equal (maild_test_start (&c->mailer, s_mailer, c->dir, env), 0);
    const char *job = "d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5";
    s_send_ok (c, job, "ann@example.com");
    s_assert_retried_not_sent (c, job, "STARTTLS");
    s_case_end (c);
}

static void
test_wrong_password_retried (void **state)
{
    s_case_t *c = *state;
    assert_int_equal (s_case_init (c, "badauth"), 0);
    const char *args[] = {"--tls", s_cert, s_key, "--auth", "mailer:right", NULL};
    s_case_smtp (c, args);
    s_case_mailer (c, "mailer:wrong@", "", true);
    const char *job = "e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5";
    s_send_ok (c, job, "ann@example.com");
    s_assert_retried_not_sent (c, job, "MAIL FROM: 530");
    s_case_end (c);
}

/* How many delivered messages carry the Message-ID of job. */
static int
s_count_message_id (const char *dir, const char *job)
{
    char want[100];
    snprintf (want, sizeof want, "\nMessage-ID: <%.32s@safeshare.test>\n", job);
    DIR *d = opendir (dir);
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[1200];
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = 0;
        char *m = cm_file_read (path, 1 << 20, &len);
        n += m && strstr (m, want) != NULL;
        free (m);
    }
    closedir (d);
    return n;
}

static void
test_server_down_then_back (void **state)
{
    s_case_t *c = *state;
    assert_int_equal (s_case_init (c, "down"), 0);
    s_case_mailer (c, "", "", true); /* nothing listens yet */
    char jobs[5][33];
    for (int i = 0; i < 5; i++) {
        snprintf (jobs[i], sizeof jobs[i], "f6f6f6f6f6f6f6f6f6f6f6f6f6f6f60%d", i);
        s_send_ok (c, jobs[i], "ann@example.com");
    }
    /* Every job has failed (at least) once while the server was down. */
    for (int i = 0; i < 5; i++) {
        s_wait_field (c, jobs[i], "last_error", "Connection refused", true, 10000);
        assert_non_null (strstr (c->field, "Connection refused"));
    }
    /* A repeated SEND of a queued job is acked, not queued again. */
    s_send_ok (c, jobs[0], "ann@example.com");
    const char *args[] = {"--tls", s_cert, s_key, NULL};
    s_case_smtp (c, args);
    /* The state waited for: each job sent, and the counters caught up. */
    for (int i = 0; i < 5; i++) {
        s_wait_field (c, jobs[i], "status", "sent", false, 60000);
        assert_string_equal (c->field, "sent");
    }
    Safeshare__MailStatsReply st;
    assert_true (s_wait_outcomes (c, 5, 5000, &st));
    /* Each arrived once: the server stores a message before its 250, so
       a second copy would be there before the row said sent.            */
    assert_int_equal (maild_test_count_files (c->newdir), 5);
    long retries = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal (s_count_message_id (c->newdir, jobs[i]), 1);
        long attempts = s_attempts (c, jobs[i]);
        assert_true (attempts >= 2); /* refused at least once, then sent */
        retries += attempts - 1;
    }
    assert_int_equal (st.sent, 5);
    assert_int_equal (st.pending, 0);
    assert_int_equal (st.sending, 0);
    assert_int_equal (st.failed, 0);
    assert_int_equal (st.queued_total, 5);
    assert_int_equal (st.sent_total, 5);
    assert_int_equal (st.failed_total, 0);
    /* Every attempt counted: each failed one was scheduled again, once. */
    assert_int_equal (st.retried_total, retries);
    s_case_end (c);
}

static void
test_tls_none_explicit (void **state)
{
    s_case_t *c = *state;
    assert_int_equal (s_case_init (c, "plain"), 0);
    s_case_smtp (c, NULL);
    s_case_mailer (c, "", "?tls=none", false);
    s_send_ok (c, "a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7", "ann@example.com");
    assert_int_equal (maild_test_wait_files (c->newdir, 1, 15000), 1);
    s_case_end (c);
}

/* ---- a server that stalls ------------------------------------------- */

typedef enum { S_STALL_GREETING, S_STALL_HANDSHAKE } s_stall_t;

/* Reads up to and including the next LF (or until EOF). 0 / -1. */
static int
s_read_line (int fd)
{
    char ch;
    for (;;) {
        ssize_t n = read (fd, &ch, 1);
        if (n <= 0) {
            return -1;
        }
        if (ch == '\n') {
            return 0;
        }
    }
}

static void
s_write_all (int fd, const char *text)
{
    size_t len = strlen (text), off = 0;
    while (off < len) {
        ssize_t n = write (fd, text + off, len - off);
        if (n <= 0) {
            return;
        }
        off += (size_t)n;
    }
}

/* The child: each connection is taken to the stall point, which is told
   on `notify`, then held (its bytes read and dropped) until the client
   closes it. Killed by the case's end.                              */
static void
s_stall_serve (int lfd, int notify, s_stall_t mode)
{
    signal (SIGPIPE, SIG_IGN);
    for (;;) {
        int fd = accept (lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        bool reached = mode == S_STALL_GREETING;
        if (mode == S_STALL_HANDSHAKE) {
            s_write_all (fd, "220 stall.test ESMTP\r\n");
            if (s_read_line (fd) == 0) { /* EHLO */
                s_write_all (fd, "250-stall.test\r\n250 STARTTLS\r\n");
                if (s_read_line (fd) == 0) { /* STARTTLS */
                    s_write_all (fd, "220 2.0.0 go ahead\r\n");
                    reached = true; /* the ClientHello is never answered */
                }
            }
        }
        if (reached && write (notify, "x", 1) != 1) {
            _exit (1);
        }
        char buf[4096];
        while (read (fd, buf, sizeof buf) > 0) {
        }
        close (fd);
    }
}

/* Starts the stalling server on c->port (c->smtp); *notify_p is read
   once per connection at the stall point.                           */
static void
s_case_stall (s_case_t *c, s_stall_t mode, int *notify_p)
{
    int lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true (lfd >= 0);
    int one = 1;
    setsockopt (lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons ((uint16_t)c->port)};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    int p[2];
    if (bind (lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen (lfd, 8) != 0 ||
        pipe (p) != 0) {
        close (lfd);
        fail_msg ("cannot listen on 127.0.0.1:%d", c->port);
    }
    pid_t pid = fork ();
    if (pid == 0) {
        close (p[0]);
        s_stall_serve (lfd, p[1], mode);
        _exit (0);
    }
    close (lfd);
    close (p[1]);
    assert_true (pid > 0);
    c->smtp = pid;
    *notify_p = p[0];
}

/* The mailer is inside a session the server will not move on; its stop
   must end it (not wait 20 s for the SMTP timeout), free everything
   (LeakSanitizer makes the exit status non-zero otherwise) and leave
   the job to be retried.                                             */
static void
s_stop_mid_session (s_case_t *c, const char *name, s_stall_t mode)
{
    assert_int_equal (s_case_init (c, name), 0);
    int notify = -1;
    s_case_stall (c, mode, &notify);
    char url_env[450], ca_env[700];
    snprintf (url_env, sizeof url_env, "SAFESHARE_SMTP_URL=smtp://127.0.0.1:%d%s",
              c->port, mode == S_STALL_GREETING ? "?tls=none" : "");
    snprintf (ca_env, sizeof ca_env, "SAFESHARE_SMTP_CA_FILE=%s", s_cert);
    char *env[] = {url_env,
                   ca_env,
                   "SAFESHARE_SMTP_TIMEOUT_MS=20000",
                   "SAFESHARE_MAIL_LEASE_S=400",
                   "SAFESHARE_MAIL_FROM=safeshare <no-reply@safeshare.test>",
                   NULL};
    int started = maild_test_start (&c->mailer, s_mailer, c->dir, env);
    if (started != 0) {
        close (notify);
        fail_msg ("the mailer did not start");
    }
    const char *job = "c9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c9";
    s_send_ok (c, job, "ann@example.com");
    struct pollfd pfd = {.fd = notify, .events = POLLIN};
    int reached = poll (&pfd, 1, 30000);
    close (notify);
    assert_int_equal (reached, 1);
    usleep (200 * 1000); /* well inside libesmtp's wait by now */
    uint64_t t0 = cm_mono_ms ();
    int rc = maild_test_stop (&c->mailer);
    uint64_t took = cm_mono_ms () - t0;
    assert_int_equal (rc, 0);
    if (took > 8000) {
        fail_msg ("the stop took %llu ms", (unsigned long long)took);
    }
    /* Retried by the next run, the stop said as the reason. */
    assert_true (s_field (c, job, "status"));
    assert_string_equal (c->field, "pending");
    assert_true (s_field (c, job, "last_error"));
    assert_non_null (strstr (c->field, "the mailer is stopping"));
    assert_int_equal (s_attempts (c, job), 1);
    cm_test_stop (c->smtp, 5000);
    c->smtp = -1;
}

static void
test_stop_while_greeting_stalls (void **state)
{
    s_stop_mid_session (*state, "stall_greeting", S_STALL_GREETING);
}

static void
test_stop_while_tls_handshake_stalls (void **state)
{
    s_stop_mid_session (*state, "stall_tls", S_STALL_HANDSHAKE);
}

static int
s_group_setup (void **state)
{
    (void)state;
    s_root = cm_test_tmpdir ();
    if (!s_root) {
        return -1;
    }
    snprintf (s_cert, sizeof s_cert, "%s/cert.pem", s_root);
    snprintf (s_key, sizeof s_key, "%s/key.pem", s_root);
    return maild_test_make_cert (s_cert, s_key);
}

static int
s_group_teardown (void **state)
{
    (void)state;
    cm_test_rmrf (s_root);
    free (s_root);
    return 0;
}

/* Every case with its fixture (s_setup/s_teardown). */
#define S_TEST(f) cmocka_unit_test_setup_teardown (f, s_setup, s_teardown)

int
main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr, "usage: %s SAFESHARE_MAILER SMTP_TEST_SERVER\n", argv[0]);
        return 2;
    }
    s_mailer = argv[1];
    s_script = argv[2];
    const struct CMUnitTest tests[] = {
        S_TEST (test_starttls_auth_delivers),
        S_TEST (test_rejected_recipient_failed_once),
        S_TEST (test_starttls_not_offered_sends_nothing),
        S_TEST (test_untrusted_certificate_sends_nothing),
        S_TEST (test_certificate_for_another_name_sends_nothing),
        S_TEST (test_wrong_password_retried),
        S_TEST (test_server_down_then_back),
        S_TEST (test_tls_none_explicit),
        S_TEST (test_stop_while_greeting_stalls),
        S_TEST (test_stop_while_tls_handshake_stalls),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
