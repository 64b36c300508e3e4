/*  cli_user -- `safeshare user add|list|disable|enable`.                */
#include "cli_user.h"
#include "cli_args.h"
#include "authd_admin.h"
#include "authd_audit.h"
#include "authd_policy.h"
#include "authd_users.h"
#include "cm_db.h"
#include "cm_status.h"

#include <errno.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Who the CLI is in the audit log: the operator with the database. */
static const authd_origin_t s_cli_origin = {"", "", "cli"};

long
cli_password_read_line (int fd, char *buf, size_t len)
{
    size_t n = 0;
    bool too_long = false;
    for (;;) {
        char c;
        ssize_t r = read (fd, &c, 1);
        if (r < 0 && errno == EINTR) {
            goto fail; /* Ctrl-C while typing: give up, do not retry */
        }
        if (r < 0) {
            goto fail;
        }
        if (r == 0) {
            if (n == 0 && !too_long) {
                goto fail;
            }
            break;
        }
        if (c == '\n') {
            break;
        }
        if (n + 1 >= len) {
            too_long = true; /* keep reading to the newline, keep nothing */
            continue;
        }
        buf[n++] = c;
    }
    if (too_long) {
        OPENSSL_cleanse (buf, len);
        return -2;
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    buf[n] = '\0';
    return (long)n;
fail:
    OPENSSL_cleanse (buf, len);
    return -1;
}

/* The terminal's settings while echo is off, restored on every way out
   (a signal included) so that Ctrl-C never leaves the shell silent.   */
static struct termios s_saved_tty;
static volatile sig_atomic_t s_tty_fd = -1;

static void
s_tty_restore (void)
{
    if (s_tty_fd >= 0) {
        tcsetattr (s_tty_fd, TCSANOW, &s_saved_tty);
        s_tty_fd = -1;
    }
}

static void
s_on_prompt_signal (int sig)
{
    s_tty_restore ();
    signal (sig, SIG_DFL);
    raise (sig);
}

static long
s_prompt (int fd, const char *prompt, char *buf, size_t len)
{
    struct sigaction sa, old_int, old_term;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_prompt_signal;
    sigemptyset (&sa.sa_mask);

    if (tcgetattr (fd, &s_saved_tty) != 0) {
        return -1;
    }
    struct termios quiet = s_saved_tty;
    quiet.c_lflag &= (tcflag_t)~ECHO;
    quiet.c_lflag |= ECHONL;
    sigaction (SIGINT, &sa, &old_int);
    sigaction (SIGTERM, &sa, &old_term);
    s_tty_fd = fd;
    /* Echo off before the prompt shows, and TCSANOW rather than
       TCSAFLUSH: what is typed (or pasted) as soon as the prompt appears
       must be read, not discarded.                                     */
    long n = -1;
    if (tcsetattr (fd, TCSANOW, &quiet) == 0) {
        fputs (prompt, stderr);
        fflush (stderr);
        n = cli_password_read_line (fd, buf, len);
    }
    s_tty_restore ();
    sigaction (SIGINT, &old_int, NULL);
    sigaction (SIGTERM, &old_term, NULL);
    return n;
}

/* 0, or an exit code. */
static int
s_read_password (int fd, char *pw, size_t len)
{
    long n;
    if (isatty (fd)) {
        char again[CLI_PASSWORD_MAX];
        n = s_prompt (fd, "Password: ", pw, len);
        long m = n >= 0 ? s_prompt (fd, "Repeat password: ", again, sizeof again) : -1;
        bool same = n >= 0 && m == n && strcmp (pw, again) == 0;
        OPENSSL_cleanse (again, sizeof again);
        if (n >= 0 && m >= 0 && !same) {
            fprintf (stderr, "safeshare: user add: passwords_differ (the two entries "
                             "do not match)\n");
            OPENSSL_cleanse (pw, len);
            return 1;
        }
        if (m < 0 && n >= 0) {
            n = m;
        }
    } else {
        n = cli_password_read_line (fd, pw, len);
    }
    if (n == -2) {
        fprintf (stderr, "safeshare: user add: password_too_long (at most %d bytes)\n",
                 CLI_PASSWORD_MAX - 1);
        return 1;
    }
    if (n < 0) {
        fprintf (stderr, "safeshare: user add: no password on stdin (one line)\n");
        return 1;
    }
    return 0;
}

/* A SQLite file's directory is made on first use, so that `user add`
   works before the first `safeshare up`.                              */
static int
s_db_dir (const char *url)
{
    if (strncmp (url, "sqlite:", 7) != 0) {
        return 0;
    }
    char copy[4096];
    if (snprintf (copy, sizeof copy, "%s", url + 7) >= (int)sizeof copy) {
        fprintf (stderr, "safeshare: SAFESHARE_AUTH_DB path too long\n");
        return -1;
    }
    const char *dir = dirname (copy);
    if (cm_mkdirs (dir, 0700) != 0) {
        fprintf (stderr, "safeshare: cannot create %s: %s\n", dir, strerror (errno));
        return -1;
    }
    return 0;
}

static const char *
s_explain (const char *code)
{
    static const struct {
        const char *code, *text;
    } known[] = {
        {"email_taken", "a user with this e-mail address already exists"},
        {"weak_password", "the password is too weak"},
        {"invalid_email", "not a valid e-mail address"},
        {"invalid_role", "not a valid role"},
        {"user_not_found", "no user with this e-mail address"},
        {"last_admin", "this is the last enabled admin; make another admin first"},
        {"database_busy", "the auth database is busy; try again"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp (known[i].code, code) == 0) {
            return known[i].text;
        }
    }
    return NULL;
}

/* "safeshare: <what>: <code> (<explanation>)" on stderr. */
static void
s_report (const char *what, const char *code, const char *text)
{
    if (!text) {
        text = s_explain (code);
    }
    fprintf (stderr, "safeshare: %s: %s%s%s%s\n", what, code, text ? " (" : "",
             text ? text : "", text ? ")" : "");
}

/* SAFESHARE_AUTH_DB opened and migrated (the CLI may run before the
   first `safeshare up`, or after an upgrade). NULL: said on stderr.   */
static cm_db_t *
s_open_db (cm_config_t *config, const char *what)
{
    const char *url = cm_config_get (config, "SAFESHARE_AUTH_DB");
    if (!url) {
        fprintf (stderr, "safeshare: %s: SAFESHARE_AUTH_DB is not set\n", what);
        return NULL;
    }
    if (s_db_dir (url) != 0) {
        return NULL; /* said */
    }
    cm_db_t *db = cm_db_open (url);
    if (!db) {
        fprintf (stderr, "safeshare: %s: cannot open the auth database\n", what);
        return NULL;
    }
    if (authd_store_migrate (db) != 0) {
        fprintf (stderr, "safeshare: %s: cannot migrate the auth database\n", what);
        cm_db_destroy (&db);
    }
    return db;
}

/* The user row and its audit row commit together (authd_admin.h). */
static cm_status_t
s_create_audited (cm_db_t *db, const char *email, const char *password, const char *role,
                  char id[33], const char **code)
{
    if (cm_db_begin (db) != 0) {
        *code = "database_busy";
        return CM_UNAVAILABLE;
    }
    cm_status_t status = authd_user_create (db, email, password, role, true, id, code);
    if (status == CM_OK &&
        authd_audit (db, &s_cli_origin, "user_create", "ok", id, role) != 0) {
        status = CM_INTERNAL, *code = "internal_error";
    }
    if (status != CM_OK) {
        cm_db_rollback (db);
        return status;
    }
    if (cm_db_commit (db) != 0) {
        *code = "internal_error";
        return CM_INTERNAL;
    }
    return CM_OK;
}

int
cli_user_add (cm_config_t *config, const char *email, const char *role, int in_fd)
{
    if (!cli_args_role_valid (role)) {
        fprintf (stderr, "safeshare: user add: unknown role %s\n", role ? role : "");
        return 2;
    }
    char password[CLI_PASSWORD_MAX];
    cm_db_t *db = NULL;
    int rc = s_read_password (in_fd, password, sizeof password);
    if (rc != 0) {
        return rc;
    }
    rc = 1;
    db = s_open_db (config, "user add");
    if (!db) {
        goto cleanup;
    }
    /* The same password policy as the running auth service. */
    if (authd_denylist_load (cm_config_get (config, "SAFESHARE_PASSWORD_DENYLIST")) !=
        0) {
        fprintf (stderr, "safeshare: user add: cannot load the password deny-list\n");
        goto cleanup;
    }
    char id[33] = "";
    const char *code = NULL;
    cm_status_t status = s_create_audited (db, email, password, role, id, &code);
    if (status != CM_OK) {
        if (!code) {
            code = cm_status_code (status);
        }
        s_report ("user add", code,
                  strcmp (code, "weak_password") == 0 ? authd_password_problem (password)
                                                      : NULL);
        goto cleanup;
    }
    printf ("created %s user %s (id %s)\n", role, email, id);
    fflush (stdout);
    rc = 0;
cleanup:
    OPENSSL_cleanse (password, sizeof password);
    cm_db_destroy (&db);
    return rc;
}

/* ---- list ------------------------------------------------------------- */

typedef struct {
    authd_user_t *users;
    size_t n, cap;
} s_users_t;

/* Every page into all (the table's columns are as wide as its longest
   address). CM_OK or authd's status with *code.                      */
static cm_status_t
s_list_all (cm_db_t *db, const char *role, const char *email_part, s_users_t *all,
            const char **code)
{
    char cursor[AUTHD_CURSOR_MAX + 1] = "";
    for (;;) {
        if (all->cap - all->n < AUTHD_LIST_LIMIT_MAX) {
            size_t cap = all->cap ? all->cap * 2 : AUTHD_LIST_LIMIT_MAX;
            authd_user_t *grown = realloc (all->users, cap * sizeof *grown);
            if (!grown) {
                *code = "out_of_memory";
                return CM_INTERNAL;
            }
            all->users = grown, all->cap = cap;
        }
        size_t n = 0;
        char next[AUTHD_CURSOR_MAX + 1];
        cm_status_t status =
            authd_admin_list (db, AUTHD_LIST_LIMIT_MAX, cursor, email_part, role,
                              all->users + all->n, &n, next, code);
        if (status != CM_OK) {
            return status;
        }
        all->n += n;
        if (!next[0]) {
            return CM_OK;
        }
        memcpy (cursor, next, sizeof cursor);
    }
}

int
cli_user_list (cm_config_t *config, const char *role, const char *email_part, FILE *out)
{
    s_users_t all = {NULL, 0, 0};
    int rc = 1;
    cm_db_t *db = s_open_db (config, "user list");
    if (!db) {
        goto cleanup;
    }
    const char *code = NULL;
    cm_status_t status = s_list_all (db, role, email_part, &all, &code);
    if (status != CM_OK) {
        s_report ("user list", code ? code : cm_status_code (status), NULL);
        rc = status == CM_INVALID ? 2 : 1;
        goto cleanup;
    }
    int width = 5; /* "EMAIL" */
    for (size_t i = 0; i < all.n; i++) {
        int len = (int)strlen (all.users[i].email);
        width = len > width ? len : width;
    }
    fprintf (out, "%-32s  %-*s  %-6s  %-8s  %-8s  %s\n", "ID", width, "EMAIL", "ROLE",
             "VERIFIED", "DISABLED", "CREATED");
    for (size_t i = 0; i < all.n; i++) {
        const authd_user_t *u = &all.users[i];
        char created[32] = "?";
        time_t at = (time_t)u->created_at;
        struct tm tm;
        if (gmtime_r (&at, &tm)) {
            strftime (created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        fprintf (out, "%-32s  %-*s  %-6s  %-8s  %-8s  %s\n", u->id, width, u->email,
                 u->role, u->verified ? "yes" : "no", u->disabled ? "yes" : "no",
                 created);
    }
    fflush (out);
    rc = 0;
cleanup:
    free (all.users);
    cm_db_destroy (&db);
    return rc;
}

/* ---- disable / enable ------------------------------------------------- */

int
cli_user_set_disabled (cm_config_t *config, const char *email, bool disabled, FILE *out)
{
    const char *what = disabled ? "user disable" : "user enable";
    const char *done = disabled ? "disabled" : "enabled";
    int rc = 1;
    cm_db_t *db = s_open_db (config, what);
    if (!db) {
        return 1;
    }
    authd_user_t before, after;
    const char *code = NULL;
    cm_status_t status = authd_user_by_email (db, email, &before, &code);
    if (status == CM_OK) {
        /* Always through authd_admin: its last-admin rule and its
           audit; a user already in that state is a no-op there.      */
        status = authd_admin_update (db, &s_cli_origin, before.id, disabled ? 1 : 0, NULL,
                                     &after, &code);
    }
    if (status != CM_OK) {
        s_report (what, code ? code : cm_status_code (status), NULL);
        goto cleanup;
    }
    if (before.disabled == disabled) {
        fprintf (out, "user %s (id %s) was already %s\n", after.email, after.id, done);
    } else {
        fprintf (out, "%s user %s (id %s)%s\n", done, after.email, after.id,
                 disabled ? "; its sessions are ended" : "");
    }
    fflush (out);
    rc = 0;
cleanup:
    cm_db_destroy (&db);
    return rc;
}
