/*  gw_sock -- the socket under a civetweb connection (see gw_sock.h).  */
#include "gw_sock.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* True if fd is a socket connected to remote_addr:remote_port on our
   local_port.                                                          */
static bool
s_matches (int fd, const char *remote_addr, int remote_port, int local_port)
{
    struct sockaddr_storage peer, local;
    socklen_t plen = sizeof peer, llen = sizeof local;
    if (getpeername (fd, (struct sockaddr *)&peer, &plen) != 0 ||
        getsockname (fd, (struct sockaddr *)&local, &llen) != 0) {
        return false;
    }
    char addr[INET6_ADDRSTRLEN] = "";
    int pport = -1, lport = -1;
    if (peer.ss_family == AF_INET && local.ss_family == AF_INET) {
        struct sockaddr_in *p4 = (struct sockaddr_in *)&peer;
        inet_ntop (AF_INET, &p4->sin_addr, addr, sizeof addr);
        pport = ntohs (p4->sin_port);
        lport = ntohs (((struct sockaddr_in *)&local)->sin_port);
    } else if (peer.ss_family == AF_INET6 && local.ss_family == AF_INET6) {
        struct sockaddr_in6 *p6 = (struct sockaddr_in6 *)&peer;
        inet_ntop (AF_INET6, &p6->sin6_addr, addr, sizeof addr);
        pport = ntohs (p6->sin6_port);
        lport = ntohs (((struct sockaddr_in6 *)&local)->sin6_port);
    }
    return pport == remote_port && lport == local_port && strcmp (addr, remote_addr) == 0;
}

int
gw_sock_find (const char *remote_addr, int remote_port, int local_port)
{
    /* A keep-alive connection stays on one worker thread: its last
       answer is checked first, sparing the directory walk.            */
    static __thread int s_last = -1;
    if (remote_addr == NULL) {
        return -1;
    }
    if (s_last > 2 && s_matches (s_last, remote_addr, remote_port, local_port)) {
        return s_last;
    }
    DIR *dir = opendir ("/proc/self/fd");
    if (dir == NULL) {
        return -1;
    }
    int found = -1;
    struct dirent *de;
    while ((de = readdir (dir)) != NULL) {
        int fd = atoi (de->d_name);
        struct stat st;
        if (fd <= 2 || fd == dirfd (dir) || fstat (fd, &st) != 0 ||
            !S_ISSOCK (st.st_mode)) {
            continue;
        }
        if (s_matches (fd, remote_addr, remote_port, local_port)) {
            found = fd;
            break;
        }
    }
    closedir (dir);
    s_last = found;
    return found;
}
