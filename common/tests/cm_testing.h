/*  cm_testing -- helpers for tests that start real service binaries.
    Linked into test executables only (target safeshare_testing).       */
#ifndef CM_TESTING_H
#define CM_TESTING_H

#include <stddef.h>
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
/* A loopback TCP port the kernel picked (port 0), free right now (bound,
   then released); -1 on failure. czmq's "tcp://127.0.0.1:*" scans from
   49152 and would hand the same port to tests started together.       */
int cm_test_free_port (void);

/* A CURVE key pair laid out as `safeshare keys service-gen` writes it:
   keys_dir/NAME/NAME.key and NAME.key_secret (0600), NAME/ 0700. 0 / -1. */
int cm_test_curve_keypair (const char *keys_dir, const char *name);
/* Copies keys_dir/NAME/NAME.key to to_dir/AS.key (0644), as an operator
   fills a public or allow dir. 0 / -1.                                 */
int cm_test_curve_publish (const char *keys_dir, const char *name, const char *to_dir,
                           const char *as);

/* SAFESHARE_TEST_DB=pg runs a DB test on PostgreSQL: a fresh schema of
   SAFESHARE_TEST_PG_URL (named into schema), selected by search_path in
   the URL written to url. 1 = not asked (use SQLite), 0 = url set,
   -1 = failed; a missing SAFESHARE_TEST_PG_URL is a failure, said on
   stderr, so a PostgreSQL run never passes without a server.          */
int cm_test_pg_schema_url (char schema[40], char *url, size_t url_len);
/* Drops the schema made above (no-op for ""). 0 / -1. */
int cm_test_pg_schema_drop (const char *schema);

/* cm_b64url_encode of data[0..len) into a malloc'd string (caller
   frees; NULL out of memory). cm_jwt only decodes (libjwt encodes), so
   forged tokens still do not go through the code they test.          */
char *cm_test_b64url (const void *data, size_t len);
/* The JWS signing input b64url(header) "." b64url(payload) (caller
   frees; NULL out of memory).                                        */
char *cm_test_jws_input (const char *header, const char *payload);

#endif
