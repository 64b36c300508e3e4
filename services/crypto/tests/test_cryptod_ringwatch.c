/*  unit_crypto_ringwatch -- the broker's KEK ring reload: an unchanged
    file is not reloaded; a changed one (a KEK appended, as `keys rotate`
    does) is, and wraps with the new current KEK; a broken or group-
    readable file is refused once and the ring in use kept; the interval
    is honoured; an env ring (SAFESHARE_KEK_RING) is never reloaded; a
    missing ring is refused at the start.                               */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_log.h"
#include "cm_testing.h"
#include "cm_util.h"
#include "cryptod_keyring.h"
#include "cryptod_ringwatch.h"

#define FILE_A "00112233445566778899aabbccddeeff"

static void
s_write (const char *path, const char *text, int mode)
{
    FILE *fp = fopen (path, "w");
    assert_non_null (fp);
    fputs (text, fp);
    fclose (fp);
    assert_int_equal (chmod (path, mode), 0);
}

/* The ring wraps with `want` as its current KEK, and unwraps back.    */
static void
s_wraps_with (const cryptod_keyring_t *ring, const char *want)
{
    uint8_t dek[32], back[32], wrapped[60];
    size_t wl = sizeof wrapped;
    char id[17];
    memset (dek, 0x3c, sizeof dek);
    assert_int_equal (cryptod_dek_wrap (ring, FILE_A, dek, id, wrapped, &wl), 0);
    assert_string_equal (id, want);
    assert_int_equal (cryptod_dek_unwrap (ring, id, FILE_A, wrapped, wl, back), 0);
    assert_memory_equal (back, dek, 32);
}

static void
test_file_reload (void **state)
{
    (void)state;
    char *dir = cm_test_tmpdir ();
    char path[600], id1[17], id2[17];
    snprintf (path, sizeof path, "%s/kek.ring", dir);
    assert_int_equal (cryptod_keyring_generate (path, id1), 0);
    cryptod_ringwatch_t *w = cryptod_ringwatch_new (dir, NULL);
    assert_non_null (w);
    assert_string_equal (cryptod_ringwatch_path (w), path);
    s_wraps_with (cryptod_ringwatch_ring (w), id1);

    /* Unchanged: nothing to do.                                        */
    assert_int_equal (cryptod_ringwatch_check (w, 0), 0);
    /* A KEK appended: reloaded, the new one is current, the old stays. */
    assert_int_equal (cryptod_keyring_generate (path, id2), 0);
    /* Not before the interval has passed.                              */
    assert_int_equal (cryptod_ringwatch_check (w, 60000), 0);
    assert_int_equal (cryptod_ringwatch_check (w, 0), 1);
    const cryptod_keyring_t *ring = cryptod_ringwatch_ring (w);
    assert_int_equal (cryptod_keyring_size (ring), 2);
    assert_true (cryptod_keyring_has (ring, id1));
    s_wraps_with (ring, id2);
    assert_int_equal (cryptod_ringwatch_check (w, 0), 0);

    /* Broken: refused once, the ring in use kept; tried again only when
       the file changes again.                                          */
    s_write (path, "not a ring\n", 0600);
    assert_int_equal (cryptod_ringwatch_check (w, 0), -1);
    assert_int_equal (cryptod_ringwatch_check (w, 0), 0);
    s_wraps_with (cryptod_ringwatch_ring (w), id2);
    /* Readable by others: refused too.                                 */
    s_write (path, "# a comment, and no key\n", 0644);
    assert_int_equal (cryptod_ringwatch_check (w, 0), -1);
    /* Removed: refused; the ring in use stays.                        */
    assert_int_equal (unlink (path), 0);
    assert_int_equal (cryptod_ringwatch_check (w, 0), -1);
    s_wraps_with (cryptod_ringwatch_ring (w), id2);
    /* A good ring again (a single new KEK): swapped in.                */
    char id3[17];
    assert_int_equal (cryptod_keyring_generate (path, id3), 0);
    assert_int_equal (cryptod_ringwatch_check (w, 0), 1);
    ring = cryptod_ringwatch_ring (w);
    assert_int_equal (cryptod_keyring_size (ring), 1);
    assert_false (cryptod_keyring_has (ring, id1));
    s_wraps_with (ring, id3);

    cryptod_ringwatch_destroy (&w);
    assert_null (w);
    cryptod_ringwatch_destroy (&w); /* twice is fine */
    cm_test_rmrf (dir);
    free (dir);
}

static void
test_env_ring_fixed (void **state)
{
    (void)state;
    char *dir = cm_test_tmpdir ();
    const char *env = "0123456789abcdef "
                      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f;"
                      "fedcba9876543210 "
                      "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
    /* A ring file in the key dir is not read when the env ring is set. */
    char path[600], id[17];
    snprintf (path, sizeof path, "%s/kek.ring", dir);
    assert_int_equal (cryptod_keyring_generate (path, id), 0);
    cryptod_ringwatch_t *w = cryptod_ringwatch_new (dir, env);
    assert_non_null (w);
    assert_null (cryptod_ringwatch_path (w));
    const cryptod_keyring_t *ring = cryptod_ringwatch_ring (w);
    assert_int_equal (cryptod_keyring_size (ring), 2);
    assert_false (cryptod_keyring_has (ring, id));
    s_wraps_with (ring, "fedcba9876543210");
    assert_int_equal (cryptod_keyring_generate (path, id), 0);
    assert_int_equal (cryptod_ringwatch_check (w, 0), 0);
    assert_ptr_equal (cryptod_ringwatch_ring (w), ring);
    cryptod_ringwatch_destroy (&w);

    /* Nothing to load: NULL.                                           */
    assert_null (cryptod_ringwatch_new (dir, "not a ring"));
    char empty[700];
    snprintf (empty, sizeof empty, "%s/none", dir);
    assert_int_equal (mkdir (empty, 0700), 0);
    assert_null (cryptod_ringwatch_new (empty, NULL));
    assert_null (cryptod_ringwatch_new (empty, ""));
    assert_null (cryptod_ringwatch_new (NULL, NULL));
    cm_test_rmrf (dir);
    free (dir);
}

int
main (void)
{
    cm_log_init ("test", CM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_file_reload),
        cmocka_unit_test (test_env_ring_fixed),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
