/*  maild_test_proc -- what the mailer's service tests share: a real
    safeshare-mailer in a temp dir driven over its socket, and a real
    SMTP server (scripts/smtp-test-server.sh, aiosmtpd).             */
#ifndef MAILD_TEST_PROC_H
#define MAILD_TEST_PROC_H

#include "cm_msg.h"
#include "mailer.pb-c.h"

#include <stdbool.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    char dir[512];
    char endpoint[600];
    char db_path[600];
    zsock_t *client;
} maild_test_t;

/* Starts `binary` with SAFESHARE_DATA_DIR=dir, debug logs and env_extra
   (NULL-terminated "K=V", may be NULL); waits until HEALTH answers.
   0 / -1 (said on stderr).                                          */
int maild_test_start (maild_test_t *t, const char *binary, const char *dir,
                      char *const env_extra[]);
/* SIGTERM (then SIGKILL after 10 s); returns the exit status. */
int maild_test_stop (maild_test_t *t);
/* SIGKILL, no clean-up by the mailer. */
void maild_test_kill9 (maild_test_t *t);

/* SEND verify_email (or tpl) to `to` with vars (n2 NULL: one var). */
Safeshare__MailReply *maild_test_send (maild_test_t *t, const char *job, const char *tpl,
                                       const char *to, const char *n1, const char *v1,
                                       const char *n2, const char *v2);
Safeshare__MailReply *maild_test_stats (maild_test_t *t);

/* Regular files in dir (not starting with '.'); -1 if dir is missing. */
int maild_test_count_files (const char *dir);
/* Polls until dir holds at least n files; the count at the end. */
int maild_test_wait_files (const char *dir, int n, int timeout_ms);
/* The contents of the only (or first) file in dir (caller frees). */
char *maild_test_read_first (const char *dir, size_t *len);

/* A free loopback TCP port. */
int maild_test_free_port (void);
/* Starts scripts/smtp-test-server.sh PORT MAILDIR args... and waits for
   its 220 banner. pid or -1.                                          */
pid_t maild_test_smtp_start (const char *script, int port, const char *maildir,
                             const char *const args[]);
/* Makes a self-signed certificate for 127.0.0.1 (cert, key). 0 / -1.  */
int maild_test_make_cert (const char *cert, const char *key);
/* The same for another name: subjectAltName `san` (e.g. "DNS:x.test"). */
int maild_test_make_cert_for (const char *cert, const char *key, const char *san);

/* One column of the job's row in the mailer's SQLite DB (caller frees;
   NULL if no row).                                                    */
char *maild_test_job_field (maild_test_t *t, const char *job, const char *column);

#endif
