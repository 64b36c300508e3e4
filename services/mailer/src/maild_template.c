/*  maild_template -- compiled-in templates and their rendering.          */
#include "maild_template.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *subject; /* ASCII: it goes into a header as is */
    const char *body;    /* LF line endings; {{var}} placeholders */
} s_template_t;

/* The link sits alone on its line so that mail clients linkify it whole
   and nothing around it can be mistaken for part of it.               */
static const s_template_t s_templates[] = {
    {"verify_email", "Verify your safeshare account",
     "Hello,\n"
     "\n"
     "Someone (hopefully you) signed up for a safeshare account with this\n"
     "e-mail address. To confirm it, open this link:\n"
     "\n"
     "{{link}}\n"
     "\n"
     "The link can be used once and expires. If you did not sign up, ignore\n"
     "this message: no account is activated without the link.\n"
     "\n"
     "-- \n"
     "safeshare\n"},
};
#define S_NTEMPLATES (sizeof s_templates / sizeof s_templates[0])

static const s_template_t *
s_find (const char *name)
{
    for (size_t i = 0; name && i < S_NTEMPLATES; i++) {
        if (strcmp (s_templates[i].name, name) == 0) {
            return &s_templates[i];
        }
    }
    return NULL;
}

bool
maild_template_known (const char *name)
{
    return s_find (name) != NULL;
}

static bool
s_name_valid (const char *name, size_t len)
{
    if (len == 0 || len > MAILD_MAX_VAR_NAME) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '_')) {
            return false;
        }
    }
    return true;
}

/* Valid UTF-8 (no overlong forms, no surrogates, <= U+10FFFF) and no
   control character: C0 (which holds CR, LF, TAB), DEL, or C1.         */
static bool
s_value_valid (const char *value)
{
    const unsigned char *p = (const unsigned char *)value;
    size_t len = strlen (value);
    if (len > MAILD_MAX_VAR_VALUE) {
        return false;
    }
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        uint32_t cp;
        size_t n;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                return false;
            }
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            cp = c & 0x1f;
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            cp = c & 0x0f;
            n = 2;
        } else if (c >= 0xf0 && c <= 0xf4) {
            cp = c & 0x07;
            n = 3;
        } else {
            return false;
        }
        if (i + n >= len) {
            return false; /* truncated sequence */
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp <= 0x9f)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

int
maild_template_vars_check (const maild_var_t *vars, size_t nvars)
{
    if (nvars > MAILD_MAX_VARS || (nvars > 0 && !vars)) {
        return -1;
    }
    for (size_t i = 0; i < nvars; i++) {
        if (!vars[i].name || !vars[i].value ||
            !s_name_valid (vars[i].name, strlen (vars[i].name)) ||
            !s_value_valid (vars[i].value)) {
            return -1;
        }
        /* A duplicate name would make the rendering depend on order. */
        for (size_t j = 0; j < i; j++) {
            if (strcmp (vars[i].name, vars[j].name) == 0) {
                return -1;
            }
        }
    }
    return 0;
}

static const char *
s_lookup (const maild_var_t *vars, size_t nvars, const char *name, size_t len)
{
    for (size_t i = 0; i < nvars; i++) {
        if (strlen (vars[i].name) == len && memcmp (vars[i].name, name, len) == 0) {
            return vars[i].value;
        }
    }
    return NULL;
}

static void
s_msg (char *msg, size_t msglen, const char *text)
{
    if (msg && msglen) {
        snprintf (msg, msglen, "%s", text);
    }
}

cm_status_t
maild_template_render (const char *name, const maild_var_t *vars, size_t nvars,
                       const char **subject_out, char **body_out, const char **err_code,
                       char *msg, size_t msglen)
{
    char *body = NULL;
    *body_out = NULL;
    *subject_out = NULL;
    const s_template_t *tpl = s_find (name);
    if (!tpl) {
        *err_code = "unknown_template";
        s_msg (msg, msglen, "no such mail template");
        return CM_INVALID;
    }
    if (maild_template_vars_check (vars, nvars) != 0) {
        *err_code = "invalid_vars";
        s_msg (msg, msglen,
               "vars: at most 16, names [a-z_]{1,32} once each, values up to 2048 "
               "bytes of UTF-8 without control characters");
        return CM_INVALID;
    }
    /* Size first, then one allocation: every value is bounded above. */
    size_t cap = strlen (tpl->body) + 1;
    for (const char *p = strstr (tpl->body, "{{"); p; p = strstr (p + 2, "{{")) {
        cap += MAILD_MAX_VAR_VALUE;
    }
    body = malloc (cap);
    if (!body) {
        *err_code = "internal_error";
        s_msg (msg, msglen, "out of memory");
        return CM_INTERNAL;
    }
    size_t out = 0;
    const char *p = tpl->body;
    while (*p) {
        const char *open = strstr (p, "{{");
        const char *close = open ? strstr (open + 2, "}}") : NULL;
        if (!open || !close) {
            size_t rest = strlen (p);
            memcpy (body + out, p, rest);
            out += rest;
            break;
        }
        memcpy (body + out, p, (size_t)(open - p));
        out += (size_t)(open - p);
        const char *var = open + 2;
        size_t varlen = (size_t)(close - var);
        const char *value = s_lookup (vars, nvars, var, varlen);
        if (!value) {
            *err_code = "missing_var";
            if (msg && msglen) {
                /* The name comes from our own template, not from the peer. */
                snprintf (msg, msglen, "template %s needs var %.*s", tpl->name,
                          (int)varlen, var);
            }
            free (body);
            return CM_INVALID;
        }
        size_t vlen = strlen (value);
        memcpy (body + out, value, vlen);
        out += vlen;
        p = close + 2;
    }
    body[out] = '\0';

    size_t line = 0;
    for (size_t i = 0; i < out; i++) {
        line = body[i] == '\n' ? 0 : line + 1;
        if (line > MAILD_MAX_LINE) {
            *err_code = "invalid_vars";
            s_msg (msg, msglen, "a rendered line would exceed 998 bytes (RFC 5322)");
            free (body);
            return CM_INVALID;
        }
    }
    *subject_out = tpl->subject;
    *body_out = body;
    return CM_OK;
}
