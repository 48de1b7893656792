/* fwd.h - a loopback TCP forwarder for lambdad-devbroker's fixed --port.
 *
 * librdkafka 2.0.2's mock brokers always listen on random ports, so a fixed
 * bootstrap address is provided by relaying every connection accepted on
 * 127.0.0.1:PORT to one mock broker's real listener, byte for byte, in both
 * directions. Clients only bootstrap through it: the metadata they receive
 * advertises the brokers' own ports, which they then use directly.
 *
 * One relay thread owns every socket; fwd_free() (any one thread) wakes it
 * through a pipe and joins it. No locks.
 */
#pragma once
#include <stdint.h>

typedef struct fwd fwd_t;

/* Binds and listens on 127.0.0.1:port. 0 or a negative errno
 * (-EADDRINUSE when the port is taken). */
int fwd_new(fwd_t **out, uint16_t port);

/* The bound port (useful after fwd_new(..., 0)), or a negative errno. */
int fwd_port(const fwd_t *f);

/* Starts the relay thread towards 127.0.0.1:upstream_port. 0 or -errno. */
int fwd_start(fwd_t *f, uint16_t upstream_port);

/* Stops the thread, closes every socket, frees. Accepts NULL. */
void fwd_free(fwd_t *f);
