/*  svc_cli_curve -- the real `safeshare keys service-gen`: the files it
    writes (modes, zcert format that zcert_load and cm_curve read, the
    public key it prints), its default directory, refusing to overwrite,
    --force (new key, modes restored), and usage errors.

    usage: svc_cli_curve PATH/TO/safeshare                              */
#include "cli_test_proc.h"
#include "cm_curve.h"
#include "cm_log.h"
#include "cm_testing.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static const char *s_bin;

typedef struct {
    char *dir; /* SAFESHARE_DATA_DIR */
} s_fixture_t;

/* `safeshare` with the arguments after err, up to a NULL. */
#define s_run(out, err, ...) cli_test_runl (s_bin, (out), (err), __VA_ARGS__)

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    f->dir = cm_test_tmpdir ();
    assert_int_equal (setenv ("SAFESHARE_DATA_DIR", f->dir, 1), 0);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    cm_curve_shutdown ();
    cm_test_rmrf (f->dir);
    free (f->dir);
    free (f);
    return 0;
}

static int
s_lines (const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++) {
        n += *p == '\n';
    }
    return n;
}

/* The public file on its own (zcert_load would read NAME.key_secret
   first): its public key, and that it holds no secret key.            */
static void
s_expect_public_file (const char *path, const char *public_txt)
{
    zconfig_t *root = zconfig_load (path);
    assert_non_null (root);
    assert_string_equal (zconfig_get (root, "/curve/public-key", ""), public_txt);
    assert_null (zconfig_locate (root, "/curve/secret-key"));
    zconfig_destroy (&root);
}

static void
test_service_gen_files (void **state)
{
    s_fixture_t *f = *state;
    char *out = NULL, *err = NULL;
    assert_int_equal (s_run (&out, &err, "keys", "service-gen", "gateway", NULL), 0);
    /* stdout: the public key, Z85, 40 characters.                      */
    assert_int_equal (strlen (out), 41);
    assert_int_equal (out[40], '\n');
    char pub[41];
    memcpy (pub, out, 40);
    pub[40] = '\0';
    cli_test_free2 (&out, &err);

    char dir[600];
    snprintf (dir, sizeof dir, "%s/keys/curve", f->dir);
    assert_int_equal (cli_test_mode (dir, "."), 0700);
    assert_int_equal (cli_test_mode (dir, "gateway.key_secret"), 0600);
    assert_int_equal (cli_test_mode (dir, "gateway.key"), 0644);
    char secret[700], public_path[700];
    snprintf (secret, sizeof secret, "%s/gateway.key_secret", dir);
    snprintf (public_path, sizeof public_path, "%s/gateway.key", dir);
    zcert_t *cert = zcert_load (secret);
    assert_non_null (cert);
    assert_string_equal (zcert_public_txt (cert), pub);
    assert_string_not_equal (zcert_secret_txt (cert),
                             "0000000000000000000000000000000000000000");
    zcert_destroy (&cert);
    s_expect_public_file (public_path, pub);
    /* And cm_curve takes it as a process's key.                        */
    char e[512] = "";
    assert_int_equal (cm_curve_setup (secret, NULL, NULL, e, sizeof e), 0);
    assert_string_equal (cm_curve_public_txt (), pub);
    cm_curve_shutdown ();

    /* A second time: refused, nothing changed.                         */
    assert_int_equal (s_run (&out, &err, "keys", "service-gen", "gateway", NULL), 1);
    assert_string_equal (out, "");
    assert_int_equal (s_lines (err), 1);
    assert_non_null (strstr (err, "already exists"));
    cli_test_free2 (&out, &err);
    s_expect_public_file (public_path, pub);

    /* --force: a new pair; a secret file someone opened up is 0600 again. */
    assert_int_equal (chmod (secret, 0644), 0);
    assert_int_equal (
        s_run (&out, &err, "keys", "service-gen", "gateway", "--force", NULL), 0);
    assert_int_equal (strlen (out), 41);
    assert_memory_not_equal (out, pub, 40);
    char pub2[41];
    memcpy (pub2, out, 40);
    pub2[40] = '\0';
    cli_test_free2 (&out, &err);
    assert_int_equal (cli_test_mode (dir, "gateway.key_secret"), 0600);
    assert_int_equal (cli_test_mode (dir, "gateway.key"), 0644);
    cert = zcert_load (secret);
    assert_non_null (cert);
    assert_string_equal (zcert_public_txt (cert), pub2);
    zcert_destroy (&cert);
    s_expect_public_file (public_path, pub2);
}

static void
test_service_gen_dir_and_usage (void **state)
{
    s_fixture_t *f = *state;
    char *out = NULL, *err = NULL;
    char dir[600];
    snprintf (dir, sizeof dir, "%s/elsewhere/crypto-worker", f->dir);
    assert_int_equal (
        s_run (&out, &err, "keys", "service-gen", "crypto-worker", "--dir", dir, NULL),
        0);
    cli_test_free2 (&out, &err);
    assert_int_equal (cli_test_mode (dir, "."), 0700);
    assert_int_equal (cli_test_mode (dir, "crypto-worker.key_secret"), 0600);
    assert_int_equal (cli_test_mode (dir, "crypto-worker.key"), 0644);
    /* Only the public half existing still refuses (no silent re-key).  */
    char path[700];
    snprintf (path, sizeof path, "%s/crypto-worker.key_secret", dir);
    assert_int_equal (unlink (path), 0);
    assert_int_equal (
        s_run (&out, &err, "keys", "service-gen", "crypto-worker", "--dir", dir, NULL),
        1);
    cli_test_free2 (&out, &err);

    /* Usage: exit 2, nothing written.                                  */
    const char *bad[] = {"Gateway", "a/b", "..", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (s_run (&out, &err, "keys", "service-gen", bad[i], NULL), 2);
        assert_non_null (strstr (err, "NAME"));
        cli_test_free2 (&out, &err);
    }
    assert_int_equal (s_run (&out, &err, "keys", "service-gen", NULL), 2);
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (&out, &err, "keys", "service-gen", "auth", "--bogus", NULL),
                      2);
    cli_test_free2 (&out, &err);
    snprintf (path, sizeof path, "%s/keys/curve", f->dir);
    assert_int_equal (access (path, F_OK), -1);
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        fprintf (stderr, "usage: %s PATH/TO/safeshare\n", argv[0]);
        return 2;
    }
    s_bin = argv[1];
    cm_log_init ("test", CM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_service_gen_files, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_service_gen_dir_and_usage, s_setup,
                                         s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
