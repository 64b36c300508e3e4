/*  gw_sock -- the socket under a civetweb connection. civetweb 1.15 has
    no call that hands a handler its socket (nor one that drops a server
    connection), so it is found among our fds by its peer and local
    addresses: a TCP 4-tuple names one established socket.             */
#ifndef GW_SOCK_H
#define GW_SOCK_H

/* The fd of the connected socket with this peer address/port and local
   port, or -1. The fd is borrowed: civetweb owns it and closes it after
   the handler returns, so use it only while the request is in progress. */
int gw_sock_find (const char *remote_addr, int remote_port, int local_port);

#endif
