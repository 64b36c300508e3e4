/*  svc_cli_up_policy -- the restart policy of cli_stack (the supervisor
    behind `safeshare up`), in this process with a shortened policy so
    that its timing can be measured: delays double from the first and are
    capped; a service that stayed up longer than stable_ms is restarted
    after the first delay again; more than crash_limit deaths within the
    window end the run (1). The services are shell scripts that log the
    time of every start, next to cli_fake_service as the gateway (it
    answers /readyz).

    usage: svc_cli_up_policy PATH/TO/cli_fake_service                    */
#include "cli_stack.h"
#include "cli_test_proc.h"
#include "cm_testing.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char s_fake[PATH_MAX];

typedef struct {
    char *root;
    char bin[600], fake[600], starts[700];
    char addr[64];
} s_env_t;

static int
s_setup (void **state)
{
    s_env_t *e = calloc (1, sizeof *e);
    e->root = cm_test_tmpdir ();
    assert_non_null (e->root);
    snprintf (e->bin, sizeof e->bin, "%s/bin", e->root);
    snprintf (e->fake, sizeof e->fake, "%s/fake", e->root);
    snprintf (e->starts, sizeof e->starts, "%s/starts", e->fake);
    assert_int_equal (mkdir (e->bin, 0755), 0);
    assert_int_equal (mkdir (e->fake, 0755), 0);
    snprintf (e->addr, sizeof e->addr, "127.0.0.1:%d", cli_test_free_port ());
    setenv ("SAFESHARE_HTTP_ADDR", e->addr, 1);
    setenv ("FAKE_DIR", e->fake, 1);
    char gw[700];
    snprintf (gw, sizeof gw, "%s/safeshare-gateway", e->bin);
    assert_int_equal (symlink (s_fake, gw), 0);
    *state = e;
    return 0;
}

static int
s_teardown (void **state)
{
    s_env_t *e = *state;
    cm_test_rmrf (e->root);
    free (e->root);
    free (e);
    return 0;
}

/* bin/flaky: logs the monotonic time (ms) of each start in fake/starts,
   then runs `body` (sh).                                              */
static void
s_script (s_env_t *e, const char *body)
{
    char path[700];
    snprintf (path, sizeof path, "%s/flaky", e->bin);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fprintf (f,
             "#!/bin/sh\n"
             "read up idle < /proc/uptime\n"
             "echo \"$up\" >> \"$FAKE_DIR/starts\"\n"
             "%s\n",
             body);
    fclose (f);
    assert_int_equal (chmod (path, 0755), 0);
}

/* The start times (ms) logged; their number. */
static int
s_starts (s_env_t *e, long *ms, int max)
{
    char *text = cli_test_slurp (e->starts, NULL);
    assert_non_null (text);
    int n = 0;
    for (char *tok = strtok (text, "\n"); tok && n < max; tok = strtok (NULL, "\n")) {
        ms[n++] = (long)(strtod (tok, NULL) * 1000.0 + 0.5);
    }
    free (text);
    return n;
}

static int
s_run (s_env_t *e, const cli_stack_policy_t *policy)
{
    cli_stack_t *stack = cli_stack_new (e->bin, NULL, e->addr);
    assert_non_null (stack);
    assert_int_equal (cli_stack_set_policy (stack, policy), 0);
    assert_int_equal (cli_stack_add (stack, "flaky"), 0);
    assert_int_equal (cli_stack_add (stack, "safeshare-gateway"), 0);
    int rc = cli_stack_run (stack, NULL, stdout);
    cli_stack_destroy (&stack);
    return rc;
}

/* Up for 400 ms at first (past readiness), then dies at every start:
   restarts after 100, 200, 400 ms; the fourth death within 5 s ends the
   run. /proc/uptime has 10 ms steps: hence the slack.                 */
static void
test_backoff_doubles_then_gives_up (void **state)
{
    s_env_t *e = *state;
    s_script (e, "if [ -e \"$FAKE_DIR/once\" ]; then exit 3; fi\n"
                 ": > \"$FAKE_DIR/once\"\n"
                 "sleep 0.4\n"
                 "exit 3");
    cli_stack_policy_t policy = {.backoff_first_ms = 100,
                                 .backoff_max_ms = 1600,
                                 .stable_ms = 60000,
                                 .crash_limit = 3,
                                 .crash_window_ms = 5000};
    assert_int_equal (s_run (e, &policy), 1);
    long ms[16];
    assert_int_equal (s_starts (e, ms, 16), 4);
    const long delay[] = {400 + 100, 200, 400}; /* start to start */
    for (int i = 0; i < 3; i++) {
        long gap = ms[i + 1] - ms[i];
        print_message ("start %d -> %d: %ld ms (delay %ld)\n", i, i + 1, gap, delay[i]);
        assert_true (gap >= delay[i] - 20);
        assert_true (gap < delay[i] + 300);
    }
    assert_int_equal (waitpid (-1, NULL, WNOHANG), -1); /* every child reaped */
}

/* Dies after 700 ms every time, longer than stable_ms (500): every
   restart comes after the first delay (400 ms), never 800 or 1600.
   The fourth death within 10 s ends the run.                         */
static void
test_backoff_resets_after_stable (void **state)
{
    s_env_t *e = *state;
    s_script (e, "sleep 0.7\nexit 3");
    cli_stack_policy_t policy = {.backoff_first_ms = 400,
                                 .backoff_max_ms = 3200,
                                 .stable_ms = 500,
                                 .crash_limit = 3,
                                 .crash_window_ms = 10000};
    assert_int_equal (s_run (e, &policy), 1);
    long ms[16];
    assert_int_equal (s_starts (e, ms, 16), 4);
    for (int i = 0; i < 3; i++) {
        long gap = ms[i + 1] - ms[i];
        print_message ("start %d -> %d: %ld ms (700 up + 400)\n", i, i + 1, gap);
        assert_true (gap >= 1080);
        assert_true (gap < 1100 + 350); /* 800 ms backoff would be 1500 */
    }
}

/* The setter refuses what would not make sense. */
static void
test_policy_checked (void **state)
{
    s_env_t *e = *state;
    cli_stack_t *stack = cli_stack_new (e->bin, NULL, e->addr);
    assert_non_null (stack);
    cli_stack_policy_t ok = {100, 1600, 1000, 3, 5000};
    assert_int_equal (cli_stack_set_policy (stack, &ok), 0);
    cli_stack_policy_t bad[] = {
        {0, 1600, 1000, 3, 5000},
        {100, 50, 1000, 3, 5000},
        {100, 1600, 0, 3, 5000},
        {100, 1600, 1000, 0, 5000},
        {100, 1600, 1000, CLI_STACK_MAX_CRASH_LIMIT + 1, 5000},
        {100, 1600, 1000, 3, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (cli_stack_set_policy (stack, &bad[i]), -1);
    }
    assert_int_equal (cli_stack_set_policy (stack, NULL), -1);
    cli_stack_destroy (&stack);
    assert_null (stack);
}

int
main (int argc, char **argv)
{
    if (argc != 2 || !realpath (argv[1], s_fake)) {
        fprintf (stderr, "usage: svc_cli_up_policy PATH/TO/cli_fake_service\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_backoff_doubles_then_gives_up, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_backoff_resets_after_stable, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_policy_checked, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
