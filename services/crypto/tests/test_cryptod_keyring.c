/*  cryptod_keyring: generate/append, load, wrap/unwrap, the refusals
    (wrong file id, tampered wrapped DEK, unknown KEK, loose file mode,
    malformed ring).                                                    */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int
main (void)
{
    /* The refusals below log errors by design. */
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_generate_load_wrap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_file_mode, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_malformed, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
