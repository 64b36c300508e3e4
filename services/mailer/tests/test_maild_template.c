/*  unit_mailer_template -- the built-in set and a template directory,
    rendering of both parts (values HTML-escaped in the HTML part),
    missing vars, and refusal of every value that could carry a line
    break (header/body injection).                                     */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maild_template.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_link = "http://127.0.0.1:8000/api/auth/verify?token=abcDEF123-_xyz";
static maild_templates_t *s_set; /* the built-in templates */

/* The text part in *body (caller frees), the HTML part dropped. */
static cm_status_t
s_render (const char *name, const maild_var_t *vars, size_t nvars, const char **subject,
          char **body, const char **code, char *msg, size_t msglen)
{
    maild_rendered_t r;
    cm_status_t st =
        maild_templates_render (s_set, name, vars, nvars, &r, code, msg, msglen);
    *body = NULL;
    if (st == CM_OK) {
        *subject = r.subject;
        *body = strdup (r.text);
    }
    maild_rendered_clear (&r);
    return st;
}

/* Renders verify_email with one var link=value; returns status, *code. */
static cm_status_t
s_render_link (const char *value, const char **code, char **body)
{
    maild_var_t vars[] = {{"link", value}};
    const char *subject = NULL;
    *code = NULL;
    return s_render ("verify_email", vars, 1, &subject, body, code, NULL, 0);
}

static void
test_verify_email_renders (void **state)
{
    (void)state;
    maild_var_t vars[] = {{"link", s_link}};
    const char *subject = NULL, *code = NULL;
    char *body = NULL;
    char msg[160];
    assert_int_equal (
        s_render ("verify_email", vars, 1, &subject, &body, &code, msg, sizeof msg),
        CM_OK);
    assert_string_equal (subject, "Verify your safeshare account");
    assert_non_null (body);
    /* The link, whole, alone on its own line. */
    char line[256];
    snprintf (line, sizeof line, "\n%s\n", s_link);
    assert_non_null (strstr (body, line));
    assert_null (strstr (body, "{{"));
    assert_null (strchr (body, '\r'));
    assert_int_equal (body[strlen (body) - 1], '\n');
    free (body);
}

static void
test_extra_var_ignored_and_utf8_accepted (void **state)
{
    (void)state;
    maild_var_t vars[] = {{"name", "Zoë ✓"}, {"link", "https://x.example/v?t=1"}};
    const char *subject = NULL, *code = NULL;
    char *body = NULL;
    assert_int_equal (s_render ("verify_email", vars, 2, &subject, &body, &code, NULL, 0),
                      CM_OK);
    assert_non_null (strstr (body, "\nhttps://x.example/v?t=1\n"));
    free (body);
}

static void
test_missing_var (void **state)
{
    (void)state;
    maild_var_t vars[] = {{"other", "x"}};
    const char *subject = NULL, *code = NULL;
    char *body = (char *)"untouched";
    char msg[160];
    assert_int_equal (
        s_render ("verify_email", vars, 1, &subject, &body, &code, msg, sizeof msg),
        CM_INVALID);
    assert_string_equal (code, "missing_var");
    assert_null (body);
    assert_non_null (strstr (msg, "link"));
    assert_int_equal (s_render ("verify_email", NULL, 0, &subject, &body, &code, NULL, 0),
                      CM_INVALID);
    assert_string_equal (code, "missing_var");
}

static void
test_unknown_template (void **state)
{
    (void)state;
    maild_var_t vars[] = {{"link", s_link}};
    const char *subject = NULL, *code = NULL;
    char *body = NULL;
    assert_false (maild_templates_known (s_set, "nope"));
    assert_false (maild_templates_known (s_set, ""));
    assert_false (maild_templates_known (s_set, NULL));
    assert_true (maild_templates_known (s_set, "verify_email"));
    assert_int_equal (
        s_render ("verify_email\r\n", vars, 1, &subject, &body, &code, NULL, 0),
        CM_INVALID);
    assert_string_equal (code, "unknown_template");
    assert_int_equal (
        s_render ("../verify_email", vars, 1, &subject, &body, &code, NULL, 0),
        CM_INVALID);
    assert_string_equal (code, "unknown_template");
    assert_null (body);
}

static void
test_crlf_and_controls_refused (void **state)
{
    (void)state;
    static const char *bad[] = {
        "http://x/?t=1\r\nBcc: victim@example.com",
        "http://x/?t=1\nSubject: pwned",
        "http://x/?t=1\r",
        "\n",
        "tab\there",
        "bell\a",
        "del\x7f",
        "esc\x1b[31m",
        "nel\xc2\x85"
        "x",                      /* U+0085 NEXT LINE, a C1 control */
        "bad\xff utf8",           /* invalid byte */
        "overlong\xc0\xaf",       /* overlong '/' */
        "surrogate\xed\xa0\x80",  /* U+D800 */
        "truncated\xe2\x9c",      /* cut multi-byte sequence */
        "toobig\xf4\x90\x80\x80", /* > U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *code;
        char *body = NULL;
        assert_int_equal (s_render_link (bad[i], &code, &body), CM_INVALID);
        assert_string_equal (code, "invalid_vars");
        assert_null (body);
    }
}

static void
test_var_names_and_counts (void **state)
{
    (void)state;
    const char *code, *subject;
    char *body = NULL;
    static const char *bad_names[] = {"",
                                      "Link",
                                      "li-nk",
                                      "link1",
                                      "l ink",
                                      "link\n",
                                      "abcdefghijklmnopqrstuvwxyzabcdefg" /* 33 */};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        maild_var_t vars[] = {{"link", s_link}, {bad_names[i], "x"}};
        assert_int_equal (
            s_render ("verify_email", vars, 2, &subject, &body, &code, NULL, 0),
            CM_INVALID);
        assert_string_equal (code, "invalid_vars");
    }
    maild_var_t ok32[] = {{"link", s_link}, {"abcdefghijklmnopqrstuvwxyzabcdef", "x"}};
    assert_int_equal (s_render ("verify_email", ok32, 2, &subject, &body, &code, NULL, 0),
                      CM_OK);
    free (body);

    /* A name given twice is ambiguous. */
    maild_var_t dup[] = {{"link", s_link}, {"link", "http://evil/"}};
    assert_int_equal (s_render ("verify_email", dup, 2, &subject, &body, &code, NULL, 0),
                      CM_INVALID);
    assert_string_equal (code, "invalid_vars");

    /* 16 vars pass, 17 do not. */
    maild_var_t many[17];
    char names[17][8];
    many[0] = (maild_var_t){"link", s_link};
    for (int i = 1; i < 17; i++) {
        snprintf (names[i], sizeof names[i], "v_%c", 'a' + i);
        many[i] = (maild_var_t){names[i], "x"};
    }
    assert_int_equal (
        s_render ("verify_email", many, 16, &subject, &body, &code, NULL, 0), CM_OK);
    free (body);
    assert_int_equal (
        s_render ("verify_email", many, 17, &subject, &body, &code, NULL, 0), CM_INVALID);
    assert_string_equal (code, "invalid_vars");
    assert_int_equal (maild_template_vars_check (many, 16), 0);
    assert_int_equal (maild_template_vars_check (many, 17), -1);
}

static void
test_value_lengths (void **state)
{
    (void)state;
    const char *code;
    char *body = NULL;
    char *value = malloc (MAILD_MAX_VAR_VALUE + 2);
    /* A value on its own line may fill the RFC 5322 line limit exactly. */
    memset (value, 'a', MAILD_MAX_LINE);
    value[MAILD_MAX_LINE] = '\0';
    assert_int_equal (s_render_link (value, &code, &body), CM_OK);
    free (body);
    /* One byte more breaks the line limit. */
    memset (value, 'a', MAILD_MAX_LINE + 1);
    value[MAILD_MAX_LINE + 1] = '\0';
    assert_int_equal (s_render_link (value, &code, &body), CM_INVALID);
    assert_string_equal (code, "invalid_vars");
    /* Over the value limit is refused by the var check itself. */
    maild_var_t vars[] = {{"other", value}};
    memset (value, 'a', MAILD_MAX_VAR_VALUE);
    value[MAILD_MAX_VAR_VALUE] = '\0';
    assert_int_equal (maild_template_vars_check (vars, 1), 0);
    memset (value, 'a', MAILD_MAX_VAR_VALUE + 1);
    value[MAILD_MAX_VAR_VALUE + 1] = '\0';
    assert_int_equal (maild_template_vars_check (vars, 1), -1);
    free (value);
}

static void
test_html_part_escapes_values (void **state)
{
    (void)state;
    maild_var_t vars[] = {{"link", "https://x.example/v?a=1&b=\"<script>'"}};
    maild_rendered_t r;
    const char *code = NULL;
    assert_int_equal (
        maild_templates_render (s_set, "verify_email", vars, 1, &r, &code, NULL, 0),
        CM_OK);
    assert_non_null (strstr (r.html, "href=\"https://x.example/v?a=1&amp;b=&quot;&lt;"
                                     "script&gt;&#39;\""));
    assert_null (strstr (r.html, "<script>"));
    /* The text part has the value as is, alone on its line. */
    assert_non_null (strstr (r.text, "\nhttps://x.example/v?a=1&b=\"<script>'\n"));
    maild_rendered_clear (&r);
    assert_null (r.text);
}

static int
s_write (const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    return cm_file_write_atomic (path, text, strlen (text), 0600);
}

static void
test_template_dir (void **state)
{
    (void)state;
    char *dir = cm_test_tmpdir ();
    assert_non_null (dir);
    char err[256];
    /* Missing files: refused at start, with the path in the reason. */
    assert_null (maild_templates_new (dir, err, sizeof err));
    assert_non_null (strstr (err, "verify_email.subject"));
    assert_int_equal (s_write (dir, "verify_email.subject", "Bitte best\xc3\xa4tigen\n"),
                      0);
    assert_int_equal (s_write (dir, "verify_email.txt", "Hallo,\n{{link}}\n"), 0);
    assert_int_equal (
        s_write (dir, "verify_email.html", "<p><a href=\"{{link}}\">ok</a></p>\n"), 0);
    maild_templates_t *set = maild_templates_new (dir, err, sizeof err);
    assert_non_null (set);
    maild_var_t vars[] = {{"link", s_link}};
    maild_rendered_t r;
    const char *code = NULL;
    assert_int_equal (
        maild_templates_render (set, "verify_email", vars, 1, &r, &code, NULL, 0), CM_OK);
    assert_string_equal (r.subject, "Bitte best\xc3\xa4tigen");
    char want[300];
    snprintf (want, sizeof want, "Hallo,\n%s\n", s_link);
    assert_string_equal (r.text, want);
    maild_rendered_clear (&r);
    maild_templates_destroy (&set);
    assert_null (set);
    /* A subject with a placeholder, a CR, or a broken placeholder: refused. */
    static const char *bad[][2] = {
        {"verify_email.subject", "Hi {{link}}\n"},
        {"verify_email.subject", "two\nlines\n"},
        {"verify_email.txt", "a\r\n{{link}}\n"},
        {"verify_email.html", "<p>{{Link}}</p>\n"},
        {"verify_email.html", "<p>{{link</p>\n"},
        {"verify_email.txt", "bad \xff utf-8\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (s_write (dir, "verify_email.subject", "Subject\n"), 0);
        assert_int_equal (s_write (dir, "verify_email.txt", "{{link}}\n"), 0);
        assert_int_equal (s_write (dir, "verify_email.html", "{{link}}\n"), 0);
        assert_non_null ((set = maild_templates_new (dir, err, sizeof err)));
        maild_templates_destroy (&set);
        assert_int_equal (s_write (dir, bad[i][0], bad[i][1]), 0);
        set = maild_templates_new (dir, err, sizeof err);
        if (set) {
            fail_msg ("template case %zu accepted", i);
        }
    }
    cm_test_rmrf (dir);
    free (dir);
}

static int
s_setup (void **state)
{
    (void)state;
    char err[256];
    s_set = maild_templates_new (NULL, err, sizeof err);
    if (!s_set) {
        fprintf (stderr, "built-in templates: %s\n", err);
    }
    return s_set ? 0 : -1;
}

static int
s_teardown (void **state)
{
    (void)state;
    maild_templates_destroy (&s_set);
    return 0;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_verify_email_renders),
        cmocka_unit_test (test_extra_var_ignored_and_utf8_accepted),
        cmocka_unit_test (test_missing_var),
        cmocka_unit_test (test_unknown_template),
        cmocka_unit_test (test_crlf_and_controls_refused),
        cmocka_unit_test (test_var_names_and_counts),
        cmocka_unit_test (test_value_lengths),
        cmocka_unit_test (test_html_part_escapes_values),
        cmocka_unit_test (test_template_dir),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
