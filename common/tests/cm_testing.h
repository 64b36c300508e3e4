/*  cm_testing -- helpers for tests that start real service binaries.
    Linked into test executables only (target safeshare_testing).       */
#ifndef CM_TESTING_H
#define CM_TESTING_H

#include <sys/types.h>

/* mkdtemp("/tmp/safeshare-test-XXXXXX"); caller frees. */
char *cm_test_tmpdir (void);
/* rm -rf dir. 0 / -1. */
int cm_test_rmrf (const char *dir);
/* Starts binary with argv (argv[0] included, NULL-terminated) and the
   current environment plus env_extra ("KEY=value", NULL-terminated, may be
   NULL). stdout/stderr inherited. Returns pid or -1. The child gets
   SIGKILL when the spawning *thread* exits (PR_SET_PDEATHSIG): spawn
   from the thread that will also stop it.                             */
pid_t cm_test_spawn (const char *binary, char *const argv[], char *const env_extra[]);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns the exit status
   (WEXITSTATUS) if it exited, 128+signal if killed, -1 on error.       */
int cm_test_stop (pid_t pid, int timeout_ms);
/* True if pid has exited (reaps it). */
int cm_test_exited (pid_t pid);

#endif
