/*  cli_test_proc -- running the `safeshare` binary from the CLI's system
    tests with a given stdin and captured stdout/stderr.                */
#ifndef CLI_TEST_PROC_H
#define CLI_TEST_PROC_H

#include <stdarg.h>
#include <sys/types.h>

/* Starts binary with argv; stdin gets stdin_data (NULL: /dev/null) then
   EOF; stdout/stderr go to the given fds (-1: inherited). pid or -1.  */
pid_t cli_test_spawn (const char *binary, char *const argv[], const char *stdin_data,
                      int stdout_fd, int stderr_fd);
/* CLOCK_MONOTONIC in milliseconds. */
long cli_test_ms (void);
/* Unsets every SAFESHARE_* variable: only what a test sets reaches the
   processes it starts, none from the caller's environment.           */
void cli_test_clear_safeshare_env (void);
/* Waits up to timeout_ms: exit status, 128+signal, or -1 on timeout (the
   process is then killed and reaped).                                  */
int cli_test_wait (pid_t pid, int timeout_ms);
/* Runs to completion (30 s at most), capturing stdout and stderr into
   malloc'd strings (caller frees). Returns the exit status as above.  */
int cli_test_run (const char *binary, char *const argv[], const char *stdin_data,
                  char **out, char **err);
/* cli_test_run with argv "safeshare" and then the const char * of args
   up to a NULL (at most 14): a test's variadic s_run passes its own.  */
int cli_test_vrun (const char *binary, const char *stdin_data, char **out, char **err,
                   va_list args);
/* cli_test_vrun without stdin, the args given here up to a NULL; out /
   err may be NULL (then dropped).                                     */
int cli_test_runl (const char *binary, char **out, char **err, ...);
/* Frees what cli_test_run captured and NULLs both.                   */
void cli_test_free2 (char **out, char **err);
/* The whole file as a string (caller frees), NULL if unreadable.       */
char *cli_test_slurp (const char *path, size_t *len_out);
/* Permission bits of dir/rel, 0xffffffff if it cannot be stat'ed.     */
unsigned cli_test_mode (const char *dir, const char *rel);
/* A loopback TCP port free right now (bound, then released); asserts
   the bind.                                                            */
int cli_test_free_port (void);

#endif
