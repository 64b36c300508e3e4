/*  unit_cli_probe -- the readiness probe against a local TCP server that
    answers what each case needs.                                        */
#include "cli_probe.h"
#include "cm_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct {
    int listen_fd;
    const char *reply; /* NULL: accept, read, never answer */
    char request[512];
    int hold_ms;
} s_server_t;

static void *
s_serve (void *arg)
{
    s_server_t *s = arg;
    int fd = accept (s->listen_fd, NULL, NULL);
    if (fd < 0) {
        return NULL;
    }
    size_t got = 0;
    while (got < sizeof s->request - 1 && !strstr (s->request, "\r\n\r\n")) {
        ssize_t n = recv (fd, s->request + got, sizeof s->request - 1 - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        s->request[got] = '\0';
    }
    if (s->reply) {
        send (fd, s->reply, strlen (s->reply), MSG_NOSIGNAL);
    } else {
        usleep ((useconds_t)s->hold_ms * 1000); /* the silent peer under test */
    }
    close (fd);
    return NULL;
}

/* Listens on 127.0.0.1:0; returns the port. */
static int
s_listen (s_server_t *s)
{
    s->listen_fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (s->listen_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (s->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal (listen (s->listen_fd, 4), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal (getsockname (s->listen_fd, (struct sockaddr *)&sa, &sl), 0);
    return ntohs (sa.sin_port);
}

static int
s_probe_with (const char *reply, const char *host, int timeout_ms, char *request_out)
{
    s_server_t s;
    memset (&s, 0, sizeof s);
    s.reply = reply;
    s.hold_ms = timeout_ms + 500;
    int port = s_listen (&s);
    pthread_t t;
    assert_int_equal (pthread_create (&t, NULL, s_serve, &s), 0);
    char addr[64];
    snprintf (addr, sizeof addr, "%s:%d", host, port);
    int status = cli_probe_http (addr, "/readyz", timeout_ms, -1);
    pthread_join (t, NULL);
    close (s.listen_fd);
    if (request_out) {
        strcpy (request_out, s.request);
    }
    return status;
}

static void
test_ok (void **state)
{
    char req[512];
    assert_int_equal (s_probe_with ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                                    "127.0.0.1", 2000, req),
                      200);
    assert_true (strncmp (req, "GET /readyz HTTP/1.0\r\n", 22) == 0);
    assert_non_null (strstr (req, "\r\nHost: 127.0.0.1:"));
}

static void
test_not_ready (void **state)
{
    assert_int_equal (s_probe_with ("HTTP/1.0 503 Service Unavailable\r\n\r\n{}",
                                    "127.0.0.1", 2000, NULL),
                      503);
}

/* A listen address on every interface is probed on loopback. */
static void
test_wildcard_host (void **state)
{
    assert_int_equal (s_probe_with ("HTTP/1.0 200 OK\r\n\r\n", "0.0.0.0", 2000, NULL),
                      200);
}

static void
test_garbage (void **state)
{
    assert_int_equal (s_probe_with ("SSH-2.0-OpenSSH\r\n", "127.0.0.1", 2000, NULL), -1);
    assert_int_equal (s_probe_with ("HTTP/1.1 20", "127.0.0.1", 2000, NULL), -1);
    assert_int_equal (s_probe_with ("HTTP/1.1 2000 OK\r\n\r\n", "127.0.0.1", 2000, NULL),
                      -1);
    assert_int_equal (s_probe_with ("", "127.0.0.1", 2000, NULL), -1);
}

static void
test_refused_and_bad_addr (void **state)
{
    s_server_t s;
    int port = s_listen (&s);
    close (s.listen_fd); /* nobody listens there now */
    char addr[64];
    snprintf (addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal (cli_probe_http (addr, "/readyz", 2000, -1), -1);
    assert_int_equal (cli_probe_http ("no-port", "/readyz", 100, -1), -1);
    assert_int_equal (cli_probe_http ("127.0.0.1:", "/readyz", 100, -1), -1);
}

/* A peer that accepts and never answers costs the timeout, not more. */
static void
test_silent_peer_times_out (void **state)
{
    uint64_t t0 = cm_mono_ms ();
    assert_int_equal (s_probe_with (NULL, "127.0.0.1", 300, NULL), -1);
    uint64_t took = cm_mono_ms () - t0;
    assert_true (took >= 250);
    assert_true (took < 2000);
}

/* A readable abort fd ends the wait at once. */
static void
test_abort_fd (void **state)
{
    s_server_t s;
    memset (&s, 0, sizeof s);
    s.hold_ms = 1500;
    int port = s_listen (&s);
    pthread_t t;
    assert_int_equal (pthread_create (&t, NULL, s_serve, &s), 0);
    int p[2];
    assert_int_equal (pipe (p), 0);
    assert_int_equal (write (p[1], "x", 1), 1);
    char addr[64];
    snprintf (addr, sizeof addr, "127.0.0.1:%d", port);
    uint64_t t0 = cm_mono_ms ();
    assert_int_equal (cli_probe_http (addr, "/readyz", 5000, p[0]), CLI_PROBE_ABORTED);
    assert_true (cm_mono_ms () - t0 < 1000);
    pthread_join (t, NULL);
    close (s.listen_fd);
    close (p[0]);
    close (p[1]);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_ok),
        cmocka_unit_test (test_not_ready),
        cmocka_unit_test (test_wildcard_host),
        cmocka_unit_test (test_garbage),
        cmocka_unit_test (test_refused_and_bad_addr),
        cmocka_unit_test (test_silent_peer_times_out),
        cmocka_unit_test (test_abort_fd),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
