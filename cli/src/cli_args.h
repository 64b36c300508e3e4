/*  cli_args -- the `safeshare` command line, parsed into a command and its
    arguments. Pure (no I/O), so it is unit-tested on its own; the global
    options (--help, --version, --config) are taken out by cm_service_init
    before this runs.                                                    */
#ifndef CLI_ARGS_H
#define CLI_ARGS_H

#include <stddef.h>

typedef enum {
    CLI_CMD_HELP = 0,
    CLI_CMD_VERSION,
    CLI_CMD_UP,
    CLI_CMD_KEYS_GENERATE,
    CLI_CMD_KEYS_ROTATE_JWT,
    CLI_CMD_KEYS_LIST,
    CLI_CMD_KEYS_ROTATE,
    CLI_CMD_KEYS_RETIRE,
    CLI_CMD_DECRYPT,
    CLI_CMD_USER_ADD,
    CLI_CMD_USER_LIST,
    CLI_CMD_USER_DISABLE,
    CLI_CMD_USER_ENABLE,
    CLI_CMD_FSCK,
    CLI_CMD_MAIL,
    CLI_CMD_HEALTH,
    CLI_CMD_KEYS_SERVICE_GEN
} cli_cmd_t;

/* Longest `user list --email` part (an e-mail address is at most 254). */
#define CLI_EMAIL_PART_MAX 254
/* `keys rotate --batch N`: rows read and rewrapped per batch. */
#define CLI_REWRAP_BATCH_DEFAULT 500
#define CLI_REWRAP_BATCH_MAX     10000
/* `keys rotate --pause-ms MS`: pause between batches (spares a busy DB). */
#define CLI_REWRAP_PAUSE_MAX 60000
/* `fsck --grace SECONDS`: pending uploads idle this long are stale. */
#define CLI_FSCK_GRACE_DEFAULT 3600
#define CLI_FSCK_GRACE_MAX     (365u * 24 * 3600)

typedef struct {
    cli_cmd_t cmd;
    /* Borrowed from argv. USER_ADD, USER_DISABLE, USER_ENABLE: the
       address; USER_LIST: the --email substring, NULL for any.         */
    const char *email;
    /* USER_ADD: the new user's role; USER_LIST: the --role filter, NULL
       for any. "ops" | "admin" | "client".                             */
    const char *role;
    /* KEYS_RETIRE: the KEK id (16 lowercase hex). */
    const char *kek_id;
    /* KEYS_ROTATE: --resume (no new KEK, only rewrap to the current
       one), --batch N, --pause-ms MS.                                  */
    int resume;
    unsigned batch;
    unsigned pause_ms;
    /* DECRYPT: --file ID (32 lowercase hex) and --out PATH. */
    const char *file_id;
    const char *out_path;
    /* FSCK: --repair, --grace SECONDS. */
    int repair;
    unsigned grace_s;
    /* MAIL: the arguments after `mail` (parsed by cli_mail). */
    int mail_argc;
    char *const *mail_argv;
    /* KEYS_SERVICE_GEN: NAME (cm_curve_name_valid), --dir DIR (NULL:
       $SAFESHARE_KEY_DIR/curve), --force.                              */
    const char *key_name;
    const char *key_dir;
    int force;
    /* HEALTH: the service (cli_health_service_valid) and --timeout-ms. */
    const char *service;
    unsigned timeout_ms;
} cli_args_t;

/* The command list for --help and `safeshare help`. */
extern const char *const cli_args_usage;

/* argv[0] is the program; argv[1..] the command and its arguments.
   0 with *out filled, or -1 with a one-line reason in err (a usage
   error: the caller prints it with the usage and exits 2).            */
int cli_args_parse (int argc, char *const *argv, cli_args_t *out, char *err,
                    size_t errlen);

/* True for the roles `user add` and `user list --role` accept. */
int cli_args_role_valid (const char *role);

#endif
