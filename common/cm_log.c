/*  cm_log -- logfmt lines to stderr, one write(2) each so lines from
    threads and processes sharing a terminal do not interleave.          */
#include "cm_log.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char s_service[32] = "safeshare";
static atomic_int s_level = CM_LOG_INFO;
static const char *s_names[] = {"error", "warn", "info", "debug"};

void
cm_log_init (const char *service, cm_log_level_t level)
{
    snprintf (s_service, sizeof s_service, "%s", service ? service : "safeshare");
    atomic_store (&s_level, (int)level);
}

void
cm_log_set_level (cm_log_level_t level)
{
    atomic_store (&s_level, (int)level);
}

cm_log_level_t
cm_log_get_level (void)
{
    return (cm_log_level_t)atomic_load (&s_level);
}

int
cm_log_level_parse (const char *name)
{
    for (int i = 0; name && i < 4; i++) {
        if (strcmp (name, s_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Appends src to the line as a logfmt value: quotes, escapes, and replaces
   control characters so a hostile string cannot forge a log line.       */
static size_t
s_append_quoted (char *line, size_t pos, size_t cap, const char *src)
{
    if (pos < cap) {
        line[pos++] = '"';
    }
    for (const unsigned char *p = (const unsigned char *)src; *p && pos + 4 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            line[pos++] = '\\';
            line[pos++] = (char)*p;
        } else if (*p == '\n') {
            line[pos++] = '\\';
            line[pos++] = 'n';
        } else if (*p < 0x20 || *p == 0x7f) {
            line[pos++] = '?';
        } else {
            line[pos++] = (char)*p;
        }
    }
    if (pos < cap) {
        line[pos++] = '"';
    }
    return pos;
}

void
cm_log_write (cm_log_level_t level, const char *req, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);

    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);

    char line[4096];
    size_t cap = sizeof line - 2;
    int n =
        snprintf (line, cap, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s svc=%s",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                  tm.tm_sec, (long)(tv.tv_usec / 1000),
                  s_names[level <= CM_LOG_DEBUG ? level : CM_LOG_DEBUG], s_service);
    size_t pos = n > 0 ? (size_t)n : 0;
    if (req && *req) {
        pos += (size_t)snprintf (line + pos, cap - pos, " req=");
        pos = s_append_quoted (line, pos, cap, req);
    }
    pos += (size_t)snprintf (line + pos, cap - pos, " msg=");
    pos = s_append_quoted (line, pos, cap, msg);
    line[pos++] = '\n';
    ssize_t rc = write (STDERR_FILENO, line, pos);
    (void)rc;
}

void
cm_log_openssl (const char *req, const char *what)
{
    char errs[1024] = "";
    size_t pos = 0;
    unsigned long e;
    while ((e = ERR_get_error ()) != 0) {
        char buf[256];
        ERR_error_string_n (e, buf, sizeof buf);
        int n = snprintf (errs + pos, sizeof errs - pos, "%s%s", pos ? "; " : "", buf);
        if (n < 0 || (size_t)n >= sizeof errs - pos) {
            break;
        }
        pos += (size_t)n;
    }
    cm_error (req, "%s: %s", what, pos ? errs : "no OpenSSL error queued");
}
