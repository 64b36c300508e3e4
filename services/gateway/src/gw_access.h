/*  gw_access -- who may do what from where, as configured: address lists
    (SAFESHARE_METRICS_ALLOW, SAFESHARE_TRUSTED_PROXIES: IPv4/IPv6 CIDR),
    the CORS origin list (SAFESHARE_CORS_ORIGINS: exact origins) and the
    metrics bearer token (SAFESHARE_METRICS_TOKEN, kept as its SHA-256
    only). Pure: parsed once at start, then read by every worker.        */
#ifndef GW_ACCESS_H
#define GW_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- address lists ---------------------------------------------------- */

#define GW_CIDR_MAX 32

typedef struct {
    uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
    unsigned bits;    /* prefix length over the 128-bit form */
} gw_cidr_t;

typedef struct {
    gw_cidr_t items[GW_CIDR_MAX];
    size_t count;
} gw_cidr_list_t;

/* Parses "a.b.c.d/n, ::1/128, 10.0.0.1" (no /n: one address) or "none"
   (an empty list). 0, or -1 with a reason naming key in err.          */
int gw_cidr_list_parse (gw_cidr_list_t *list, const char *text, const char *key,
                        char *err, size_t errlen);

/* True if addr (civetweb's remote_addr text: IPv4, IPv6 or
   IPv4-mapped IPv6) is inside one of the list's ranges.               */
bool gw_cidr_list_has (const gw_cidr_list_t *list, const char *addr);

/* The address a request is judged by: the rightmost X-Forwarded-For
   entry (the address the proxy itself saw) when the peer is a trusted
   proxy and sent one, else the peer. Into buf (46 bytes is enough);
   returns buf.                                                         */
const char *gw_client_addr (const gw_cidr_list_t *trusted, const char *peer,
                            const char *forwarded_for, char *buf, size_t buflen);

/* ---- CORS origins ----------------------------------------------------- */

#define GW_ORIGINS_MAX   16
#define GW_ORIGIN_MAXLEN 255

typedef struct {
    char items[GW_ORIGINS_MAX][GW_ORIGIN_MAXLEN + 1];
    size_t count; /* 0: CORS off */
} gw_origins_t;

/* Parses "https://a.example, http://localhost:3000": each scheme://host
   [:port] with nothing after it (no path, no "*", no trailing slash).
   NULL or "" is an empty list. 0, or -1 with a reason in err.         */
int gw_origins_parse (gw_origins_t *origins, const char *text, char *err, size_t errlen);

/* The configured origin equal to origin (exact, case-sensitive as
   browsers send it), or NULL.                                         */
const char *gw_origins_find (const gw_origins_t *origins, const char *origin);

/* ---- the metrics token ------------------------------------------------ */

typedef struct {
    bool set;
    uint8_t hash[32]; /* SHA-256 of the token */
} gw_token_hash_t;

/* Keeps SHA-256 of token (NULL or "": not set). 0 / -1 (err).         */
int gw_token_hash_set (gw_token_hash_t *th, const char *token, char *err, size_t errlen);

/* True if the Authorization header value is "Bearer <the token>":
   hashes what was given and compares in constant time.                */
bool gw_token_hash_check (const gw_token_hash_t *th, const char *authorization);

#endif
