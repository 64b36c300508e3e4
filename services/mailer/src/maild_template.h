/*  maild_template -- the mail templates and the checks on the variables
    a caller fills them with.

    A template NAME is three files: NAME.subject (one line of UTF-8, no
    placeholders), NAME.txt (the text part) and NAME.html (the HTML
    part), with {{var}} placeholders in the two bodies. The files live in
    services/mailer/templates and are compiled into the binary
    (embed_templates.cmake); SAFESHARE_MAIL_TEMPLATE_DIR, when set,
    supplies all of them instead (same names), read and checked at start.

    Variables come from another process, so every name and value is
    checked before use: a value can never carry a line break or other
    control character into the message (header injection, forged lines),
    and in the HTML part every value is HTML-escaped.                   */
#ifndef MAILD_TEMPLATE_H
#define MAILD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include "cm_status.h"

#define MAILD_MAX_VARS      16
#define MAILD_MAX_VAR_NAME  32
#define MAILD_MAX_VAR_VALUE 2048
/* RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF. */
#define MAILD_MAX_LINE 998
/* A template file is at most this many bytes; a subject 200. */
#define MAILD_MAX_TEMPLATE 65536
#define MAILD_MAX_SUBJECT  200

/* One embedded file (generated table, ends with {NULL, NULL}). */
typedef struct {
    const char *name;
    const char *text;
} maild_template_file_t;
extern const maild_template_file_t maild_template_builtin[];

typedef struct {
    const char *name;
    const char *value;
} maild_var_t;

typedef struct maild_templates_t maild_templates_t;

/* The templates this build knows (every NAME with its three files in
   the built-in table), from the built-in files, or from `dir` when it
   is not NULL. Each file is checked (valid UTF-8, no CR or control
   character but LF and TAB, a one-line subject without placeholders,
   well-formed {{name}} placeholders). NULL with a reason in err.     */
maild_templates_t *maild_templates_new (const char *dir, char *err, size_t errlen);
void maild_templates_destroy (maild_templates_t **self_p);

/* True if `name` is a template of the set. */
bool maild_templates_known (maild_templates_t *self, const char *name);

/* Checks a variable set on its own: at most MAILD_MAX_VARS, names
   [a-z_]{1,32} and unique, values <= MAILD_MAX_VAR_VALUE bytes of valid
   UTF-8 without control characters (C0, DEL, C1). 0 / -1.           */
int maild_template_vars_check (const maild_var_t *vars, size_t nvars);

/* True if s is valid UTF-8 (no overlong forms or surrogates). */
bool maild_template_utf8_valid (const char *s, size_t len);

/* A rendered template (maild_templates_render). */
typedef struct {
    const char *subject; /* borrowed from the set */
    char *text;          /* LF line endings, ends with LF */
    char *html;          /* values HTML-escaped */
} maild_rendered_t;
/* Wipes (they hold the link) and frees text and html. */
void maild_rendered_clear (maild_rendered_t *r);

/* Renders template `name` with `vars`.
   CM_OK: *out filled (clear with maild_rendered_clear).
   CM_INVALID with *err_code: "unknown_template", "invalid_vars" (also
   when a rendered text line would exceed MAILD_MAX_LINE), "missing_var".
   `msg` (may be NULL) gets a short human-readable reason that never
   contains a value.                                                    */
cm_status_t maild_templates_render (maild_templates_t *self, const char *name,
                                    const maild_var_t *vars, size_t nvars,
                                    maild_rendered_t *out, const char **err_code,
                                    char *msg, size_t msglen);

#endif
