/*  svc_cli -- the real `safeshare` binary in a temp data dir: keys,
    users, usage and exit codes, and what ends up on disk.

    usage: svc_cli PATH/TO/safeshare                                    */
#include "cli_test_proc.h"
#include "cm_testing.h"
#include "cryptod_keyring.h"

#include <ctype.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define S_PASSWORD "Correct-Horse-Battery-9"

static const char *s_bin;
static char *s_dir; /* the data dir */

/* `safeshare` with the arguments after err, up to a NULL. */
static int
s_run (const char *stdin_data, char **out, char **err, ...)
{
    va_list ap;
    va_start (ap, err);
    int rc = cli_test_vrun (s_bin, stdin_data, out, err, ap);
    va_end (ap);
    return rc;
}

static char *
s_path (const char *rel)
{
    char *p = NULL;
    assert_true (asprintf (&p, "%s/%s", s_dir, rel) > 0);
    return p;
}

static unsigned
s_mode (const char *rel)
{
    return cli_test_mode (s_dir, rel);
}

static char *
s_file (const char *rel, size_t *len)
{
    char *p = s_path (rel);
    char *data = cli_test_slurp (p, len);
    free (p);
    return data;
}

/* "KEK <16 hex> is now current" -> the id. */
static void
s_kek_id (const char *out, char id[17])
{
    const char *line = strstr (out, "KEK ");
    assert_non_null (line);
    assert_int_equal (sscanf (line, "KEK %16[0-9a-f] is now current", id), 1);
    assert_int_equal (strlen (id), 16);
}

static void
test_usage_and_version (void **state)
{
    char *out, *err;
    assert_int_equal (s_run (NULL, &out, &err, "help", NULL), 0);
    assert_non_null (strstr (out, "user add EMAIL --role ROLE"));
    assert_non_null (strstr (out, "keys generate"));
    assert_non_null (strstr (out, "  up "));
    assert_non_null (strstr (out, "keys rotate [--resume]"));
    assert_non_null (strstr (out, "keys retire ID"));
    assert_non_null (strstr (out, "decrypt --file ID --out PATH"));
    assert_non_null (strstr (out, "fsck [--repair] [--grace SECONDS]"));
    free (out);
    free (err);

    assert_int_equal (s_run (NULL, &out, &err, "--help", NULL), 0);
    assert_non_null (strstr (out, "user add EMAIL --role ROLE"));
    free (out);
    free (err);

    assert_int_equal (s_run (NULL, &out, &err, "version", NULL), 0);
    assert_string_equal (out, "safeshare " SAFESHARE_VERSION "\n");
    free (out);
    free (err);
    assert_int_equal (s_run (NULL, &out, &err, "--version", NULL), 0);
    assert_string_equal (out, "safeshare " SAFESHARE_VERSION "\n");
    free (out);
    free (err);

    assert_int_equal (s_run (NULL, &out, &err, "bogus", NULL), 2);
    assert_string_equal (out, "");
    assert_non_null (strstr (err, "unknown command bogus"));
    assert_non_null (strstr (err, "usage: safeshare"));
    free (out);
    free (err);

    assert_int_equal (s_run (NULL, &out, &err, NULL), 2);
    assert_non_null (strstr (err, "missing command"));
    free (out);
    free (err);

    assert_int_equal (s_run (NULL, &out, &err, "fsck", "--grace", "soon", NULL), 2);
    assert_non_null (strstr (err, "fsck: --grace needs 0.."));
    free (out);
    free (err);
}

static void
test_bad_config (void **state)
{
    char *out, *err;
    setenv ("SAFESHARE_CHUNK_SIZE", "12", 1);
    assert_int_equal (s_run (NULL, &out, &err, "keys", "generate", NULL), 2);
    assert_non_null (strstr (err, "SAFESHARE_CHUNK_SIZE"));
    unsetenv ("SAFESHARE_CHUNK_SIZE");
    free (out);
    free (err);
    assert_int_equal (
        s_run (NULL, &out, &err, "--config", "/nonexistent/x.conf", "help", NULL), 2);
    free (out);
    free (err);
    assert_int_equal (s_mode ("keys"), 0xffffffffu); /* nothing made */
}

static void
test_keys_generate (void **state)
{
    char *out, *err;
    char id1[17], id2[17];
    assert_int_equal (s_run (NULL, &out, &err, "keys", "generate", NULL), 0);
    s_kek_id (out, id1);
    assert_non_null (strstr (out, "JWT signing key pair written to"));
    assert_int_equal (s_mode ("keys"), 0700);
    assert_int_equal (s_mode ("keys/kek.ring"), 0600);
    assert_int_equal (s_mode ("keys/jwt-es256.pem"), 0600);
    assert_true (s_mode ("keys/jwt-es256.pub") != 0xffffffffu);

    /* The key itself is never printed: take it from the ring's last line. */
    size_t ring_len1;
    char *ring = s_file ("keys/kek.ring", &ring_len1);
    assert_non_null (ring);
    char *line = strstr (ring, id1);
    assert_non_null (line);
    char key[65];
    assert_int_equal (sscanf (line + 16, " %64[0-9a-f]", key), 1);
    assert_int_equal (strlen (key), 64);
    assert_null (strstr (out, key));
    assert_null (strstr (err, key));
    free (ring);
    free (out);
    free (err);

    size_t pem_len;
    char *pem = s_file ("keys/jwt-es256.pem", &pem_len);
    assert_non_null (strstr (pem, "PRIVATE KEY"));

    /* Again: a second KEK becomes current, the JWT key stays. */
    assert_int_equal (s_run (NULL, &out, &err, "keys", "generate", NULL), 0);
    s_kek_id (out, id2);
    assert_string_not_equal (id1, id2);
    assert_non_null (strstr (out, "kept"));
    free (out);
    free (err);
    size_t pem_len2;
    char *pem2 = s_file ("keys/jwt-es256.pem", &pem_len2);
    assert_int_equal (pem_len, pem_len2);
    assert_memory_equal (pem, pem2, pem_len);
    free (pem2);
    assert_int_equal (s_mode ("keys/kek.ring"), 0600);

    char *ring_path = s_path ("keys/kek.ring");
    cryptod_keyring_t *kr = cryptod_keyring_load (ring_path);
    assert_non_null (kr);
    assert_int_equal (cryptod_keyring_size (kr), 2);
    assert_string_equal (cryptod_keyring_id (kr, 0), id1);
    assert_string_equal (cryptod_keyring_current (kr), id2);
    cryptod_keyring_destroy (&kr);

    /* A lone half of the JWT pair is refused, never silently replaced. */
    char *pub = s_path ("keys/jwt-es256.pub");
    char *pub_saved = s_path ("pub.saved");
    assert_int_equal (rename (pub, pub_saved), 0);
    assert_int_equal (s_run (NULL, &out, &err, "keys", "generate", NULL), 1);
    assert_non_null (strstr (err, "jwt-es256.pem exists but"));
    assert_null (strstr (out, "is now current")); /* refused before any change */
    free (out);
    free (err);
    assert_int_equal (rename (pub_saved, pub), 0);
    char *pem3 = s_file ("keys/jwt-es256.pem", NULL);
    assert_memory_equal (pem, pem3, pem_len);
    free (pem3);
    free (pem);
    free (pub);
    free (pub_saved);

    /* An open key dir is refused: the ring would be readable by others. */
    char *keys = s_path ("keys");
    assert_int_equal (chmod (keys, 0755), 0);
    assert_int_equal (s_run (NULL, &out, &err, "keys", "generate", NULL), 1);
    assert_non_null (strstr (err, "accessible by other users"));
    free (out);
    free (err);
    assert_int_equal (chmod (keys, 0700), 0);
    free (keys);
    kr = cryptod_keyring_load (ring_path);
    assert_int_equal (cryptod_keyring_size (kr), 2);
    cryptod_keyring_destroy (&kr);
    free (ring_path);
}

/* The users row: an Argon2id hash, and the password nowhere in the DB. */
static void
s_check_db (const char *email)
{
    char *db_path = s_path ("auth.db");
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open_v2 (db_path, &db, SQLITE_OPEN_READONLY, NULL),
                      SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal (
        sqlite3_prepare_v2 (db, "SELECT * FROM users WHERE email = ?", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text (st, 1, email, -1, SQLITE_STATIC);
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    int argon = 0, role_ops = 0;
    for (int c = 0; c < sqlite3_column_count (st); c++) {
        const char *v = (const char *)sqlite3_column_text (st, c);
        if (!v) {
            continue;
        }
        assert_null (strstr (v, S_PASSWORD));
        argon += strncmp (v, "$argon2id$", 10) == 0;
        role_ops += strcmp (v, "ops") == 0;
    }
    assert_int_equal (argon, 1);
    assert_int_equal (role_ops, 1);
    assert_int_equal (sqlite3_step (st), SQLITE_DONE);
    sqlite3_finalize (st);
    sqlite3_close (db);

    const char *files[] = {"auth.db", "auth.db-wal", "auth.db-journal"};
    for (size_t i = 0; i < 3; i++) {
        size_t len = 0;
        char *bytes = s_file (files[i], &len);
        if (bytes) {
            assert_null (memmem (bytes, len, S_PASSWORD, strlen (S_PASSWORD)));
            free (bytes);
        }
    }
    free (db_path);
}

static void
test_user_add (void **state)
{
    char *out, *err;
    assert_int_equal (s_run (S_PASSWORD "\n", &out, &err, "user", "add", "a@b.example",
                             "--role", "ops", NULL),
                      0);
    char id[33] = "";
    assert_int_equal (sscanf (out, "created ops user a@b.example (id %32[0-9a-f])", id),
                      1);
    assert_int_equal (strlen (id), 32);
    assert_null (strstr (out, S_PASSWORD));
    assert_null (strstr (err, S_PASSWORD));
    free (out);
    free (err);
    assert_int_equal (s_mode ("auth.db"), 0600);
    s_check_db ("a@b.example");

    /* The same address again (any case): email_taken, exit 1. */
    assert_int_equal (s_run (S_PASSWORD "\n", &out, &err, "user", "add", "A@B.example",
                             "--role", "admin", NULL),
                      1);
    assert_non_null (strstr (err, "email_taken"));
    assert_string_equal (out, "");
    free (out);
    free (err);

    assert_int_equal (s_run (S_PASSWORD "\n", &out, &err, "user", "add", "r@b.example",
                             "--role", "root", NULL),
                      2);
    assert_non_null (strstr (err, "unknown role 'root'"));
    free (out);
    free (err);

    assert_int_equal (s_run ("abc\n", &out, &err, "user", "add", "w@b.example", "--role",
                             "client", NULL),
                      1);
    assert_non_null (strstr (err, "weak_password"));
    free (out);
    free (err);

    assert_int_equal (
        s_run ("", &out, &err, "user", "add", "e@b.example", "--role", "client", NULL),
        1);
    assert_non_null (strstr (err, "no password"));
    free (out);
    free (err);

    assert_int_equal (s_run (S_PASSWORD "\n", &out, &err, "user", "add", "not-an-email",
                             "--role", "client", NULL),
                      1);
    assert_non_null (strstr (err, "invalid_email"));
    free (out);
    free (err);

    /* Only the one user exists: the failures above stored nothing. */
    char *db_path = s_path ("auth.db");
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open_v2 (db_path, &db, SQLITE_OPEN_READONLY, NULL),
                      SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal (
        sqlite3_prepare_v2 (db, "SELECT count(*) FROM users", -1, &st, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (st, 0), 1);
    sqlite3_finalize (st);
    sqlite3_close (db);
    free (db_path);

    /* A second user with the role given first, from a CRLF line. */
    assert_int_equal (s_run (S_PASSWORD "\r\n", &out, &err, "user", "add",
                             "--role=client", "c@b.example", NULL),
                      0);
    assert_non_null (strstr (out, "created client user c@b.example (id "));
    free (out);
    free (err);
}

/* Reads the pty until `token` appears (or EOF / 10 s). */
static int
s_pty_until (int fd, const char *token, char *buf, size_t len)
{
    size_t got = strlen (buf);
    long deadline = (long)time (NULL) + 10;
    while (!strstr (buf, token)) {
        struct pollfd p = {fd, POLLIN, 0};
        if ((long)time (NULL) > deadline || got >= len - 1 || poll (&p, 1, 1000) < 0) {
            return -1;
        }
        if (!(p.revents & (POLLIN | POLLHUP))) {
            continue;
        }
        ssize_t n = read (fd, buf + got, len - 1 - got);
        if (n <= 0) {
            return -1; /* EIO once the child closed the terminal */
        }
        got += (size_t)n;
        buf[got] = '\0';
    }
    return 0;
}

/* On a terminal: two prompts, no echo, both entries must match. */
static int
s_run_tty (const char *email, const char *pw1, const char *pw2, char *buf, size_t len)
{
    int fd;
    pid_t pid = forkpty (&fd, NULL, NULL, NULL);
    assert_true (pid >= 0);
    if (pid == 0) {
        char *argv[] = {"safeshare", "user",  "add", (char *)email,
                        "--role",    "admin", NULL};
        execv (s_bin, argv);
        _exit (127);
    }
    buf[0] = '\0';
    assert_int_equal (s_pty_until (fd, "Password: ", buf, len), 0);
    assert_true (write (fd, pw1, strlen (pw1)) > 0 && write (fd, "\n", 1) == 1);
    assert_int_equal (s_pty_until (fd, "Repeat password: ", buf, len), 0);
    assert_true (write (fd, pw2, strlen (pw2)) > 0 && write (fd, "\n", 1) == 1);
    s_pty_until (fd, "\x01never", buf, len); /* to EOF */
    close (fd);
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

static void
test_user_add_tty (void **state)
{
    char buf[8192];
    assert_int_equal (s_run_tty ("t@b.example", S_PASSWORD, S_PASSWORD, buf, sizeof buf),
                      0);
    assert_non_null (strstr (buf, "created admin user t@b.example (id "));
    assert_null (strstr (buf, S_PASSWORD)); /* never echoed */

    assert_int_equal (
        s_run_tty ("u@b.example", S_PASSWORD, "Another-Horse-77", buf, sizeof buf), 1);
    assert_non_null (strstr (buf, "passwords_differ"));
    assert_null (strstr (buf, S_PASSWORD));
    assert_null (strstr (buf, "created"));
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: svc_cli PATH/TO/safeshare\n");
        return 2;
    }
    s_bin = argv[1];
    s_dir = cm_test_tmpdir ();
    if (!s_dir) {
        return 1;
    }
    setenv ("SAFESHARE_DATA_DIR", s_dir, 1);
    unsetenv ("SAFESHARE_KEY_DIR");
    unsetenv ("SAFESHARE_AUTH_DB");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_usage_and_version), cmocka_unit_test (test_bad_config),
        cmocka_unit_test (test_keys_generate),     cmocka_unit_test (test_user_add),
        cmocka_unit_test (test_user_add_tty),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    cm_test_rmrf (s_dir);
    free (s_dir);
    return rc;
}
