/*  safeshare -- the operator's command line: local stack, keys, users,
    offline decryption.                                                 */
#include "cli_args.h"
#include "cli_decrypt.h"
#include "cli_fsck.h"
#include "cli_health.h"
#include "cli_keys.h"
#include "cli_mail.h"
#include "cli_up.h"
#include "cli_user.h"
#include "cm_service.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const cm_service_info_t s_info = {
    .name = "cli",
    .binary = "safeshare",
    .summary = "run and administer a local safeshare",
    .usage = NULL, /* set in main: cli_args_usage is not a constant expression */
};

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: safeshare [--config FILE] COMMAND [ARGS]\n\n%s\n",
             cli_args_usage);
}

/* cm_service_init consumes --config; `up` hands it on to the services. */
static const char *
s_config_file (int argc, char **argv)
{
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--config") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else if (strncmp (argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
    }
    return file;
}

int
main (int argc, char **argv)
{
    cm_service_info_t info = s_info;
    info.usage = cli_args_usage;
    const char *config_file = s_config_file (argc, argv);
    int rc = 0;
    cm_config_t *config = cm_service_init (&info, &argc, argv, &rc);
    if (!config) {
        return rc;
    }
    cli_args_t args;
    char err[256];
    if (cli_args_parse (argc, argv, &args, err, sizeof err) != 0) {
        fprintf (stderr, "safeshare: %s\n\n", err);
        s_usage (stderr);
        cm_config_destroy (&config);
        return 2;
    }
    switch (args.cmd) {
        case CLI_CMD_HELP:
            s_usage (stdout);
            break;
        case CLI_CMD_VERSION:
            printf ("safeshare %s\n", SAFESHARE_VERSION);
            break;
        case CLI_CMD_KEYS_GENERATE:
            rc = cli_keys_prepare (config, true, stdout) == 0 ? 0 : 1;
            break;
        case CLI_CMD_KEYS_ROTATE_JWT:
            rc = cli_keys_rotate_jwt (config, stdout) == 0 ? 0 : 1;
            break;
        case CLI_CMD_KEYS_LIST:
            rc = cli_keys_list (config, stdout);
            break;
        case CLI_CMD_KEYS_ROTATE:
            rc = cli_keys_rotate (config, args.resume != 0, args.batch, args.pause_ms,
                                  stdout);
            break;
        case CLI_CMD_KEYS_RETIRE:
            rc = cli_keys_retire (config, args.kek_id, stdout);
            break;
        case CLI_CMD_KEYS_SERVICE_GEN:
            rc = cli_keys_service_gen (config, args.key_name, args.key_dir,
                                       args.force != 0, stdout);
            break;
        case CLI_CMD_DECRYPT:
            rc = cli_decrypt (config, args.file_id, args.out_path, stdout);
            break;
        case CLI_CMD_USER_ADD:
            rc = cli_user_add (config, args.email, args.role, STDIN_FILENO);
            break;
        case CLI_CMD_USER_LIST:
            rc = cli_user_list (config, args.role, args.email, stdout);
            break;
        case CLI_CMD_USER_DISABLE:
        case CLI_CMD_USER_ENABLE:
            rc = cli_user_set_disabled (config, args.email,
                                        args.cmd == CLI_CMD_USER_DISABLE, stdout);
            break;
        case CLI_CMD_FSCK:
            rc = cli_fsck (config, args.repair != 0, args.grace_s, stdout);
            break;
        case CLI_CMD_MAIL:
            rc = cli_mail (config, args.mail_argc, args.mail_argv, stdout, stderr);
            break;
        case CLI_CMD_HEALTH:
            rc = cli_health (config, args.service, (int)args.timeout_ms, stderr);
            break;
        case CLI_CMD_UP:
            rc = cli_up (config, config_file);
            break;
    }
    cm_config_destroy (&config);
    return rc;
}
