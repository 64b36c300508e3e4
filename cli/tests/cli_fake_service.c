/*  cli_fake_service -- stands in for every safeshare-* binary in the
    `safeshare up` tests (symlinked under each name). It records its pid
    and arguments in $FAKE_DIR, and the order in which services are
    stopped in $FAKE_DIR/stopped.log. As safeshare-gateway it answers any
    HTTP request on SAFESHARE_HTTP_ADDR with FAKE_READYZ_STATUS (200).  */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop = 0;

static void
s_on_term (int sig)
{
    s_stop = sig;
}

static void
s_write_file (const char *dir, const char *name, const char *suffix, const char *text,
              int flags)
{
    /* Whole files only (tmp + rename): the test reads them while we run. */
    char path[4096], tmp[4200];
    snprintf (path, sizeof path, "%s/%s%s", dir, name, suffix);
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    const char *target = (flags & O_APPEND) ? path : tmp;
    int fd = open (target, O_WRONLY | O_CREAT | flags, 0644);
    if (fd >= 0) {
        if (write (fd, text, strlen (text)) < 0) {
            perror ("write");
        }
        close (fd);
        if (!(flags & O_APPEND)) {
            rename (tmp, path);
        }
    }
}

static int
s_listen (const char *addr)
{
    const char *colon = addr ? strrchr (addr, ':') : NULL;
    if (!colon) {
        return -1;
    }
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons ((uint16_t)atoi (colon + 1))};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (bind (fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen (fd, 16) != 0) {
        perror ("fake gateway: bind/listen");
        close (fd);
        return -1;
    }
    return fd;
}

static void
s_answer (int lfd, int status)
{
    int fd = accept (lfd, NULL, NULL);
    if (fd < 0) {
        return;
    }
    char buf[1024];
    if (recv (fd, buf, sizeof buf, 0) > 0) {
        char reply[128];
        snprintf (reply, sizeof reply, "HTTP/1.0 %d X\r\nContent-Length: 0\r\n\r\n",
                  status);
        send (fd, reply, strlen (reply), MSG_NOSIGNAL);
    }
    close (fd);
}

int
main (int argc, char **argv)
{
    const char *dir = getenv ("FAKE_DIR");
    if (!dir) {
        fprintf (stderr, "cli_fake_service: FAKE_DIR is not set\n");
        return 2;
    }
    char name[256];
    snprintf (name, sizeof name, "%s", basename (argv[0]));

    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_term;
    sigaction (SIGTERM, &sa, NULL);
    sigaction (SIGINT, &sa, NULL);

    char text[4096] = "";
    for (int i = 0; i < argc; i++) {
        strncat (text, argv[i], sizeof text - strlen (text) - 2);
        strcat (text, "\n");
    }
    s_write_file (dir, name, ".args", text, O_TRUNC);
    /* Last: the pid file tells the test that the SIGTERM handler is in
       place and the arguments are recorded.                           */
    snprintf (text, sizeof text, "%d\n", (int)getpid ());
    s_write_file (dir, name, ".pid", text, O_TRUNC);

    int lfd = -1;
    int status =
        getenv ("FAKE_READYZ_STATUS") ? atoi (getenv ("FAKE_READYZ_STATUS")) : 200;
    if (strcmp (name, "safeshare-gateway") == 0) {
        lfd = s_listen (getenv ("SAFESHARE_HTTP_ADDR"));
        if (lfd < 0) {
            return 1;
        }
    }
    while (!s_stop) {
        struct pollfd p = {lfd, POLLIN, 0};
        int rc = poll (&p, lfd >= 0 ? 1 : 0, -1);
        if (rc > 0 && (p.revents & POLLIN)) {
            s_answer (lfd, status);
        }
    }
    snprintf (text, sizeof text, "%s\n", name);
    s_write_file (dir, "stopped", ".log", text, O_APPEND);
    return 0;
}
