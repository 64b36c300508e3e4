/*  cli_probe -- one HTTP/1.0 GET over a plain TCP socket, for readiness
    (`safeshare up` polls the gateway's /readyz). No HTTP library: the
    CLI needs the status line only.                                     */
#ifndef CLI_PROBE_H
#define CLI_PROBE_H

#define CLI_PROBE_ABORTED (-2)

/* addr is SAFESHARE_HTTP_ADDR (HOST:PORT, [V6]:PORT; a wildcard host is
   probed on loopback). Returns the HTTP status (e.g. 200, 503), -1 if
   there was no valid answer within timeout_ms (refused, timed out,
   garbage), or CLI_PROBE_ABORTED as soon as abort_fd (if >= 0) becomes
   readable -- so a signal or a dying child is never kept waiting.     */
int cli_probe_http (const char *addr, const char *path, int timeout_ms, int abort_fd);

#endif
