/*  cli_probe -- one HTTP/1.0 GET over a plain TCP socket.               */
#include "cli_probe.h"
#include "cm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Splits HOST:PORT; a wildcard listen address is reached on loopback. */
static int
s_split (const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strrchr (addr, ':');
    if (!colon || colon == addr || !colon[1]) {
        return -1;
    }
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= hostlen || strlen (colon + 1) >= portlen) {
        return -1;
    }
    memcpy (host, h, hl);
    host[hl] = '\0';
    snprintf (port, portlen, "%s", colon + 1);
    if (strcmp (host, "0.0.0.0") == 0 || strcmp (host, "*") == 0 || host[0] == '\0') {
        snprintf (host, hostlen, "127.0.0.1");
    } else if (strcmp (host, "::") == 0) {
        snprintf (host, hostlen, "::1");
    }
    return 0;
}

/* Waits for `events` on fd until the deadline. 1 ready, 0 timed out,
   CLI_PROBE_ABORTED, -1 error.                                         */
static int
s_wait (int fd, short events, uint64_t deadline, int abort_fd)
{
    for (;;) {
        uint64_t now = cm_mono_ms ();
        if (now >= deadline) {
            return 0;
        }
        struct pollfd p[2] = {{fd, events, 0}, {abort_fd, POLLIN, 0}};
        int rc = poll (p, abort_fd >= 0 ? 2 : 1, (int)(deadline - now));
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc < 0) {
            return -1;
        }
        if (abort_fd >= 0 && (p[1].revents & POLLIN)) {
            return CLI_PROBE_ABORTED;
        }
        if (rc > 0 && p[0].revents) {
            return 1;
        }
    }
}

/* "HTTP/1.x NNN ..." -> NNN, or -1. */
static int
s_status (const char *line)
{
    if (strncmp (line, "HTTP/1.", 7) != 0 || !(line[7] == '0' || line[7] == '1') ||
        line[8] != ' ') {
        return -1;
    }
    const char *p = line + 9;
    for (int i = 0; i < 3; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
    }
    if (p[3] != ' ' && p[3] != '\r' && p[3] != '\n') {
        return -1;
    }
    int status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    return status >= 100 ? status : -1;
}

int
cli_probe_http (const char *addr, const char *path, int timeout_ms, int abort_fd)
{
    char host[256], port[16];
    if (s_split (addr, host, sizeof host, port, sizeof port) != 0) {
        return -1;
    }
    uint64_t deadline = cm_mono_ms () + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    struct addrinfo hints, *ai = NULL;
    memset (&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo (host, port, &hints, &ai) != 0 || !ai) {
        return -1;
    }
    int result = -1, fd = -1;
    fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 ai->ai_protocol);
    if (fd < 0) {
        goto cleanup;
    }
    if (connect (fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        goto cleanup;
    }
    int w = s_wait (fd, POLLOUT, deadline, abort_fd);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (w != 1 || getsockopt (fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
        result = w == CLI_PROBE_ABORTED ? w : -1;
        goto cleanup;
    }
    char req[512];
    int rl =
        snprintf (req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr);
    if (rl < 0 || rl >= (int)sizeof req) {
        goto cleanup;
    }
    for (int sent = 0; sent < rl;) {
        ssize_t n = send (fd, req + sent, (size_t)(rl - sent), MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            w = s_wait (fd, POLLOUT, deadline, abort_fd);
            if (w != 1) {
                result = w == CLI_PROBE_ABORTED ? w : -1;
                goto cleanup;
            }
            continue;
        }
        if (n <= 0) {
            goto cleanup;
        }
        sent += (int)n;
    }
    /* The status line is all we need; it is short. */
    char line[128];
    size_t got = 0;
    while (got < sizeof line - 1 && !memchr (line, '\n', got)) {
        w = s_wait (fd, POLLIN, deadline, abort_fd);
        if (w != 1) {
            result = w == CLI_PROBE_ABORTED ? w : -1;
            goto cleanup;
        }
        ssize_t n = recv (fd, line + got, sizeof line - 1 - got, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    line[got] = '\0';
    result = s_status (line);
cleanup:
    if (fd >= 0) {
        close (fd);
    }
    freeaddrinfo (ai);
    return result;
}
