/*  cli_stack -- the supervisor behind `safeshare up`: starts the service
    binaries in order, waits for the gateway's /readyz, watches them, and
    stops them all in reverse order.

    Signals: while cli_stack_run runs, SIGINT/SIGTERM/SIGHUP/SIGCHLD are
    turned into bytes on a self-pipe (whatever thread czmq left running
    takes them), so one poll(2) waits for children, signals and time.
    Each child gets its own process group (the terminal's Ctrl-C reaches
    only the supervisor, which then stops them in order) and
    PR_SET_PDEATHSIG=SIGTERM (a kill -9 of the supervisor still stops
    them).                                                               */
#ifndef CLI_STACK_H
#define CLI_STACK_H

#include <stdio.h>

#define CLI_STACK_READY_TIMEOUT_MS 30000
#define CLI_STACK_STOP_TIMEOUT_MS  10000
#define CLI_STACK_MAX_CHILDREN     8

typedef struct cli_stack_t cli_stack_t;

/* bin_dir: where the safeshare-* binaries are; config_file: passed on as
   --config FILE (may be NULL); http_addr: SAFESHARE_HTTP_ADDR to probe.
   NULL if an argument is unusable.                                    */
cli_stack_t *cli_stack_new (const char *bin_dir, const char *config_file,
                            const char *http_addr);
void cli_stack_destroy (cli_stack_t **self_p);

/* Adds a binary (e.g. "safeshare-crypto") to start after the previous
   ones. 0 / -1 (too many, or not an executable file in bin_dir: one line
   on stderr).                                                          */
int cli_stack_add (cli_stack_t *self, const char *binary);

/* Readiness timeout (tests shorten it). */
void cli_stack_set_ready_timeout (cli_stack_t *self, int timeout_ms);

/* Starts everything, waits until GET /readyz answers 200, prints `banner`
   (may be NULL) on `out`, then supervises until a signal (stops all,
   returns 0) or until a child exits or the stack is not ready in time
   (stops the rest, returns 1). Every child is reaped before it returns. */
int cli_stack_run (cli_stack_t *self, const char *banner, FILE *out);

#endif
