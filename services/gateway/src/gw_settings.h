/*  gw_settings -- the gateway's view of the shared configuration, read
    and checked once at start, then shared read-only by every worker.  */
#ifndef GW_SETTINGS_H
#define GW_SETTINGS_H

#include <stddef.h>
#include <stdint.h>
#include "cm_config.h"
#include "cm_jwt.h"
#include "gw_access.h"
#include "gw_policy.h"

typedef enum {
    GW_SVC_AUTH = 0,
    GW_SVC_CRYPTO,
    GW_SVC_STORAGE,
    GW_SVC_MAILER,
    GW_SVC_COUNT
} gw_svc_t;

/* JSON request bodies are small; uploads have their own limit. */
#define GW_JSON_BODY_MAX (16 * 1024)
/* SAFESHARE_CRYPTO_WINDOW's bound (cm_config checks it too). */
#define GW_CRYPTO_WINDOW_MAX 64

typedef struct {
    char http_addr[256]; /* host:port for civetweb's listening_ports */
    int http_threads;
    char public_url[512]; /* no trailing slash */
    char endpoints[GW_SVC_COUNT][512];
    int rpc_timeout_ms;
    uint32_t chunk_size;
    unsigned crypto_window; /* chunks of one transfer at crypto at once */
    uint64_t max_upload_bytes;
    gw_policy_t upload_policy; /* SAFESHARE_UPLOAD_ALLOWED_TYPES */
    uint64_t link_max_ttl;
    char jwt_issuer[256];
    char jwt_audience[256];
    unsigned user_cache_ttl_s;      /* SAFESHARE_USER_CACHE_TTL: see gw_users */
    unsigned shutdown_grace_ms;     /* SAFESHARE_SHUTDOWN_GRACE_MS: the drain's bound */
    gw_cidr_list_t metrics_allow;   /* SAFESHARE_METRICS_ALLOW */
    gw_token_hash_t metrics_token;  /* SAFESHARE_METRICS_TOKEN (its SHA-256) */
    gw_cidr_list_t trusted_proxies; /* SAFESHARE_TRUSTED_PROXIES */
    gw_origins_t cors_origins;      /* SAFESHARE_CORS_ORIGINS (none: CORS off) */
} gw_settings_t;

/* Fills settings from config. 0, or -1 with a one-line reason in err. */
int gw_settings_load (gw_settings_t *settings, cm_config_t *config, char *err,
                      size_t errlen);

/* "auth", "crypto", "storage", "mailer". */
const char *gw_svc_name (gw_svc_t svc);

#endif
