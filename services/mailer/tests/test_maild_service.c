/*  svc_mailer -- the real safeshare-mailer binary over its real socket,
    in mail-drop mode (the drop is delivered from the outbox like SMTP):
    SEND leaves a .eml with the right headers and link, a repeated job is
    acked twice but written once, a job acked just before a kill -9 is
    delivered after the restart, STATS counts, bad input is answered
    INVALID with its code and writes nothing, garbage never stops it
    answering HEALTH, SIGTERM ends it with exit 0, bad configuration is
    exit 2.

    usage: test_maild_service PATH/TO/safeshare-mailer                */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cm_msg.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "maild_test_proc.h"
#include "mailer.pb-c.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define LINK                                                                             \
    "http://127.0.0.1:8000/api/auth/"                                                    \
    "verify?token=Zm9vYmFyYmF6cXV4X3Rva2VuXzEyMzQ1Njc4OTA"

static const char *s_binary;
static char *s_dir;
static char s_mail_dir[512];
static char s_endpoint[600];
static pid_t s_pid = -1;
static zsock_t *s_client;

/* ---- helpers --------------------------------------------------------- */

static Safeshare__MailReply *
s_call (Safeshare__MailRequest *req, int timeout_ms, int deadline_ms)
{
    char reqbuf[65];
    Safeshare__Meta meta;
    cm_meta_init (&meta, reqbuf, NULL, deadline_ms);
    req->meta = &meta;
    ProtobufCMessage *reply = NULL;
    cm_status_t rc =
        cm_rpc_call (s_client, &req->base, NULL, &safeshare__mail_reply__descriptor,
                     timeout_ms, &reply, NULL);
    req->meta = NULL;
    return rc == CM_OK ? (Safeshare__MailReply *)reply : NULL;
}

static Safeshare__MailReply *
s_health (int timeout_ms)
{
    Safeshare__HealthRequest health = SAFESHARE__HEALTH_REQUEST__INIT;
    Safeshare__MailRequest req = SAFESHARE__MAIL_REQUEST__INIT;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_HEALTH;
    req.health = &health;
    return s_call (&req, timeout_ms, 0);
}

static void
s_assert_healthy (void)
{
    Safeshare__MailReply *r = s_health (3000);
    assert_non_null (r);
    assert_int_equal (r->status, CM_OK);
    assert_int_equal (r->body_case, SAFESHARE__MAIL_REPLY__BODY_HEALTH);
    assert_string_equal (r->health->service, "mailer");
    assert_string_equal (r->health->version, SAFESHARE_VERSION);
    safeshare__mail_reply__free_unpacked (r, NULL);
}

/* SEND with up to two vars (name NULL: left out). */
static Safeshare__MailReply *
s_send_vars (const char *job, const char *tpl, const char *to, const char *n1,
             const char *v1, const char *n2, const char *v2)
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
    send.template_ = (char *)tpl;
    send.to = (char *)to;
    send.n_vars = nvars;
    send.vars = vars;
    Safeshare__MailRequest req = SAFESHARE__MAIL_REQUEST__INIT;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_SEND;
    req.send = &send;
    return s_call (&req, 3000, 3000);
}

static Safeshare__MailReply *
s_send (const char *job, const char *to, const char *link)
{
    return s_send_vars (job, "verify_email", to, "link", link, NULL, NULL);
}

/* The reply is INVALID with `code`; frees it. */
static void
s_assert_error (Safeshare__MailReply *r, cm_status_t status, const char *code)
{
    assert_non_null (r);
    assert_int_equal (r->status, status);
    assert_non_null (r->error);
    assert_string_equal (r->error->code, code);
    safeshare__mail_reply__free_unpacked (r, NULL);
}

/* .eml files and anything else in the mail drop (a stray tmp file counts too). */
static int
s_count_eml (void)
{
    return maild_test_count_files (s_mail_dir);
}

/* The job's .eml once the sender has delivered it (polled, 10 s). */
static char *
s_read_eml (const char *job, size_t *len)
{
    char path[700];
    snprintf (path, sizeof path, "%s/%s.eml", s_mail_dir, job);
    uint64_t deadline = cm_mono_ms () + 10000;
    char *eml = NULL;
    while (!(eml = cm_file_read (path, 1 << 20, len)) && cm_mono_ms () < deadline) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep (&ts, NULL);
    }
    return eml;
}

/* Sends raw frames [empty][frames...] on a fresh DEALER; returns the
   unpacked reply or NULL if none came within timeout_ms.             */
static Safeshare__MailReply *
s_raw (zmsg_t **frames, bool delimiter, int timeout_ms)
{
    zsock_t *sock = cm_sock_client (s_endpoint, "mailer");
    assert_non_null (sock);
    zmsg_t *msg = zmsg_new ();
    if (delimiter) {
        zmsg_addmem (msg, NULL, 0);
    }
    zframe_t *f;
    while ((f = zmsg_pop (*frames))) {
        zmsg_append (msg, &f);
    }
    zmsg_destroy (frames);
    assert_int_equal (zmsg_send (&msg, sock), 0);
    Safeshare__MailReply *reply = NULL;
    zpoller_t *poller = zpoller_new (sock, NULL);
    if (zpoller_wait (poller, timeout_ms) == sock) {
        zmsg_t *in = zmsg_recv (sock);
        zframe_t *delim = zmsg_pop (in);
        zframe_t *head = zmsg_pop (in);
        assert_non_null (delim);
        assert_int_equal (zframe_size (delim), 0);
        assert_non_null (head);
        reply =
            safeshare__mail_reply__unpack (NULL, zframe_size (head), zframe_data (head));
        assert_non_null (reply);
        zframe_destroy (&delim);
        zframe_destroy (&head);
        zmsg_destroy (&in);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&sock);
    return reply;
}

static zmsg_t *
s_frames_packed (Safeshare__MailRequest *req, int nblobs)
{
    zmsg_t *m = zmsg_new ();
    zframe_t *head = cm_frame_pack (&req->base);
    zmsg_append (m, &head);
    for (int i = 0; i < nblobs; i++) {
        zmsg_addmem (m, "blob", 4);
    }
    return m;
}

/* ---- set-up ---------------------------------------------------------- */

static int s_start (void);

static int
s_group_setup (void **state)
{
    (void)state;
    s_dir = cm_test_tmpdir ();
    if (!s_dir) {
        return -1;
    }
    snprintf (s_mail_dir, sizeof s_mail_dir, "%s/mail", s_dir);
    snprintf (s_endpoint, sizeof s_endpoint, "ipc://%s/run/mailer.sock", s_dir);
    return s_start ();
}

/* Starts the mailer on s_dir and waits until HEALTH answers. 0 / -1. */
static int
s_start (void)
{
    char data_env[600], ep_env[700];
    snprintf (data_env, sizeof data_env, "SAFESHARE_DATA_DIR=%s", s_dir);
    snprintf (ep_env, sizeof ep_env, "SAFESHARE_MAILER_ENDPOINT=%s", s_endpoint);
    /* A short lease: the kill -9 may land between the claim and the
       recorded result, and the restarted mailer must take the job back
       within the test's wait (the drop is idempotent).               */
    char *env[] = {data_env, ep_env, "SAFESHARE_LOG_LEVEL=debug",
                   "SAFESHARE_MAIL_LEASE_S=2", NULL};
    char *argv[] = {(char *)s_binary, NULL};
    s_pid = cm_test_spawn (s_binary, argv, env);
    if (s_pid < 0) {
        return -1;
    }
    s_client = cm_sock_client (s_endpoint, "mailer");
    if (!s_client) {
        return -1;
    }
    /* Readiness: HEALTH answers. Fail at once if the process died. */
    uint64_t deadline = cm_mono_ms () + 10000;
    while (cm_mono_ms () < deadline) {
        if (cm_test_exited (s_pid)) {
            fprintf (stderr, "safeshare-mailer exited during start-up\n");
            s_pid = -1;
            return -1;
        }
        Safeshare__MailReply *r = s_health (200);
        if (r) {
            int ok = r->status == CM_OK;
            safeshare__mail_reply__free_unpacked (r, NULL);
            if (ok) {
                return 0;
            }
        }
    }
    fprintf (stderr, "safeshare-mailer not ready within 10 s\n");
    return -1;
}

static int
s_group_teardown (void **state)
{
    (void)state;
    zsock_destroy (&s_client);
    if (s_pid > 0) {
        cm_test_stop (s_pid, 5000);
    }
    if (s_dir) {
        cm_test_rmrf (s_dir);
        free (s_dir);
    }
    return 0;
}

/* ---- tests ----------------------------------------------------------- */

static void
test_health (void **state)
{
    (void)state;
    s_assert_healthy ();
}

static void
test_send_writes_eml (void **state)
{
    (void)state;
    const char *job = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb";
    uint64_t before = cm_now_s ();
    Safeshare__MailReply *r = s_send (job, "ann@example.com", LINK);
    assert_non_null (r);
    assert_int_equal (r->status, CM_OK);
    assert_int_equal (r->body_case, SAFESHARE__MAIL_REPLY__BODY_SEND);
    assert_string_equal (r->send->job_id, job);
    safeshare__mail_reply__free_unpacked (r, NULL);

    /* Acked means stored; the sender delivers it to the drop at once. */
    size_t len = 0;
    char *eml = s_read_eml (job, &len);
    assert_non_null (eml);
    assert_int_equal (len, strlen (eml));
    /* Every line ends in CRLF: no bare LF, no bare CR. */
    for (size_t i = 0; i < len; i++) {
        if (eml[i] == '\n') {
            assert_true (i > 0 && eml[i - 1] == '\r');
        }
        if (eml[i] == '\r' && eml[i + 1] != '\n') {
            fail_msg ("bare CR at %zu", i);
        }
    }
    assert_int_equal (strncmp (eml + len - 2, "\r\n", 2), 0);
    char *end = strstr (eml, "\r\n\r\n");
    assert_non_null (end);
    *end = '\0';
    const char *headers = eml;
    const char *body = end + 4;
    assert_non_null (strstr (headers, "From: safeshare <no-reply@localhost>\r\n"));
    assert_non_null (strstr (headers, "To: ann@example.com\r\n"));
    assert_non_null (strstr (headers, "Subject: Verify your safeshare account\r\n"));
    assert_non_null (
        strstr (headers, "Message-ID: <aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb@localhost>\r\n"));
    assert_non_null (strstr (headers, "MIME-Version: 1.0\r\n"));
    assert_non_null (strstr (headers,
                             "Content-Type: multipart/alternative; boundary="
                             "\"=_safeshare_aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb\""));
    assert_non_null (strstr (body, "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Transfer-Encoding: 7bit\r\n"));
    assert_non_null (strstr (body, "Content-Type: text/html; charset=utf-8\r\n"
                                   "Content-Transfer-Encoding: base64\r\n"));
    assert_int_equal (strncmp (headers, "From: ", 6), 0);
    /* Date: RFC 5322 form, and close to now. */
    const char *date = strstr (headers, "\r\nDate: ");
    assert_non_null (date);
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    const char *rest = strptime (date + 8, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    assert_non_null (rest);
    assert_int_equal (strncmp (rest, "\r\n", 2), 0);
    uint64_t t = (uint64_t)timegm (&tm);
    assert_true (t + 1 >= before && t <= cm_now_s () + 1);
    /* The link, whole, on its own line of the body. */
    assert_non_null (strstr (body, "\r\n" LINK "\r\n"));

    struct stat st;
    char path[700];
    snprintf (path, sizeof path, "%s/%s.eml", s_mail_dir, job);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    assert_int_equal (stat (s_mail_dir, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0700);
    free (eml);
}

static void
test_same_job_twice (void **state)
{
    (void)state;
    const char *job = "cccccccccccccccc0000000000000001";
    int before = s_count_eml ();
    Safeshare__MailReply *r = s_send (job, "bob@example.com", LINK);
    assert_non_null (r);
    assert_int_equal (r->status, CM_OK);
    assert_string_equal (r->send->job_id, job);
    safeshare__mail_reply__free_unpacked (r, NULL);
    char path[700];
    snprintf (path, sizeof path, "%s/%s.eml", s_mail_dir, job);
    struct stat st1, st2;
    size_t len1 = 0, len2 = 0;
    char *first = s_read_eml (job, &len1);
    assert_non_null (first);
    assert_int_equal (stat (path, &st1), 0);

    /* A retry (even one whose Date would differ) is acked, not rewritten. */
    r = s_send (job, "bob@example.com", LINK);
    assert_non_null (r);
    assert_int_equal (r->status, CM_OK);
    assert_string_equal (r->send->job_id, job);
    safeshare__mail_reply__free_unpacked (r, NULL);
    struct timespec pause = {0, 500 * 1000000L}; /* the sender had time to act */
    nanosleep (&pause, NULL);
    assert_int_equal (stat (path, &st2), 0);
    assert_int_equal (st1.st_ino, st2.st_ino);
    char *second = s_read_eml (job, &len2);
    assert_non_null (second);
    assert_int_equal (len1, len2);
    assert_memory_equal (first, second, len1);
    assert_int_equal (s_count_eml (), before + 1);
    free (first);
    free (second);
}

static void
test_bad_input_writes_nothing (void **state)
{
    (void)state;
    const char *job = "dddddddddddddddd0000000000000002";
    int before = s_count_eml ();
    s_assert_error (s_send (job, "victim@example.com\r\nBcc: everyone@example.com", LINK),
                    CM_INVALID, "invalid_recipient");
    /* A bare CRLF would end the headers and let the rest become the body. */
    s_assert_error (s_send (job, "ann@example.com\r\n", LINK), CM_INVALID,
                    "invalid_recipient");
    s_assert_error (s_send (job, "ann@example.com\n", LINK), CM_INVALID,
                    "invalid_recipient");
    s_assert_error (s_send (job, "not-an-address", LINK), CM_INVALID,
                    "invalid_recipient");
    s_assert_error (s_send (job, "a@b@c", LINK), CM_INVALID, "invalid_recipient");
    s_assert_error (s_send (job, "Ann <ann@example.com>", LINK), CM_INVALID,
                    "invalid_recipient");
    s_assert_error (s_send (job, "", LINK), CM_INVALID, "invalid_recipient");
    /* Header injection through a var is refused too. */
    s_assert_error (s_send (job, "ann@example.com", LINK "\r\nBcc: everyone@example.com"),
                    CM_INVALID, "invalid_vars");
    s_assert_error (s_send_vars (job, "verify_email", "ann@example.com", "link", LINK,
                                 "Bad-Name", "x"),
                    CM_INVALID, "invalid_vars");
    s_assert_error (
        s_send_vars (job, "verify_email", "ann@example.com", "name", "Ann", NULL, NULL),
        CM_INVALID, "missing_var");
    s_assert_error (s_send_vars (job, "no_such_template", "ann@example.com", "link", LINK,
                                 NULL, NULL),
                    CM_INVALID, "unknown_template");
    s_assert_error (s_send ("DDDDDDDDDDDDDDDD0000000000000002", "ann@example.com", LINK),
                    CM_INVALID, "invalid_job_id");
    s_assert_error (s_send ("../../etc/passwd", "ann@example.com", LINK), CM_INVALID,
                    "invalid_job_id");
    assert_int_equal (s_count_eml (), before);
}

static void
test_expired_deadline_dropped (void **state)
{
    (void)state;
    const char *job = "eeeeeeeeeeeeeeee0000000000000003";
    int before = s_count_eml ();
    Safeshare__MailVar var = SAFESHARE__MAIL_VAR__INIT;
    var.name = "link", var.value = LINK;
    Safeshare__MailVar *vars[] = {&var};
    Safeshare__MailSendRequest send = SAFESHARE__MAIL_SEND_REQUEST__INIT;
    send.job_id = (char *)job;
    send.template_ = "verify_email";
    send.to = "ann@example.com";
    send.n_vars = 1;
    send.vars = vars;
    Safeshare__MailRequest req = SAFESHARE__MAIL_REQUEST__INIT;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_SEND;
    req.send = &send;
    char reqbuf[65];
    Safeshare__Meta meta;
    cm_meta_init (&meta, reqbuf, NULL, 0);
    meta.deadline_ms = cm_now_ms () - 1000; /* already past */
    req.meta = &meta;
    zmsg_t *frames = s_frames_packed (&req, 0);
    assert_null (s_raw (&frames, true, 500));
    s_assert_healthy ();
    assert_int_equal (s_count_eml (), before);
}

static void
test_garbage_in (void **state)
{
    (void)state;
    int before = s_count_eml ();
    /* Random bytes as the header: answered, not fatal. */
    for (int i = 0; i < 20; i++) {
        uint8_t junk[257];
        size_t n = 1 + (size_t)i * 13;
        assert_int_equal (cm_random (junk, n), 0);
        zmsg_t *m = zmsg_new ();
        zmsg_addmem (m, junk, n);
        Safeshare__MailReply *r = s_raw (&m, true, 2000);
        assert_non_null (r);
        assert_int_not_equal (r->status, CM_OK);
        safeshare__mail_reply__free_unpacked (r, NULL);
    }
    /* No delimiter at all: dropped without a reply. */
    zmsg_t *m = zmsg_new ();
    zmsg_addstr (m, "hello");
    zmsg_addstr (m, "world");
    assert_null (s_raw (&m, false, 300));
    /* Delimiter only, no header. */
    m = zmsg_new ();
    Safeshare__MailReply *r = s_raw (&m, true, 2000);
    s_assert_error (r, CM_INVALID, "malformed_header");
    /* A header larger than the limit. */
    m = zmsg_new ();
    zframe_t *big = zframe_new (NULL, CM_MAX_HEADER + 1);
    memset (zframe_data (big), 0x0a, zframe_size (big));
    zmsg_append (m, &big);
    s_assert_error (s_raw (&m, true, 2000), CM_INVALID, "malformed_header");

    /* Wrong protocol version. */
    Safeshare__HealthRequest health = SAFESHARE__HEALTH_REQUEST__INIT;
    Safeshare__MailRequest req = SAFESHARE__MAIL_REQUEST__INIT;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_HEALTH;
    req.health = &health;
    char reqbuf[65];
    Safeshare__Meta meta;
    cm_meta_init (&meta, reqbuf, NULL, 0);
    meta.version = CM_PROTO_VERSION + 1;
    req.meta = &meta;
    m = s_frames_packed (&req, 0);
    s_assert_error (s_raw (&m, true, 2000), CM_UNSUPPORTED, "unsupported_version");
    meta.version = CM_PROTO_VERSION;

    /* No meta. */
    req.meta = NULL;
    m = s_frames_packed (&req, 0);
    s_assert_error (s_raw (&m, true, 2000), CM_INVALID, "missing_meta");
    req.meta = &meta;

    /* No body. */
    Safeshare__MailRequest empty = SAFESHARE__MAIL_REQUEST__INIT;
    empty.meta = &meta;
    m = s_frames_packed (&empty, 0);
    s_assert_error (s_raw (&m, true, 2000), CM_INVALID, "missing_body");

    /* Wrong blob count: the mailer takes none. */
    m = s_frames_packed (&req, 2);
    s_assert_error (s_raw (&m, true, 2000), CM_INVALID, "unexpected_blobs");

    /* Oversized fields. */
    char *huge = malloc (20001);
    memset (huge, 'a', 20000);
    huge[20000] = '\0';
    char *addr = malloc (300);
    memset (addr, 'a', 299);
    addr[5] = '@';
    addr[299] = '\0';
    const char *job = "ffffffffffffffff0000000000000004";
    s_assert_error (s_send (huge, "ann@example.com", LINK), CM_INVALID, "invalid_job_id");
    s_assert_error (s_send (job, addr, LINK), CM_INVALID, "invalid_recipient");
    s_assert_error (s_send (job, "ann@example.com", huge), CM_INVALID, "invalid_vars");
    s_assert_error (s_send_vars (job, huge, "ann@example.com", "link", LINK, NULL, NULL),
                    CM_INVALID, "unknown_template");
    s_assert_error (
        s_send_vars (job, "verify_email", "ann@example.com", "link", LINK, huge, "x"),
        CM_INVALID, "invalid_vars");
    /* Too many vars. */
    Safeshare__MailVar vars[17], *pvars[17];
    char names[17][8];
    for (int i = 0; i < 17; i++) {
        safeshare__mail_var__init (&vars[i]);
        snprintf (names[i], sizeof names[i], "v_%c", 'a' + i);
        vars[i].name = i == 0 ? "link" : names[i];
        vars[i].value = i == 0 ? LINK : "x";
        pvars[i] = &vars[i];
    }
    Safeshare__MailSendRequest send = SAFESHARE__MAIL_SEND_REQUEST__INIT;
    send.job_id = (char *)job;
    send.template_ = "verify_email";
    send.to = "ann@example.com";
    send.n_vars = 17;
    send.vars = pvars;
    Safeshare__MailRequest sreq = SAFESHARE__MAIL_REQUEST__INIT;
    sreq.body_case = SAFESHARE__MAIL_REQUEST__BODY_SEND;
    sreq.send = &send;
    s_assert_error (s_call (&sreq, 3000, 3000), CM_INVALID, "invalid_vars");
    free (huge);
    free (addr);

    assert_int_equal (s_count_eml (), before);
    s_assert_healthy ();
}

static Safeshare__MailReply *
s_stats (void)
{
    Safeshare__MailStatsRequest stats = SAFESHARE__MAIL_STATS_REQUEST__INIT;
    Safeshare__MailRequest req = SAFESHARE__MAIL_REQUEST__INIT;
    req.body_case = SAFESHARE__MAIL_REQUEST__BODY_STATS;
    req.stats = &stats;
    return s_call (&req, 3000, 3000);
}

static void
test_stats (void **state)
{
    (void)state;
    Safeshare__MailReply *r = s_stats ();
    assert_non_null (r);
    assert_int_equal (r->status, CM_OK);
    assert_int_equal (r->body_case, SAFESHARE__MAIL_REPLY__BODY_STATS);
    /* Two jobs so far (one sent twice), both delivered to the drop. */
    assert_int_equal (r->stats->sent, 2);
    assert_int_equal (r->stats->pending + r->stats->sending + r->stats->failed, 0);
    assert_int_equal (r->stats->queued_total, 2);
    assert_int_equal (r->stats->sent_total, 2);
    safeshare__mail_reply__free_unpacked (r, NULL);
}

/* Acked means stored: a mailer killed right after the ack (before or
   after delivery) delivers the job after its restart, once.          */
static void
test_kill9_after_ack (void **state)
{
    (void)state;
    const char *job = "1111111111111111aaaaaaaaaaaaaaaa";
    int before = s_count_eml ();
    Safeshare__MailReply *r = s_send (job, "kim@example.com", LINK);
    assert_non_null (r);
    assert_int_equal (r->status, CM_OK);
    safeshare__mail_reply__free_unpacked (r, NULL);
    kill (s_pid, SIGKILL);
    waitpid (s_pid, NULL, 0);
    s_pid = -1;
    zsock_destroy (&s_client);
    assert_int_equal (s_start (), 0);
    size_t len = 0;
    char *eml = s_read_eml (job, &len);
    assert_non_null (eml);
    assert_non_null (strstr (eml, "To: kim@example.com\r\n"));
    free (eml);
    assert_int_equal (s_count_eml (), before + 1);
}

static void
test_sigterm_exits_zero (void **state)
{
    (void)state;
    assert_int_equal (cm_test_stop (s_pid, 5000), 0);
    s_pid = -1;
}

/* Start-up checks: bad config is one line and exit 2, before binding. */
static int
s_run_expect_exit (const char *extra_env)
{
    char data_env[600];
    snprintf (data_env, sizeof data_env, "SAFESHARE_DATA_DIR=%s/startup", s_dir);
    char *env[] = {data_env, (char *)extra_env, NULL};
    char *argv[] = {(char *)s_binary, NULL};
    pid_t pid = cm_test_spawn (s_binary, argv, env);
    assert_true (pid > 0);
    /* The process exits by itself; cm_test_stop's SIGTERM would only
       reach one still running after the deadline (and fail the test). */
    uint64_t deadline = cm_mono_ms () + 5000;
    int status = 0;
    while (cm_mono_ms () < deadline) {
        if (waitpid (pid, &status, WNOHANG) == pid) {
            return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep (&ts, NULL);
    }
    cm_test_stop (pid, 1000);
    return -1;
}

static void
test_startup_checks (void **state)
{
    (void)state;
    assert_int_equal (s_run_expect_exit ("SAFESHARE_MAIL_FROM=x <a@b>\tBcc: c@d"), 2);
    assert_int_equal (s_run_expect_exit ("SAFESHARE_MAIL_FROM=Acme, Inc <a@b>"), 2);
    assert_int_equal (s_run_expect_exit ("SAFESHARE_SMTP_URL=smtps://mail.example:465"),
                      2);
    assert_int_equal (s_run_expect_exit ("SAFESHARE_SMTP_URL=smtp://u:pw@h?tls=maybe"),
                      2);
    assert_int_equal (s_run_expect_exit ("SAFESHARE_MAIL_REPLY_TO=a@b\tBcc: c@d"), 2);
    assert_int_equal (s_run_expect_exit ("SAFESHARE_MAIL_TEMPLATE_DIR=/nonexistent"), 2);
    /* A lease shorter than one SMTP delivery may take. */
    char lease_env[] = "SAFESHARE_MAIL_LEASE_S=10";
    char data_env[600];
    snprintf (data_env, sizeof data_env, "SAFESHARE_DATA_DIR=%s/startup", s_dir);
    char *env[] = {data_env, lease_env, "SAFESHARE_SMTP_URL=smtp://127.0.0.1:1",
                   "SAFESHARE_SMTP_TIMEOUT_MS=1000", NULL};
    char *argv[] = {(char *)s_binary, NULL};
    pid_t pid = cm_test_spawn (s_binary, argv, env);
    assert_true (pid > 0);
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 2);
    char file_env[700];
    snprintf (file_env, sizeof file_env, "SAFESHARE_MAIL_DIR=%s/mail/%s.eml", s_dir,
              "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb");
    assert_int_equal (s_run_expect_exit (file_env), 2); /* mail dir is a file */
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: %s PATH/TO/safeshare-mailer\n", argv[0]);
        return 2;
    }
    s_binary = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_health),
        cmocka_unit_test (test_send_writes_eml),
        cmocka_unit_test (test_same_job_twice),
        cmocka_unit_test (test_bad_input_writes_nothing),
        cmocka_unit_test (test_expired_deadline_dropped),
        cmocka_unit_test (test_garbage_in),
        cmocka_unit_test (test_stats),
        cmocka_unit_test (test_kill9_after_ack),
        cmocka_unit_test (test_sigterm_exits_zero),
        cmocka_unit_test (test_startup_checks),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
