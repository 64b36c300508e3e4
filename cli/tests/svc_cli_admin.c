/*  svc_cli_admin -- the real `safeshare` binary in a temp data dir:
    `user list|disable|enable`, the audit rows `user add|disable|enable`
    leave, and `keys rotate-jwt`. The auth database is SQLite, or a
    fresh PostgreSQL schema with SAFESHARE_TEST_DB=pg.

    usage: svc_cli_admin PATH/TO/safeshare                              */
#include "cli_test_proc.h"
#include "cm_db.h"
#include "cm_jwt.h"
#include "cm_testing.h"
#include "cm_util.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define S_PASSWORD "Correct-Horse-Battery-9"

static const char *s_bin;
static char *s_dir;       /* the data dir */
static char s_url[700];   /* the auth DB, as the CLI sees it */
static char s_schema[40]; /* PostgreSQL run: the schema */
static char s_ids[3][33]; /* admin@, ops@, client@ */

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

/* First column of the first row ("" for none or NULL). */
static void
s_scalar (const char *sql, const char *param, char *out, size_t outlen)
{
    cm_db_t *db = cm_db_open (s_url);
    assert_non_null (db);
    const char *p[] = {param};
    cm_db_res_t *res = cm_db_query (db, sql, param ? 1 : 0, param ? p : NULL);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    const char *v = cm_db_res_get (res, 0, 0);
    snprintf (out, outlen, "%s", v ? v : "");
    cm_db_res_free (&res);
    cm_db_destroy (&db);
}

static long
s_count (const char *sql, const char *param)
{
    char buf[32];
    s_scalar (sql, param, buf, sizeof buf);
    return strtol (buf, NULL, 10);
}

static void
s_exec (const char *sql, int n, const char *const *p)
{
    cm_db_t *db = cm_db_open (s_url);
    assert_non_null (db);
    assert_int_equal (cm_db_exec (db, sql, n, p), CM_DB_OK);
    cm_db_destroy (&db);
}

/* "created <role> user <email> (id <id>)" -> id */
static void
s_add (const char *email, const char *role, char id[33])
{
    char *out, *err;
    assert_int_equal (
        s_run (S_PASSWORD "\n", &out, &err, "user", "add", email, "--role", role, NULL),
        0);
    char expect[160];
    snprintf (expect, sizeof expect, "created %s user %s (id ", role, email);
    assert_true (strncmp (out, expect, strlen (expect)) == 0);
    assert_int_equal (sscanf (out + strlen (expect), "%32[0-9a-f])", id), 1);
    assert_true (cm_is_hex_id (id, 32));
    cli_test_free2 (&out, &err);
}

/* ---- usage -------------------------------------------------------------- */

static void
test_usage (void **state)
{
    char *out, *err;
    assert_int_equal (s_run (NULL, &out, &err, "--help", NULL), 0);
    assert_non_null (strstr (out, "\n  user list [--role ROLE] [--email PART]\n"));
    assert_non_null (strstr (out, "\n  user disable EMAIL "));
    assert_non_null (strstr (out, "\n  user enable EMAIL "));
    assert_non_null (strstr (out, "\n  keys rotate-jwt "));
    cli_test_free2 (&out, &err);

    assert_int_equal (s_run (NULL, &out, &err, "user", "disable", NULL), 2);
    assert_non_null (strstr (err, "user disable needs an EMAIL"));
    assert_non_null (strstr (err, "usage: safeshare"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (NULL, &out, &err, "user", "list", "--role", "root", NULL),
                      2);
    assert_non_null (strstr (err, "unknown role 'root'"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (NULL, &out, &err, "keys", "rotate-jwt", "x", NULL), 2);
    cli_test_free2 (&out, &err);
}

/* ---- users -------------------------------------------------------------- */

static void
test_add_is_audited (void **state)
{
    s_add ("admin@x.example", "admin", s_ids[0]);
    s_add ("ops@x.example", "ops", s_ids[1]);
    s_add ("client@x.example", "client", s_ids[2]);
    const char *roles[] = {"admin", "ops", "client"};
    for (int i = 0; i < 3; i++) {
        char buf[64];
        s_scalar ("SELECT actor FROM audit_log WHERE event = 'user_create'"
                  " AND subject = $1",
                  s_ids[i], buf, sizeof buf);
        assert_string_equal (buf, "cli");
        s_scalar ("SELECT detail FROM audit_log WHERE event = 'user_create'"
                  " AND subject = $1",
                  s_ids[i], buf, sizeof buf);
        assert_string_equal (buf, roles[i]);
    }
    /* a refused add stores no audit row */
    char *out, *err;
    assert_int_equal (s_run (S_PASSWORD "\n", &out, &err, "user", "add", "OPS@x.example",
                             "--role", "ops", NULL),
                      1);
    assert_non_null (strstr (err, "email_taken"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_count ("SELECT COUNT(*) FROM audit_log", NULL), 3);
}

typedef struct {
    char id[64], email[300], role[16], verified[8], disabled[8], created[32];
} s_row_t;

/* Parses `user list` output: the header, then rows. Returns the rows. */
static size_t
s_parse_list (const char *out, s_row_t *rows, size_t max)
{
    const char *line = out;
    const char *nl = strchr (line, '\n');
    assert_non_null (nl);
    char header[6][16];
    assert_int_equal (sscanf (line, "%15s %15s %15s %15s %15s %15s", header[0], header[1],
                              header[2], header[3], header[4], header[5]),
                      6);
    assert_string_equal (header[0], "ID");
    assert_string_equal (header[1], "EMAIL");
    assert_string_equal (header[5], "CREATED");
    size_t n = 0;
    for (line = nl + 1; *line; line = nl + 1) {
        nl = strchr (line, '\n');
        assert_non_null (nl);
        assert_true (n < max);
        s_row_t *r = &rows[n++];
        assert_int_equal (sscanf (line, "%63s %299s %15s %7s %7s %31s", r->id, r->email,
                                  r->role, r->verified, r->disabled, r->created),
                          6);
        assert_true (cm_is_hex_id (r->id, 32));
        /* 2024-01-02T03:04:05Z */
        assert_int_equal (strlen (r->created), 20);
        assert_int_equal (r->created[4], '-');
        assert_int_equal (r->created[10], 'T');
        assert_int_equal (r->created[19], 'Z');
    }
    return n;
}

static void
test_list (void **state)
{
    char *out, *err;
    s_row_t rows[8];
    /* All three, newest first (same second: the id decides). */
    const char *p[] = {s_ids[0], s_ids[1], s_ids[2]};
    s_exec ("UPDATE users SET created_at = 1700000000 WHERE id = $1", 1, p);
    s_exec ("UPDATE users SET created_at = 1700000001 WHERE id = $2", 2, p);
    s_exec ("UPDATE users SET created_at = 1700000002 WHERE id = $3", 3, p);
    assert_int_equal (s_run (NULL, &out, &err, "user", "list", NULL), 0);
    assert_int_equal (s_parse_list (out, rows, 8), 3);
    assert_string_equal (rows[0].id, s_ids[2]);
    assert_string_equal (rows[0].email, "client@x.example");
    assert_string_equal (rows[0].role, "client");
    assert_string_equal (rows[0].verified, "yes");
    assert_string_equal (rows[0].disabled, "no");
    assert_string_equal (rows[0].created, "2023-11-14T22:13:22Z");
    assert_string_equal (rows[1].email, "ops@x.example");
    assert_string_equal (rows[2].email, "admin@x.example");
    assert_string_equal (rows[2].role, "admin");
    assert_string_equal (rows[2].created, "2023-11-14T22:13:20Z");
    /* columns line up: EMAIL is as wide as the longest address */
    const char *second = strchr (out, '\n') + 1;
    assert_int_equal (strstr (out, "ROLE") - out, strstr (second, "client ") - second);
    cli_test_free2 (&out, &err);

    assert_int_equal (s_run (NULL, &out, &err, "user", "list", "--role", "ops", NULL), 0);
    assert_int_equal (s_parse_list (out, rows, 8), 1);
    assert_string_equal (rows[0].id, s_ids[1]);
    cli_test_free2 (&out, &err);

    assert_int_equal (s_run (NULL, &out, &err, "user", "list", "--email", "MIN@X", NULL),
                      0);
    assert_int_equal (s_parse_list (out, rows, 8), 1);
    assert_string_equal (rows[0].email, "admin@x.example");
    cli_test_free2 (&out, &err);

    assert_int_equal (s_run (NULL, &out, &err, "user", "list", "--email=x.example",
                             "--role=client", NULL),
                      0);
    assert_int_equal (s_parse_list (out, rows, 8), 1);
    assert_string_equal (rows[0].email, "client@x.example");
    cli_test_free2 (&out, &err);

    /* '_' is a character, not a wildcard; no match: just the header */
    assert_int_equal (s_run (NULL, &out, &err, "user", "list", "--email", "_", NULL), 0);
    assert_int_equal (s_parse_list (out, rows, 8), 0);
    cli_test_free2 (&out, &err);

    /* a part no address can hold: authd refuses it, a usage error */
    assert_int_equal (
        s_run (NULL, &out, &err, "user", "list", "--email", "caf\xc3\xa9", NULL), 2);
    assert_non_null (strstr (err, "safeshare: user list: invalid_request"));
    assert_string_equal (out, "");
    cli_test_free2 (&out, &err);
}

/* More users than one page of authd_admin_list: all of them, once. */
static void
test_list_all_pages (void **state)
{
    enum { N = 450 };
    for (int i = 0; i < N; i++) {
        char id[33], email[64], at[24];
        assert_int_equal (cm_random_hex (id, 16), 0);
        snprintf (email, sizeof email, "bulk%03d@y.example", i);
        snprintf (at, sizeof at, "%d", 1600000000 + i / 7); /* ties across pages */
        const char *p[] = {id, email, at};
        s_exec ("INSERT INTO users (id, email, password_hash, role, verified, disabled,"
                " created_at) VALUES ($1, $2, 'x', 'client', 0, 0, $3)",
                3, p);
    }
    char *out, *err;
    assert_int_equal (s_run (NULL, &out, &err, "user", "list", "--email", "@Y.", NULL),
                      0);
    s_row_t *rows = calloc (N + 1, sizeof *rows);
    assert_int_equal (s_parse_list (out, rows, N + 1), N);
    bool seen[N] = {false};
    for (int i = 0; i < N; i++) {
        int k = -1;
        assert_int_equal (sscanf (rows[i].email, "bulk%3d@y.example", &k), 1);
        assert_true (k >= 0 && k < N);
        assert_false (seen[k]);
        seen[k] = true;
        assert_string_equal (rows[i].verified, "no");
        if (i > 0) { /* newest first */
            assert_true (strcmp (rows[i - 1].created, rows[i].created) >= 0);
        }
    }
    free (rows);
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (NULL, &out, &err, "user", "list", NULL), 0);
    /* and everyone: the four users of the tests before too */
    rows = calloc (N + 5, sizeof *rows);
    assert_int_equal (s_parse_list (out, rows, N + 5), N + 4);
    free (rows);
    cli_test_free2 (&out, &err);
}

static void
test_disable_enable (void **state)
{
    const char *ops = s_ids[1];
    const char *ps[] = {"sess-live", ops};
    s_exec ("INSERT INTO sessions (id, user_id, created_at, expires_at)"
            " VALUES ($1, $2, 1, 4000000000)",
            2, ps);
    long audits = s_count ("SELECT COUNT(*) FROM audit_log", NULL);
    char *out, *err;
    char expect[160];

    assert_int_equal (s_run (NULL, &out, &err, "user", "disable", " OPS@x.example", NULL),
                      0);
    snprintf (expect, sizeof expect,
              "disabled user ops@x.example (id %s); its sessions are ended\n", ops);
    assert_string_equal (out, expect);
    cli_test_free2 (&out, &err);
    char buf[64];
    s_scalar ("SELECT disabled FROM users WHERE id = $1", ops, buf, sizeof buf);
    assert_string_equal (buf, "1");
    assert_int_equal (s_count ("SELECT token_gen FROM users WHERE id = $1", ops), 1);
    s_scalar ("SELECT revoke_reason FROM sessions WHERE id = $1", "sess-live", buf,
              sizeof buf);
    assert_string_equal (buf, "disabled");
    s_scalar ("SELECT actor FROM audit_log WHERE event = 'user_disable' AND subject = $1",
              ops, buf, sizeof buf);
    assert_string_equal (buf, "cli");
    s_row_t rows[8];
    assert_int_equal (s_run (NULL, &out, &err, "user", "list", "--role", "ops", NULL), 0);
    assert_int_equal (s_parse_list (out, rows, 8), 1);
    assert_string_equal (rows[0].disabled, "yes");
    cli_test_free2 (&out, &err);

    /* again: nothing to do, said so, exit 0, no audit */
    assert_int_equal (s_run (NULL, &out, &err, "user", "disable", "ops@x.example", NULL),
                      0);
    snprintf (expect, sizeof expect, "user ops@x.example (id %s) was already disabled\n",
              ops);
    assert_string_equal (out, expect);
    cli_test_free2 (&out, &err);
    assert_int_equal (s_count ("SELECT COUNT(*) FROM audit_log", NULL), audits + 1);

    assert_int_equal (s_run (NULL, &out, &err, "user", "enable", "ops@x.example", NULL),
                      0);
    snprintf (expect, sizeof expect, "enabled user ops@x.example (id %s)\n", ops);
    assert_string_equal (out, expect);
    cli_test_free2 (&out, &err);
    s_scalar ("SELECT disabled FROM users WHERE id = $1", ops, buf, sizeof buf);
    assert_string_equal (buf, "0");
    assert_int_equal (
        s_count ("SELECT COUNT(*) FROM audit_log WHERE event = 'user_enable'", NULL), 1);
    assert_int_equal (s_run (NULL, &out, &err, "user", "enable", "ops@x.example", NULL),
                      0);
    assert_non_null (strstr (out, "was already enabled"));
    cli_test_free2 (&out, &err);
    audits = s_count ("SELECT COUNT(*) FROM audit_log", NULL);

    /* Failures: exit 1, the code on stderr, nothing changed. */
    assert_int_equal (
        s_run (NULL, &out, &err, "user", "disable", "nobody@x.example", NULL), 1);
    assert_non_null (strstr (err, "safeshare: user disable: user_not_found ("));
    assert_string_equal (out, "");
    cli_test_free2 (&out, &err);
    assert_int_equal (
        s_run (NULL, &out, &err, "user", "enable", "nobody@x.example", NULL), 1);
    assert_non_null (strstr (err, "safeshare: user enable: user_not_found"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (NULL, &out, &err, "user", "disable", "not-an-email", NULL),
                      1);
    assert_non_null (strstr (err, "safeshare: user disable: invalid_email"));
    cli_test_free2 (&out, &err);
    /* admin@ is the only admin */
    assert_int_equal (
        s_run (NULL, &out, &err, "user", "disable", "admin@x.example", NULL), 1);
    assert_non_null (strstr (err, "safeshare: user disable: last_admin ("));
    assert_string_equal (out, "");
    cli_test_free2 (&out, &err);
    s_scalar ("SELECT disabled FROM users WHERE id = $1", s_ids[0], buf, sizeof buf);
    assert_string_equal (buf, "0");
    assert_int_equal (s_count ("SELECT COUNT(*) FROM audit_log", NULL), audits);

    /* with a second admin, the first may go */
    char admin2[33];
    s_add ("admin2@x.example", "admin", admin2);
    assert_int_equal (
        s_run (NULL, &out, &err, "user", "disable", "admin@x.example", NULL), 0);
    cli_test_free2 (&out, &err);
    assert_int_equal (
        s_run (NULL, &out, &err, "user", "disable", "admin2@x.example", NULL), 1);
    assert_non_null (strstr (err, "last_admin"));
    cli_test_free2 (&out, &err);
}

/* ---- keys rotate-jwt ---------------------------------------------------- */

static void
s_kid_of (const char *rel, char kid[CM_JWT_KID_LEN + 1])
{
    char *p = s_path (rel);
    size_t len = 0;
    char *pem = cli_test_slurp (p, &len);
    assert_non_null (pem);
    assert_int_equal (cm_jwt_kid ((const unsigned char *)pem, len, kid), 0);
    free (pem);
    free (p);
}

/* "JWT signing key rotated: old kid X, new kid Y" */
static void
s_rotated (const char *out, char old_kid[17], char new_kid[17])
{
    assert_int_equal (sscanf (out,
                              "JWT signing key rotated: old kid %16[0-9a-f], new kid "
                              "%16[0-9a-f]\n",
                              old_kid, new_kid),
                      2);
    assert_int_equal (strlen (old_kid), 16);
    assert_int_equal (strlen (new_kid), 16);
}

/* Only these names in the key dir: no temp file left behind. */
static void
s_key_dir_is (const char *rel, const char *const *names)
{
    char *p = s_path (rel);
    DIR *d = opendir (p);
    assert_non_null (d);
    int count = 0;
    for (struct dirent *e; (e = readdir (d));) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0) {
            continue;
        }
        bool known = false;
        for (int i = 0; names[i]; i++) {
            known = known || strcmp (names[i], e->d_name) == 0;
        }
        if (!known) {
            fail_msg ("unexpected file in the key dir: %s", e->d_name);
        }
        count++;
    }
    closedir (d);
    int want = 0;
    while (names[want]) {
        want++;
    }
    assert_int_equal (count, want);
    free (p);
}

static void
test_rotate_jwt (void **state)
{
    char *out, *err;
    char *kdir = s_path ("rot-keys");
    setenv ("SAFESHARE_KEY_DIR", kdir, 1);

    /* Nothing to rotate yet: refused, pointing to `keys generate`,
       and nothing made. */
    assert_int_equal (s_run (NULL, &out, &err, "keys", "rotate-jwt", NULL), 1);
    assert_non_null (strstr (err, "safeshare keys generate"));
    assert_string_equal (out, "");
    cli_test_free2 (&out, &err);
    assert_int_equal (s_mode ("rot-keys"), 0xffffffffu);
    assert_int_equal (mkdir (kdir, 0700), 0);
    assert_int_equal (s_run (NULL, &out, &err, "keys", "rotate-jwt", NULL), 1);
    assert_non_null (strstr (err, "no JWT signing key"));
    assert_non_null (strstr (err, "safeshare keys generate"));
    cli_test_free2 (&out, &err);
    const char *none[] = {NULL};
    s_key_dir_is ("rot-keys", none);

    assert_int_equal (s_run (NULL, &out, &err, "keys", "generate", NULL), 0);
    cli_test_free2 (&out, &err);
    char kid0[17], old_kid[17], new_kid[17], kid[17];
    s_kid_of ("rot-keys/jwt-es256.pem", kid0);
    size_t pem0_len = 0;
    char *pem_path = s_path ("rot-keys/jwt-es256.pem");
    char *pem0 = cli_test_slurp (pem_path, &pem0_len);
    assert_non_null (pem0);

    assert_int_equal (s_run (NULL, &out, &err, "keys", "rotate-jwt", NULL), 0);
    s_rotated (out, old_kid, new_kid);
    assert_string_equal (old_kid, kid0);
    assert_string_not_equal (new_kid, kid0);
    s_kid_of ("rot-keys/jwt-es256.pem", kid);
    assert_string_equal (kid, new_kid);
    s_kid_of ("rot-keys/jwt-es256.pub", kid);
    assert_string_equal (kid, new_kid);
    assert_null (strstr (out, "PRIVATE KEY"));
    assert_null (strstr (err, "PRIVATE KEY"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_mode ("rot-keys/jwt-es256.pem"), 0600);
    assert_int_equal (s_mode ("rot-keys/jwt-es256.pub"), 0644);
    const char *pair[] = {"kek.ring", "jwt-es256.pem", "jwt-es256.pub", NULL};
    s_key_dir_is ("rot-keys", pair);
    /* auth signs with what is in the file now: the new kid */
    cm_jwt_signer_t *signer = cm_jwt_signer_new (pem_path, "iss", "aud");
    assert_non_null (signer);
    assert_string_equal (cm_jwt_signer_kid (signer), new_kid);
    cm_jwt_signer_destroy (&signer);

    /* again: the old kid is the previous new one */
    char prev[17];
    memcpy (prev, new_kid, sizeof prev);
    assert_int_equal (s_run (NULL, &out, &err, "keys", "rotate-jwt", NULL), 0);
    s_rotated (out, old_kid, new_kid);
    assert_string_equal (old_kid, prev);
    assert_string_not_equal (new_kid, prev);
    cli_test_free2 (&out, &err);

    /* A lone half, a damaged key, an open key dir: refused, unchanged. */
    size_t pem1_len = 0;
    char *pem1 = cli_test_slurp (pem_path, &pem1_len);
    char *pub = s_path ("rot-keys/jwt-es256.pub");
    char *pub_saved = s_path ("pub.saved");
    assert_int_equal (rename (pub, pub_saved), 0);
    assert_int_equal (s_run (NULL, &out, &err, "keys", "rotate-jwt", NULL), 1);
    assert_non_null (strstr (err, "jwt-es256.pem exists but"));
    cli_test_free2 (&out, &err);
    assert_int_equal (rename (pub_saved, pub), 0);

    FILE *f = fopen (pem_path, "w");
    assert_non_null (f);
    fputs ("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", f);
    fclose (f);
    assert_int_equal (s_run (NULL, &out, &err, "keys", "rotate-jwt", NULL), 1);
    assert_non_null (strstr (err, "is not a P-256 key"));
    cli_test_free2 (&out, &err);
    size_t junk_len = 0;
    char *junk = cli_test_slurp (pem_path, &junk_len);
    assert_non_null (strstr (junk, "not a key"));
    free (junk);
    f = fopen (pem_path, "w");
    assert_non_null (f);
    assert_int_equal (fwrite (pem1, 1, pem1_len, f), pem1_len);
    fclose (f);

    assert_int_equal (chmod (kdir, 0755), 0);
    assert_int_equal (s_run (NULL, &out, &err, "keys", "rotate-jwt", NULL), 1);
    assert_non_null (strstr (err, "accessible by other users"));
    cli_test_free2 (&out, &err);
    assert_int_equal (chmod (kdir, 0700), 0);
    size_t pem2_len = 0;
    char *pem2 = cli_test_slurp (pem_path, &pem2_len);
    assert_int_equal (pem2_len, pem1_len);
    assert_memory_equal (pem1, pem2, pem1_len);

    free (pem0);
    free (pem1);
    free (pem2);
    free (pub);
    free (pub_saved);
    free (pem_path);
    unsetenv ("SAFESHARE_KEY_DIR");
    free (kdir);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: svc_cli_admin PATH/TO/safeshare\n");
        return 2;
    }
    s_bin = argv[1];
    s_dir = cm_test_tmpdir ();
    if (!s_dir) {
        return 1;
    }
    snprintf (s_url, sizeof s_url, "sqlite:%s/auth.db", s_dir);
    if (cm_test_pg_schema_url (s_schema, s_url, sizeof s_url) < 0) {
        return 1;
    }
    setenv ("SAFESHARE_DATA_DIR", s_dir, 1);
    setenv ("SAFESHARE_AUTH_DB", s_url, 1);
    unsetenv ("SAFESHARE_KEY_DIR");
    /* In order: each builds on the users the ones before made. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_usage),          cmocka_unit_test (test_add_is_audited),
        cmocka_unit_test (test_list),           cmocka_unit_test (test_disable_enable),
        cmocka_unit_test (test_list_all_pages), cmocka_unit_test (test_rotate_jwt),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    if (cm_test_pg_schema_drop (s_schema) != 0) {
        rc = 1;
    }
    cm_test_rmrf (s_dir);
    free (s_dir);
    return rc;
}
