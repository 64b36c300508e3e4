/*  gw_settings -- the gateway's configuration (see gw_settings.h).      */
#include "gw_settings.h"

#include <stdio.h>
#include <string.h>

static const char *s_svc_names[GW_SVC_COUNT] = {"auth", "crypto", "storage", "mailer"};
static const char *s_svc_keys[GW_SVC_COUNT] = {
    "SAFESHARE_AUTH_ENDPOINT", "SAFESHARE_CRYPTO_ENDPOINT", "SAFESHARE_STORAGE_ENDPOINT",
    "SAFESHARE_MAILER_ENDPOINT"};

const char *
gw_svc_name (gw_svc_t svc)
{
    return (unsigned)svc < GW_SVC_COUNT ? s_svc_names[svc] : "unknown";
}

/* Copies a required string key; -1 with a reason if unset or too long. */
static int
s_copy (char *dst, size_t dstlen, cm_config_t *config, const char *key, char *err,
        size_t errlen)
{
    const char *value = cm_config_get (config, key);
    if (value == NULL || *value == '\0') {
        snprintf (err, errlen, "%s is not set", key);
        return -1;
    }
    if (strlen (value) >= dstlen) {
        snprintf (err, errlen, "%s is too long (max %zu bytes)", key, dstlen - 1);
        return -1;
    }
    strcpy (dst, value);
    return 0;
}

int
gw_settings_load (gw_settings_t *settings, cm_config_t *config, char *err, size_t errlen)
{
    memset (settings, 0, sizeof *settings);
    if (s_copy (settings->http_addr, sizeof settings->http_addr, config,
                "SAFESHARE_HTTP_ADDR", err, errlen) != 0 ||
        s_copy (settings->public_url, sizeof settings->public_url, config,
                "SAFESHARE_PUBLIC_URL", err, errlen) != 0 ||
        s_copy (settings->jwt_issuer, sizeof settings->jwt_issuer, config,
                "SAFESHARE_JWT_ISSUER", err, errlen) != 0 ||
        s_copy (settings->jwt_audience, sizeof settings->jwt_audience, config,
                "SAFESHARE_JWT_AUDIENCE", err, errlen) != 0) {
        return -1;
    }
    for (int i = 0; i < GW_SVC_COUNT; i++) {
        if (s_copy (settings->endpoints[i], sizeof settings->endpoints[i], config,
                    s_svc_keys[i], err, errlen) != 0) {
            return -1;
        }
    }
    /* Links are PUBLIC_URL + "/api/download/...": no doubled slash. */
    size_t len = strlen (settings->public_url);
    while (len > 0 && settings->public_url[len - 1] == '/') {
        settings->public_url[--len] = '\0';
    }
    /* civetweb's listening_ports wants host:port; a bare ":" is refused. */
    const char *colon = strrchr (settings->http_addr, ':');
    if (colon == NULL || colon[1] == '\0' || strchr (settings->http_addr, ',') != NULL) {
        snprintf (err, errlen, "SAFESHARE_HTTP_ADDR must be host:port, got '%s'",
                  settings->http_addr);
        return -1;
    }
    long threads = cm_config_int (config, "SAFESHARE_HTTP_THREADS");
    long timeout = cm_config_int (config, "SAFESHARE_RPC_TIMEOUT_MS");
    long chunk = cm_config_int (config, "SAFESHARE_CHUNK_SIZE");
    long window = cm_config_int (config, "SAFESHARE_CRYPTO_WINDOW");
    long max_upload = cm_config_int (config, "SAFESHARE_MAX_UPLOAD_BYTES");
    long link_ttl = cm_config_int (config, "SAFESHARE_LINK_MAX_TTL");
    long user_ttl = cm_config_int (config, "SAFESHARE_USER_CACHE_TTL");
    long grace = cm_config_int (config, "SAFESHARE_SHUTDOWN_GRACE_MS");
    /* cm_config validates ranges; these guard the gateway's own needs. */
    if (threads < 1 || threads > 1024) {
        snprintf (err, errlen, "SAFESHARE_HTTP_THREADS must be 1..1024, got %ld",
                  threads);
        return -1;
    }
    if (timeout < 10 || timeout > 600000) {
        snprintf (err, errlen, "SAFESHARE_RPC_TIMEOUT_MS must be 10..600000, got %ld",
                  timeout);
        return -1;
    }
    if (chunk < 4096 || chunk > 16 * 1024 * 1024) {
        snprintf (err, errlen, "SAFESHARE_CHUNK_SIZE must be 4096..16777216, got %ld",
                  chunk);
        return -1;
    }
    if (window < 1 || window > GW_CRYPTO_WINDOW_MAX) {
        snprintf (err, errlen, "SAFESHARE_CRYPTO_WINDOW must be 1..%d, got %ld",
                  GW_CRYPTO_WINDOW_MAX, window);
        return -1;
    }
    if (max_upload < 0 || link_ttl < 1) {
        snprintf (err, errlen,
                  "SAFESHARE_MAX_UPLOAD_BYTES / SAFESHARE_LINK_MAX_TTL out of range");
        return -1;
    }
    if (user_ttl < 0 || user_ttl > 60) {
        snprintf (err, errlen, "SAFESHARE_USER_CACHE_TTL must be 0..60, got %ld",
                  user_ttl);
        return -1;
    }
    if (grace < 0 || grace > 3600000) {
        snprintf (err, errlen, "SAFESHARE_SHUTDOWN_GRACE_MS must be 0..3600000, got %ld",
                  grace);
        return -1;
    }
    if (gw_policy_parse (&settings->upload_policy,
                         cm_config_get (config, "SAFESHARE_UPLOAD_ALLOWED_TYPES"), err,
                         errlen) != 0) {
        return -1;
    }
    if (gw_cidr_list_parse (&settings->metrics_allow,
                            cm_config_get (config, "SAFESHARE_METRICS_ALLOW"),
                            "SAFESHARE_METRICS_ALLOW", err, errlen) != 0 ||
        gw_cidr_list_parse (&settings->trusted_proxies,
                            cm_config_get (config, "SAFESHARE_TRUSTED_PROXIES"),
                            "SAFESHARE_TRUSTED_PROXIES", err, errlen) != 0 ||
        gw_origins_parse (&settings->cors_origins,
                          cm_config_get (config, "SAFESHARE_CORS_ORIGINS"), err,
                          errlen) != 0 ||
        gw_token_hash_set (&settings->metrics_token,
                           cm_config_get (config, "SAFESHARE_METRICS_TOKEN"), err,
                           errlen) != 0) {
        return -1;
    }
    settings->http_threads = (int)threads;
    settings->rpc_timeout_ms = (int)timeout;
    settings->chunk_size = (uint32_t)chunk;
    settings->crypto_window = (unsigned)window;
    settings->max_upload_bytes = (uint64_t)max_upload;
    settings->link_max_ttl = (uint64_t)link_ttl;
    settings->user_cache_ttl_s = (unsigned)user_ttl;
    settings->shutdown_grace_ms = (unsigned)grace;
    return 0;
}
