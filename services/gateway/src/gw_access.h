/*  gw_access -- who may do what from where, as configured: address lists
    (SAFESHARE_METRICS_ALLOW, SAFESHARE_TRUSTED_PROXIES: IPv4/IPv6 CIDR),
    the CORS origin list (SAFESHARE_CORS_ORIGINS: exact origins) and the
    metrics bearer token (SAFESHARE_METRICS_TOKEN, kept as its SHA-256
    only), and who a request's client is behind a trusted proxy
    (X-Forwarded-For/-Proto). Pure: parsed once at start, then read by
    every worker.                                                        */
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

/* ---- the client behind a trusted proxy -------------------------------- */

/* An address's text: INET6_ADDRSTRLEN (46) and civetweb's remote_addr
   (48) both fit.                                                      */
#define GW_ADDR_MAX 48

typedef enum {
    GW_FORWARDED_NO = 0, /* peer not a trusted proxy, or no X-Forwarded-For */
    GW_FORWARDED_YES,    /* addr is a trusted proxy's rightmost entry */
    GW_FORWARDED_BAD,    /* a trusted proxy's, twice, malformed or unknown:
                            addr is the peer */
} gw_forwarded_t;

/* Who a request comes from, as the gateway judges it: the address that
   auth throttles and audits, /metrics allows and the access log names,
   and the scheme the client used.                                     */
typedef struct {
    char addr[GW_ADDR_MAX]; /* canonical text (IPv4-mapped IPv6 as IPv4) */
    const char *scheme;     /* "http" or "https", static */
    gw_forwarded_t forwarded;
} gw_client_t;

/* Fills client for a request from peer (civetweb's remote_addr: the
   TCP peer), over TLS or not (peer_tls), carrying xff_count
   X-Forwarded-For headers (xff: the first, NULL if none) and xfp_count
   X-Forwarded-Proto headers (xfp: the first); a count of -1: unknown
   (headers may have been dropped unseen), judged as twice.
   From a peer outside trusted both headers are ignored: the peer and
   its own scheme. From a trusted proxy the address is the rightmost
   X-Forwarded-For entry -- the one the proxy itself appended, the only
   one it vouches for -- if that is an IPv4/IPv6 address (no port, no
   brackets) and the header came once; otherwise (twice, malformed,
   unknown) the peer, marked GW_FORWARDED_BAD. The scheme is
   X-Forwarded-Proto if it came once and is "http" or "https" (any
   case), else the peer's own.                                         */
void gw_client_resolve (gw_client_t *client, const gw_cidr_list_t *trusted,
                        const char *peer, bool peer_tls, const char *xff, int xff_count,
                        const char *xfp, int xfp_count);

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
