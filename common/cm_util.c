/*  cm_util -- small shared helpers.                                     */
#include "cm_util.h"
#include "cm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t
cm_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
cm_now_s (void)
{
    return cm_now_ms () / 1000;
}

uint64_t
cm_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
cm_random (void *buf, size_t len)
{
    if (len > (size_t)INT32_MAX || RAND_bytes (buf, (int)len) != 1) {
        cm_log_openssl (NULL, "RAND_bytes() failed");
        return -1;
    }
    return 0;
}

int
cm_random_hex (char *out, size_t nbytes)
{
    uint8_t buf[64];
    if (nbytes > sizeof buf || cm_random (buf, nbytes) != 0) {
        return -1;
    }
    cm_hex_encode (out, buf, nbytes);
    return 0;
}

size_t
cm_b64url_encode (char *out, const void *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const uint8_t *in = data;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0) {
        out[o++] = alphabet[(acc << (6 - bits)) & 0x3f];
    }
    out[o] = '\0';
    return o;
}

int
cm_random_token (char *out, size_t outlen, size_t nbytes)
{
    uint8_t buf[64];
    if (nbytes > sizeof buf || outlen < CM_B64URL_LEN (nbytes) + 1 ||
        cm_random (buf, nbytes) != 0) {
        return -1;
    }
    cm_b64url_encode (out, buf, nbytes);
    OPENSSL_cleanse (buf, sizeof buf);
    return 0;
}

void
cm_hex_encode (char *out, const uint8_t *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * len] = '\0';
}

static int
s_hexval (char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int
cm_hex_decode (uint8_t *out, size_t outlen, const char *hex)
{
    if (!hex || strlen (hex) != 2 * outlen) {
        return -1;
    }
    for (size_t i = 0; i < outlen; i++) {
        int hi = s_hexval (hex[2 * i]);
        int lo = s_hexval (hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

void
cm_sha256_hex (char out[65], const void *data, size_t len)
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    EVP_Digest (data, len, md, &mdlen, EVP_sha256 (), NULL);
    cm_hex_encode (out, md, 32);
}

bool
cm_is_hex_id (const char *s, size_t len)
{
    if (!s || strlen (s) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

bool
cm_is_request_id (const char *s)
{
    size_t n = s ? strlen (s) : 0;
    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

bool
cm_email_valid (const char *addr)
{
    size_t len = addr ? strnlen (addr, 255) : 0;
    if (len < 3 || len > 254) {
        return false;
    }
    const char *at = NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)addr[i];
        /* 0x21..0x7e: printable ASCII without space; refuses CR, LF, TAB,
           every other control byte, DEL and non-ASCII in one test.     */
        if (c < 0x21 || c > 0x7e || strchr ("()<>[]:;,\\\"", c)) {
            return false;
        }
        if (c == '@') {
            if (at) {
                return false;
            }
            at = addr + i;
        }
    }
    return at && at != addr && at[1] != '\0';
}

void
cm_secret_free (void *p, size_t len)
{
    if (p) {
        OPENSSL_cleanse (p, len);
        free (p);
    }
}

char *
cm_file_read (const char *path, size_t max, size_t *len_out)
{
    char *buf = NULL;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode) || (size_t)st.st_size > max) {
        goto cleanup;
    }
    buf = malloc ((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read (fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            free (buf);
            buf = NULL;
            goto cleanup;
        }
        got += (size_t)n;
    }
    if (buf) {
        buf[got] = '\0';
        if (len_out) {
            *len_out = got;
        }
    }
cleanup:
    close (fd);
    return buf;
}

int
cm_fsync_dir (const char *dir)
{
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync (fd);
    close (fd);
    return rc;
}

int
cm_file_write_atomic (const char *path, const void *data, size_t len, int mode)
{
    char tmp[4096];
    int n = snprintf (tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid ());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        return -1;
    }
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        cm_error (NULL, "open(%s) failed: %s", tmp, strerror (errno));
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write (fd, p, left);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            cm_error (NULL, "write(%s) failed: %s", tmp, strerror (errno));
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    /* fchmod: the umask may have narrowed or widened what open() made. */
    if (fchmod (fd, (mode_t)mode) != 0 || fsync (fd) != 0) {
        cm_error (NULL, "fsync(%s) failed: %s", tmp, strerror (errno));
        goto fail;
    }
    close (fd);
    if (rename (tmp, path) != 0) {
        cm_error (NULL, "rename(%s) failed: %s", path, strerror (errno));
        unlink (tmp);
        return -1;
    }
    char dir[4096];
    snprintf (dir, sizeof dir, "%s", path);
    return cm_fsync_dir (dirname (dir));
fail:
    close (fd);
    unlink (tmp);
    return -1;
}
