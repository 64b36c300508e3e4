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
    CLI_CMD_USER_ADD
} cli_cmd_t;

typedef struct {
    cli_cmd_t cmd;
    const char *email; /* USER_ADD: borrowed from argv */
    const char *role;  /* USER_ADD: "ops" | "admin" | "client" */
} cli_args_t;

/* The command list for --help and `safeshare help`. */
extern const char *const cli_args_usage;

/* argv[0] is the program; argv[1..] the command and its arguments.
   0 with *out filled, or -1 with a one-line reason in err (a usage
   error: the caller prints it with the usage and exits 2).            */
int cli_args_parse (int argc, char *const *argv, cli_args_t *out, char *err,
                    size_t errlen);

/* True for the roles `user add` accepts. */
int cli_args_role_valid (const char *role);

#endif
