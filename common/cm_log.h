/*  cm_log -- level-checked logging, one logfmt line per event, to stderr.

    Line shape (logfmt, one per event):
      ts=2026-11-21T13:00:00.123Z level=info svc=auth req=7f3a msg="..."
    Never log tokens, passwords, keys, plaintext or mail bodies.          */
#ifndef CM_LOG_H
#define CM_LOG_H

typedef enum {
    CM_LOG_ERROR = 0,
    CM_LOG_WARN = 1,
    CM_LOG_INFO = 2,
    CM_LOG_DEBUG = 3
} cm_log_level_t;

/* Names the service in every line ("gateway", "auth", ...). Call once, early. */
void cm_log_init (const char *service, cm_log_level_t level);
void cm_log_set_level (cm_log_level_t level);
cm_log_level_t cm_log_get_level (void);
/* "error"|"warn"|"info"|"debug" -> level; -1 if unknown. */
int cm_log_level_parse (const char *name);

/* req may be NULL. Thread-safe (one write(2) per line). */
void cm_log_write (cm_log_level_t level, const char *req, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Level check happens before the arguments are formatted. */
#define cm_log(level, req, ...)                                                          \
    do {                                                                                 \
        if ((level) <= cm_log_get_level ()) {                                            \
            cm_log_write ((level), (req), __VA_ARGS__);                                  \
        }                                                                                \
    } while (0)
#define cm_error(req, ...) cm_log (CM_LOG_ERROR, req, __VA_ARGS__)
#define cm_warn(req, ...)  cm_log (CM_LOG_WARN, req, __VA_ARGS__)
#define cm_info(req, ...)  cm_log (CM_LOG_INFO, req, __VA_ARGS__)
#define cm_debug(req, ...) cm_log (CM_LOG_DEBUG, req, __VA_ARGS__)

/* Appends OpenSSL's error queue (drained) to a log line: "what: <errors>". */
void cm_log_openssl (const char *req, const char *what);

#endif
