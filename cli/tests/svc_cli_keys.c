/*  svc_cli_keys -- the real `safeshare` binary on real stored files:
    `decrypt` (offline: the bytes, tampering, refusals, nothing left
    behind), `keys list`, `keys rotate` (complete, interrupted by SIGINT
    and by SIGKILL, then --resume), `keys retire` (refusals, then done),
    and the SAFESHARE_KEK_RING form of all of them.

    A stored file is made as the running stack makes it, with the same
    code: a random DEK wrapped by cryptod_dek_wrap with the ring's
    current KEK, chunks sealed by cryptod_chunk_seal, the blob written
    through stord_disk and the row through stord_meta (insert, commit).
    The storage DB is SQLite, or a fresh PostgreSQL schema per test with
    SAFESHARE_TEST_DB=pg (svc_cli_keys_pg).

    usage: svc_cli_keys PATH/TO/safeshare                               */
#include "cli_test_proc.h"
#include "cli_test_store.h"
#include "cm_db.h"
#include "cm_layout.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "cryptod_keyring.h"
#include "cryptod_stream.h"
#include "stord_disk.h"
#include "stord_meta.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define OWNER CLI_TEST_OWNER
#define CHUNK CLI_TEST_CHUNK

static const char *s_bin;

typedef struct {
    cli_test_store_t st; /* data dir, storage DB, blobs, ring */
    char outdir[600];    /* where decrypt writes */
} s_fixture_t;

/* `safeshare` with the arguments after err, up to a NULL; out / err
   may be NULL (then dropped).                                         */
/* `safeshare` with the arguments after err, up to a NULL. */
#define s_run(out, err, ...) cli_test_runl (s_bin, (out), (err), __VA_ARGS__)

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    cli_test_store_init (&f->st);
    snprintf (f->outdir, sizeof f->outdir, "%s/out", f->st.dir);
    assert_int_equal (mkdir (f->outdir, 0700), 0);
    cli_test_store_make (&f->st, s_bin);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    cli_test_store_fini (&f->st);
    free (f);
    return 0;
}

/* Entries of outdir (decrypt must leave nothing but what it made). */
static int
s_entries (const char *dir)
{
    DIR *d = opendir (dir);
    assert_non_null (d);
    int n = 0;
    for (struct dirent *e; (e = readdir (d));) {
        n += strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0;
    }
    closedir (d);
    return n;
}

/* `decrypt` of id into outdir/name: exit status; on 0 the bytes must
   equal plain and the file be 0600.                                   */
static int
s_decrypt_check (s_fixture_t *f, const char *id, const char *name, const uint8_t *plain,
                 size_t len)
{
    char path[700];
    snprintf (path, sizeof path, "%s/%s", f->outdir, name);
    char *out, *err;
    int rc = s_run (&out, &err, "decrypt", "--file", id, "--out", path, NULL);
    if (rc == 0) {
        assert_non_null (strstr (out, "decrypted file "));
        assert_non_null (strstr (out, id));
        size_t got_len = 0;
        char *got = cli_test_slurp (path, &got_len);
        assert_non_null (got);
        assert_int_equal (got_len, len);
        assert_memory_equal (got, plain, len);
        free (got);
        struct stat st;
        assert_int_equal (stat (path, &st), 0);
        assert_int_equal (st.st_mode & 0777, 0600);
        assert_int_equal (unlink (path), 0);
    } else {
        assert_int_equal (access (path, F_OK), -1); /* nothing at PATH */
        fprintf (stderr, "(decrypt %s refused, exit %d: %s)\n", name, rc, err);
    }
    free (out);
    free (err);
    return rc;
}

/* The row's kek id and wrapped DEK (hex) straight from the DB. */
static void
s_row (s_fixture_t *f, const char *id, char kek[65], char wrapped[1025])
{
    cm_db_t *db = cm_db_open (f->st.url);
    assert_non_null (db);
    const char *p[] = {id};
    cm_db_res_t *res =
        cm_db_query (db, "SELECT kek_id, wrapped_dek FROM files WHERE id = $1", 1, p);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    assert_int_equal (cm_db_res_rows (res), 1);
    snprintf (kek, 65, "%s", cm_db_res_get (res, 0, 0));
    snprintf (wrapped, 1025, "%s", cm_db_res_get (res, 0, 1));
    cm_db_res_free (&res);
    cm_db_destroy (&db);
}

static long
s_count_kek (s_fixture_t *f, const char *kek)
{
    cm_db_t *db = cm_db_open (f->st.url);
    assert_non_null (db);
    const char *p[] = {kek};
    cm_db_res_t *res =
        cm_db_query (db, "SELECT COUNT(*) FROM files WHERE kek_id = $1", 1, p);
    assert_int_equal (cm_db_res_status (res), CM_DB_OK);
    long n = strtol (cm_db_res_get (res, 0, 0), NULL, 10);
    cm_db_res_free (&res);
    cm_db_destroy (&db);
    return n;
}

static void
s_current (s_fixture_t *f, char id[17])
{
    cryptod_keyring_t *ring = cryptod_keyring_load (f->st.ring);
    assert_non_null (ring);
    snprintf (id, 17, "%s", cryptod_keyring_current (ring));
    cryptod_keyring_destroy (&ring);
}

static size_t
s_ring_size (s_fixture_t *f)
{
    cryptod_keyring_t *ring = cryptod_keyring_load (f->st.ring);
    assert_non_null (ring);
    size_t n = cryptod_keyring_size (ring);
    cryptod_keyring_destroy (&ring);
    return n;
}

/* "<id>  <yes|no|MISSING>  <n>" is a line of `keys list` output. */
static bool
s_listed (const char *out, const char *id, const char *current, long deks)
{
    char line[128];
    snprintf (line, sizeof line, "%-16s  %-7s  %ld\n", id, current, deks);
    return strstr (out, line) != NULL;
}

static void
test_decrypt (void **state)
{
    s_fixture_t *f = *state;
    const size_t lens[] = {3 * CHUNK + 1234, 2 * CHUNK, 0, 17};
    char ids[4][33];
    uint8_t *plains[4];
    for (int i = 0; i < 4; i++) {
        plains[i] = cli_test_plain (lens[i], (unsigned)i);
        cli_test_store_file (&f->st, plains[i], lens[i], ids[i]);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal (s_decrypt_check (f, ids[i], "copy", plains[i], lens[i]), 0);
    }

    /* An existing PATH is refused and left as it was.                  */
    char path[700], *out, *err;
    snprintf (path, sizeof path, "%s/exists", f->outdir);
    FILE *fp = fopen (path, "w");
    fputs ("mine", fp);
    fclose (fp);
    assert_int_equal (
        s_run (&out, &err, "decrypt", "--file", ids[0], "--out", path, NULL), 1);
    assert_non_null (strstr (err, "refusing to overwrite"));
    size_t len = 0;
    char *kept = cli_test_slurp (path, &len);
    assert_string_equal (kept, "mine");
    free (kept);
    unlink (path);
    cli_test_free2 (&out, &err);

    /* No such file; a usage error; a directory that does not exist.    */
    snprintf (path, sizeof path, "%s/x", f->outdir);
    assert_int_equal (s_run (&out, &err, "decrypt", "--file",
                             "00000000000000000000000000000000", "--out", path, NULL),
                      1);
    assert_non_null (strstr (err, "file_not_found"));
    cli_test_free2 (&out, &err);
    assert_int_equal (
        s_run (&out, &err, "decrypt", "--file", "../../etc/passwd", "--out", path, NULL),
        2);
    cli_test_free2 (&out, &err);
    snprintf (path, sizeof path, "%s/nodir/x", f->outdir);
    assert_int_equal (
        s_run (&out, &err, "decrypt", "--file", ids[0], "--out", path, NULL), 1);
    cli_test_free2 (&out, &err);
    assert_int_equal (s_entries (f->outdir), 0);

    /* Tampering: one flipped bit in the last chunk's ciphertext, after
       the first chunks decrypted fine: exit 1, and not even those
       first chunks' plaintext is left anywhere.                        */
    char blob[800];
    snprintf (blob, sizeof blob, "%s/%.2s/%s", f->st.blobs, ids[0], ids[0]);
    int fd = open (blob, O_RDWR);
    assert_true (fd >= 0);
    uint64_t off = cm_blob_offset (CHUNK, 3) + 100;
    uint8_t b;
    assert_int_equal (pread (fd, &b, 1, (off_t)off), 1);
    b ^= 0x10;
    assert_int_equal (pwrite (fd, &b, 1, (off_t)off), 1);
    snprintf (path, sizeof path, "%s/tampered", f->outdir);
    assert_int_equal (
        s_run (&out, &err, "decrypt", "--file", ids[0], "--out", path, NULL), 1);
    assert_non_null (strstr (err, "chunk 3 of file"));
    assert_non_null (strstr (err, "does not authenticate"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_entries (f->outdir), 0);
    b ^= 0x10;
    assert_int_equal (pwrite (fd, &b, 1, (off_t)off), 1);
    /* Two whole chunks swapped (same length): fails too.              */
    uint8_t c1[CHUNK + 16], c2[CHUNK + 16];
    assert_int_equal (pread (fd, c1, sizeof c1, (off_t)cm_blob_offset (CHUNK, 0)),
                      (ssize_t)sizeof c1);
    assert_int_equal (pread (fd, c2, sizeof c2, (off_t)cm_blob_offset (CHUNK, 1)),
                      (ssize_t)sizeof c2);
    assert_int_equal (pwrite (fd, c2, sizeof c2, (off_t)cm_blob_offset (CHUNK, 0)),
                      (ssize_t)sizeof c2);
    assert_int_equal (pwrite (fd, c1, sizeof c1, (off_t)cm_blob_offset (CHUNK, 1)),
                      (ssize_t)sizeof c1);
    assert_int_equal (s_decrypt_check (f, ids[0], "swapped", plains[0], lens[0]), 1);
    assert_int_equal (pwrite (fd, c1, sizeof c1, (off_t)cm_blob_offset (CHUNK, 0)),
                      (ssize_t)sizeof c1);
    assert_int_equal (pwrite (fd, c2, sizeof c2, (off_t)cm_blob_offset (CHUNK, 1)),
                      (ssize_t)sizeof c2);
    assert_int_equal (s_decrypt_check (f, ids[0], "restored", plains[0], lens[0]), 0);
    /* A truncated blob: refused before anything is written.           */
    struct stat st;
    assert_int_equal (fstat (fd, &st), 0);
    assert_int_equal (ftruncate (fd, st.st_size - 1), 0);
    snprintf (path, sizeof path, "%s/short", f->outdir);
    assert_int_equal (
        s_run (&out, &err, "decrypt", "--file", ids[0], "--out", path, NULL), 1);
    assert_non_null (strstr (err, "not the size the metadata says"));
    cli_test_free2 (&out, &err);
    close (fd);

    /* A blob that decrypts but is not what the metadata says: the
       SHA-256 check catches it (here: another file's row values).     */
    cm_db_t *db = cm_db_open (f->st.url);
    const char *p[] = {
        ids[1], "0000000000000000000000000000000000000000000000000000000000000000"};
    assert_int_equal (cm_db_exec (db, "UPDATE files SET sha256 = $2 WHERE id = $1", 2, p),
                      CM_DB_OK);
    cm_db_destroy (&db);
    snprintf (path, sizeof path, "%s/badsum", f->outdir);
    assert_int_equal (
        s_run (&out, &err, "decrypt", "--file", ids[1], "--out", path, NULL), 1);
    assert_non_null (strstr (err, "but the metadata says"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_entries (f->outdir), 0);

    /* A wrapped DEK copied from another file's row does not unwrap
       (the file id is its AAD).                                        */
    char kek[65], wrapped[1025];
    s_row (f, ids[3], kek, wrapped);
    db = cm_db_open (f->st.url);
    const char *q[] = {ids[2], wrapped};
    assert_int_equal (
        cm_db_exec (db, "UPDATE files SET wrapped_dek = $2 WHERE id = $1", 2, q),
        CM_DB_OK);
    cm_db_destroy (&db);
    snprintf (path, sizeof path, "%s/otherdek", f->outdir);
    assert_int_equal (
        s_run (&out, &err, "decrypt", "--file", ids[2], "--out", path, NULL), 1);
    assert_non_null (strstr (err, "cannot unwrap the DEK"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_entries (f->outdir), 0);
    for (int i = 0; i < 4; i++) {
        free (plains[i]);
    }
}

/* SIGINT while decrypting a larger file: exit 1, no output, no temp. */
static void
test_decrypt_interrupted (void **state)
{
    s_fixture_t *f = *state;
    size_t len = 64 * 1024 * 1024;
    uint8_t *plain = cli_test_plain (len, 99);
    char id[33];
    cli_test_store_file (&f->st, plain, len, id);
    free (plain);
    char path[700];
    snprintf (path, sizeof path, "%s/big", f->outdir);
    char *argv[] = {"safeshare", "decrypt", "--file", id, "--out", path, NULL};
    FILE *errf = tmpfile ();
    assert_non_null (errf);
    pid_t pid = cli_test_spawn (s_bin, argv, NULL, fileno (errf), fileno (errf));
    assert_true (pid > 0);
    /* Wait until it is writing (an unnamed file: watch its fds' size
       through /proc), then interrupt.                                  */
    bool writing = false;
    for (int t = 0; t < 2000 && !writing; t++) {
        char fddir[64];
        snprintf (fddir, sizeof fddir, "/proc/%d/fd", (int)pid);
        DIR *d = opendir (fddir);
        if (!d) {
            break;
        }
        for (struct dirent *e; (e = readdir (d));) {
            char lp[400], target[700];
            snprintf (lp, sizeof lp, "%s/%s", fddir, e->d_name);
            ssize_t n = readlink (lp, target, sizeof target - 1);
            if (n > 0) {
                target[n] = '\0';
                struct stat st;
                if (strncmp (target, f->outdir, strlen (f->outdir)) == 0 &&
                    stat (lp, &st) == 0 && st.st_size > 0) {
                    writing = true;
                }
            }
        }
        closedir (d);
        usleep (1000); /* polling the child's progress, bounded above */
    }
    assert_true (writing);
    kill (pid, SIGINT);
    assert_int_equal (cli_test_wait (pid, 30000), 1);
    char said[4096] = "";
    rewind (errf);
    size_t n = fread (said, 1, sizeof said - 1, errf);
    said[n] = '\0';
    fclose (errf);
    assert_non_null (strstr (said, "interrupted; nothing written"));
    assert_int_equal (s_entries (f->outdir), 0);
}

static void
test_rotate_retire (void **state)
{
    s_fixture_t *f = *state;
    enum { N = 5 };
    char ids[N][33], k1[17], k2[17], k3[17];
    uint8_t *plains[N];
    s_current (f, k1);
    for (int i = 0; i < N; i++) {
        plains[i] = cli_test_plain (1000 + (size_t)i * 3000, 10u + (unsigned)i);
        cli_test_store_file (&f->st, plains[i], 1000 + (size_t)i * 3000, ids[i]);
    }
    char *out, *err;
    assert_int_equal (s_run (&out, &err, "keys", "list", NULL), 0);
    assert_true (s_listed (out, k1, "yes", N));
    assert_non_null (strstr (out, "ring: "));
    cli_test_free2 (&out, &err);

    /* The current KEK is never retired.                                */
    assert_int_equal (s_run (&out, &err, "keys", "retire", k1, NULL), 1);
    assert_non_null (strstr (err, "is the current KEK"));
    cli_test_free2 (&out, &err);

    /* A new KEK without rewrap (`keys generate`): K1 still wraps all N. */
    assert_int_equal (s_run (&out, &err, "keys", "generate", NULL), 0);
    cli_test_free2 (&out, &err);
    s_current (f, k2);
    size_t ring_len = 0;
    char *ring_before = cli_test_slurp (f->st.ring, &ring_len);
    assert_int_equal (s_run (&out, &err, "keys", "retire", k1, NULL), 1);
    char want[160];
    snprintf (want, sizeof want, "KEK %s still wraps %d stored DEK(s)", k1, N);
    assert_non_null (strstr (err, want));
    cli_test_free2 (&out, &err);
    size_t ring_len2 = 0;
    char *ring_after = cli_test_slurp (f->st.ring, &ring_len2);
    assert_int_equal (ring_len, ring_len2);
    assert_memory_equal (ring_before, ring_after, ring_len);
    free (ring_before);
    free (ring_after);
    assert_int_equal (s_run (&out, &err, "keys", "list", NULL), 0);
    assert_true (s_listed (out, k1, "no", N));
    assert_true (s_listed (out, k2, "yes", 0));
    cli_test_free2 (&out, &err);

    /* --resume only rewraps (no new KEK), to K2.                       */
    assert_int_equal (s_run (&out, &err, "keys", "rotate", "--resume", NULL), 0);
    assert_non_null (strstr (out, "every stored DEK is under KEK"));
    assert_non_null (strstr (out, k2));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_ring_size (f), 2);
    assert_int_equal (s_count_kek (f, k2), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal (
            s_decrypt_check (f, ids[i], "c", plains[i], 1000 + (size_t)i * 3000), 0);
    }

    /* An upload in progress since before the ring changed may still
       commit a DEK under K1: retire waits for it.                     */
    stord_meta_t *meta = stord_meta_new (f->st.url);
    stord_file_t pend = {0};
    assert_int_equal (cm_random_hex (pend.id, 16), 0);
    snprintf (pend.name, sizeof pend.name, "up");
    snprintf (pend.content_type, sizeof pend.content_type, "text/plain");
    snprintf (pend.owner_id, sizeof pend.owner_id, OWNER);
    pend.chunk_size = CHUNK;
    pend.created_at = cm_now_s () - 60; /* began before `keys generate` */
    assert_int_equal (stord_meta_file_insert (meta, "t", &pend), CM_OK);
    /* One that began well after the ring changed got a DEK under K2:
       it does not hold retire up.                                     */
    stord_file_t later = pend;
    assert_int_equal (cm_random_hex (later.id, 16), 0);
    later.created_at = cm_now_s () + 3600;
    assert_int_equal (stord_meta_file_insert (meta, "t", &later), CM_OK);
    assert_int_equal (s_run (&out, &err, "keys", "retire", k1, NULL), 1);
    assert_non_null (strstr (err, "1 upload(s) in progress"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (&out, &err, "keys", "list", NULL), 0);
    assert_non_null (strstr (out, "2 upload(s) in progress"));
    cli_test_free2 (&out, &err);
    assert_int_equal (stord_meta_file_delete (meta, "t", pend.id, STORD_STATE_PENDING),
                      CM_OK);
    stord_meta_destroy (&meta);

    assert_int_equal (s_run (&out, &err, "keys", "retire", k1, NULL), 0);
    snprintf (want, sizeof want, "KEK %s retired: 1 KEK(s) left", k1);
    assert_non_null (strstr (out, want));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_ring_size (f), 1);
    struct stat st;
    assert_int_equal (stat (f->st.ring, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    assert_int_equal (s_run (&out, &err, "keys", "retire", k1, NULL), 1);
    assert_non_null (strstr (err, "is not in the ring"));
    cli_test_free2 (&out, &err);

    /* A full rotation: new K3, every DEK rewrapped, files still open. */
    char before[N][1025], kek[65];
    for (int i = 0; i < N; i++) {
        s_row (f, ids[i], kek, before[i]);
    }
    assert_int_equal (s_run (&out, &err, "keys", "rotate", NULL), 0);
    assert_non_null (strstr (out, "is now current"));
    snprintf (want, sizeof want, "rewrapping %d DEKs to KEK ", N);
    assert_non_null (strstr (out, want));
    snprintf (want, sizeof want, "rewrapped %d of %d DEKs", N, N);
    assert_non_null (strstr (out, want));
    cli_test_free2 (&out, &err);
    s_current (f, k3);
    assert_string_not_equal (k2, k3);
    assert_int_equal (s_ring_size (f), 2);
    assert_int_equal (s_count_kek (f, k3), N);
    for (int i = 0; i < N; i++) {
        char now[1025];
        s_row (f, ids[i], kek, now);
        assert_string_equal (kek, k3);
        assert_string_not_equal (now, before[i]);
        assert_int_equal (
            s_decrypt_check (f, ids[i], "c", plains[i], 1000 + (size_t)i * 3000), 0);
    }
    /* The blobs were not touched: same bytes as stored.               */
    assert_int_equal (s_run (&out, &err, "keys", "list", NULL), 0);
    assert_true (s_listed (out, k2, "no", 0));
    assert_true (s_listed (out, k3, "yes", N));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (&out, &err, "keys", "retire", k2, NULL), 0);
    cli_test_free2 (&out, &err);
    assert_int_equal (s_ring_size (f), 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal (
            s_decrypt_check (f, ids[i], "c", plains[i], 1000 + (size_t)i * 3000), 0);
        free (plains[i]);
    }
    /* Nothing to do is fine.                                           */
    assert_int_equal (s_run (&out, &err, "keys", "rotate", "--resume", NULL), 0);
    assert_non_null (strstr (out, "rewrapping 0 DEKs"));
    cli_test_free2 (&out, &err);
}

/* A DEK under a KEK the ring lacks: list says MISSING (exit 1), rotate
   rewraps the others and fails for that one (exit 1).                 */
static void
test_missing_kek (void **state)
{
    s_fixture_t *f = *state;
    char good[33], lost[33];
    uint8_t *plain = cli_test_plain (5000, 7);
    cli_test_store_file (&f->st, plain, 5000, good);
    const char *other =
        "00000000000000aa "
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    cryptod_keyring_t *ring = cryptod_keyring_parse (other, strlen (other), true, NULL);
    cli_test_store_with (&f->st, ring, plain, 5000, lost);
    cryptod_keyring_destroy (&ring);
    char *out, *err;
    assert_int_equal (s_run (&out, &err, "keys", "list", NULL), 1);
    assert_true (s_listed (out, "00000000000000aa", "MISSING", 1));
    assert_non_null (strstr (err, "cannot be decrypted"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (&out, &err, "keys", "rotate", NULL), 1);
    assert_non_null (strstr (err, lost));
    assert_non_null (strstr (err, "its KEK is not in the ring"));
    assert_non_null (strstr (err, "1 DEK(s) are still under other KEKs"));
    cli_test_free2 (&out, &err);
    char cur[17], kek[65], w[1025];
    s_current (f, cur);
    s_row (f, good, kek, w);
    assert_string_equal (kek, cur);
    s_row (f, lost, kek, w);
    assert_string_equal (kek, "00000000000000aa");
    assert_int_equal (s_decrypt_check (f, good, "g", plain, 5000), 0);
    assert_int_equal (s_decrypt_check (f, lost, "l", plain, 5000), 1);
    free (plain);
}

/* Runs `keys rotate ARGS` with stdout on a pipe, waits for a progress
   line saying at least `min` DEKs are done, sends `sig`; returns the
   exit status.                                                        */
static int
s_rotate_and_kill (int sig, int min, const char *resume)
{
    int pfd[2];
    assert_int_equal (pipe (pfd), 0);
    char *argv[] = {"safeshare",  "keys", "rotate",       "--batch", "2",
                    "--pause-ms", "150",  (char *)resume, NULL};
    int devnull = open ("/dev/null", O_WRONLY);
    pid_t pid = cli_test_spawn (s_bin, argv, NULL, pfd[1], devnull);
    close (pfd[1]);
    close (devnull);
    assert_true (pid > 0);
    char buf[8192] = "";
    size_t got = 0;
    bool seen = false;
    time_t deadline = time (NULL) + 30;
    while (!seen && time (NULL) < deadline) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (poll (&p, 1, 1000) <= 0) {
            continue;
        }
        ssize_t n = read (pfd[0], buf + got, sizeof buf - 1 - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
        for (const char *l = buf; (l = strstr (l, "rewrapped ")); l++) {
            int done = 0;
            if (sscanf (l, "rewrapped %d of", &done) == 1 && done >= min) {
                seen = true;
            }
        }
    }
    assert_true (seen);
    kill (pid, sig);
    int rc = cli_test_wait (pid, 30000);
    close (pfd[0]);
    return rc;
}

static void
test_rotate_interrupted (void **state)
{
    s_fixture_t *f = *state;
    enum { N = 24 };
    char ids[N][33], k1[17], k2[17], kek[65], orig[N][1025];
    uint8_t *plain = cli_test_plain (6000, 3);
    s_current (f, k1);
    for (int i = 0; i < N; i++) {
        cli_test_store_file (&f->st, plain, 6000, ids[i]);
        s_row (f, ids[i], kek, orig[i]);
    }
    /* SIGINT mid-rewrap: it stops between rows, says how to finish.   */
    assert_int_equal (s_rotate_and_kill (SIGINT, 2, NULL), 1);
    s_current (f, k2);
    assert_string_not_equal (k1, k2);
    long new1 = s_count_kek (f, k2), old1 = s_count_kek (f, k1);
    assert_true (new1 >= 2 && new1 < N);
    assert_int_equal (new1 + old1, N);
    /* Every row is old (its very bytes) or new (and opens).          */
    for (int i = 0; i < N; i++) {
        char w[1025];
        s_row (f, ids[i], kek, w);
        if (strcmp (kek, k1) == 0) {
            assert_string_equal (w, orig[i]);
        } else {
            assert_string_equal (kek, k2);
        }
        assert_int_equal (s_decrypt_check (f, ids[i], "c", plain, 6000), 0);
    }
    /* kill -9 in the middle of a resumed run: the same holds.          */
    assert_int_equal (s_rotate_and_kill (SIGKILL, (int)new1 + 2, "--resume"),
                      128 + SIGKILL);
    long new2 = s_count_kek (f, k2);
    assert_true (new2 >= new1 + 2 && new2 < N);
    assert_int_equal (new2 + s_count_kek (f, k1), N);
    assert_int_equal (s_ring_size (f), 2); /* --resume added no KEK */
    for (int i = 0; i < N; i++) {
        char w[1025];
        s_row (f, ids[i], kek, w);
        if (strcmp (kek, k1) == 0) {
            assert_string_equal (w, orig[i]);
        }
        assert_int_equal (s_decrypt_check (f, ids[i], "c", plain, 6000), 0);
    }
    /* --resume finishes.                                               */
    char *out, *err;
    assert_int_equal (
        s_run (&out, &err, "keys", "rotate", "--resume", "--batch", "5", NULL), 0);
    char want[80];
    snprintf (want, sizeof want, "rewrapping %ld DEKs to KEK %s", N - new2, k2);
    assert_non_null (strstr (out, want));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_count_kek (f, k2), N);
    assert_int_equal (s_ring_size (f), 2);
    for (int i = 0; i < N; i++) {
        assert_int_equal (s_decrypt_check (f, ids[i], "c", plain, 6000), 0);
    }
    assert_int_equal (s_run (&out, &err, "keys", "retire", k1, NULL), 0);
    cli_test_free2 (&out, &err);
    free (plain);
}

/* "SAFESHARE_KEK_RING=<value>\n" in out -> value (caller frees). */
static char *
s_env_value (const char *out)
{
    const char *v = strstr (out, "SAFESHARE_KEK_RING=");
    assert_non_null (v);
    v += strlen ("SAFESHARE_KEK_RING=");
    const char *nl = strchr (v, '\n');
    assert_non_null (nl);
    return strndup (v, (size_t)(nl - v));
}

static void
test_env_ring (void **state)
{
    s_fixture_t *f = *state;
    char k1[17], id[33];
    s_current (f, k1);
    uint8_t *plain = cli_test_plain (9000, 5);
    cli_test_store_file (&f->st, plain, 9000, id);
    /* The same ring as an env value; the file moved away so that only
       the environment can be what the CLI reads.                      */
    cryptod_keyring_t *ring = cryptod_keyring_load (f->st.ring);
    char *env = cryptod_keyring_format_env (ring);
    cryptod_keyring_destroy (&ring);
    char moved[700];
    snprintf (moved, sizeof moved, "%s.away", f->st.ring);
    assert_int_equal (rename (f->st.ring, moved), 0);
    setenv ("SAFESHARE_KEK_RING", env, 1);

    char *out, *err;
    assert_int_equal (s_run (&out, &err, "keys", "list", NULL), 0);
    assert_non_null (strstr (out, "ring: SAFESHARE_KEK_RING"));
    assert_true (s_listed (out, k1, "yes", 1));
    assert_null (strstr (out, env + 17)); /* list never prints a key */
    cli_test_free2 (&out, &err);
    assert_int_equal (s_decrypt_check (f, id, "e", plain, 9000), 0);

    /* rotate prints the new value (the only way a key is printed) and
       writes no file; the rewrapped DEK needs the new value.           */
    assert_int_equal (s_run (&out, &err, "keys", "rotate", NULL), 0);
    char *env2 = s_env_value (out);
    assert_int_equal (access (f->st.ring, F_OK), -1);
    assert_non_null (strstr (env2, env)); /* the old entries, then the new */
    cryptod_keyring_t *r2 = cryptod_keyring_parse (env2, strlen (env2), true, NULL);
    assert_non_null (r2);
    assert_int_equal (cryptod_keyring_size (r2), 2);
    char k2[17];
    snprintf (k2, sizeof k2, "%s", cryptod_keyring_current (r2));
    cryptod_keyring_destroy (&r2);
    assert_non_null (strstr (out, "every stored DEK is under KEK"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_count_kek (f, k2), 1);
    assert_int_equal (s_decrypt_check (f, id, "e", plain, 9000), 1); /* old value */
    setenv ("SAFESHARE_KEK_RING", env2, 1);
    assert_int_equal (s_decrypt_check (f, id, "e", plain, 9000), 0);

    /* retire prints the value without K1.                              */
    assert_int_equal (s_run (&out, &err, "keys", "retire", k2, NULL), 1);
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (&out, &err, "keys", "retire", k1, NULL), 0);
    char *env3 = s_env_value (out);
    assert_null (strstr (env3, k1));
    assert_non_null (strstr (env3, k2));
    assert_int_equal (strlen (env3), 81);
    assert_int_equal (access (f->st.ring, F_OK), -1);
    cli_test_free2 (&out, &err);
    setenv ("SAFESHARE_KEK_RING", env3, 1);
    assert_int_equal (s_decrypt_check (f, id, "e", plain, 9000), 0);

    /* `keys generate` with an env ring: the value with one more KEK is
       printed, no kek.ring made.                                      */
    assert_int_equal (s_run (&out, &err, "keys", "generate", NULL), 0);
    char *env4 = s_env_value (out);
    assert_int_equal (strlen (env4), 2 * 82 - 1);
    assert_true (strncmp (env4, env3, 81) == 0 && env4[81] == ';');
    assert_int_equal (access (f->st.ring, F_OK), -1);
    cli_test_free2 (&out, &err);
    free (env4);

    /* A bad value: refused, and no part of it in any output.           */
    char bad[200];
    snprintf (bad, sizeof bad, "%s;%.60s", env3, env2 + 17);
    setenv ("SAFESHARE_KEK_RING", bad, 1);
    assert_int_equal (s_run (&out, &err, "keys", "list", NULL), 1);
    assert_non_null (strstr (err, "SAFESHARE_KEK_RING"));
    assert_null (strstr (err, env3 + 17));
    assert_null (strstr (out, env3 + 17));
    assert_null (strstr (err, env2 + 60));
    cli_test_free2 (&out, &err);
    setenv ("SAFESHARE_KEK_RING", "a\x01", 1);
    assert_int_equal (s_run (&out, &err, "keys", "list", NULL), 2);
    assert_non_null (strstr (err, "SAFESHARE_KEK_RING=(secret, not shown)"));
    cli_test_free2 (&out, &err);
    unsetenv ("SAFESHARE_KEK_RING");
    assert_int_equal (rename (moved, f->st.ring), 0);
    cm_secret_free (env, strlen (env) + 1);
    free (env2);
    free (env3);
    free (plain);
}

/* Offline commands need the storage DB: a missing one is an error, not
   an empty table (a wrong setting must not retire a KEK in use).      */
static void
test_no_storage_db (void **state)
{
    s_fixture_t *f = *state;
    if (strncmp (f->st.url, "sqlite:", 7) != 0) {
        return; /* the PostgreSQL run has its schema: nothing to miss */
    }
    char url[700];
    snprintf (url, sizeof url, "sqlite:%s/nope.db", f->st.dir);
    setenv ("SAFESHARE_STORAGE_DB", url, 1);
    char *out, *err;
    assert_int_equal (s_run (&out, &err, "keys", "list", NULL), 1);
    assert_non_null (strstr (err, "no storage database at"));
    cli_test_free2 (&out, &err);
    assert_int_equal (s_run (&out, &err, "keys", "rotate", NULL), 1);
    cli_test_free2 (&out, &err);
    assert_int_equal (s_ring_size (f), 1); /* no KEK added */
    char path[700];
    snprintf (path, sizeof path, "%s/nope.db", f->st.dir);
    assert_int_equal (access (path, F_OK), -1); /* and none created */
    setenv ("SAFESHARE_STORAGE_DB", f->st.url, 1);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: svc_cli_keys PATH/TO/safeshare\n");
        return 2;
    }
    s_bin = argv[1];
    cm_log_init ("test", CM_LOG_ERROR);
    unsetenv ("SAFESHARE_KEY_DIR");
    unsetenv ("SAFESHARE_BLOB_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_decrypt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_decrypt_interrupted, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_rotate_retire, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_missing_kek, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_rotate_interrupted, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_env_ring, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_no_storage_db, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
