/*  cli_stack -- the supervisor behind `safeshare up`: starts the service
    binaries in order, waits for the gateway's /readyz, then keeps them
    running -- a service that dies is restarted after a backoff while the
    others keep running (they reconnect over ZeroMQ on their own) -- and
    stops them all in reverse order.

    Signals: while cli_stack_run runs, SIGINT/SIGTERM/SIGHUP/SIGCHLD are
    turned into bytes on a self-pipe (whatever thread czmq left running
    takes them), so one poll(2) waits for children, signals, restart
    deadlines and time. Each child (every restart too) gets its own
    process group (the terminal's Ctrl-C reaches only the supervisor,
    which then stops them in order), the same arguments and environment,
    and PR_SET_PDEATHSIG=SIGTERM (a kill -9 of the supervisor still stops
    them).                                                               */
#ifndef CLI_STACK_H
#define CLI_STACK_H

#include <stdio.h>

#define CLI_STACK_READY_TIMEOUT_MS 30000
#define CLI_STACK_STOP_TIMEOUT_MS  10000
#define CLI_STACK_MAX_CHILDREN     8

/* When a service dies after the stack was ready once. */
typedef struct {
    int backoff_first_ms; /* delay before the first restart */
    int backoff_max_ms;   /* the delay doubles up to this */
    int stable_ms;        /* up this long: the next delay is the first again */
    int crash_limit;      /* more deaths than this ... */
    int crash_window_ms;  /* ... within this: give up, stop all, exit 1 */
} cli_stack_policy_t;

/* The default: 200 ms, doubling, capped at 10 s, back to 200 ms after
   60 s up; more than 5 deaths of one service within 60 s end `up`.   */
#define CLI_STACK_BACKOFF_FIRST_MS 200
#define CLI_STACK_BACKOFF_MAX_MS   10000
#define CLI_STACK_STABLE_MS        60000
#define CLI_STACK_CRASH_LIMIT      5
#define CLI_STACK_CRASH_WINDOW_MS  60000
#define CLI_STACK_MAX_CRASH_LIMIT  64

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

/* How long a stop waits for every service before SIGKILL (default
   CLI_STACK_STOP_TIMEOUT_MS; `up` gives the gateway its drain grace,
   SAFESHARE_SHUTDOWN_GRACE_MS, on top).                                */
void cli_stack_set_stop_timeout (cli_stack_t *self, int timeout_ms);

/* Restart policy (the CLI_STACK_* defaults above unless set; tests shorten
   it). 0 / -1 if a value is out of range (nothing changed).           */
int cli_stack_set_policy (cli_stack_t *self, const cli_stack_policy_t *policy);

/* Starts everything and waits until GET /readyz answers 200; a child
   that exits before that, or no 200 in time, stops the rest and returns
   1. Then prints `banner` (may be NULL) on `out` and supervises: a child
   that exits (any way: nobody asked it to) is restarted per the policy;
   one that dies too often or cannot be started (exec failure) stops the
   rest and returns 1. SIGINT/SIGTERM/SIGHUP stop everything (a pending
   restart is dropped) and return 0 (1 if a service did not stop
   cleanly). Every child is reaped before it returns.                  */
int cli_stack_run (cli_stack_t *self, const char *banner, FILE *out);

#endif
