/*  cli_user -- `safeshare user add`.                                    */
#include "cli_user.h"
#include "cli_args.h"
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
#include <termios.h>
#include <unistd.h>

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
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp (known[i].code, code) == 0) {
            return known[i].text;
        }
    }
    return NULL;
}

int
cli_user_add (cm_config_t *config, const char *email, const char *role, int in_fd)
{
    if (!cli_args_role_valid (role)) {
        fprintf (stderr, "safeshare: user add: unknown role %s\n", role ? role : "");
        return 2;
    }
    const char *url = cm_config_get (config, "SAFESHARE_AUTH_DB");
    char password[CLI_PASSWORD_MAX];
    cm_db_t *db = NULL;
    int rc = s_read_password (in_fd, password, sizeof password);
    if (rc != 0) {
        return rc;
    }
    rc = 1;
    if (!url || s_db_dir (url) != 0) {
        goto cleanup;
    }
    db = cm_db_open (url);
    if (!db) {
        fprintf (stderr, "safeshare: user add: cannot open the auth database\n");
        goto cleanup;
    }
    if (authd_store_migrate (db) != 0) {
        fprintf (stderr, "safeshare: user add: cannot migrate the auth database\n");
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
    cm_status_t status = authd_user_create (db, email, password, role, true, id, &code);
    if (status != CM_OK) {
        if (!code) {
            code = cm_status_code (status);
        }
        const char *text = strcmp (code, "weak_password") == 0
                               ? authd_password_problem (password)
                               : NULL;
        if (!text) {
            text = s_explain (code);
        }
        fprintf (stderr, "safeshare: user add: %s%s%s%s\n", code, text ? " (" : "",
                 text ? text : "", text ? ")" : "");
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
