/*  cli_decrypt -- offline decryption of one stored file.                 */
#include "cli_decrypt.h"
#include "cli_keys.h"
#include "cli_store.h"
#include "cm_layout.h"
#include "cm_util.h"
#include "cryptod_keyring.h"
#include "cryptod_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define S_PATH_SIZE 4096

static volatile sig_atomic_t s_stop = 0;

/* Our own handler, not cm_service's: its second signal _exit()s, which
   would leave a named temp file behind.                              */
static void
s_on_signal (int sig)
{
    (void)sig;
    s_stop = 1;
}

typedef struct {
    int fd;                /* the plaintext being written */
    bool named;            /* tmp has a name (no O_TMPFILE here) */
    char dir[S_PATH_SIZE]; /* PATH's directory */
    char tmp[S_PATH_SIZE]; /* the named temp file, if named */
    char proc[64];         /* /proc/self/fd/N, if not named */
} s_output_t;

/* An unnamed file in PATH's directory (O_TMPFILE): not even kill -9
   can leave it behind. Else a hidden temp file beside PATH.          */
static int
s_output_open (s_output_t *o, const char *path)
{
    char copy[S_PATH_SIZE];
    o->fd = -1;
    if (snprintf (copy, sizeof copy, "%s", path) >= (int)sizeof copy) {
        fprintf (stderr, "safeshare: decrypt: output path too long\n");
        return -1;
    }
    snprintf (o->dir, sizeof o->dir, "%s", dirname (copy));
    if (access ("/proc/self/fd", X_OK) == 0) {
        o->fd = open (o->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        if (o->fd >= 0) {
            snprintf (o->proc, sizeof o->proc, "/proc/self/fd/%d", o->fd);
            o->named = false;
            return 0;
        }
    }
    snprintf (copy, sizeof copy, "%s", path);
    int n = snprintf (o->tmp, sizeof o->tmp, "%s/.%s.safeshare-XXXXXX", o->dir,
                      basename (copy));
    if (n < 0 || (size_t)n >= sizeof o->tmp) {
        fprintf (stderr, "safeshare: decrypt: output path too long\n");
        return -1;
    }
    o->fd = mkostemp (o->tmp, O_CLOEXEC);
    if (o->fd < 0) {
        fprintf (stderr, "safeshare: decrypt: cannot create a file in %s: %s\n", o->dir,
                 strerror (errno));
        return -1;
    }
    o->named = true;
    return 0;
}

/* Drops the unfinished output: nothing of it stays on disk.           */
static void
s_output_discard (s_output_t *o)
{
    if (o->fd >= 0) {
        /* Truncate first: the blocks of a named file go at once even if
           the unlink below were to fail.                              */
        if (ftruncate (o->fd, 0) != 0) {
            /* best effort; the unlink follows */
        }
        close (o->fd);
        o->fd = -1;
    }
    if (o->named) {
        unlink (o->tmp);
        o->named = false;
    }
}

static int
s_write_all (int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write (fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync, then give the file its name -- never over an existing one. */
static int
s_output_publish (s_output_t *o, const char *path)
{
    if (fchmod (o->fd, 0600) != 0 || fsync (o->fd) != 0) {
        fprintf (stderr, "safeshare: decrypt: cannot write %s: %s\n", path,
                 strerror (errno));
        return -1;
    }
    int rc;
    if (!o->named) {
        rc = linkat (AT_FDCWD, o->proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
    } else {
        rc = renameat2 (AT_FDCWD, o->tmp, AT_FDCWD, path, RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* No RENAME_NOREPLACE here: link() refuses an existing name too. */
            rc = link (o->tmp, path);
            if (rc == 0) {
                unlink (o->tmp);
            }
        }
        if (rc == 0) {
            o->named = false;
        }
    }
    if (rc != 0) {
        fprintf (stderr, "safeshare: decrypt: cannot create %s: %s\n", path,
                 errno == EEXIST ? "it exists now (refusing to overwrite)"
                                 : strerror (errno));
        return -1;
    }
    close (o->fd);
    o->fd = -1;
    int dfd = open (o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync (dfd);
        close (dfd);
    }
    return 0;
}

/* The row must describe a blob this format can hold (it is input too). */
static int
s_row_check (const stord_file_t *f)
{
    if (f->chunk_size < CRYPTOD_MIN_CHUNK || f->chunk_size > CRYPTOD_MAX_CHUNK) {
        return -1;
    }
    uint64_t chunks = cm_blob_chunk_count (f->size, f->chunk_size);
    return chunks != 0 && chunks == f->chunk_count &&
                   f->blob_size == cm_blob_size (f->size, f->chunk_size) &&
                   cm_is_hex_id (f->sha256, 64)
               ? 0
               : -1;
}

typedef struct {
    const char *id;
    stord_backend_t *blobs;
    const stord_file_t *file;
    uint8_t dek[CRYPTOD_DEK_LEN];
    uint8_t header[CRYPTOD_HEADER_LEN];
    uint8_t *ct; /* one chunk as stored */
    uint8_t *pt; /* its plaintext (wiped after each write) */
} s_job_t;

/* Every chunk: read, authenticate + decrypt, hash, write to out_fd (if
   >= 0). The plaintext size and SHA-256 go to info.                   */
static cli_check_t
s_chunks (s_job_t *j, int out_fd, cli_check_info_t *info)
{
    const stord_file_t *f = j->file;
    uint32_t cs = f->chunk_size;
    uint8_t md[32];
    unsigned mdlen = 0;
    cli_check_t rc = CLI_CHECK_FAILED;
    EVP_MD_CTX *sha = EVP_MD_CTX_new ();
    if (!sha || EVP_DigestInit_ex (sha, EVP_sha256 (), NULL) != 1) {
        fprintf (stderr, "safeshare: SHA-256 is not available\n");
        goto cleanup;
    }
    info->size = 0;
    for (uint64_t i = 0; i < f->chunk_count; i++) {
        if (s_stop) {
            fprintf (stderr, "safeshare: decrypt: interrupted; nothing written\n");
            goto cleanup;
        }
        bool last = i + 1 == f->chunk_count;
        size_t pt_len = last ? (size_t)(f->size - i * cs) : cs;
        info->chunk = i;
        if (stord_backend_read (j->blobs, NULL, j->id, cm_blob_offset (cs, i), j->ct,
                                pt_len + CRYPTOD_TAG_LEN) != STORD_OK) {
            rc = CLI_CHECK_UNREADABLE;
            goto cleanup;
        }
        if (cryptod_chunk_open (j->dek, j->header, i, last, j->ct,
                                pt_len + CRYPTOD_TAG_LEN, j->pt) != 0) {
            rc = CLI_CHECK_CHUNK;
            goto cleanup;
        }
        int bad = EVP_DigestUpdate (sha, j->pt, pt_len) != 1;
        int bad_write = !bad && out_fd >= 0 && s_write_all (out_fd, j->pt, pt_len) != 0;
        OPENSSL_cleanse (j->pt, pt_len);
        if (bad || bad_write) {
            fprintf (stderr, "safeshare: decrypt: cannot write the output: %s\n",
                     bad ? "SHA-256 failed" : strerror (errno));
            goto cleanup;
        }
        info->size += pt_len;
    }
    if (EVP_DigestFinal_ex (sha, md, &mdlen) != 1) {
        goto cleanup;
    }
    cm_hex_encode (info->sha256, md, sizeof md);
    rc = info->size == f->size && strcmp (info->sha256, f->sha256) == 0
             ? CLI_CHECK_OK
             : CLI_CHECK_CONTENT;
cleanup:
    EVP_MD_CTX_free (sha);
    return rc;
}

cli_check_t
cli_decrypt_check (cryptod_keyring_t *ring, stord_backend_t *blobs,
                   const stord_file_t *file, int out_fd, cli_check_info_t *info)
{
    const char *id = file->id;
    s_job_t j = {.id = id, .blobs = blobs, .file = file};
    cli_check_t rc;
    memset (info, 0, sizeof *info);
    if (s_row_check (file) != 0) {
        return CLI_CHECK_ROW;
    }
    uint64_t blob_size = 0, mtime = 0;
    stord_rc_t brc = stord_backend_stat (blobs, NULL, id, false, &blob_size, &mtime);
    if (brc != STORD_OK || blob_size != file->blob_size) {
        return brc == STORD_NOT_FOUND ? CLI_CHECK_MISSING
               : brc != STORD_OK      ? CLI_CHECK_UNREADABLE
                                      : CLI_CHECK_SIZE;
    }
    if (cryptod_dek_unwrap (ring, file->kek_id, id, file->wrapped_dek,
                            file->wrapped_dek_len, j.dek) != 0) {
        return cryptod_keyring_has (ring, file->kek_id) ? CLI_CHECK_DEK
                                                        : CLI_CHECK_NO_KEK;
    }
    uint32_t hdr_chunk = 0;
    char hdr_id[33];
    if (stord_backend_read (blobs, NULL, id, 0, j.header, CRYPTOD_HEADER_LEN) !=
            STORD_OK ||
        cryptod_header_parse (j.header, CRYPTOD_HEADER_LEN, &hdr_chunk, hdr_id) != 0 ||
        hdr_chunk != file->chunk_size || strcmp (hdr_id, id) != 0) {
        rc = CLI_CHECK_HEADER;
        goto cleanup;
    }
    j.ct = malloc ((size_t)file->chunk_size + CRYPTOD_TAG_LEN);
    j.pt = malloc (file->chunk_size);
    if (!j.ct || !j.pt) {
        fprintf (stderr, "safeshare: out of memory\n");
        rc = CLI_CHECK_FAILED;
        goto cleanup;
    }
    rc = s_chunks (&j, out_fd, info);
cleanup:
    OPENSSL_cleanse (j.dek, sizeof j.dek);
    if (j.pt) {
        cm_secret_free (j.pt, file->chunk_size);
    }
    free (j.ct);
    return rc;
}

int
cli_decrypt (cm_config_t *config, const char *file_id, const char *out_path, FILE *out)
{
    int rc = 1;
    bool env = false;
    stord_meta_t *meta = NULL;
    stord_backend_t *blobs = NULL;
    cryptod_keyring_t *ring = NULL;
    stord_file_t file = {0};
    s_output_t o = {.fd = -1};
    struct stat st;

    if (lstat (out_path, &st) == 0) {
        fprintf (stderr, "safeshare: decrypt: %s exists: refusing to overwrite it\n",
                 out_path);
        return 1;
    }
    struct sigaction sa, old_int, old_term, old_hup;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, &old_int);
    sigaction (SIGTERM, &sa, &old_term);
    sigaction (SIGHUP, &sa, &old_hup);

    ring = cli_keys_ring (config, "decrypt", &env);
    meta = ring ? cli_store_meta (config, "decrypt") : NULL;
    blobs = meta ? cli_store_blobs (config, "decrypt") : NULL;
    if (!blobs) {
        goto cleanup;
    }
    cm_status_t status = stord_meta_file_get (meta, NULL, file_id, true, &file);
    if (status == CM_NOT_FOUND) {
        fprintf (stderr, "safeshare: decrypt: file_not_found (no committed file %s)\n",
                 file_id);
        goto cleanup;
    }
    if (status != CM_OK) {
        fprintf (stderr, "safeshare: decrypt: cannot read the storage database (%s)\n",
                 cm_status_name (status));
        goto cleanup;
    }
    if (s_output_open (&o, out_path) != 0) {
        goto cleanup;
    }
    cli_check_info_t info;
    cli_check_t check = cli_decrypt_check (ring, blobs, &file, o.fd, &info);
    switch (check) {
        case CLI_CHECK_OK:
        case CLI_CHECK_FAILED:
            break;
        case CLI_CHECK_ROW:
            fprintf (stderr,
                     "safeshare: decrypt: the metadata of file %s is inconsistent (size, "
                     "chunk size, chunk count, blob size or SHA-256)\n",
                     file_id);
            break;
        case CLI_CHECK_MISSING:
        case CLI_CHECK_UNREADABLE:
        case CLI_CHECK_SIZE:
            fprintf (stderr, "safeshare: decrypt: the blob of file %s is %s\n", file_id,
                     check == CLI_CHECK_MISSING      ? "missing"
                     : check == CLI_CHECK_UNREADABLE ? "unreadable"
                                                     : "not the size the metadata says");
            break;
        case CLI_CHECK_NO_KEK:
        case CLI_CHECK_DEK:
            fprintf (
                stderr, "safeshare: decrypt: cannot unwrap the DEK of file %s (%s)\n",
                file_id,
                check == CLI_CHECK_DEK ? "the wrapped DEK does not authenticate: damaged"
                                       : "its KEK is not in the ring");
            break;
        case CLI_CHECK_HEADER:
            fprintf (stderr,
                     "safeshare: decrypt: the blob header of file %s is damaged or names "
                     "another file\n",
                     file_id);
            break;
        case CLI_CHECK_CHUNK:
            fprintf (
                stderr,
                "safeshare: decrypt: chunk %llu of file %s does not authenticate: the "
                "blob is damaged or was tampered with; nothing written\n",
                (unsigned long long)info.chunk, file_id);
            break;
        case CLI_CHECK_CONTENT:
            fprintf (
                stderr,
                "safeshare: decrypt: file %s decrypted to %llu bytes with SHA-256 %s, "
                "but the metadata says %llu bytes, %s; nothing written\n",
                file_id, (unsigned long long)info.size, info.sha256,
                (unsigned long long)file.size, file.sha256);
            break;
    }
    if (check != CLI_CHECK_OK) {
        goto cleanup;
    }
    if (s_stop) {
        fprintf (stderr, "safeshare: decrypt: interrupted; nothing written\n");
        goto cleanup;
    }
    if (s_output_publish (&o, out_path) != 0) {
        goto cleanup;
    }
    fprintf (out, "decrypted file %s (%llu bytes, SHA-256 %s checked) to %s\n", file_id,
             (unsigned long long)file.size, file.sha256, out_path);
    fflush (out);
    rc = 0;
cleanup:
    s_output_discard (&o);
    stord_backend_destroy (&blobs);
    stord_meta_destroy (&meta);
    cryptod_keyring_destroy (&ring);
    sigaction (SIGINT, &old_int, NULL);
    sigaction (SIGTERM, &old_term, NULL);
    sigaction (SIGHUP, &old_hup, NULL);
    return rc;
}
