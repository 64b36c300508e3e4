/*  cli_test_store -- a data dir with a storage DB, blobs and a KEK ring
    for the CLI's system tests, and stored files made as the running
    stack makes them, with the same code: a random DEK wrapped by
    cryptod_dek_wrap with the ring's current KEK, chunks sealed by
    cryptod_chunk_seal, the blob written through stord_disk (or, with
    SAFESHARE_STORAGE_BACKEND=s3 set, the S3 backend) and the row
    through stord_meta (insert, commit). The storage DB is SQLite, or a
    fresh PostgreSQL schema with SAFESHARE_TEST_DB=pg. Failures are
    cmocka assertions.                                                  */
#ifndef CLI_TEST_STORE_H
#define CLI_TEST_STORE_H

#include "cryptod_keyring.h"
#include "stord_meta.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_TEST_OWNER "0123456789abcdef0123456789abcdef"
#define CLI_TEST_CHUNK 4096u

typedef struct {
    char *dir;       /* the data dir */
    char url[700];   /* the storage DB */
    char schema[40]; /* PostgreSQL run: this test's schema */
    char ring[600];  /* keys/kek.ring */
    char blobs[600]; /* blobs/ */
} cli_test_store_t;

/* A fresh data dir and DB URL; SAFESHARE_DATA_DIR and _STORAGE_DB set,
   SAFESHARE_KEK_RING unset. Nothing made in it yet.                    */
void cli_test_store_init (cli_test_store_t *st);
/* The first KEK, made by `binary keys generate`; storage's DB and blob
   dir as the service makes them.                                       */
void cli_test_store_make (cli_test_store_t *st, const char *binary);
/* Drops the schema, removes the data dir, unsets SAFESHARE_KEK_RING.  */
void cli_test_store_fini (cli_test_store_t *st);

/* Deterministic test bytes of file `seed` (caller frees).              */
uint8_t *cli_test_plain (size_t len, unsigned seed);
/* A new row's fields as an upload sets them: random id, `name`, owner
   CLI_TEST_OWNER, CLI_TEST_CHUNK, created `age` s ago.                 */
void cli_test_store_row (stord_file_t *file, const char *name, uint64_t age);
/* Stores `len` bytes as the stack does (KEY_NEW, ENCRYPT per chunk,
   FILE_BEGIN / BLOB_APPEND / FILE_COMMIT) with `ring`'s current KEK.  */
void cli_test_store_with (cli_test_store_t *st, const cryptod_keyring_t *ring,
                          const uint8_t *plain, size_t len, char id[33]);
/* cli_test_store_with with the ring at st->ring.                       */
void cli_test_store_file (cli_test_store_t *st, const uint8_t *plain, size_t len,
                          char id[33]);

/* `out` holds the line made from fmt (printed to stderr when it does
   not).                                                                */
bool cli_test_has_line (const char *out, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
