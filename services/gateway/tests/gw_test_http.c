/*  gw_test_http -- see gw_test_http.h.                                 */
#include "gw_test_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "cm_testing.h"
#include "cm_util.h"

void
gw_test_resp_free (gw_test_resp_t *r)
{
    free (r->body);
    r->body = NULL;
}

int
gw_test_free_port (void)
{
    return cm_test_free_port ();
}

int
gw_test_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (connect (fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close (fd);
        return -1;
    }
    return fd;
}

int
gw_test_read_response (int fd, gw_test_resp_t *r, int timeout_ms, size_t piece)
{
    memset (r, 0, sizeof *r);
    r->content_length = -1;
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc (cap);
    uint64_t deadline = cm_mono_ms () + (uint64_t)timeout_ms;
    size_t body_off = 0;
    bool have_head = false;
    while (true) {
        if (have_head && r->content_length >= 0 &&
            used - body_off >= (size_t)r->content_length) {
            break;
        }
        uint64_t now = cm_mono_ms ();
        if (now >= deadline) {
            break;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll (&p, 1, (int)(deadline - now)) <= 0) {
            break;
        }
        if (used + piece + 1 > cap) {
            cap = 2 * cap + piece;
            buf = realloc (buf, cap);
        }
        ssize_t n = recv (fd, buf + used, piece, 0);
        if (n <= 0) {
            r->closed = true;
            break;
        }
        used += (size_t)n;
        buf[used] = '\0';
        char *end = have_head ? NULL : strstr (buf, "\r\n\r\n");
        while (end && strncmp (buf, "HTTP/1.1 100", 12) == 0) {
            size_t skip = (size_t)(end + 4 - buf);
            memmove (buf, buf + skip, used - skip + 1);
            used -= skip;
            end = strstr (buf, "\r\n\r\n");
        }
        if (end) {
            have_head = true;
            body_off = (size_t)(end + 4 - buf);
            size_t hl = (size_t)(end - buf);
            memcpy (r->head, buf, hl < sizeof r->head - 1 ? hl : sizeof r->head - 1);
            sscanf (buf, "HTTP/1.%*d %d", &r->status);
            char *cl = strcasestr (r->head, "\r\nContent-Length:");
            if (cl) {
                r->content_length = atoll (cl + 17);
            }
        }
    }
    if (have_head) {
        r->body_len = used - body_off;
        r->body = malloc (r->body_len + 1);
        memcpy (r->body, buf + body_off, r->body_len);
        r->body[r->body_len] = '\0';
    }
    free (buf);
    return have_head ? 0 : -1;
}
