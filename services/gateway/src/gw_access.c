/*  gw_access -- address lists, CORS origins, the metrics token
    (see gw_access.h).                                                   */
#include "gw_access.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

/* ---- address lists ---------------------------------------------------- */

/* Text address to the 128-bit form (IPv4 mapped into ::ffff:0:0/96).
   *v4 says which it was. 0 / -1.                                      */
static int
s_addr_parse (const char *text, uint8_t out[16], bool *v4)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton (AF_INET, text, &a4) == 1) {
        memset (out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy (out + 12, &a4, 4);
        *v4 = true;
        return 0;
    }
    if (inet_pton (AF_INET6, text, &a6) == 1) {
        memcpy (out, &a6, 16);
        *v4 = false;
        return 0;
    }
    return -1;
}

static bool
s_prefix_equal (const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8;
    if (memcmp (a, b, bytes) != 0) {
        return false;
    }
    unsigned rest = bits % 8;
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

/* Copies the trimmed item [start, end) into buf; false if too long. */
static bool
s_item (const char *start, const char *end, char *buf, size_t buflen)
{
    while (start < end && isspace ((unsigned char)*start)) {
        start++;
    }
    while (end > start && isspace ((unsigned char)end[-1])) {
        end--;
    }
    size_t len = (size_t)(end - start);
    if (len >= buflen) {
        return false;
    }
    memcpy (buf, start, len);
    buf[len] = '\0';
    return true;
}

int
gw_cidr_list_parse (gw_cidr_list_t *list, const char *text, const char *key, char *err,
                    size_t errlen)
{
    memset (list, 0, sizeof *list);
    if (text == NULL || *text == '\0' || strcasecmp (text, "none") == 0) {
        return 0;
    }
    const char *p = text;
    while (true) {
        const char *comma = strchr (p, ',');
        const char *end = comma ? comma : p + strlen (p);
        char item[64];
        if (!s_item (p, end, item, sizeof item) || item[0] == '\0') {
            snprintf (err, errlen, "%s: empty or overlong entry", key);
            return -1;
        }
        if (list->count == GW_CIDR_MAX) {
            snprintf (err, errlen, "%s: more than %d entries", key, GW_CIDR_MAX);
            return -1;
        }
        gw_cidr_t *c = &list->items[list->count];
        char *slash = strchr (item, '/');
        long bits = -1;
        if (slash) {
            *slash = '\0';
            char *stop = NULL;
            bits = strtol (slash + 1, &stop, 10);
            if (slash[1] == '\0' || *stop != '\0' || bits < 0) {
                bits = 1000; /* refused below */
            }
        }
        bool v4 = false;
        if (s_addr_parse (item, c->addr, &v4) != 0) {
            snprintf (err, errlen, "%s: '%s' is not an IPv4 or IPv6 address", key, item);
            return -1;
        }
        long max = v4 ? 32 : 128;
        if (bits > max) {
            snprintf (err, errlen, "%s: bad prefix length for '%s' (0..%ld)", key, item,
                      max);
            return -1;
        }
        c->bits = (unsigned)(bits < 0 ? 128 : (v4 ? 96 + bits : bits));
        list->count++;
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return 0;
}

bool
gw_cidr_list_has (const gw_cidr_list_t *list, const char *addr)
{
    uint8_t a[16];
    bool v4 = false;
    if (addr == NULL || s_addr_parse (addr, a, &v4) != 0) {
        return false;
    }
    for (size_t i = 0; i < list->count; i++) {
        if (s_prefix_equal (a, list->items[i].addr, list->items[i].bits)) {
            return true;
        }
    }
    return false;
}

/* ---- the client behind a trusted proxy -------------------------------- */

/* text as canonical address text into buf (IPv4-mapped IPv6 written as
   IPv4, so one client has one throttling key however it is spelled).
   0, or -1 (buf untouched) if text is no address.                     */
static int
s_addr_canonical (const char *text, char *buf, size_t buflen)
{
    uint8_t a[16];
    bool v4 = false;
    if (text == NULL || s_addr_parse (text, a, &v4) != 0) {
        return -1;
    }
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char out[INET6_ADDRSTRLEN];
    const char *ok = memcmp (a, mapped, sizeof mapped) == 0
                         ? inet_ntop (AF_INET, a + 12, out, sizeof out)
                         : inet_ntop (AF_INET6, a, out, sizeof out);
    if (ok == NULL || strlen (out) >= buflen) {
        return -1;
    }
    memcpy (buf, out, strlen (out) + 1);
    return 0;
}

void
gw_client_resolve (gw_client_t *client, const gw_cidr_list_t *trusted, const char *peer,
                   bool peer_tls, const char *xff, int xff_count, const char *xfp,
                   int xfp_count)
{
    memset (client, 0, sizeof *client);
    if (s_addr_canonical (peer, client->addr, sizeof client->addr) != 0) {
        snprintf (client->addr, sizeof client->addr, "%s", peer ? peer : "");
    }
    client->scheme = peer_tls ? "https" : "http";
    client->forwarded = GW_FORWARDED_NO;
    if (!gw_cidr_list_has (trusted, peer)) {
        return;
    }
    if (xff_count != 0) {
        /* Entries left of the last are whatever the client wrote. */
        client->forwarded = GW_FORWARDED_BAD;
        const char *last = xff ? strrchr (xff, ',') : NULL;
        last = last ? last + 1 : xff;
        char item[64];
        if (xff_count == 1 && last &&
            s_item (last, last + strlen (last), item, sizeof item) &&
            s_addr_canonical (item, client->addr, sizeof client->addr) == 0) {
            client->forwarded = GW_FORWARDED_YES;
        }
    }
    if (xfp_count == 1 && xfp) {
        char item[8];
        if (s_item (xfp, xfp + strlen (xfp), item, sizeof item)) {
            if (strcasecmp (item, "https") == 0) {
                client->scheme = "https";
            } else if (strcasecmp (item, "http") == 0) {
                client->scheme = "http";
            }
        }
    }
}

/* ---- CORS origins ----------------------------------------------------- */

/* scheme://host[:port], nothing else: what a browser sends as Origin. */
static bool
s_origin_valid (const char *o)
{
    const char *rest = NULL;
    if (strncmp (o, "https://", 8) == 0) {
        rest = o + 8;
    } else if (strncmp (o, "http://", 7) == 0) {
        rest = o + 7;
    } else {
        return false;
    }
    if (*rest == '\0') {
        return false;
    }
    for (const char *c = rest; *c; c++) {
        bool ok = isalnum ((unsigned char)*c) || *c == '.' || *c == '-' || *c == ':' ||
                  *c == '[' || *c == ']';
        if (!ok) {
            return false;
        }
    }
    return true;
}

int
gw_origins_parse (gw_origins_t *origins, const char *text, char *err, size_t errlen)
{
    memset (origins, 0, sizeof *origins);
    if (text == NULL || *text == '\0') {
        return 0;
    }
    const char *p = text;
    while (true) {
        const char *comma = strchr (p, ',');
        const char *end = comma ? comma : p + strlen (p);
        if (origins->count == GW_ORIGINS_MAX) {
            snprintf (err, errlen, "SAFESHARE_CORS_ORIGINS: more than %d origins",
                      GW_ORIGINS_MAX);
            return -1;
        }
        char *item = origins->items[origins->count];
        if (!s_item (p, end, item, GW_ORIGIN_MAXLEN + 1) || !s_origin_valid (item)) {
            snprintf (err, errlen,
                      "SAFESHARE_CORS_ORIGINS: each entry must be scheme://host[:port] "
                      "exactly (no path, no '*')");
            return -1;
        }
        origins->count++;
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return 0;
}

const char *
gw_origins_find (const gw_origins_t *origins, const char *origin)
{
    if (origin == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < origins->count; i++) {
        if (strcmp (origins->items[i], origin) == 0) {
            return origins->items[i];
        }
    }
    return NULL;
}

/* ---- the metrics token ------------------------------------------------ */

int
gw_token_hash_set (gw_token_hash_t *th, const char *token, char *err, size_t errlen)
{
    memset (th, 0, sizeof *th);
    if (token == NULL || *token == '\0') {
        return 0;
    }
    /* Short tokens are guessable whatever the compare. */
    if (strlen (token) < 16) {
        snprintf (err, errlen, "SAFESHARE_METRICS_TOKEN must be at least 16 characters");
        return -1;
    }
    SHA256 ((const unsigned char *)token, strlen (token), th->hash);
    th->set = true;
    return 0;
}

bool
gw_token_hash_check (const gw_token_hash_t *th, const char *authorization)
{
    if (!th->set) {
        return true;
    }
    if (authorization == NULL || strncasecmp (authorization, "Bearer ", 7) != 0) {
        return false;
    }
    const char *token = authorization + 7;
    while (*token == ' ') {
        token++;
    }
    /* Hashing first: the compare's time says nothing about the token. */
    uint8_t got[32];
    SHA256 ((const unsigned char *)token, strlen (token), got);
    bool ok = CRYPTO_memcmp (got, th->hash, sizeof got) == 0;
    OPENSSL_cleanse (got, sizeof got);
    return ok;
}
