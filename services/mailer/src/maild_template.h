/*  maild_template -- the mail templates (compiled in for now) and the
    checks on the variables a caller fills them with.

    A template has a subject and a text body with {{name}} placeholders.
    Variables come from another process, so every name and value is
    checked before use: a value can never carry a line break or other
    control character into the message (header injection, forged lines). */
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

typedef struct {
    const char *name;
    const char *value;
} maild_var_t;

/* True if `name` is a template this build knows. */
bool maild_template_known (const char *name);

/* Checks a variable set on its own: at most MAILD_MAX_VARS, names
   [a-z_]{1,32} and unique, values <= MAILD_MAX_VAR_VALUE bytes of valid
   UTF-8 without control characters (C0, DEL, C1). 0 / -1.           */
int maild_template_vars_check (const maild_var_t *vars, size_t nvars);

/* Renders template `name` with `vars`.
   CM_OK: *subject_out (borrowed, static) and *body_out (caller frees;
   UTF-8, LF line endings, ends with LF) are set.
   CM_INVALID with *err_code: "unknown_template", "invalid_vars" (also
   when a rendered line would exceed MAILD_MAX_LINE), "missing_var".
   `msg` (may be NULL) gets a short human-readable reason that never
   contains a value.                                                    */
cm_status_t maild_template_render (const char *name, const maild_var_t *vars,
                                   size_t nvars, const char **subject_out,
                                   char **body_out, const char **err_code, char *msg,
                                   size_t msglen);

#endif
