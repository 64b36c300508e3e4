/*  unit_cli_args -- the command line grammar.                           */
#include "cli_args.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define PARSE(out, err, ...)                                                             \
    cli_args_parse (                                                                     \
        (int)(sizeof ((char *[]){"safeshare", __VA_ARGS__}) / sizeof (char *)),          \
        (char *[]){"safeshare", __VA_ARGS__}, (out), (err), sizeof (err))

static void
test_simple_commands (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "up"), 0);
    assert_int_equal (a.cmd, CLI_CMD_UP);
    assert_int_equal (PARSE (&a, err, "help"), 0);
    assert_int_equal (a.cmd, CLI_CMD_HELP);
    assert_int_equal (PARSE (&a, err, "version"), 0);
    assert_int_equal (a.cmd, CLI_CMD_VERSION);
    assert_int_equal (PARSE (&a, err, "keys", "generate"), 0);
    assert_int_equal (a.cmd, CLI_CMD_KEYS_GENERATE);
    assert_int_equal (PARSE (&a, err, "keys", "rotate-jwt"), 0);
    assert_int_equal (a.cmd, CLI_CMD_KEYS_ROTATE_JWT);
    assert_null (a.email);
    assert_null (a.role);
}

static void
test_keys_errors (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "keys"), -1);
    assert_string_equal (err, "keys needs a subcommand (generate, list, rotate, retire, "
                              "rotate-jwt, service-gen)");
    assert_int_equal (PARSE (&a, err, "keys", "rotate-jwt", "now"), -1);
    assert_string_equal (err, "keys rotate-jwt: unexpected argument now");
    assert_int_equal (PARSE (&a, err, "keys", "rotate-jwt", "--force"), -1);
    assert_string_equal (err, "keys rotate-jwt: unexpected argument --force");
    assert_int_equal (PARSE (&a, err, "keys", "rotate-JWT"), -1);
    assert_string_equal (err, "keys: unknown subcommand rotate-JWT");
    assert_int_equal (PARSE (&a, err, "keys", "rotate-jw"), -1);
}

static void
test_keys_service_gen (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "keys", "service-gen", "crypto-worker"), 0);
    assert_int_equal (a.cmd, CLI_CMD_KEYS_SERVICE_GEN);
    assert_string_equal (a.key_name, "crypto-worker");
    assert_null (a.key_dir);
    assert_int_equal (a.force, 0);
    assert_int_equal (
        PARSE (&a, err, "keys", "service-gen", "--force", "--dir", "/k", "auth"), 0);
    assert_string_equal (a.key_name, "auth");
    assert_string_equal (a.key_dir, "/k");
    assert_int_equal (a.force, 1);
    assert_int_equal (PARSE (&a, err, "keys", "service-gen"), -1);
    assert_string_equal (err, "keys service-gen needs a NAME (e.g. gateway)");
    assert_int_equal (PARSE (&a, err, "keys", "service-gen", "auth", "mailer"), -1);
    assert_string_equal (err, "keys service-gen: unexpected argument mailer");
    assert_int_equal (PARSE (&a, err, "keys", "service-gen", "auth", "--dri", "x"), -1);
    assert_string_equal (err, "keys service-gen: unknown option --dri");
    assert_int_equal (PARSE (&a, err, "keys", "service-gen", "Auth"), -1);
    assert_string_equal (err,
                         "keys service-gen: NAME must be 1..64 of [a-z0-9-], not Auth");
    assert_int_equal (PARSE (&a, err, "keys", "service-gen", "../x"), -1);
    char name[66];
    memset (name, 'a', 65);
    name[65] = '\0';
    assert_int_equal (PARSE (&a, err, "keys", "service-gen", name), -1);
    name[64] = '\0';
    assert_int_equal (PARSE (&a, err, "keys", "service-gen", name), 0);
    assert_int_equal (PARSE (&a, err, "keys", "service-gen", "auth", "--dir", ""), -1);
}

static void
test_user_list (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "user", "list"), 0);
    assert_int_equal (a.cmd, CLI_CMD_USER_LIST);
    assert_null (a.role);
    assert_null (a.email);
    assert_int_equal (PARSE (&a, err, "user", "list", "--role", "ops"), 0);
    assert_string_equal (a.role, "ops");
    assert_null (a.email);
    assert_int_equal (PARSE (&a, err, "user", "list", "--email", "Example.COM"), 0);
    assert_null (a.role);
    assert_string_equal (a.email, "Example.COM");
    assert_int_equal (PARSE (&a, err, "user", "list", "--email=%_x", "--role=client"), 0);
    assert_string_equal (a.email, "%_x");
    assert_string_equal (a.role, "client");
    assert_int_equal (
        PARSE (&a, err, "user", "list", "--role", "admin", "--email", "-dash"), 0);
    assert_string_equal (a.role, "admin");
    assert_string_equal (a.email, "-dash"); /* a value, not an option */
    /* an empty part matches everything: no filter */
    assert_int_equal (PARSE (&a, err, "user", "list", "--email="), 0);
    assert_null (a.email);
    /* 254 bytes is the longest address, and the longest part */
    char part[CLI_EMAIL_PART_MAX + 2];
    memset (part, 'p', sizeof part);
    part[CLI_EMAIL_PART_MAX] = '\0';
    assert_int_equal (PARSE (&a, err, "user", "list", "--email", part), 0);
    assert_int_equal (strlen (a.email), CLI_EMAIL_PART_MAX);
    part[CLI_EMAIL_PART_MAX] = 'p';
    part[CLI_EMAIL_PART_MAX + 1] = '\0';
    assert_int_equal (PARSE (&a, err, "user", "list", "--email", part), -1);
    assert_string_equal (err, "user list: --email is longer than 254 bytes");
}

static void
test_user_list_errors (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "user", "list", "--role", "root"), -1);
    assert_string_equal (err, "unknown role 'root' (ops, admin or client)");
    assert_int_equal (PARSE (&a, err, "user", "list", "--role=Admin"), -1);
    assert_string_equal (err, "unknown role 'Admin' (ops, admin or client)");
    assert_int_equal (PARSE (&a, err, "user", "list", "--role"), -1);
    assert_string_equal (err, "--role needs a value (ops, admin or client)");
    assert_int_equal (PARSE (&a, err, "user", "list", "--email"), -1);
    assert_string_equal (err, "--email needs a value (a part of the e-mail address)");
    assert_int_equal (PARSE (&a, err, "user", "list", "a@b.example"), -1);
    assert_string_equal (err, "user list: unexpected argument a@b.example");
    assert_int_equal (PARSE (&a, err, "user", "list", "--all"), -1);
    assert_string_equal (err, "user list: unknown option --all");
    assert_int_equal (PARSE (&a, err, "user", "list", "--emails", "x"), -1);
    assert_string_equal (err, "user list: unknown option --emails");
}

static void
test_user_disable_enable (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "user", "disable", "a@b.example"), 0);
    assert_int_equal (a.cmd, CLI_CMD_USER_DISABLE);
    assert_string_equal (a.email, "a@b.example");
    assert_null (a.role);
    assert_int_equal (PARSE (&a, err, "user", "enable", "A@B.example"), 0);
    assert_int_equal (a.cmd, CLI_CMD_USER_ENABLE);
    assert_string_equal (a.email, "A@B.example");

    assert_int_equal (PARSE (&a, err, "user", "disable"), -1);
    assert_string_equal (err, "user disable needs an EMAIL");
    assert_int_equal (PARSE (&a, err, "user", "enable", ""), -1);
    assert_string_equal (err, "user enable needs an EMAIL");
    assert_int_equal (PARSE (&a, err, "user", "disable", "a@b.example", "c@d.example"),
                      -1);
    assert_string_equal (err, "user disable: unexpected argument c@d.example");
    assert_int_equal (PARSE (&a, err, "user", "enable", "--role", "ops", "a@b.example"),
                      -1);
    assert_string_equal (err, "user enable: unknown option --role");
    assert_int_equal (PARSE (&a, err, "user", "delete", "a@b.example"), -1);
    assert_string_equal (err, "user: unknown subcommand delete");
    assert_int_equal (PARSE (&a, err, "user"), -1);
    assert_string_equal (err, "user needs a subcommand (add, list, disable, enable)");
}

static void
test_missing_and_unknown (void **state)
{
    cli_args_t a;
    char err[256];
    char *only[] = {"safeshare", NULL};
    assert_int_equal (cli_args_parse (1, only, &a, err, sizeof err), -1);
    assert_string_equal (err, "missing command");
    assert_int_equal (PARSE (&a, err, "frobnicate"), -1);
    assert_string_equal (err, "unknown command frobnicate");
    assert_int_equal (PARSE (&a, err, "up", "now"), -1);
    assert_string_equal (err, "up: unexpected argument now");
    assert_int_equal (PARSE (&a, err, "keys"), -1);
    assert_int_equal (PARSE (&a, err, "keys", "generate", "x"), -1);
    assert_int_equal (PARSE (&a, err, "keys", "explode"), -1);
    assert_string_equal (err, "keys: unknown subcommand explode");
    assert_int_equal (PARSE (&a, err, "user"), -1);
}

#define ID16 "0123456789abcdef"
#define ID32 "0123456789abcdef0123456789abcdef"

static void
test_keys_kek_commands (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "keys", "list"), 0);
    assert_int_equal (a.cmd, CLI_CMD_KEYS_LIST);
    assert_int_equal (PARSE (&a, err, "keys", "list", "--all"), -1);
    assert_string_equal (err, "keys list: unexpected argument --all");

    assert_int_equal (PARSE (&a, err, "keys", "rotate"), 0);
    assert_int_equal (a.cmd, CLI_CMD_KEYS_ROTATE);
    assert_int_equal (a.resume, 0);
    assert_int_equal (a.batch, CLI_REWRAP_BATCH_DEFAULT);
    assert_int_equal (a.pause_ms, 0);
    assert_int_equal (
        PARSE (&a, err, "keys", "rotate", "--batch", "3", "--resume", "--pause-ms=25"),
        0);
    assert_int_equal (a.resume, 1);
    assert_int_equal (a.batch, 3);
    assert_int_equal (a.pause_ms, 25);
    assert_int_equal (PARSE (&a, err, "keys", "rotate", "--batch=10000"), 0);
    assert_int_equal (a.batch, 10000);
    char *bad_batch[] = {"0", "10001", "x", "-1", "", "5x", "99999999999"};
    for (size_t i = 0; i < sizeof bad_batch / sizeof bad_batch[0]; i++) {
        assert_int_equal (PARSE (&a, err, "keys", "rotate", "--batch", bad_batch[i]), -1);
        assert_string_equal (err, "keys rotate: --batch must be 1..10000");
    }
    assert_int_equal (PARSE (&a, err, "keys", "rotate", "--pause-ms", "60001"), -1);
    assert_string_equal (err, "keys rotate: --pause-ms must be 0..60000");
    assert_int_equal (PARSE (&a, err, "keys", "rotate", "--batch"), -1);
    assert_int_equal (PARSE (&a, err, "keys", "rotate", "--force"), -1);
    assert_string_equal (err, "keys rotate: unknown option --force");
    assert_int_equal (PARSE (&a, err, "keys", "rotate", "now"), -1);
    assert_string_equal (err, "keys rotate: unexpected argument now");

    assert_int_equal (PARSE (&a, err, "keys", "retire", ID16), 0);
    assert_int_equal (a.cmd, CLI_CMD_KEYS_RETIRE);
    assert_string_equal (a.kek_id, ID16);
    assert_int_equal (PARSE (&a, err, "keys", "retire"), -1);
    assert_string_equal (err, "keys retire needs a KEK ID (see keys list)");
    assert_int_equal (PARSE (&a, err, "keys", "retire", "0123456789ABCDEF"), -1);
    assert_string_equal (
        err, "keys retire: 0123456789ABCDEF is not a KEK id (16 lowercase hex)");
    assert_int_equal (PARSE (&a, err, "keys", "retire", "0123"), -1);
    assert_int_equal (PARSE (&a, err, "keys", "retire", ID16, ID16), -1);
    assert_string_equal (err, "keys retire: unexpected argument " ID16);
    assert_int_equal (PARSE (&a, err, "keys", "retire", "--force", ID16), -1);
    assert_string_equal (err, "keys retire: unknown option --force");
}

static void
test_decrypt (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "decrypt", "--file", ID32, "--out", "/tmp/x"), 0);
    assert_int_equal (a.cmd, CLI_CMD_DECRYPT);
    assert_string_equal (a.file_id, ID32);
    assert_string_equal (a.out_path, "/tmp/x");
    assert_int_equal (PARSE (&a, err, "decrypt", "--out=-dash", "--file=" ID32), 0);
    assert_string_equal (a.out_path, "-dash");
    assert_int_equal (PARSE (&a, err, "decrypt", "--file", ID32), -1);
    assert_string_equal (err, "decrypt needs --file ID and --out PATH");
    assert_int_equal (PARSE (&a, err, "decrypt"), -1);
    assert_int_equal (PARSE (&a, err, "decrypt", "--file", "../etc", "--out", "x"), -1);
    assert_string_equal (err, "decrypt: ../etc is not a file id (32 lowercase hex)");
    assert_int_equal (PARSE (&a, err, "decrypt", "--file", ID16, "--out", "x"), -1);
    assert_int_equal (PARSE (&a, err, "decrypt", "--file", ID32, "--out="), -1);
    assert_string_equal (err, "decrypt: --out needs a path");
    assert_int_equal (PARSE (&a, err, "decrypt", "--file", ID32, "--out", "x", "y"), -1);
    assert_string_equal (err, "decrypt: unexpected argument y");
    assert_int_equal (PARSE (&a, err, "decrypt", "--file", ID32, "--force"), -1);
    assert_string_equal (err, "decrypt: unknown option --force");
    assert_int_equal (PARSE (&a, err, "decrypt", "--file", ID32, "--out"), -1);
}

/* fsck: defaults, --repair, --grace; bad values are usage errors. */
static void
test_later_commands (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "fsck"), 0);
    assert_int_equal (a.cmd, CLI_CMD_FSCK);
    assert_int_equal (a.repair, 0);
    assert_int_equal (a.grace_s, CLI_FSCK_GRACE_DEFAULT);
    assert_int_equal (PARSE (&a, err, "fsck", "--grace", "0", "--repair"), 0);
    assert_int_equal (a.repair, 1);
    assert_int_equal (a.grace_s, 0);
    assert_int_equal (PARSE (&a, err, "fsck", "--grace=90"), 0);
    assert_int_equal (a.grace_s, 90);
    assert_int_equal (PARSE (&a, err, "fsck", "--grace", "-1"), -1);
    assert_string_equal (err, "fsck: --grace needs 0..31536000 seconds, not -1");
    assert_int_equal (PARSE (&a, err, "fsck", "--grace", "1x"), -1);
    assert_int_equal (PARSE (&a, err, "fsck", "--grace"), -1);
    assert_int_equal (PARSE (&a, err, "fsck", "--fix"), -1);
    assert_string_equal (err, "fsck: unknown option --fix");
}

static void
test_user_add (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "user", "add", "a@b.example", "--role", "ops"), 0);
    assert_int_equal (a.cmd, CLI_CMD_USER_ADD);
    assert_string_equal (a.email, "a@b.example");
    assert_string_equal (a.role, "ops");
    /* option first, and the --role=VALUE spelling */
    assert_int_equal (PARSE (&a, err, "user", "add", "--role=admin", "x@y.example"), 0);
    assert_string_equal (a.email, "x@y.example");
    assert_string_equal (a.role, "admin");
    assert_int_equal (PARSE (&a, err, "user", "add", "c@d.example", "--role", "client"),
                      0);
    assert_string_equal (a.role, "client");
}

static void
test_user_add_errors (void **state)
{
    cli_args_t a;
    char err[256];
    assert_int_equal (PARSE (&a, err, "user", "add", "a@b.example", "--role", "root"),
                      -1);
    assert_string_equal (err, "unknown role 'root' (ops, admin or client)");
    assert_int_equal (PARSE (&a, err, "user", "add", "a@b.example"), -1);
    assert_string_equal (err, "user add needs --role ops|admin|client");
    assert_int_equal (PARSE (&a, err, "user", "add", "--role", "ops"), -1);
    assert_string_equal (err, "user add needs an EMAIL");
    assert_int_equal (PARSE (&a, err, "user", "add", "a@b.example", "--role"), -1);
    assert_int_equal (
        PARSE (&a, err, "user", "add", "a@b.example", "b@c.example", "--role", "ops"),
        -1);
    assert_string_equal (err, "user add: unexpected argument b@c.example");
    assert_int_equal (
        PARSE (&a, err, "user", "add", "a@b.example", "--role", "ops", "--force"), -1);
    assert_string_equal (err, "user add: unknown option --force");
    assert_int_equal (PARSE (&a, err, "user", "add", "a@b.example", "--role", "Ops"), -1);
    assert_int_equal (PARSE (&a, err, "user", "add", "a@b.example", "--role", ""), -1);
}

/* A long argument is cut in the message, never overflows it. */
static void
test_long_argument (void **state)
{
    cli_args_t a;
    char err[32];
    char big[1000];
    memset (big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal (PARSE (&a, err, big), -1);
    assert_int_equal (strlen (err), sizeof err - 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_simple_commands),
        cmocka_unit_test (test_missing_and_unknown),
        cmocka_unit_test (test_later_commands),
        cmocka_unit_test (test_keys_errors),
        cmocka_unit_test (test_keys_service_gen),
        cmocka_unit_test (test_keys_kek_commands),
        cmocka_unit_test (test_decrypt),
        cmocka_unit_test (test_user_list),
        cmocka_unit_test (test_user_list_errors),
        cmocka_unit_test (test_user_disable_enable),
        cmocka_unit_test (test_user_add),
        cmocka_unit_test (test_user_add_errors),
        cmocka_unit_test (test_long_argument),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
