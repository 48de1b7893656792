/* conns.h - counting the open HTTP connections, in all and per client
 * address, to answer the ones over http.limits.max_connections(_per_ip)
 * with a JSON error instead of serving them (serving/ private).
 *
 * libmicrohttpd tells of every accepted and closed connection on its pool
 * threads; the counts live behind one mutex, held for a hash lookup.
 */
#pragma once
#include <stddef.h>
#include <sys/socket.h>

typedef struct conns conns;
typedef struct conn_slot conn_slot;

typedef enum {
    CONN_OK,          /* within both limits */
    CONN_OVER_TOTAL,  /* more than max_total open connections */
    CONN_OVER_IP,     /* more than max_per_ip from this address */
} conn_verdict;

int conns_new(size_t max_total, size_t max_per_ip, conns **out);
void conns_free(conns *c);   /* accepts NULL; every slot must be closed */

/* Counts a new connection from addr (NULL or an unknown family: one shared
 * "unknown" address) and judges it; the counts include it either way.
 * *slot is NULL only when out of memory (then the verdict is CONN_OK and
 * nothing is counted). */
conn_verdict conns_open(conns *c, const struct sockaddr *addr, conn_slot **slot);
void conns_close(conns *c, conn_slot *slot);   /* accepts NULL */
/* The verdict conns_open gave this connection (NULL: CONN_OK). */
conn_verdict conns_verdict(const conn_slot *slot);

/* Open connections in all. */
size_t conns_count(conns *c);
