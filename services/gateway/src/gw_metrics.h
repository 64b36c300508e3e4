/*  gw_metrics -- the gateway's counters and histograms, shared by every
    worker thread (relaxed atomics, no lock), and GET /metrics in the
    Prometheus text format 0.0.4. Crypto's pool and the mail queue are
    asked at scrape time with a short timeout; a service that does not
    answer shows as safeshare_service_up 0, never as a failed scrape.
    Metric names: docs/operations.md ("Metrics").                      */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include "gw_http.h"
#include "gw_route.h"
#include "gw_settings.h"

typedef struct gw_metrics_t gw_metrics_t;

/* NULL on out of memory. */
gw_metrics_t *gw_metrics_new (void);
void gw_metrics_destroy (gw_metrics_t **self_p);

/* Monotonic microseconds: the clock of every duration below. */
uint64_t gw_metrics_now_us (void);

/* One HTTP request answered: its route (GW_ROUTE_NONE when none
   matched), method, status, duration and body bytes read / written.   */
void gw_metrics_http (gw_metrics_t *self, gw_route_id_t route, const char *method,
                      int status, uint64_t duration_us, uint64_t bytes_in,
                      uint64_t bytes_out);

/* A committed upload of bytes file bytes.                             */
void gw_metrics_upload (gw_metrics_t *self, uint64_t bytes);

/* A download (owner's GET .../content or a share link) that sent bytes
   file bytes; link says which.                                        */
void gw_metrics_download (gw_metrics_t *self, bool link, uint64_t bytes);

/* One RPC round trip to svc (ok: observed in the histogram; the
   service's own refusals are answers too), or (!ok) a call that timed
   out or failed in transport: counted, duration ignored.              */
void gw_metrics_rpc (gw_metrics_t *self, gw_svc_t svc, uint64_t duration_us, bool ok);

/* Answers GET /metrics (access already checked): the exposition, with
   crypto pool_status and mailer STATS fetched through req->rpc within
   timeout_ms each. Returns the status sent.                           */
int gw_metrics_reply (gw_metrics_t *self, gw_req_t *req, int timeout_ms);

#endif
