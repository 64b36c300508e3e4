/*  maild_template -- the template set (built in or from a directory), its
    checks, and rendering into a text and an HTML part.                  */
#include "maild_template.h"
#include "cm_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    char *subject; /* one line, UTF-8 */
    char *text;
    char *html;
} s_template_t;

struct maild_templates_t {
    s_template_t *items;
    size_t count;
};

bool
maild_template_utf8_valid (const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        uint32_t cp;
        size_t n;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            cp = c & 0x1f, n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            cp = c & 0x0f, n = 2;
        } else if (c >= 0xf0 && c <= 0xf4) {
            cp = c & 0x07, n = 3;
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
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

/* No C0 (CR, LF, TAB included), DEL or C1 control character. */
static bool
s_no_controls (const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; p[i]; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            return false;
        }
        /* C1 is U+0080..U+009F: encoded C2 80 .. C2 9F. */
        if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
            return false;
        }
    }
    return true;
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

int
maild_template_vars_check (const maild_var_t *vars, size_t nvars)
{
    if (nvars > MAILD_MAX_VARS || (nvars > 0 && !vars)) {
        return -1;
    }
    for (size_t i = 0; i < nvars; i++) {
        if (!vars[i].name || !vars[i].value ||
            !s_name_valid (vars[i].name, strlen (vars[i].name)) ||
            strlen (vars[i].value) > MAILD_MAX_VAR_VALUE ||
            !maild_template_utf8_valid (vars[i].value, strlen (vars[i].value)) ||
            !s_no_controls (vars[i].value)) {
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

/* A body file: UTF-8, no control character but LF and TAB, and every
   "{{" opens a well-formed {{name}}.                                 */
static bool
s_body_valid (const char *body)
{
    size_t len = strlen (body);
    if (len == 0 || len > MAILD_MAX_TEMPLATE || !maild_template_utf8_valid (body, len)) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)body[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    for (const char *p = strstr (body, "{{"); p; p = strstr (p + 2, "{{")) {
        const char *close = strstr (p + 2, "}}");
        if (!close || !s_name_valid (p + 2, (size_t)(close - p - 2))) {
            return false;
        }
        p = close;
    }
    return true;
}

static bool
s_subject_valid (const char *subject)
{
    size_t len = strlen (subject);
    return len > 0 && len <= MAILD_MAX_SUBJECT &&
           maild_template_utf8_valid (subject, len) && s_no_controls (subject) &&
           !strstr (subject, "{{");
}

static const char *
s_builtin (const char *file)
{
    for (const maild_template_file_t *f = maild_template_builtin; f->name; f++) {
        if (strcmp (f->name, file) == 0) {
            return f->text;
        }
    }
    return NULL;
}

/* The text of NAME.EXT from dir or the built-in table (caller frees). */
static char *
s_load (const char *dir, const char *name, const char *ext, char *err, size_t errlen)
{
    char file[256];
    snprintf (file, sizeof file, "%s.%s", name, ext);
    if (!dir) {
        const char *text = s_builtin (file);
        if (!text) {
            snprintf (err, errlen, "built-in template file %s missing", file);
            return NULL;
        }
        return strdup (text);
    }
    char path[4096];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    size_t len = 0;
    char *text = cm_file_read (path, MAILD_MAX_TEMPLATE, &len);
    if (!text) {
        snprintf (err, errlen, "cannot read template %s (at most %d bytes)", path,
                  MAILD_MAX_TEMPLATE);
        return NULL;
    }
    if (strlen (text) != len) {
        snprintf (err, errlen, "template %s holds a NUL byte", path);
        free (text);
        return NULL;
    }
    return text;
}

void
maild_templates_destroy (maild_templates_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    maild_templates_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        free (self->items[i].name);
        free (self->items[i].subject);
        free (self->items[i].text);
        free (self->items[i].html);
    }
    free (self->items);
    free (self);
    *self_p = NULL;
}

maild_templates_t *
maild_templates_new (const char *dir, char *err, size_t errlen)
{
    maild_templates_t *self = calloc (1, sizeof *self);
    size_t n = 0;
    for (const maild_template_file_t *f = maild_template_builtin; f->name; f++) {
        n++;
    }
    if (!self || !(self->items = calloc (n ? n : 1, sizeof *self->items))) {
        free (self);
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    /* The names are those of the built-in *.subject files. */
    for (const maild_template_file_t *f = maild_template_builtin; f->name; f++) {
        size_t flen = strlen (f->name);
        if (flen < 9 || strcmp (f->name + flen - 8, ".subject") != 0) {
            continue;
        }
        s_template_t *t = &self->items[self->count++];
        t->name = strndup (f->name, flen - 8);
        if (!t->name) {
            snprintf (err, errlen, "out of memory");
            goto fail;
        }
        t->subject = s_load (dir, t->name, "subject", err, errlen);
        t->text = t->subject ? s_load (dir, t->name, "txt", err, errlen) : NULL;
        t->html = t->text ? s_load (dir, t->name, "html", err, errlen) : NULL;
        if (!t->html) {
            goto fail;
        }
        /* The subject file ends with its newline: one line, no more. */
        size_t slen = strlen (t->subject);
        if (slen > 0 && t->subject[slen - 1] == '\n') {
            t->subject[slen - 1] = '\0';
        }
        if (!s_subject_valid (t->subject)) {
            snprintf (err, errlen,
                      "template %s: the subject must be one line of UTF-8 without "
                      "placeholders, at most %d bytes",
                      t->name, MAILD_MAX_SUBJECT);
            goto fail;
        }
        if (!s_body_valid (t->text) || !s_body_valid (t->html)) {
            snprintf (err, errlen,
                      "template %s: a body must be UTF-8 without control characters "
                      "(but LF, TAB) with well-formed {{name}} placeholders",
                      t->name);
            goto fail;
        }
    }
    return self;
fail:
    maild_templates_destroy (&self);
    return NULL;
}

static const s_template_t *
s_find (maild_templates_t *self, const char *name)
{
    for (size_t i = 0; name && i < self->count; i++) {
        if (strcmp (self->items[i].name, name) == 0) {
            return &self->items[i];
        }
    }
    return NULL;
}

bool
maild_templates_known (maild_templates_t *self, const char *name)
{
    return s_find (self, name) != NULL;
}

void
maild_rendered_clear (maild_rendered_t *r)
{
    if (!r) {
        return;
    }
    if (r->text) {
        cm_secret_free (r->text, strlen (r->text));
    }
    if (r->html) {
        cm_secret_free (r->html, strlen (r->html));
    }
    memset (r, 0, sizeof *r);
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

/* Fills the placeholders of `body`; html: escape each value. NULL with
   *missing set to the first placeholder without a var (or out of
   memory when *missing stays NULL).                                  */
static char *
s_fill (const char *body, const maild_var_t *vars, size_t nvars, bool html,
        const char **missing, size_t *missing_len)
{
    *missing = NULL;
    /* Size first, then one allocation: every value is bounded above and
       an escape is at most 6 bytes for 1.                              */
    size_t cap = strlen (body) + 1;
    for (const char *p = strstr (body, "{{"); p; p = strstr (p + 2, "{{")) {
        cap += MAILD_MAX_VAR_VALUE * (html ? 6 : 1);
    }
    char *out = malloc (cap);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    const char *p = body;
    while (*p) {
        const char *open = strstr (p, "{{");
        const char *close = open ? strstr (open + 2, "}}") : NULL;
        if (!open || !close) {
            size_t rest = strlen (p);
            memcpy (out + o, p, rest);
            o += rest;
            break;
        }
        memcpy (out + o, p, (size_t)(open - p));
        o += (size_t)(open - p);
        const char *var = open + 2;
        size_t varlen = (size_t)(close - var);
        const char *value = s_lookup (vars, nvars, var, varlen);
        if (!value) {
            *missing = var;
            *missing_len = varlen;
            cm_secret_free (out, cap);
            return NULL;
        }
        for (const char *v = value; *v; v++) {
            const char *esc = NULL;
            if (html) {
                esc = *v == '&'    ? "&amp;"
                      : *v == '<'  ? "&lt;"
                      : *v == '>'  ? "&gt;"
                      : *v == '"'  ? "&quot;"
                      : *v == '\'' ? "&#39;"
                                   : NULL;
            }
            if (esc) {
                memcpy (out + o, esc, strlen (esc));
                o += strlen (esc);
            } else {
                out[o++] = *v;
            }
        }
        p = close + 2;
    }
    out[o] = '\0';
    return out;
}

cm_status_t
maild_templates_render (maild_templates_t *self, const char *name,
                        const maild_var_t *vars, size_t nvars, maild_rendered_t *out,
                        const char **err_code, char *msg, size_t msglen)
{
    memset (out, 0, sizeof *out);
    const s_template_t *tpl = s_find (self, name);
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
    const char *missing = NULL;
    size_t missing_len = 0;
    out->text = s_fill (tpl->text, vars, nvars, false, &missing, &missing_len);
    if (out->text) {
        out->html = s_fill (tpl->html, vars, nvars, true, &missing, &missing_len);
    }
    if (!out->text || !out->html) {
        maild_rendered_clear (out);
        if (missing) {
            *err_code = "missing_var";
            if (msg && msglen) {
                /* The name comes from our own template, not from the peer. */
                snprintf (msg, msglen, "template %s needs var %.*s", tpl->name,
                          (int)missing_len, missing);
            }
            return CM_INVALID;
        }
        *err_code = "internal_error";
        s_msg (msg, msglen, "out of memory");
        return CM_INTERNAL;
    }
    size_t line = 0;
    for (const char *c = out->text; *c; c++) {
        line = *c == '\n' ? 0 : line + 1;
        if (line > MAILD_MAX_LINE) {
            maild_rendered_clear (out);
            *err_code = "invalid_vars";
            s_msg (msg, msglen, "a rendered line would exceed 998 bytes (RFC 5322)");
            return CM_INVALID;
        }
    }
    out->subject = tpl->subject;
    return CM_OK;
}
