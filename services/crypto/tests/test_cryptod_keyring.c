/*  cryptod_keyring: generate/append, load, wrap/unwrap, the refusals
    (wrong file id, tampered wrapped DEK, unknown KEK, loose file mode,
    malformed ring); the SAFESHARE_KEK_RING form (parse, open, never a
    key in a log line or a config error); retire; in-memory add/remove
    and the env formatting; rewrap.                                     */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_config.h"
#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "cryptod_keyring.h"

#define FILE_A "00112233445566778899aabbccddeeff"
#define FILE_B "ffeeddccbbaa99887766554433221100"

typedef struct {
    char *dir;
    char path[512];
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    f->dir = cm_test_tmpdir ();
    assert_non_null (f->dir);
    snprintf (f->path, sizeof f->path, "%s/kek.ring", f->dir);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    cm_test_rmrf (f->dir);
    free (f->dir);
    free (f);
    return 0;
}

static void
s_write (const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen (path, "w");
    assert_non_null (fp);
    fputs (text, fp);
    fclose (fp);
    assert_int_equal (chmod (path, mode), 0);
}

static void
test_generate_load_wrap (void **state)
{
    s_fixture_t *f = *state;
    char id1[17], id2[17], kek_id[17];
    struct stat st;

    assert_null (cryptod_keyring_load (f->path)); /* missing */
    assert_int_equal (cryptod_keyring_generate (f->path, id1), 0);
    assert_true (cm_is_hex_id (id1, 16));
    assert_int_equal (stat (f->path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    /* One line "<id> <64 hex>\n", the key itself nowhere else.         */
    size_t len = 0;
    char *text = cm_file_read (f->path, 4096, &len);
    assert_non_null (text);
    assert_int_equal (len, 16 + 1 + 64 + 1);
    assert_memory_equal (text, id1, 16);
    free (text);

    cryptod_keyring_t *kr = cryptod_keyring_load (f->path);
    assert_non_null (kr);
    assert_string_equal (cryptod_keyring_current (kr), id1);
    assert_int_equal (cryptod_keyring_size (kr), 1);

    uint8_t dek[32], back[32], wrapped[64];
    size_t wlen = sizeof wrapped;
    assert_int_equal (cm_random (dek, sizeof dek), 0);
    assert_int_equal (cryptod_dek_wrap (kr, FILE_A, dek, kek_id, wrapped, &wlen), 0);
    assert_int_equal (wlen, CRYPTOD_WRAPPED_DEK_LEN);
    assert_string_equal (kek_id, id1);
    assert_null (memmem (wrapped, wlen, dek, 8));
    assert_int_equal (cryptod_dek_unwrap (kr, kek_id, FILE_A, wrapped, wlen, back), 0);
    assert_memory_equal (back, dek, 32);

    /* A too-small output buffer is refused.                            */
    size_t small = 59;
    assert_int_equal (cryptod_dek_wrap (kr, FILE_A, dek, kek_id, wrapped, &small), -1);

    /* Wrong file id, tampered byte anywhere, wrong length, unknown KEK. */
    memset (back, 0x77, sizeof back);
    assert_int_equal (cryptod_dek_unwrap (kr, kek_id, FILE_B, wrapped, wlen, back), -1);
    assert_memory_not_equal (back, dek, 32);
    for (size_t i = 0; i < wlen; i += 7) {
        uint8_t t[60];
        memcpy (t, wrapped, 60);
        t[i] ^= 0x04;
        assert_int_equal (cryptod_dek_unwrap (kr, kek_id, FILE_A, t, 60, back), -1);
    }
    assert_int_equal (cryptod_dek_unwrap (kr, kek_id, FILE_A, wrapped, 59, back), -1);
    assert_int_equal (
        cryptod_dek_unwrap (kr, "0000000000000000", FILE_A, wrapped, wlen, back), -1);
    assert_false (cryptod_keyring_has (kr, "0000000000000000"));

    /* A second KEK becomes current; the old one still unwraps.         */
    assert_int_equal (cryptod_keyring_generate (f->path, id2), 0);
    assert_string_not_equal (id1, id2);
    cryptod_keyring_t *kr2 = cryptod_keyring_load (f->path);
    assert_non_null (kr2);
    assert_int_equal (cryptod_keyring_size (kr2), 2);
    assert_string_equal (cryptod_keyring_current (kr2), id2);
    assert_string_equal (cryptod_keyring_id (kr2, 0), id1);
    assert_int_equal (cryptod_dek_unwrap (kr2, id1, FILE_A, wrapped, wlen, back), 0);
    assert_memory_equal (back, dek, 32);
    wlen = sizeof wrapped;
    assert_int_equal (cryptod_dek_wrap (kr2, FILE_B, dek, kek_id, wrapped, &wlen), 0);
    assert_string_equal (kek_id, id2);
    /* The old ring does not know the new KEK.                          */
    assert_int_equal (cryptod_dek_unwrap (kr, id2, FILE_B, wrapped, wlen, back), -1);
    assert_int_equal (stat (f->path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);

    cryptod_keyring_destroy (&kr);
    cryptod_keyring_destroy (&kr2);
    assert_null (kr);
    cryptod_keyring_destroy (&kr); /* twice is fine */
}

static void
test_file_mode (void **state)
{
    s_fixture_t *f = *state;
    char id[17];
    assert_int_equal (cryptod_keyring_generate (f->path, id), 0);
    const mode_t bad[] = {0640, 0604, 0644, 0660, 0602};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (chmod (f->path, bad[i]), 0);
        assert_null (cryptod_keyring_load (f->path));
        /* ... and no KEK is appended to such a ring either.           */
        assert_int_equal (cryptod_keyring_generate (f->path, id), -1);
    }
    assert_int_equal (chmod (f->path, 0400), 0);
    cryptod_keyring_t *kr = cryptod_keyring_load (f->path);
    assert_non_null (kr);
    cryptod_keyring_destroy (&kr);
    /* A directory in its place is refused.                             */
    char dpath[600];
    snprintf (dpath, sizeof dpath, "%s/adir", f->dir);
    assert_int_equal (mkdir (dpath, 0700), 0);
    assert_null (cryptod_keyring_load (dpath));
}

#define KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static void
test_malformed (void **state)
{
    s_fixture_t *f = *state;
    s_write (f->path, "# comment\n\n0123456789abcdef " KEY "\n", 0600);
    cryptod_keyring_t *kr = cryptod_keyring_load (f->path);
    assert_non_null (kr);
    assert_string_equal (cryptod_keyring_current (kr), "0123456789abcdef");
    cryptod_keyring_destroy (&kr);

    /* No trailing newline is fine too.                                 */
    s_write (f->path, "0123456789abcdef " KEY, 0600);
    kr = cryptod_keyring_load (f->path);
    assert_non_null (kr);
    cryptod_keyring_destroy (&kr);

    const char *bad[] = {
        "",                                                     /* empty ring */
        "# only a comment\n",                                   /* no KEK */
        "0123456789abcdef 0001\n",                              /* short key */
        "0123456789ABCDEF " KEY "\n",                           /* upper-case id */
        "0123456789abcdef\t" KEY "\n",                          /* wrong separator */
        "0123456789abcdeg " KEY "\n",                           /* not hex */
        "0123456789abcdef " KEY "0\n",                          /* long key */
        "0123456789abcdef " KEY "\n0123456789abcdef " KEY "\n", /* duplicate id */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_write (f->path, bad[i], 0600);
        assert_null (cryptod_keyring_load (f->path));
    }
}

#define KEY2 "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
#define ID1  "0123456789abcdef"
#define ID2  "fedcba9876543210"

/* Runs fn with stderr (where cm_log writes) captured; returns what it
   wrote (caller frees).                                               */
static char *
s_capture_stderr (void (*fn) (void *), void *arg)
{
    char path[] = "/tmp/safeshare-test-stderr-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    int saved = dup (STDERR_FILENO);
    assert_true (saved >= 0);
    assert_int_equal (dup2 (fd, STDERR_FILENO), STDERR_FILENO);
    fn (arg);
    fflush (stderr);
    assert_int_equal (dup2 (saved, STDERR_FILENO), STDERR_FILENO);
    close (saved);
    close (fd);
    size_t len = 0;
    char *text = cm_file_read (path, 1 << 20, &len);
    assert_non_null (text);
    unlink (path);
    return text;
}

/* Wraps a DEK with kr's current KEK and checks other unwraps it.     */
static void
s_same_keys (const cryptod_keyring_t *kr, const cryptod_keyring_t *other)
{
    uint8_t dek[32], back[32], wrapped[60];
    size_t wlen = sizeof wrapped;
    char kek_id[17];
    assert_int_equal (cm_random (dek, sizeof dek), 0);
    assert_int_equal (cryptod_dek_wrap (kr, FILE_A, dek, kek_id, wrapped, &wlen), 0);
    assert_int_equal (cryptod_dek_unwrap (other, kek_id, FILE_A, wrapped, wlen, back), 0);
    assert_memory_equal (back, dek, 32);
}

static void
test_env_ring (void **state)
{
    s_fixture_t *f = *state;
    /* Blanks around entries and a trailing ';' are layout.             */
    const char *env = " " ID1 " " KEY " ; " ID2 " " KEY2 ";";
    cryptod_keyring_t *kr = cryptod_keyring_parse (env, strlen (env), true, NULL);
    assert_non_null (kr);
    assert_int_equal (cryptod_keyring_size (kr), 2);
    assert_string_equal (cryptod_keyring_id (kr, 0), ID1);
    assert_string_equal (cryptod_keyring_current (kr), ID2);

    /* open: the env ring wins and the file is not read -- here there is
       none, and then a file holding other keys.                        */
    cryptod_keyring_t *o = cryptod_keyring_open (f->dir, env);
    assert_non_null (o);
    assert_string_equal (cryptod_keyring_current (o), ID2);
    s_same_keys (kr, o);
    cryptod_keyring_destroy (&o);
    assert_null (cryptod_keyring_open (f->dir, NULL)); /* no file yet */
    assert_null (cryptod_keyring_open (f->dir, ""));   /* "" = unset */
    char id[17];
    assert_int_equal (cryptod_keyring_generate (f->path, id), 0);
    o = cryptod_keyring_open (f->dir, env);
    assert_string_equal (cryptod_keyring_current (o), ID2);
    assert_false (cryptod_keyring_has (o, id));
    cryptod_keyring_destroy (&o);
    o = cryptod_keyring_open (f->dir, NULL);
    assert_non_null (o);
    assert_string_equal (cryptod_keyring_current (o), id);
    cryptod_keyring_destroy (&o);
    assert_null (cryptod_keyring_open (NULL, NULL));

    /* The file format does not take ';' and the env one no newlines as
       separators (each entry would be malformed).                     */
    const char *two_lines = ID1 " " KEY "\n" ID2 " " KEY2 "\n";
    assert_null (cryptod_keyring_parse (two_lines, strlen (two_lines), true, NULL));
    assert_null (cryptod_keyring_parse (env, strlen (env), false, "x"));
    o = cryptod_keyring_parse (two_lines, strlen (two_lines), false, "x");
    assert_non_null (o);
    s_same_keys (kr, o);
    cryptod_keyring_destroy (&o);
    cryptod_keyring_destroy (&kr);

    const char *bad[] = {
        "",
        " ; ;",
        ID1 " " KEY ";" ID1 " " KEY2,   /* duplicate id */
        ID1 " " KEY ";" ID2 "  " KEY2,  /* two spaces */
        ID1 " " KEY ";# " ID2 " " KEY2, /* no comments in the env form */
        ID1 "=" KEY,
        ID1 " 1F1E1D1C1B1A191817161514131211100F0E0D0C0B0A09080706050403020100",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null (cryptod_keyring_parse (bad[i], strlen (bad[i]), true, NULL));
    }
}

static void
s_open_bad_env (void *arg)
{
    cm_log_set_level (CM_LOG_DEBUG);
    assert_null (cryptod_keyring_open ("/nonexistent", arg));
    cm_log_set_level (CM_LOG_ERROR);
}

/* A bad ring is reported by entry number, never with its text; a bad
   SAFESHARE_KEK_RING config value is not echoed either.               */
static void
test_env_ring_secret (void **state)
{
    (void)state;
    /* The second entry's key is one hex digit short.                   */
    const char *env =
        ID1 " " KEY ";" ID2 " "
            "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a0908070605040302010";
    char *log = s_capture_stderr (s_open_bad_env, (void *)env);
    assert_non_null (strstr (log, "SAFESHARE_KEK_RING entry 2"));
    assert_null (strstr (log, KEY));
    assert_null (strstr (log, "1f1e1d1c1b1a1918"));
    assert_null (strstr (log, "0001020304050607"));
    free (log);

    /* cm_config: a control character makes the value invalid; the error
       names the key, not the value.                                   */
    char err[512] = "";
    setenv ("SAFESHARE_KEK_RING", ID1 " " KEY "\x01", 1);
    assert_null (cm_config_load (NULL, err, sizeof err));
    assert_non_null (strstr (err, "SAFESHARE_KEK_RING"));
    assert_non_null (strstr (err, "not shown"));
    assert_null (strstr (err, "000102030405"));
    assert_null (strstr (err, ID1));
    /* Longer than any other value may be (64 KiB at most).             */
    size_t n = 70000;
    char *big = malloc (n + 1);
    memset (big, 'a', n);
    big[n] = '\0';
    memcpy (big, KEY, strlen (KEY));
    setenv ("SAFESHARE_KEK_RING", big, 1);
    assert_null (cm_config_load (NULL, err, sizeof err));
    assert_null (strstr (err, "000102030405"));
    assert_null (strstr (err, "aaaaaaaa"));
    free (big);

    /* A good one is taken as is, and reaches the keyring.              */
    const char *good = ID1 " " KEY ";" ID2 " " KEY2;
    setenv ("SAFESHARE_KEK_RING", good, 1);
    cm_config_t *c = cm_config_load (NULL, err, sizeof err);
    assert_non_null (c);
    assert_string_equal (cm_config_get (c, "SAFESHARE_KEK_RING"), good);
    cryptod_keyring_t *kr = cryptod_keyring_open (
        cm_config_get (c, "SAFESHARE_KEY_DIR"), cm_config_get (c, "SAFESHARE_KEK_RING"));
    assert_non_null (kr);
    assert_string_equal (cryptod_keyring_current (kr), ID2);
    cryptod_keyring_destroy (&kr);
    cm_config_destroy (&c);
    unsetenv ("SAFESHARE_KEK_RING");
    c = cm_config_load (NULL, err, sizeof err);
    assert_non_null (c);
    assert_null (cm_config_get (c, "SAFESHARE_KEK_RING"));
    cm_config_destroy (&c);
}

static void
test_retire (void **state)
{
    s_fixture_t *f = *state;
    char path2[600];
    snprintf (path2, sizeof path2, "%s/other.ring", f->dir);
    s_write (f->path,
             "# ring of the test\n" ID1 " " KEY "\n"
             "\n" ID2 " " KEY2 "\n",
             0600);
    char id3[17];
    assert_int_equal (cryptod_keyring_generate (f->path, id3), 0);
    cryptod_keyring_t *before = cryptod_keyring_load (f->path);
    assert_int_equal (cryptod_keyring_size (before), 3);

    /* Refused: the current KEK, an unknown one; the file unchanged.    */
    size_t len0 = 0;
    char *text0 = cm_file_read (f->path, 4096, &len0);
    assert_int_equal (cryptod_keyring_retire (f->path, id3), -1);
    assert_int_equal (cryptod_keyring_retire (f->path, "00000000000000aa"), -1);
    size_t len1 = 0;
    char *text1 = cm_file_read (f->path, 4096, &len1);
    assert_int_equal (len0, len1);
    assert_memory_equal (text0, text1, len0);
    free (text1);

    /* The middle one goes; the comment and the order stay.             */
    assert_int_equal (cryptod_keyring_retire (f->path, ID2), 0);
    struct stat st;
    assert_int_equal (stat (f->path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    size_t len = 0;
    char *text = cm_file_read (f->path, 4096, &len);
    assert_non_null (text);
    assert_true (strncmp (text, "# ring of the test\n" ID1 " " KEY "\n\n", 19 + 82 + 1) ==
                 0);
    assert_null (strstr (text, ID2));
    assert_null (strstr (text, KEY2));
    assert_int_equal (len, len0 - 82);
    free (text);
    free (text0);
    cryptod_keyring_t *after = cryptod_keyring_load (f->path);
    assert_non_null (after);
    assert_int_equal (cryptod_keyring_size (after), 2);
    assert_string_equal (cryptod_keyring_id (after, 0), ID1);
    assert_string_equal (cryptod_keyring_current (after), id3);
    assert_false (cryptod_keyring_has (after, ID2));
    s_same_keys (before, after);

    /* A DEK under the retired KEK no longer unwraps with the new ring. */
    const char *only2 = ID2 " " KEY2;
    cryptod_keyring_t *k2 = cryptod_keyring_parse (only2, strlen (only2), true, NULL);
    uint8_t dek[32] = {1}, back[32], wrapped[60];
    size_t wlen = sizeof wrapped;
    char kek_id[17];
    assert_int_equal (cryptod_dek_wrap (k2, FILE_A, dek, kek_id, wrapped, &wlen), 0);
    assert_int_equal (cryptod_dek_unwrap (before, ID2, FILE_A, wrapped, wlen, back), 0);
    assert_int_equal (cryptod_dek_unwrap (after, ID2, FILE_A, wrapped, wlen, back), -1);
    cryptod_keyring_destroy (&k2);

    /* Down to the last one: the current KEK stays, always.            */
    assert_int_equal (cryptod_keyring_retire (f->path, ID1), 0);
    assert_int_equal (cryptod_keyring_retire (f->path, id3), -1);
    cryptod_keyring_destroy (&after);
    after = cryptod_keyring_load (f->path);
    assert_int_equal (cryptod_keyring_size (after), 1);
    assert_string_equal (cryptod_keyring_current (after), id3);

    /* A ring others can read, a missing ring, a malformed ring.        */
    assert_int_equal (cryptod_keyring_generate (f->path, id3), 0);
    assert_int_equal (chmod (f->path, 0644), 0);
    assert_int_equal (cryptod_keyring_retire (f->path, cryptod_keyring_id (after, 0)),
                      -1);
    assert_int_equal (cryptod_keyring_retire (path2, ID1), -1);
    s_write (path2, ID1 " " KEY "\nnot a line\n" ID2 " " KEY2 "\n", 0600);
    assert_int_equal (cryptod_keyring_retire (path2, ID1), -1);
    cryptod_keyring_destroy (&before);
    cryptod_keyring_destroy (&after);
}

static void
test_add_remove_format (void **state)
{
    (void)state;
    const char *env = ID1 " " KEY;
    cryptod_keyring_t *kr = cryptod_keyring_parse (env, strlen (env), true, NULL);
    assert_non_null (kr);
    char ids[20][17];
    /* Past the parsed capacity: the array grows.                       */
    for (int i = 0; i < 20; i++) {
        assert_int_equal (cryptod_keyring_add (kr, ids[i]), 0);
        assert_true (cm_is_hex_id (ids[i], 16));
        assert_string_equal (cryptod_keyring_current (kr), ids[i]);
    }
    assert_int_equal (cryptod_keyring_size (kr), 21);
    assert_string_equal (cryptod_keyring_id (kr, 0), ID1);

    char *text = cryptod_keyring_format_env (kr);
    assert_non_null (text);
    assert_int_equal (strlen (text), 21 * 82 - 1);
    assert_true (strncmp (text, ID1 " " KEY ";", 82) == 0);
    cryptod_keyring_t *back = cryptod_keyring_parse (text, strlen (text), true, NULL);
    cm_secret_free (text, strlen (text) + 1);
    assert_non_null (back);
    assert_int_equal (cryptod_keyring_size (back), 21);
    assert_string_equal (cryptod_keyring_current (back), ids[19]);
    s_same_keys (kr, back);
    s_same_keys (back, kr);

    /* remove: never the current one; an old one goes, order kept.     */
    assert_int_equal (cryptod_keyring_remove (kr, ids[19]), -1);
    assert_int_equal (cryptod_keyring_remove (kr, "00000000000000aa"), -1);
    assert_int_equal (cryptod_keyring_remove (kr, ids[3]), 0);
    assert_int_equal (cryptod_keyring_remove (kr, ids[3]), -1);
    assert_int_equal (cryptod_keyring_size (kr), 20);
    assert_false (cryptod_keyring_has (kr, ids[3]));
    assert_string_equal (cryptod_keyring_id (kr, 3), ids[2]);
    assert_string_equal (cryptod_keyring_id (kr, 4), ids[4]);
    assert_string_equal (cryptod_keyring_current (kr), ids[19]);
    assert_int_equal (cryptod_keyring_remove (kr, ID1), 0);
    assert_string_equal (cryptod_keyring_id (kr, 0), ids[0]);
    cryptod_keyring_destroy (&kr);
    cryptod_keyring_destroy (&back);
}

static void
test_rewrap (void **state)
{
    (void)state;
    const char *env = ID1 " " KEY;
    cryptod_keyring_t *kr = cryptod_keyring_parse (env, strlen (env), true, NULL);
    uint8_t dek[32], back[32], wrapped[60], rewrapped[64];
    size_t wlen = sizeof wrapped, rlen = sizeof rewrapped;
    char kek_id[17], new_id[17], id2[17];
    assert_int_equal (cm_random (dek, sizeof dek), 0);
    assert_int_equal (cryptod_dek_wrap (kr, FILE_A, dek, kek_id, wrapped, &wlen), 0);
    assert_int_equal (cryptod_keyring_add (kr, id2), 0);
    assert_int_equal (
        cryptod_dek_rewrap (kr, kek_id, FILE_A, wrapped, wlen, new_id, rewrapped, &rlen),
        0);
    assert_string_equal (new_id, id2);
    assert_int_equal (rlen, 60);
    assert_memory_not_equal (rewrapped, wrapped, 60);
    assert_int_equal (cryptod_dek_unwrap (kr, id2, FILE_A, rewrapped, rlen, back), 0);
    assert_memory_equal (back, dek, 32);
    /* The rewrapped DEK is still bound to its file.                    */
    assert_int_equal (cryptod_dek_unwrap (kr, id2, FILE_B, rewrapped, rlen, back), -1);

    /* Refusals: other file id, tampered bytes, unknown KEK, short out. */
    rlen = sizeof rewrapped;
    assert_int_equal (
        cryptod_dek_rewrap (kr, kek_id, FILE_B, wrapped, wlen, new_id, rewrapped, &rlen),
        -1);
    wrapped[20] ^= 1;
    assert_int_equal (
        cryptod_dek_rewrap (kr, kek_id, FILE_A, wrapped, wlen, new_id, rewrapped, &rlen),
        -1);
    wrapped[20] ^= 1;
    assert_int_equal (cryptod_dek_rewrap (kr, "00000000000000aa", FILE_A, wrapped, wlen,
                                          new_id, rewrapped, &rlen),
                      -1);
    rlen = 59;
    assert_int_equal (
        cryptod_dek_rewrap (kr, kek_id, FILE_A, wrapped, wlen, new_id, rewrapped, &rlen),
        -1);
    cryptod_keyring_destroy (&kr);
}

int
main (void)
{
    /* The refusals below log errors by design. */
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_generate_load_wrap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_file_mode, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_malformed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_env_ring, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_env_ring_secret, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_retire, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_add_remove_format, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_rewrap, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
