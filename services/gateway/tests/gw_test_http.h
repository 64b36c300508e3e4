/*  gw_test_http -- the raw HTTP client of the gateway's system tests
    (svc_gateway, svc_gateway_drain): plain sockets to 127.0.0.1, one
    response read with a deadline.                                      */
#ifndef GW_TEST_HTTP_H
#define GW_TEST_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int status;
    char head[8192];
    char *body;
    size_t body_len;
    long long content_length;
    bool closed; /* the server closed the connection */
} gw_test_resp_t;

void gw_test_resp_free (gw_test_resp_t *r);

/* A loopback TCP port free right now, or -1. */
int gw_test_free_port (void);

/* A connected socket to 127.0.0.1:port, or -1. */
int gw_test_connect (int port);

/* Reads one response from fd (headers, then Content-Length bytes or to
   EOF; interim 100 Continue responses skipped) within timeout_ms, at
   most `piece` bytes a read. 0, or -1 if no head came.               */
int gw_test_read_response (int fd, gw_test_resp_t *r, int timeout_ms, size_t piece);

#endif
